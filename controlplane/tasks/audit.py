"""Celery tasks of the audit log: seal the committed entries into the tree; sign its head now and then."""

from __future__ import annotations

import logging

from controlplane.core.audit import seal
from controlplane.core.audit_tree import AuditKeyError, sign_head
from controlplane.queue import AUDIT_SEAL, AUDIT_SIGN, task

log = logging.getLogger("confluencia.audit")


@task(AUDIT_SEAL)
def audit_seal() -> int:
    total = 0
    while (done := seal()) > 0:
        total += done
    return total


@task(AUDIT_SIGN)
def audit_sign() -> int:
    """Sign the tree's head when it grew since the last signed one; returns the signed size."""
    try:
        return sign_head().tree_size
    except AuditKeyError as exc:
        log.warning("audit tree head not signed: %s", exc.detail.en)
        return 0
