"""Layer 1: domain code shared by several use cases (state machine, audit, views, leases, capacity,
scheduling, outbox, driver access). It builds on the models (layer 0) and knows nothing of HTTP,
Celery tasks or of any one service."""
