"""Celery task of image imports (``confluencia.image.import``), through the shared runner."""

from __future__ import annotations

from typing import Any

from controlplane.models import OpKind
from controlplane.queue import task, task_for
from controlplane.services import images
from controlplane.tasks.runner import RETRY, run


@task(task_for(OpKind.IMAGE_IMPORT), bind=True, **RETRY)
def image_import(self: Any, op_id: str) -> None:
    run(self, op_id, images.run_import, images.give_up)
