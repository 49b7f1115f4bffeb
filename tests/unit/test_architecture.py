"""The house rules that import-linter cannot see (its contracts run in ``make lint``): no project import
hidden inside a function, no source file over 400 lines, every test directory a package."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("api", "controlplane", "placement", "agents")
# optional extras: only the hosts that use that driver need them installed
OPTIONAL = ("libvirt", "proxmoxer", "paramiko")
MAX_LINES = 400


def _sources(*tops: str) -> list[Path]:
    out = []
    for top in tops:
        out += [p for p in (ROOT / top).rglob("*.py") if "migrations/versions" not in p.as_posix()]
    return sorted(out)


def function_level_imports(path: Path) -> list[tuple[int, str, str]]:
    """``(line, module, source line)`` of every import inside a function body."""
    text = path.read_text()
    lines = text.splitlines()
    found = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            for sub in ast.walk(node):
                if isinstance(sub, ast.Import):
                    found += [(sub.lineno, alias.name, lines[sub.lineno - 1]) for alias in sub.names]
                elif isinstance(sub, ast.ImportFrom):
                    found.append((sub.lineno, "." * sub.level + (sub.module or ""), lines[sub.lineno - 1]))
    return found


def offending(path: Path) -> list[str]:
    bad = []
    for line, module, source in function_level_imports(path):
        optional = module.split(".")[0] in OPTIONAL
        if not optional or "#" not in source:
            bad.append(f"{path.relative_to(ROOT)}:{line}: {source.strip()}")
    return bad


def test_only_optional_dependencies_are_imported_inside_functions() -> None:
    bad = [b for p in _sources(*PACKAGES) for b in offending(p)]
    assert bad == [], "imports inside functions (only libvirt/proxmoxer/paramiko, with a comment):\n" + "\n".join(bad)


def test_the_check_catches_a_hidden_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from controlplane import queue\n    import libvirt  # optional extra\n"
                      "    import paramiko\n")
    found = [module for _, module, _ in function_level_imports(sample)]
    assert found == ["controlplane", "libvirt", "paramiko"]
    bad = [line for line, module, source in function_level_imports(sample)
           if module.split(".")[0] not in OPTIONAL or "#" not in source]
    assert bad == [2, 4]  # a project module, and an optional one without its comment


def test_no_source_file_is_over_400_lines() -> None:
    long = [f"{p.relative_to(ROOT)}: {n}" for p in _sources(*PACKAGES, "tests", "bench")
            if (n := len(p.read_text().splitlines())) > MAX_LINES]
    assert long == []


def test_every_test_directory_is_a_package() -> None:
    """A test directory without ``__init__.py`` goes on sys.path under its own name and can shadow a real
    module (``tests/integration/libvirt`` once stood in for libvirt-python where it was missing)."""
    missing = [str(d.relative_to(ROOT)) for d in sorted((ROOT / "tests").rglob("*"))
               if d.is_dir() and d.name != "__pycache__" and any(d.glob("*.py")) and not (d / "__init__.py").exists()]
    assert missing == []
