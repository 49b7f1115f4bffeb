"""``confluencia-audit-verify EXPORT --key KEY [--previous PREVIOUS]``: check an audit export offline.

Exit status 0 when every check passes, 1 when one fails, 2 when a file cannot be read."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from controlplane.transparency.heads import load_public_key
from controlplane.transparency.verify import verify_export


def _read_json(path: str) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _read_key(path: str) -> str:
    """A PEM file, or the JSON document of /.well-known/confluencia-audit-key."""
    text = Path(path).read_text(encoding="utf-8")
    return str(json.loads(text)["public_key_pem"]) if text.lstrip().startswith("{") else text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="confluencia-audit-verify",
        description="Verify a Confluencia audit export offline / Verifica sin conexión una exportación de auditoría")
    parser.add_argument("export", help="the export (GET /v1/audit/export) / la exportación")
    parser.add_argument("--key", required=True,
                        help="the log's public key: PEM or the JSON of /.well-known/confluencia-audit-key")
    parser.add_argument("--previous", help="the export received before this one / la exportación anterior")
    args = parser.parse_args(argv)
    try:
        export = _read_json(args.export)
        key = load_public_key(_read_key(args.key))
        previous = _read_json(args.previous) if args.previous else None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"cannot read the input / no se puede leer la entrada: {exc}", file=sys.stderr)
        return 2
    try:
        report = verify_export(export, key, previous)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:  # a document of the wrong shape
        print(f"malformed export / exportación mal formada: {exc!r}", file=sys.stderr)
        return 1
    if report.ok:
        print(f"OK: {report.entries} entries verified in a signed tree of {report.tree_size} / "
              f"{report.entries} entradas verificadas en un árbol firmado de {report.tree_size}")
        return 0
    for problem in report.problems:
        print(f"FAIL: {problem}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
