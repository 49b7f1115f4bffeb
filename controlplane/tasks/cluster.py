"""Celery task of the data center's balance history: a sample every ten minutes (the dashboard's chart)."""

from __future__ import annotations

from controlplane.core.cluster import record_balance
from controlplane.core.tx import transaction
from controlplane.queue import BALANCE_SAMPLE, task


@task(BALANCE_SAMPLE)
def balance_sample() -> float:
    with transaction():
        return record_balance().objective
