"""The control plane's event metrics (Prometheus): operation and hypervisor-call latency, call errors, HTTP.

Defined once here, at the bottom layer, so the code that times an event (the driver guard, the lease that
finishes an operation, the HTTP layer) only imports its metric. The state of the data center (allocation,
VMs per state, quotas, plans, queue) is read from the database when ``/metrics`` is scraped
(:mod:`controlplane.services.metrics`).

Several processes (gunicorn workers, Celery workers on the same machine): start every one of them with the
same ``PROMETHEUS_MULTIPROC_DIR``, an empty directory, and ``/metrics`` adds up all their samples
(prometheus-client's multiprocess mode); empty it when the services restart.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

OPERATION_SECONDS = Histogram(
    "confluencia_operation_duration_seconds", "Asynchronous operations, from request to end, by kind and outcome",
    ["kind", "status"], buckets=LATENCY_BUCKETS)
DRIVER_CALL_SECONDS = Histogram(
    "confluencia_driver_call_duration_seconds", "Calls to hypervisors, by host and call",
    ["host", "call"], buckets=LATENCY_BUCKETS)
DRIVER_CALL_ERRORS = Counter(
    "confluencia_driver_call_errors", "Failed calls to hypervisors, by host, call and error code",
    ["host", "call", "code"])
HTTP_SECONDS = Histogram(
    "confluencia_http_request_duration_seconds", "API requests, by method, route and status",
    ["method", "route", "status"], buckets=LATENCY_BUCKETS)
