"""/metrics (issue 15): scraped and parsed with prometheus-client's own parser; the values agree with the API."""

from __future__ import annotations

from statistics import pstdev
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.api.test_storage_pools import image
from tests.api.test_vm_resize import build
from tests.conftest import World


def scrape(world: World) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    r = world.operator.get("/metrics")
    assert r.status_code == 200 and r.mimetype == "text/plain", r.get_data(as_text=True)[:500]
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(r.get_data(as_text=True)):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def value(metrics: dict[str, Any], name: str, **labels: str) -> float:
    return float(metrics[name][tuple(sorted(labels.items()))])


def test_metrics_agree_with_the_api(world: World, image_dirs: Any) -> None:
    image(world, image_dirs)
    start = scrape(world)  # the event metrics count since the process started: compare with what we do here
    vms = [build(world, world.admin_a, name=f"m-{i}") for i in range(3)]
    build(world, world.admin_b, name="b-1")
    stopped = world.admin_a.post(f"/v1/vms/{vms[0]['id']}/stop").get_json()["id"]
    assert world.admin_a.wait_op(stopped)["status"] == "succeeded"
    m = scrape(world)

    for host in world.operator.get("/v1/hosts").get_json()["items"]:
        zone = host.get("zone") or ""
        for resource in ("vcpus", "ram_mib", "disk_gib"):
            labels = {"host": host["name"], "zone": zone, "resource": resource}
            assert value(m, "confluencia_host_allocated", **labels) == host["usage"]["allocated"][resource]
            assert value(m, "confluencia_host_capacity", **labels) == host["usage"]["capacity"][resource]
            assert abs(value(m, "confluencia_host_utilisation", **labels)
                       - host["usage"]["utilisation"][resource]) < 1e-4
        assert value(m, "confluencia_host_vms", host=host["name"], zone=zone) == host["usage"]["vms"]
        assert value(m, "confluencia_host_state", host=host["name"], state=host["state"]) == 1

    for caller, slug in ((world.admin_a, "municipio-a"), (world.admin_b, "municipio-b")):
        states: dict[str, int] = {}
        for vm in caller.get("/v1/vms?limit=100").get_json()["items"]:
            states[vm["state"]] = states.get(vm["state"], 0) + 1
        scraped = {dict(k)["state"]: v for k, v in m["confluencia_vms"].items() if dict(k)["tenant"] == slug}
        assert scraped == states
        quota = caller.get("/v1/quota").get_json()
        for resource in ("vcpus", "ram_mib", "disk_gib", "vms"):
            assert value(m, "confluencia_quota_used", tenant=slug, resource=resource) == quota[resource]["used"]
            assert value(m, "confluencia_quota_limit", tenant=slug, resource=resource) == quota[resource]["limit"]
    assert states == {"ACTIVE": 1} and {dict(k)["state"] for k in m["confluencia_vms"]} == {"ACTIVE", "STOPPED"}

    # the imbalance is the summed standard deviation of the hosts' utilisation, as the API shows it
    hosts = world.operator.get("/v1/hosts").get_json()["items"]
    for resource, name in (("vcpus", "vcpu"), ("ram_mib", "ram_mib"), ("disk_gib", "disk_gib")):
        assert abs(value(m, "confluencia_cluster_stdev", resource=name)
                   - pstdev(h["usage"]["utilisation"][resource] for h in hosts)) < 1e-3
    assert abs(m["confluencia_cluster_imbalance"][()] - sum(m["confluencia_cluster_stdev"].values())) < 1e-9
    def delta(name: str, **labels: str) -> float:
        key = tuple(sorted(labels.items()))
        return float(m.get(name, {}).get(key, 0.0) - start.get(name, {}).get(key, 0.0))

    assert delta("confluencia_operation_duration_seconds_count", kind="vm.create", status="succeeded") == 4
    assert delta("confluencia_operation_duration_seconds_count", kind="vm.stop", status="succeeded") == 1
    assert sum(delta("confluencia_driver_call_duration_seconds_count", host=h, call="create")
               for h in world.hosts) == 4
    assert any(dict(k)["route"] == "/v1/vms" for k in m["confluencia_http_request_duration_seconds_count"])


def test_metrics_are_for_operators(world: World) -> None:
    assert world.admin_a.get("/metrics").status_code == 403
    r = world.operator.client.get("/metrics")
    assert r.status_code == 401 and r.mimetype == "application/problem+json"
