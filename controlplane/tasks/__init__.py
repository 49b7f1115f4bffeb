"""Layer 3: Celery tasks, registered by name on :data:`controlplane.queue.celery_app`, each a thin
wrapper that calls one use case's worker half; and the embedded in-process worker and beat.

The wiring layer (``controlplane.app``) imports every task module, so the names are registered in each
process that runs tasks.
"""
