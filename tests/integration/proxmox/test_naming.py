"""Our id <-> Proxmox VM mapping and option parsing (no server needed)."""

from __future__ import annotations

import pytest

from agents.base import VMSpec
from agents.errors import InvalidURI
from agents.proxmox_meta import describe, disk_gib, parse_description, pve_name, same_spec
from agents.proxmox_uri import ProxmoxOptions, parse_uri


def test_names_are_dns_safe_and_distinct():
    assert pve_name("6f1c2d3e-aaaa-bbbb-cccc-0123456789ab") == "cf-6f1c2d3e-aaaa-bbbb-cccc-0123456789ab"
    odd = [pve_name(x) for x in ("VM_1", "vm 1", "x" * 80, "Ünïcode")]
    assert len(set(odd)) == 4 and all(n.startswith("cf-h") and len(n) <= 63 and n.isascii() for n in odd)


def test_description_round_trip_with_awkward_values():
    spec = VMSpec("id:1\nconfluencia:vm_id=evil", "name = x\n", 2, 512, 3, "tenant/β")
    meta = parse_description(describe(spec) + "\nnotes added by an operator")
    assert meta is not None and (meta.vm_id, meta.tenant_id, meta.name) == (spec.vm_id, "tenant/β", "name = x\n")
    assert same_spec(meta, spec) and not same_spec(meta, VMSpec(spec.vm_id, "n", 2, 1024, 3, "tenant/β"))
    assert parse_description("just a note") is None and parse_description(None) is None


def test_disk_size_from_config():
    assert disk_gib({"scsi0": "local-lvm:vm-100-disk-0,size=32G"}) == 32
    assert disk_gib({"virtio0": "ceph:vm-1-disk-0,size=2T"}) == 2048
    assert disk_gib({"net0": "virtio"}) == 0


def test_uri_forms():
    assert parse_uri("pve://pve.example.org/pve1") == ("pve.example.org", 8006, "pve1")
    assert parse_uri("proxmox://[::1]:8443/node-2") == ("[::1]", 8443, "node-2")
    with pytest.raises(InvalidURI):
        parse_uri("pve://host:0x1/pve1")


def test_options_are_typed_and_the_secret_hidden():
    opts = ProxmoxOptions.from_strings(
        {
            "token_id": "svc@pve!ctl",
            "token_secret": "s3cr3t-value",
            "ca_bundle": "/etc/ca.pem",
            "task_timeout": "60",
            "vmid_min": "100000",
        }
    )
    assert (opts.token_user, opts.token_name, opts.verify_ssl) == ("svc@pve", "ctl", "/etc/ca.pem")
    assert (opts.task_timeout_s, opts.vmid_min) == (60.0, 100000)
    assert "s3cr3t-value" not in repr(opts) and opts.token_secret.reveal() == "s3cr3t-value"
    off = ProxmoxOptions.from_strings(
        {"token_id": "a@b!c", "token_secret": "x", "verify_ssl": "no", "ca_bundle": "/etc/ca.pem"}
    )
    assert off.verify_ssl is False
