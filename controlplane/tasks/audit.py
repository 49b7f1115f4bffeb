"""Celery task of the audit log: seal the committed entries into the hash chain."""

from __future__ import annotations

from controlplane.core.audit import seal
from controlplane.queue import AUDIT_SEAL, task


@task(AUDIT_SEAL)
def audit_seal() -> int:
    total = 0
    while (done := seal()) > 0:
        total += done
    return total
