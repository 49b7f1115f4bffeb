"""An in-process Celery worker on the in-memory broker: the embedded default (``make demo``, tests).

Production runs ``celery -A controlplane.worker worker`` processes on Redis instead; the tasks are
the same. With the in-memory broker queued tasks die with the process, so on start every unfinished
operation is sent again (the tasks are idempotent).
"""

from __future__ import annotations

import logging
import threading

from celery.beat import EmbeddedService, Scheduler
from celery.worker import WorkController
from flask import Flask
from sqlalchemy import select

from controlplane import queue
from controlplane.db import db
from controlplane.models import UNFINISHED, Operation, OpKind
from controlplane.queue import celery_app
from controlplane.services.plans import execute

log = logging.getLogger("confluencia.worker")


class EmbeddedWorker:
    def __init__(self, app: Flask, concurrency: int = 4) -> None:
        self.app = app
        self.controller = WorkController(
            app=celery_app, pool_cls="threads", concurrency=concurrency, loglevel="WARNING",
            without_heartbeat=True, without_mingle=True, without_gossip=True, hostname="embedded@confluencia")
        self.thread = threading.Thread(target=self.controller.start, name="celery-embedded", daemon=True)

    def start(self, resend_unfinished: bool = True) -> EmbeddedWorker:
        self.thread.start()
        if resend_unfinished:
            with self.app.app_context():
                unfinished = list(db.session.execute(select(Operation).where(
                    Operation.status.in_(UNFINISHED))).scalars())
                for op in unfinished:  # their worker died with the previous process: free their leases
                    op.worker_id = op.lease_expires_at = None
                sends = [(queue.task_for(op.kind), op.id) for op in unfinished if op.kind != OpKind.PLAN_EXECUTE]
                db.session.commit()
                plans = execute.resume_overdue(every=True)  # their chains died with the previous process
            for name, ident in sends:
                queue.send(name, [ident])
            if sends or plans:
                log.info("re-sent %d unfinished operations, resumed %d plans", len(sends), len(plans))
        return self

    def stop(self) -> None:
        self.controller.stop(in_sighandler=False)
        self.thread.join(timeout=10)


class EmbeddedBeat:
    """``celery beat`` in a thread of the same process (the in-memory broker cannot be shared with the
    separate process that ``worker -B`` forks): nightly optimizer, health checks, plan resumption and
    reconcile run on their schedule in ``confluencia serve``/``demo`` too. The schedule is kept in memory."""

    def __init__(self) -> None:
        self.service = EmbeddedService(celery_app, thread=True, scheduler_cls=Scheduler)

    def start(self) -> EmbeddedBeat:
        self.service.start()
        return self

    def stop(self) -> None:
        self.service.stop()
        self.service.join(timeout=10)
