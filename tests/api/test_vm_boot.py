"""A VM booted from an image with its cloud-init seed (host name, SSH keys, user data, address), keypairs,
and every bad boot input refused with problem+json and nothing changed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agents.simulated import open_datacenter
from tests.api.test_errors_common import assert_problem, db_state
from tests.api.test_storage_pools import image
from tests.conftest import World

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMhojTYTLwvJy+iPFfjT2Rd+T2fhzVInsULXCCJ8fTsy ana@municipio"
KEY_FINGERPRINT = "SHA256:6UOEshaVyFmfDdO0M8ipBuZa5GqoRwaCFv9fop2UBOQ"  # ssh-keygen -lf
USER_DATA = "#cloud-config\nwrite_files:\n  - path: /etc/motd\n    content: hola\n"


def seed_of(vm_id: str) -> dict[str, Any]:
    dc = open_datacenter()
    with dc.read() as tx:
        for host in tx.host_names():
            dom = tx.domain(host, vm_id)
            if dom is not None:
                return dict(json.loads(dom.metadata["cloud_init"]))
    raise AssertionError(f"no domain {vm_id}")


def test_the_seed_carries_hostname_keys_user_data_and_address(world: World, image_dirs):
    image(world, image_dirs)
    r = world.admin_a.post("/v1/keypairs", json={"name": "laptop"})
    assert r.status_code == 201
    generated = r.get_json()
    assert generated["private_key"].startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert "private_key" not in world.admin_a.get(f"/v1/keypairs/{generated['id']}").get_json()
    r = world.admin_a.post("/v1/vms", json={
        "name": "Web Municipal 01", "flavor": "small", "image": "base", "ssh_keys": [KEY], "key_name": "laptop",
        "user_data": USER_DATA, "network": {"address": "10.20.0.5/24", "gateway": "10.20.0.1",
                                            "nameservers": ["10.20.0.2"]}})
    assert r.status_code == 202, r.get_json()
    vm = r.get_json()["vm"]
    assert (vm["hostname"], vm["key_name"]) == ("web-municipal-01", "laptop")
    assert world.admin_a.wait_op(r.get_json()["operation_id"])["status"] == "succeeded"
    seed = seed_of(vm["id"])
    assert seed["hostname"] == "web-municipal-01" and seed["instance_id"] == vm["id"]
    assert seed["ssh_keys"] == [KEY, generated["public_key"]]
    assert seed["user_data"] == USER_DATA
    assert seed["networks"] == [{"address": "10.20.0.5/24", "gateway": "10.20.0.1", "nameservers": ["10.20.0.2"],
                                 "mac": None, "address6": None, "gateway6": None}]
    entry = world.admin_a.get("/v1/audit?action=vm.create").get_json()["items"][0]
    assert entry["after"]["ssh_keys"] == 2 and entry["after"]["user_data_bytes"] == len(USER_DATA)
    assert "write_files" not in json.dumps(entry)  # user data may hold secrets: the audit keeps its size


def test_keypairs_belong_to_their_municipality(app: Any, world: World):
    r = world.admin_a.post("/v1/keypairs", json={"name": "k", "public_key": KEY})
    assert r.status_code == 201 and r.get_json()["private_key"] is None
    kp = r.get_json()
    assert kp["fingerprint"] == KEY_FINGERPRINT
    assert world.admin_a.get("/v1/keypairs/k").get_json()["id"] == kp["id"]
    before = db_state(app)
    assert_problem(world.admin_b.get(f"/v1/keypairs/{kp['id']}"), 404)
    assert_problem(world.admin_b.delete(f"/v1/keypairs/{kp['id']}"), 404)
    assert_problem(world.admin_a.post("/v1/keypairs", json={"name": "k", "public_key": KEY}), 422)
    assert_problem(world.admin_b.post("/v1/vms", json={"name": "x", "flavor": "small", "key_name": "k"}), 422)
    assert db_state(app) == before
    assert world.admin_b.post("/v1/keypairs", json={"name": "k", "public_key": KEY}).status_code == 201
    assert world.admin_a.delete("/v1/keypairs/k").status_code == 204


BAD_KEYS = [
    "ssh-ed25519",  # no key
    "ssh-dss AAAAB3NzaC1kc3MAAACBAP x",  # DSA
    "ssh-ed25519 not-base64!!",
    "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIMhojTYTLwvJy+iPFfjT2Rd+T2fhzVInsULXCCJ8fTsy",  # type differs from the blob
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHBs\nssh-ed25519 AAAA",
]


@pytest.mark.parametrize("bad", BAD_KEYS)
def test_malformed_ssh_keys_are_refused(app: Any, world: World, bad: str):
    before = db_state(app)
    assert "public_key" in assert_problem(world.admin_a.post("/v1/keypairs", json={"name": "b", "public_key": bad}),
                                          422)["errors"]
    assert "ssh_keys" in assert_problem(world.admin_a.post("/v1/vms", json={"name": "b", "flavor": "small",
                                                                           "ssh_keys": [bad]}), 422)["errors"]
    assert db_state(app) == before


@pytest.mark.parametrize("extra, field", [
    ({"image": "no-such-image"}, "image"),
    ({"image": "base", "flavor": "tiny"}, "image"),  # 1 GiB disk, the image needs 2
    ({"user_data": "#cloud-config\n" + "x: y\n" * 4000}, "user_data"),  # over 16 KiB
    ({"user_data": "hello world"}, "user_data"),
    ({"user_data": "#cloud-config\nkey: [unclosed"}, "user_data"),
    ({"user_data": "#cloud-config\n- a list"}, "user_data"),
    ({"network": {"address": "10.0.0.5"}}, "network"),  # no prefix: a host route, not a subnet
    ({"network": {"address": "10.0.0.300/24"}}, "network"),
    ({"network": {"address": "10.0.0.5/24", "gateway": "10.1.0.1"}}, "network"),
    ({"network": {"address": "10.0.0.5/24", "nameservers": ["dns.example"]}}, "network"),
    ({"hostname": "-bad-"}, "hostname"),
    ({"key_name": "nobody"}, "key_name"),
    ({"pool": "nowhere"}, "pool"),
])
def test_bad_boot_inputs_are_refused_and_change_nothing(app: Any, world: World, image_dirs, extra: dict[str, Any],
                                                        field: str):
    image(world, image_dirs, "base", min_disk_gib=2)
    from controlplane.seed import SEEDER
    from controlplane.services import flavors

    with app.app_context():
        flavors.create_flavor(SEEDER, {"name": "tiny", "vcpus": 1, "ram_mib": 512, "disk_gib": 1})
    before = db_state(app)
    body = {"name": "vm", "flavor": "small", **extra}
    problem = assert_problem(world.admin_a.post("/v1/vms", json=body), 422)
    assert field in problem.get("errors", {}), problem
    assert db_state(app) == before


def test_an_operator_naming_an_unknown_municipality_gets_404_not_an_error(app: Any, world: World):
    before = db_state(app)
    ghost = "0" * 36
    for path, body in (("/v1/keypairs", {"name": "k", "public_key": KEY, "tenant_id": ghost}),
                       ("/v1/security-groups", {"name": "g", "tenant_id": ghost}),
                       ("/v1/volumes", {"name": "v", "size_gib": 1, "tenant_id": ghost}),
                       ("/v1/networks", {"name": "n", "cidr": "10.0.0.0/24", "tenant_id": ghost})):
        assert_problem(world.operator.post(path, json=body), 404, "not-found")
    assert db_state(app) == before
