"""Check an audit export offline: signatures, every entry's inclusion, completeness and, given the previous export
(or the head that came with it), that the log only grew since.

What each check catches: an edited entry changes its leaf hash, so its inclusion proof no longer leads to the
signed root; a removed entry leaves a gap in ``tenant_seq`` or a count below the signed receipt; reordered entries
break the order of leaf indexes and numbers; a forged head fails its Ed25519 signature; a rewritten history fails
the consistency proof from the previous head (RFC 9162 section 2.1.4).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from controlplane.transparency import heads
from controlplane.transparency.entries import entry_leaf_hash
from controlplane.transparency.merkle import verify_consistency, verify_inclusion

EXPORT_FORMAT = "confluencia-audit-export/1"


@dataclass
class Report:
    entries: int = 0
    tree_size: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def fail(self, en: str, es: str) -> None:
        self.problems.append(f"{en} / {es}")


def _hashes(values: Any) -> list[bytes] | None:
    if not isinstance(values, list):
        return None
    try:
        return [bytes.fromhex(v) for v in values]
    except (TypeError, ValueError):
        return None


def verify_export(export: Mapping[str, Any], key: Ed25519PublicKey,
                  previous: Mapping[str, Any] | None = None) -> Report:
    """``previous``: the export received before this one, or just its ``head``; None for the first one."""
    report = Report()
    if export.get("format") != EXPORT_FORMAT:
        report.fail(f"not a {EXPORT_FORMAT} document", f"no es un documento {EXPORT_FORMAT}")
        return report
    head = export.get("head") or {}
    if not heads.verify(key, head, "tree-head"):
        report.fail("the tree head's signature is not valid for this key",
                    "la firma de la cabeza del árbol no es válida para esta clave")
        return report
    size, root = int(head["tree_size"]), bytes.fromhex(str(head["root_hash"]))
    report.tree_size = size
    tenant = export.get("tenant_id")
    receipt = export.get("receipt") or {}
    if not heads.verify(key, receipt, "tenant-receipt") or receipt.get("tenant_id") != tenant \
            or receipt.get("tree_size") != size:
        report.fail("the receipt is not signed for this municipality and tree size",
                    "el recibo no está firmado para este municipio y este tamaño de árbol")
        return report
    _check_entries(export.get("entries"), tenant, size, root, int(receipt["entries"]), report)
    if previous is not None:
        _check_previous(export, previous, key, size, root, report)
    return report


def _check_entries(entries: Any, tenant: Any, size: int, root: bytes, expected: int, report: Report) -> None:
    if not isinstance(entries, list):
        report.fail("the export has no list of entries", "la exportación no tiene lista de entradas")
        return
    last_index = -1
    for number, item in enumerate(entries, start=1):
        entry, index = item.get("entry") or {}, item.get("leaf_index")
        label_en, label_es = f"entry {number} (leaf {index})", f"entrada {number} (hoja {index})"
        if entry.get("tenant_id") != tenant:
            report.fail(f"{label_en} belongs to another municipality", f"{label_es} es de otro municipio")
        if entry.get("tenant_seq") != number:
            report.fail(f"{label_en}: number {entry.get('tenant_seq')} where {number} was expected (an entry is "
                        "missing or out of order)",
                        f"{label_es}: número {entry.get('tenant_seq')} en lugar de {number} (falta una entrada o "
                        "están desordenadas)")
        if not isinstance(index, int) or not last_index < index < size:
            report.fail(f"{label_en}: leaf index out of order or outside the tree",
                        f"{label_es}: índice de hoja desordenado o fuera del árbol")
            continue
        last_index = index
        path = _hashes(item.get("inclusion"))
        try:
            leaf = entry_leaf_hash(entry)
        except ValueError:
            leaf = b""
        if path is None or not verify_inclusion(index, size, leaf, path, root):
            report.fail(f"{label_en} is not in the signed tree as it is written (edited or forged)",
                        f"{label_es} no está en el árbol firmado tal como está escrita (modificada o falsificada)")
    report.entries = len(entries)
    if len(entries) != expected:
        report.fail(f"the export has {len(entries)} entries, the signed receipt says {expected}",
                    f"la exportación tiene {len(entries)} entradas, el recibo firmado dice {expected}")


def _check_previous(export: Mapping[str, Any], previous: Mapping[str, Any], key: Ed25519PublicKey, size: int,
                    root: bytes, report: Report) -> None:
    old_head = previous.get("head", previous)
    if not heads.verify(key, old_head, "tree-head"):
        report.fail("the previous tree head's signature is not valid",
                    "la firma de la cabeza anterior no es válida")
        return
    old_size, old_root = int(old_head["tree_size"]), bytes.fromhex(str(old_head["root_hash"]))
    consistency = export.get("consistency") or {}
    proof = _hashes(consistency.get("proof"))
    if consistency.get("from_size") != old_size or proof is None \
            or not verify_consistency(old_size, size, old_root, root, proof):
        report.fail(f"the log of {size} entries is not an extension of the previous one of {old_size} "
                    "(history was rewritten)",
                    f"el registro de {size} entradas no extiende el anterior de {old_size} (se reescribió la historia)")
        return
    old_entries: Sequence[Mapping[str, Any]] = previous.get("entries") or []
    new_entries = export.get("entries") or []
    for old, new in zip(old_entries, new_entries, strict=False):
        if old.get("leaf_index") != new.get("leaf_index") or old.get("entry") != new.get("entry"):
            report.fail(f"entry {old.get('entry', {}).get('tenant_seq')} differs from the previous export",
                        f"la entrada {old.get('entry', {}).get('tenant_seq')} difiere de la exportación anterior")
            return
    if len(new_entries) < len(old_entries):
        report.fail("entries of the previous export are missing", "faltan entradas de la exportación anterior")
