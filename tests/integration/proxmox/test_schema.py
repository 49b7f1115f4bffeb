"""Every endpoint the driver uses answers in the shape of the official PVE API schema (when present)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from agents.proxmox_sim.drives import drive_format
from agents.proxmox_sim.network import NET_FORMAT, NET_RANGES
from agents.proxmox_sim.params import kind_of
from agents.proxmox_sim.server import NOT_IN_EXTRACT, ROUTES
from tests.integration.proxmox.conftest import Pve
from tests.integration.proxmox.images import qemu_img, served_image
from tests.integration.proxmox.pve_schema import load, schema_path, validate

SCHEMA = load()
pytestmark = pytest.mark.skipif(SCHEMA is None, reason="../shared/reference/pve-api-subset.json not present")

# PVE's Perl server answers nextid as a JSON string although the schema says integer (DESIGN.md section 5).
STRING_INTEGERS = {("GET", "/cluster/nextid")}


def _check(method: str, path: str, data: Any) -> str:
    assert SCHEMA is not None
    key = schema_path(path)
    returns = SCHEMA["paths"][key][method]["returns"]
    if (method, key) in STRING_INTEGERS:
        assert isinstance(data, str) and data.isdigit()
        data = int(data)
    errors = validate(data, returns)
    assert not errors, f"{method} {key}: {errors}"
    return key


TYPES = {"i": "integer", "v": "integer", "b": "boolean", "s": "string", "n": "number"}
PATH_PARAMS = {"node", "vmid", "storage", "upid", "volume", "name"}


def _param(props: dict[str, Any], name: str) -> dict[str, Any] | None:
    found = props.get(name) or props.get(f"{name.rstrip('0123456789')}[n]")
    return found  # type: ignore[no-any-return]


def _same_kind(where: str, kind: str, schema: dict[str, Any]) -> None:
    """The simulator's kind of a parameter (type letter, required, enum, pattern) is the schema's."""
    letter, required, enum, pattern = kind_of(kind)
    assert schema.get("type") == TYPES[letter], f"{where}: type {letter} != {schema.get('type')}"
    if letter == "v":
        assert schema.get("format") == "pve-vmid", where
    assert required == (not schema.get("optional")), f"{where}: required {required}"
    assert enum == schema.get("enum"), f"{where}: enum {enum} != {schema.get('enum')}"
    assert pattern == schema.get("pattern"), f"{where}: pattern {pattern} != {schema.get('pattern')}"


def test_every_simulated_route_is_in_the_schema_with_its_parameters_types_enums_and_patterns():
    assert SCHEMA is not None
    for method, pattern, spec, _ in ROUTES:
        key = re.sub(r"\(\?P<(\w+)>\[\^/\]\+\)", r"{\1}", pattern)
        if (method, key) in NOT_IN_EXTRACT:  # real PVE (pve-firewall), checked against its source by hand
            assert method not in SCHEMA["paths"].get(key, {}), f"{method} {key} is in the extract now"
            continue
        assert method in SCHEMA["paths"].get(key, {}), f"{method} {key} is not a PVE endpoint"
        params = SCHEMA["paths"][key][method].get("parameters", {}).get("properties", {})
        for name, kind in spec.items():
            schema = _param(params, name)
            assert schema is not None, f"{method} {key}: {name}"
            _same_kind(f"{method} {key}: {name}", kind, schema)
        required = {n for n, p in params.items() if not p.get("optional") and n not in PATH_PARAMS}
        assert required <= set(spec), f"{method} {key}: required {sorted(required - set(spec))}"
    assert len({(m, p) for m, p, _, _ in ROUTES}) == len(ROUTES)  # no route is listed twice
    # the reference also holds endpoints the simulator does not offer; the test below calls every
    # simulated route and validates each answer


def test_drive_options_are_the_schema_drive_format():
    assert SCHEMA is not None
    props = SCHEMA["paths"]["/nodes/{node}/qemu"]["POST"]["parameters"]["properties"]
    for bus in ("scsi", "virtio", "ide", "sata"):
        fmt, drive = props[f"{bus}[n]"]["format"], f"{bus}[n]"
        for name, kind in drive_format(bus).items():
            sub = fmt[name]
            if "alias" in sub:
                sub = fmt[sub["alias"]]
            sub = {**sub, "optional": 1}  # the simulator requires only the volume, checked on its own
            _same_kind(f"{drive}.{name}", kind.replace("!", ""), sub)


def _perl_pattern(pattern: str | None) -> str | None:
    """A Perl ``qr//`` as apidata.js prints it (``(?^:...)``) -> the pattern inside."""
    if pattern and pattern.startswith("(?^:") and pattern.endswith(")"):
        return pattern[4:-1]
    return pattern


def test_net_options_are_the_schema_net_format():
    assert SCHEMA is not None
    fmt = SCHEMA["paths"]["/nodes/{node}/qemu"]["POST"]["parameters"]["properties"]["net[n]"]["format"]
    own = {name for name, sub in fmt.items() if "alias" not in sub}
    assert own == set(NET_FORMAT), sorted(own ^ set(NET_FORMAT))
    for name, kind in NET_FORMAT.items():
        sub = {**fmt[name], "optional": 1, "pattern": _perl_pattern(fmt[name].get("pattern"))}
        _same_kind(f"net[n].{name}", kind, {k: v for k, v in sub.items() if v is not None})
        bounds = (fmt[name].get("minimum"), fmt[name].get("maximum"))
        assert NET_RANGES.get(name, (None, None)) == bounds, f"net[n].{name}: range {bounds}"
    aliases = {name for name, sub in fmt.items() if sub.get("keyAlias") == "model"}
    assert aliases == set(kind_of(NET_FORMAT["model"])[2] or ())  # every model is also a key: virtio=MAC


def _keys() -> set[tuple[str, str]]:
    return {(m, re.sub(r"\(\?P<(\w+)>\[\^/\]\+\)", r"{\1}", p)) for m, p, _, _ in ROUTES}


@pytest.mark.skipif(qemu_img() is None, reason="qemu-img is needed for the image download-url fetches")
def test_responses_validate_against_the_official_schema(pve: Pve, tmp_path: Path):
    seen: set[tuple[str, str]] = set()

    def call(method: str, path: str, **form: str) -> Any:
        kw: dict[str, Any] = {"data": form} if method in ("POST", "PUT") else {"params": form}
        data = pve.data(method, path, **kw)
        seen.add((method, _check(method, path, data)))
        return data

    call("GET", "version")
    call("GET", "nodes")
    call("GET", "nodes/pve1/status")
    call("GET", "cluster/resources")
    call("GET", "cluster/nextid")
    pve.wait_task(call("POST", "nodes/pve1/qemu", vmid="100", memory="256", name="s1", scsi0="local-lvm:2"))
    pve.wait_task(call("POST", "nodes/pve1/qemu/9000/clone", newid="101", name="s2", full="1"))
    call("PUT", "nodes/pve1/qemu/101/config", memory="300", cores="2", tags="confluencia")
    call("POST", "nodes/pve1/qemu/101/config", description="hello")
    call("GET", "nodes/pve1/qemu/101/config")
    call("GET", "nodes/pve1/qemu")
    upid = call("POST", "nodes/pve1/qemu/100/status/start")
    pve.wait_task(upid)
    call("GET", "nodes/pve1/qemu/100/status/current")
    call("GET", "nodes/pve1/qemu/100/migrate", target="pve2")
    pve.wait_task(call("POST", "nodes/pve1/qemu/100/migrate", target="pve2", online="1", **{"with-local-disks": "1"}))
    pve.wait_task(call("POST", "nodes/pve2/qemu/100/status/shutdown", timeout="5"))
    pve.wait_task(call("POST", "nodes/pve1/qemu/101/status/start"))
    pve.wait_task(call("POST", "nodes/pve1/qemu/101/status/stop"))
    call("GET", f"nodes/pve1/tasks/{upid}/status")
    call("GET", f"nodes/pve1/tasks/{upid}/log")
    call("GET", "nodes/pve1/tasks", vmid="100")
    pve.cluster.faults.hang_types.add("qmstart")
    hung = call("POST", "nodes/pve1/qemu/101/status/start")
    call("DELETE", f"nodes/pve1/tasks/{hung}")
    assert pve.wait_task(hung)["exitstatus"] != "OK"
    pve.wait_task(call("DELETE", "nodes/pve1/qemu/101", purge="1", **{"destroy-unreferenced-disks": "1"}))
    _disks_and_console(pve, call, tmp_path)
    _networks_and_firewall(pve, call, seen)
    assert seen == _keys(), sorted(_keys() - seen)


def _disks_and_console(pve: Pve, call: Any, tmp_path: Path) -> None:
    pve.cluster.engine.release_hung()  # no more hanging starts
    with served_image(tmp_path) as store:
        call("GET", "nodes/pve1/storage")
        call("GET", "nodes/pve1/storage", content="images", format="1")
        sha = store.image.checksum.removeprefix("sha256:")
        form = {"url": store.image.url, "content": "import", "filename": "img.qcow2", "checksum": sha}
        assert pve.wait_task(call("POST", "nodes/pve1/storage/local/download-url", **form,
                                  **{"checksum-algorithm": "sha256"}))["exitstatus"] == "OK"
    call("GET", "nodes/pve1/storage/local/content", content="import")
    disk = {"scsi0": "local-lvm:0,import-from=local:import/img.qcow2,iothread=1", "ide2": "local-lvm:cloudinit"}
    ci = {"ciuser": "ops", "sshkeys": quote("ssh-ed25519 AAAAC3Nza k@x", safe=""), "citype": "nocloud",
          "ipconfig0": "ip=10.0.0.5/24,gw=10.0.0.1", "nameserver": "10.0.0.53"}
    assert pve.wait_task(call("POST", "nodes/pve1/qemu", vmid="102", memory="256", **disk, **ci))["exitstatus"] == "OK"
    assert pve.wait_task(call("PUT", "nodes/pve1/qemu/102/resize", disk="scsi0", size="1G"))["exitstatus"] == "OK"
    assert pve.wait_task(call("POST", "nodes/pve1/qemu/102/config", scsi1="local-lvm:1"))["exitstatus"] == "OK"
    call("PUT", "nodes/pve1/qemu/102/config", delete="scsi1")
    pve.wait_task(call("POST", "nodes/pve1/qemu", vmid="103", memory="16"))
    move = {"disk": "unused0", "target-vmid": "103", "target-disk": "scsi0"}
    assert pve.wait_task(call("POST", "nodes/pve1/qemu/102/move_disk", **move))["exitstatus"] == "OK"
    call("PUT", "nodes/pve1/qemu/103/unlink", idlist="scsi0", force="1")
    call("GET", "nodes/pve1/storage/local-lvm/content")
    pve.wait_task(call("POST", "nodes/pve1/qemu/102/status/start"))
    call("PUT", "nodes/pve1/qemu/102/config", cores="2")
    call("GET", "nodes/pve1/qemu/102/pending")
    call("GET", "nodes/pve1/qemu/102/config", current="1")
    call("POST", "nodes/pve1/qemu/102/vncproxy")


def _networks_and_firewall(pve: Pve, call: Any, seen: set[tuple[str, str]]) -> None:
    call("GET", "nodes/pve1/network")
    call("GET", "nodes/pve1/network", type="any_bridge")
    fw = "nodes/pve1/qemu/102/firewall"
    call("GET", f"{fw}/options")
    call("PUT", f"{fw}/options", enable="1", policy_in="DROP", policy_out="ACCEPT", ipfilter="1")
    call("GET", f"{fw}/options")
    call("POST", f"{fw}/ipset", name="ipfilter-net0", comment="confluencia")
    call("GET", f"{fw}/ipset")
    call("POST", f"{fw}/rules", type="in", action="ACCEPT", proto="tcp", dport="8000:8080", source="10.1.0.0/16",
         enable="1", comment="confluencia")
    call("POST", f"{fw}/rules", type="out", action="DROP", proto="icmp")
    call("GET", f"{fw}/rules")

    def extra(method: str, path: str, **form: str) -> Any:
        """Real PVE endpoints missing from the extract: what pve-firewall's source returns (null, or a list
        whose entries carry the listing's digest)."""
        kw: dict[str, Any] = {"data": form} if method in ("POST", "PUT") else {"params": form}
        data = pve.data(method, path, **kw)
        key = schema_path(path)
        assert (method, key) in NOT_IN_EXTRACT
        assert data is None if method != "GET" else all(isinstance(e.get("digest"), str) for e in data)
        seen.add((method, key))
        return data

    extra("POST", f"{fw}/ipset/ipfilter-net0", cidr="10.0.0.5")
    assert [e["cidr"] for e in extra("GET", f"{fw}/ipset/ipfilter-net0")] == ["10.0.0.5"]
    extra("DELETE", f"{fw}/ipset/ipfilter-net0/10.0.0.5")
    extra("DELETE", f"{fw}/ipset/ipfilter-net0")
    extra("DELETE", f"{fw}/rules/1")


def test_running_task_status_and_node_list_also_validate(pve: Pve):
    pve.cluster.faults.hang_types.add("qmcreate")
    upid = pve.data("POST", "nodes/pve2/qemu", data={"vmid": "200"})
    _check("GET", f"nodes/pve2/tasks/{upid}/status", pve.data("GET", f"nodes/pve2/tasks/{upid}/status"))
    _check("GET", "nodes/pve2/tasks", pve.data("GET", "nodes/pve2/tasks", params={"source": "active"}))
    pve.cluster.set_node_online("pve3", False)
    _check("GET", "nodes", pve.data("GET", "nodes"))
    _check("GET", "cluster/resources", pve.data("GET", "cluster/resources"))


def test_the_validator_rejects_what_pve_would_not_send():
    assert SCHEMA is not None
    task = SCHEMA["paths"]["/nodes/{node}/tasks/{upid}/status"]["GET"]["returns"]
    assert any("missing required 'upid'" in e for e in validate({"status": "stopped"}, task))
    assert any("'done' not in" in e for e in validate({"status": "done"}, task))
    qemu = SCHEMA["paths"]["/nodes/{node}/qemu"]["GET"]["returns"]
    assert validate([{"vmid": 100, "status": "running", "template": True}], qemu)  # JSON true, not 1
    assert validate([{"vmid": "100", "status": "running"}], qemu)  # integer sent as a string
