"""A real ``ansible-playbook ansible/site.yml`` against this machine, reached over SSH (a real sshd on loopback,
strict host key checking), registering hosts in the test app served over real HTTP.

The libvirt play runs the ``hypervisor`` role for real, made safe for the CI machine by its variables: no services
(no systemd here), only packages ``.ci/system-deps.sh`` already installs (the apt task is real and changes nothing),
no VLAN uplink, and a control-plane user of its own per run (``cfans`` + random) that the test removes afterwards
with everything the role wrote for it. The Proxmox play runs ``proxmox_node`` against a stand-in of ``pveum`` and
``pvesh`` (``pve_standin.py`` says why). Each play runs twice: the second run must change nothing.
"""

from __future__ import annotations

import grp
import os
import pwd
import socket
import stat
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from tests.conftest import World
from tests.integration.ansible.conftest import PlaybookRun, target_variables, write_inventory
from tests.integration.ansible.pve_standin import PveStandIn
from tests.sshd import SshServer

pytestmark = pytest.mark.slow

VISUDO = "/usr/sbin/visudo"


def needs_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("the hypervisor role creates a Unix user: root only (CI runs the tests as root)")


def filesystem_gib(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_blocks * st.f_frsize // 2**30


def memtotal_mib() -> int:
    """What Ansible's ``ansible_memtotal_mb`` is: MemTotal of /proc/meminfo (kB) // 1024."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise AssertionError("no MemTotal in /proc/meminfo")


def assert_ok(run: PlaybookRun, host: str, *, changed: bool) -> None:
    stats = run.stats(host)
    assert run.returncode == 0 and stats.get("failures") == 0 and stats.get("unreachable") == 0, run.problems()
    if changed:
        assert stats["changed"] > 0, stats
    else:
        assert stats["changed"] == 0, f"changed on the second run: {run.changed_tasks(host)}"


def api_host(world: World, name: str) -> dict[str, Any]:
    resp = world.operator.get(f"/v1/hosts/{name}")
    assert resp.status_code == 200, resp.get_json()
    return dict(resp.get_json())


@pytest.fixture
def service_user() -> Iterator[str]:
    """A control-plane user name of this run only; afterwards the user, its home and group and the sudoers
    drop-in the role wrote for it are removed (only those: found by the unique name)."""
    name = f"cfans{uuid.uuid4().hex[:10]}"
    try:
        yield name
    finally:
        try:
            pwd.getpwnam(name)
        except KeyError:
            pass
        else:
            subprocess.run(["userdel", "-r", name], capture_output=True, check=False)
        Path(f"/etc/sudoers.d/{name}-nft").unlink(missing_ok=True)


def test_libvirt_host_is_prepared_and_registered_with_its_real_facts(
    world: World, api_url: str, sshd: SshServer, known_hosts: Path, service_user: str,
    playbook: Callable[..., PlaybookRun], tmp_path: Path
) -> None:
    needs_root()
    image_dir = tmp_path / "images"  # the filesystem of the VM images: its real size is the host's disk_gib
    image_dir.mkdir()
    sudo = os.path.exists(VISUDO)  # the sudoers rule needs sudo (not in .ci/system-deps.sh: not installed here)
    groups = [g for g in ("libvirt", "kvm") if _group_exists(g)]
    inventory = write_inventory(tmp_path / "inventory.ini", "libvirt_hosts", "lab-ansible", {
        **target_variables(sshd, known_hosts),
        "confluencia_ssh_user": service_user,
        "confluencia_ssh_pubkey": sshd.client_public_key,
        "confluencia_ssh_user_groups": groups,
        "confluencia_manage_services": False,
        "hypervisor_packages": ["qemu-utils"],
        "hypervisor_network_packages": ["nftables"],
        "hypervisor_apt_update_cache": False,
        "confluencia_nft_sudo": sudo,
        "confluencia_image_dir": str(image_dir),
        "confluencia_zone": "lab",
        "confluencia_reserved_vcpus": 0,
        "confluencia_reserved_ram_mib": 256,
    })  # fmt: skip
    extra = ["-e", f"confluencia_api={api_url}", "-e", f"confluencia_token={world.operator.token}"]

    first = playbook(inventory, *extra)
    assert_ok(first, "lab-ansible", changed=True)
    assert "Register the host with the control plane" in first.changed_tasks("lab-ansible")
    second = playbook(inventory, *extra)
    assert_ok(second, "lab-ansible", changed=False)
    assert world.operator.token not in first.stdout + first.stderr + second.stdout + second.stderr

    host = api_host(world, "lab-ansible")
    assert host["driver"] == "libvirt"
    assert host["uri"] == f"qemu+ssh://{service_user}@127.0.0.1:{sshd.port}/system"
    assert host["vcpus"] == os.cpu_count()
    assert host["ram_mib"] == memtotal_mib()
    assert host["disk_gib"] == filesystem_gib(image_dir) > 0
    assert host["agent_ssh"] == f"{service_user}@127.0.0.1:{sshd.port}"
    assert (host["zone"], host["reserved_vcpus"], host["reserved_ram_mib"]) == ("lab", 0, 256)
    names = [h["name"] for h in world.operator.get("/v1/hosts?limit=100").get_json()["items"]]
    assert names.count("lab-ansible") == 1

    user = pwd.getpwnam(service_user)
    assert {g for g in groups if service_user in grp.getgrnam(g).gr_mem} == set(groups)
    ssh_dir = Path(user.pw_dir) / ".ssh"
    keys = ssh_dir / "authorized_keys"
    assert keys.read_text().splitlines() == [sshd.client_public_key]
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600 and keys.stat().st_uid == user.pw_uid
    assert stat.S_IMODE(ssh_dir.stat().st_mode) == 0o700 and ssh_dir.stat().st_uid == user.pw_uid
    sudoers = Path(f"/etc/sudoers.d/{service_user}-nft")
    if sudo:
        assert sudoers.read_text() == f"{service_user} ALL=(root) NOPASSWD: /usr/sbin/nft -f -\n"
        assert stat.S_IMODE(sudoers.stat().st_mode) == 0o440
        assert subprocess.run([VISUDO, "-cf", str(sudoers)], capture_output=True).returncode == 0
    else:
        assert not sudoers.exists()
    assert "One bridge per tenant segment on the VLAN uplink" not in first.changed_tasks("lab-ansible")


def _group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def test_proxmox_node_gets_one_token_and_is_registered(
    world: World, api_url: str, app: Any, settings_override: Callable[..., None], sshd: SshServer,
    known_hosts: Path, playbook: Callable[..., PlaybookRun], tmp_path: Path
) -> None:
    needs_root()
    settings_override(data_key=Fernet.generate_key().decode())  # the API seals token_secret at rest with it
    node = socket.gethostname().split(".")[0]  # ansible_hostname: the PVE node name by default
    storage_dir = tmp_path / "vz"
    storage_dir.mkdir()
    pve = PveStandIn(tmp_path / "pve", node, {"local-lvm": str(storage_dir)})
    corosync = tmp_path / "corosync.conf"
    corosync.write_text("totem {\n  cluster_name: lab-cluster\n  config_version: 2\n}\n")
    inventory = write_inventory(tmp_path / "inventory.ini", "proxmox_nodes", "lab-pve", {
        **target_variables(sshd, known_hosts),
        "proxmox_pveum": pve.pveum,
        "proxmox_pvesh": pve.pvesh,
        "proxmox_corosync_conf": str(corosync),
        "proxmox_verify_ssl": False,
        "proxmox_driver_options": {"bridge": "vmbr0"},
        "confluencia_reserved_vcpus": 0,
        "confluencia_reserved_ram_mib": 256,
    })  # fmt: skip
    extra = ["-e", f"confluencia_api={api_url}", "-e", f"confluencia_token={world.operator.token}"]
    token = f"ctl-{node}"

    first = playbook(inventory, *extra)
    assert_ok(first, "lab-pve", changed=True)
    assert "Register the host with the control plane" in first.changed_tasks("lab-pve")
    second = playbook(inventory, *extra)
    assert_ok(second, "lab-pve", changed=False)

    state = pve.state()
    assert list(state["users"]["confluencia@pve"]["tokens"]) == [token]
    assert state["users"]["confluencia@pve"]["tokens"][token]["privsep"] == "0"
    assert len(pve.calls("user", "token", "add")) == 1 and len(pve.calls("user", "add")) == 1
    assert len(pve.calls("role", "add")) == 1 and not pve.calls("role", "modify")
    assert "VM.Migrate" in state["roles"]["ConfluenciaVM"]
    assert state["acl"] == [{"path": "/", "type": "user", "ugid": "confluencia@pve", "roleid": "ConfluenciaVM",
                             "propagate": 1}]  # fmt: skip
    secret = state["secrets"][f"confluencia@pve!{token}"]
    output = first.stdout + first.stderr + second.stdout + second.stderr
    assert secret not in output and world.operator.token not in output

    host = api_host(world, "lab-pve")
    assert host["driver"] == "proxmox"
    assert host["uri"] == f"pve://127.0.0.1:8006/{node}"
    assert host["migration_domain"] == "lab-cluster"
    assert {"token_id", "token_secret", "verify_ssl", "storage", "bridge"} <= set(host["option_keys"])
    assert "options" not in host and secret not in str(host)  # write-only
    assert (host["vcpus"], host["ram_mib"], host["disk_gib"]) == (os.cpu_count(), memtotal_mib(),
                                                                  filesystem_gib(storage_dir))  # fmt: skip
    assert host["agent_ssh"] is None
    assert _stored_options(app, "lab-pve")["token_secret"] == secret  # the secret pveum printed, sealed at rest

    # Unregistered while its token stays: Proxmox VE shows a secret only when the token is made, so the role
    # stops with what to do (remove the token, or pass its secret) and registers nothing without one.
    etag = world.operator.get(f"/v1/hosts/{host['id']}").headers["ETag"]
    assert world.operator.delete(f"/v1/hosts/{host['id']}", headers={"If-Match": etag}).status_code == 204
    third = playbook(inventory, *extra)
    assert third.returncode != 0 and third.stats("lab-pve").get("failures") == 1, third.problems()
    assert "pveum user token remove" in third.stdout and secret not in third.stdout + third.stderr
    assert world.operator.get("/v1/hosts/lab-pve").status_code == 404
    assert len(pve.calls("user", "token", "add")) == 1  # no second token either


def _stored_options(app: Any, name: str) -> dict[str, str]:
    from sqlalchemy import select

    from controlplane.core.drivers import plain_options
    from controlplane.db import db
    from controlplane.models import Host

    with app.app_context():
        host = db.session.execute(select(Host).where(Host.name == name)).scalar_one()
        options = dict(plain_options(host) or {})
        db.session.rollback()
    return options
