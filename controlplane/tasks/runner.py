"""How every operation's task runs (VMs, images, volumes): the same lease, retries and failure handling.

The runner gives every task the same behaviour: the operation's lease, renewed by a heartbeat while the
work runs (a duplicate delivery waits); transient driver errors retried by Celery (``autoretry_for`` with
exponential backoff and jitter) after giving the lease back; a host that does not answer marked ``down``
at once; the use case's ``give_up`` once the retries are spent; and any unexpected error recorded on the
operation, so nothing stays "running" forever.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from celery.exceptions import Retry

from agents import ConnectionFailed, DriverError
from controlplane import context
from controlplane.core import leases
from controlplane.core.reachability import mark_unreachable

log = logging.getLogger("confluencia.tasks")

MAX_RETRIES = 3
BUSY_RETRIES = 200  # a duplicate delivery looks again at most every 10 s while the lease is held
RETRY = {"autoretry_for": (DriverError,), "retry_backoff": 2, "retry_backoff_max": 30, "retry_jitter": True,
         "max_retries": MAX_RETRIES}

Work = Callable[[str], None]
GiveUp = Callable[[str, str], None]


def run(task_: Any, op_id: str, work: Work, give_up: GiveUp) -> None:
    tokens = (context.worker_id.set(task_.request.id), context.operation_id.set(op_id),
              context.request_id.set(leases.request_id_of(op_id) or f"task:{task_.request.id}"))
    log.info("%s: operation %s (attempt %d)", task_.name, op_id, task_.request.retries + 1)
    try:
        with leases.heartbeat(op_id):
            work(op_id)
    except leases.Finished:
        return  # another delivery finished it first
    except leases.Busy as busy:  # a duplicate delivery: wait for the one holding the lease
        raise task_.retry(countdown=busy.retry_in, max_retries=BUSY_RETRIES) from busy
    except DriverError as exc:
        if isinstance(exc, ConnectionFailed):
            mark_unreachable(exc.host, exc.message)
        if not exc.transient:  # the use case did not expect it: record it (retrying cannot help)
            leases.fail_unexpected(op_id, exc)
            return
        if task_.request.retries < MAX_RETRIES:
            leases.give_back(op_id)
            raise  # autoretry_for: Celery sends the retry with exponential backoff
        give_up(op_id, f"{type(exc).__name__}: {exc.message} (after {MAX_RETRIES} retries)")
    except Retry:
        raise
    except Exception as exc:  # a bug or a lost database: never leave the operation "running" forever
        leases.fail_unexpected(op_id, exc)
        raise
    finally:
        context.request_id.reset(tokens[2])
        context.operation_id.reset(tokens[1])
        context.worker_id.reset(tokens[0])
