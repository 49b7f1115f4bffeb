"""Issue 15 through a real deployment (the API under gunicorn with two processes, a Celery worker on Redis): one
request id followed from the HTTP call to the hypervisor call in the JSON logs, and /metrics adding up the
samples of every process (prometheus-client multiprocess mode)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.stack import Stack, running_stack, setup_tenant

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def env(broker_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, dict[str, Any]]]:
    tmp = tmp_path_factory.mktemp("e2e-observability")
    (tmp / "prom").mkdir()
    extra = {"PROMETHEUS_MULTIPROC_DIR": str(tmp / "prom"), "CONFLUENCIA_LOG_FORMAT": "json"}
    with running_stack(tmp, broker_url, extra, api_processes=2) as stack:
        ids = setup_tenant(stack, [{"name": f"obs{i}", "driver": "simulated", "uri": f"sim://obs{i}", "vcpus": 8,
                                    "ram_mib": 16384, "disk_gib": 200} for i in (1, 2)],
                           {"name": "obs.small", "vcpus": 1, "ram_mib": 512, "disk_gib": 5})
        yield stack, ids


def _json_lines(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def test_one_request_id_follows_a_vm_from_the_api_to_the_hypervisor(env: tuple[Stack, dict[str, Any]]) -> None:
    stack, ids = env
    r = requests.post(stack.base + "/v1/vms", json={"name": "traced", "flavor": "obs.small"}, timeout=30,
                      headers={"Authorization": f"Bearer {ids['token']}", "X-Request-ID": "trace-me-15"})
    assert r.status_code == 202, r.text
    assert stack.wait_op(r.json()["operation_id"])["status"] == "succeeded"

    api = [x for x in _json_lines(stack.logs / "api.log") if x.get("request_id") == "trace-me-15"]
    worker = [x for x in _json_lines(stack.logs / "worker.log") if x.get("request_id") == "trace-me-15"]
    assert any(x["logger"] == "confluencia.access" and "POST /v1/vms 202" in x["message"] for x in api), api
    assert all(x["actor"] == "admin@e2e" and x["tenant"] == ids["tenant"] for x in api)
    messages = [x["message"] for x in worker]
    assert any("operation" in m for m in messages), messages  # the task took the request id with it
    assert any(m.startswith("host obs") and ": create done" in m for m in messages), messages  # and the driver
    assert all(x["operation_id"] == r.json()["operation_id"] for x in worker if x["logger"] != "celery.app.trace")


def test_metrics_add_up_the_worker_processes_samples(env: tuple[Stack, dict[str, Any]]) -> None:
    stack, _ = env
    r = stack.call("GET", "/metrics")
    assert r.status == 200
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(r.body):
        for s in family.samples:
            key = s.name + json.dumps(s.labels, sort_keys=True)
            samples[key] = s.value
    created = [v for k, v in samples.items()
               if k.startswith("confluencia_driver_call_duration_seconds_count") and '"call": "create"' in k]
    assert created and sum(created) >= 1  # observed by the worker process, served by the API process
    assert any(k.startswith("confluencia_operation_duration_seconds_count") and '"vm.create"' in k and v >= 1
               for k, v in samples.items())
    assert samples['confluencia_quota_used{"resource": "vms", "tenant": "e2e"}'] >= 1
    assert 'confluencia_queue_length{}' in samples


def test_every_api_process_is_counted(env: tuple[Stack, dict[str, Any]]) -> None:
    """Requests land on either gunicorn process; whichever serves /metrics counts them all."""
    stack, ids = env

    def flavor_requests() -> float:
        text = stack.call("GET", "/metrics").body
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == "confluencia_http_request_duration_seconds_count" and s.labels == {
                        "method": "GET", "route": "/v1/flavors", "status": "200"}:
                    return float(s.value)
        return 0.0

    before = flavor_requests()
    for _ in range(20):
        assert stack.call("GET", "/v1/flavors", ids["token"]).status == 200
    served_by = {x["process"] for x in _json_lines(stack.logs / "api.log")
                 if x["logger"] == "confluencia.access" and x["message"].startswith("GET /v1/flavors 200")}
    assert len(served_by) == 2, served_by  # both processes served some: each alone would count fewer
    for _ in range(4):  # whichever process answers the scrape
        assert flavor_requests() == before + 20
