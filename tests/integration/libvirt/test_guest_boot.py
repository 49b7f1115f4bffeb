"""A real Linux guest, built at test time from Debian packages, boots under a lab session daemon.

Groundwork for issue 13: the image (``tests/lab/guest_image.py``) boots under TCG, reads its NoCloud seed
and reports hostname, keys, address and disks on its serial console, keeps ticking, shows a VNC console,
sees a hot-plugged disk and a grown root disk, and powers off on the ACPI power button.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
import xml.etree.ElementTree as ET

import pytest

from agents.libvirt_lab import Lab
from tests.lab.guest_console import GuestReport, ssh_public_key
from tests.lab.guest_domain import BootedGuest, Seed, booted_guest
from tests.lab.guest_image import GuestImage, guest_image_for
from tests.lab.session import host

pytestmark = [pytest.mark.libvirt, pytest.mark.slow]

MIB = 1024 * 1024
BOOT_TIMEOUT_S = 60.0  # ready in about 8-9 s under TCG; the machine may be shared


@pytest.fixture(scope="session")
def guest_image(request: pytest.FixtureRequest) -> GuestImage:
    return guest_image_for(request.config)


def _vnc_greeting(guest: BootedGuest) -> bytes:
    graphics = ET.fromstring(guest.live_xml()).find("devices/graphics[@type='vnc']")
    assert graphics is not None and graphics.get("listen") == "127.0.0.1"
    port = int(graphics.get("port", "-1"))
    assert port > 0, "no VNC port in the live XML"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        greeting = b""
        while len(greeting) < 12:
            chunk = sock.recv(12 - len(greeting))
            if not chunk:
                break
            greeting += chunk
    return greeting


def _wait_ticks_advance(guest: BootedGuest, ticks: int = 3) -> GuestReport:
    start = guest.serial.report().last_tick
    return guest.serial.wait(
        lambda r: r.last_tick >= start + ticks, timeout_s=30, what=f"{ticks} more ticks after {start}",
        alive=guest.running,
    )  # fmt: skip


def test_guest_boots_and_reports_its_cloud_config_seed(lab: Lab, guest_image: GuestImage) -> None:
    key1, fp1 = ssh_public_key("alice@confluencia-test")
    key2, fp2 = ssh_public_key("bob@confluencia-test")
    iid = f"iid-{uuid.uuid4().hex[:8]}"
    user_data = f"""#cloud-config
ssh_authorized_keys:
  - {key1}
  - "{key2}"
write_files:
  - path: /etc/confluencia/role
    content: web
  - path: /www/motd.txt
    permissions: '0644'
    content: |
      hello from the seed
runcmd:
  - echo runcmd ran
"""
    network = "version: 2\nethernets:\n  eth0:\n    addresses:\n      - 192.0.2.10/24\n"
    seed = Seed("guest-one", iid, user_data, network)
    with booted_guest(host(lab, 1), guest_image, seed, nic="user", disk_bytes=64 * MIB) as guest:
        report = guest.serial.wait_ready(timeout_s=BOOT_TIMEOUT_S, alive=guest.running)
        boot_s = time.monotonic() - guest.started_at
        assert report.first("kernel") == guest_image.kernel_version
        assert report.all("module-failed") == []
        assert report.hostname == "guest-one"
        assert report.first("instance-id") == iid
        assert report.first("user-data") == "cloud-config"
        assert report.ssh_keys == [(fp1, "alice@confluencia-test"), (fp2, "bob@confluencia-test")]
        assert report.all("write-file") == ["/etc/confluencia/role bytes=3", "/www/motd.txt bytes=20"]
        assert (report.all("runcmd"), report.all("runcmd-rc")) == (["echo runcmd ran"], ["0"])
        assert (report.first("network"), report.address) == ("static", "192.0.2.10/24")
        assert (report.first("nic") or "").startswith("eth0 mac=52:54:00:")
        assert report.all("listen") == ["tcp:7 echo", "tcp:80 http"]
        assert report.disks["vda"] == 64 * MIB  # the overlay is larger than the 32 MiB image
        assert "sr0" in report.disks
        assert 64 * 1024 < int(report.first("mem-kib") or 0) <= 128 * 1024  # less what the kernel keeps
        report = _wait_ticks_advance(guest)
        assert report.ticks == list(range(1, report.last_tick + 1)), "ticks must count up without gaps"
        assert _vnc_greeting(guest) == b"RFB 003.008\n"
        print(f"\nguest ready {boot_s:.1f} s after start; image {guest_image.size_bytes / MIB:.1f} MiB")


def test_guest_runs_a_script_seed_takes_dhcp_sees_new_disks_and_powers_off(lab: Lab, guest_image: GuestImage) -> None:
    import libvirt

    user_data = "#!/bin/sh\necho CONFLUENCIA-GUEST script-ran=$(hostname)\nexit 3\n"
    network = "version: 2\nethernets:\n  eth0:\n    dhcp4: true\n"
    seed = Seed("guest-two", user_data=user_data, network_config=network)
    with booted_guest(host(lab, 1), guest_image, seed, nic="user") as guest:
        report = guest.serial.wait_ready(timeout_s=BOOT_TIMEOUT_S, alive=guest.running)
        assert report.first("user-data") == "script"
        assert report.first("script-ran") == "guest-two"
        assert report.first("user-data-rc") == "3"
        assert report.first("network") == "dhcp"
        assert report.address == "10.0.2.15/24"  # QEMU's user-mode network hands out this address
        assert report.disks["vda"] == 32 * MIB

        data = guest.new_file("data.raw", mode=0o660)
        os.truncate(data, 48 * MIB)
        guest.dom.attachDeviceFlags(
            f"<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='{data}'/>"
            "<target dev='vdb' bus='virtio'/></disk>",
            libvirt.VIR_DOMAIN_AFFECT_LIVE,
        )
        guest.serial.wait(
            lambda r: r.disks.get("vdb") == 48 * MIB, timeout_s=30, what="hot-plugged vdb", alive=guest.running
        )
        guest.dom.blockResize("vda", 80 * MIB, libvirt.VIR_DOMAIN_BLOCK_RESIZE_BYTES)
        report = guest.serial.wait(
            lambda r: r.disks.get("vda") == 80 * MIB, timeout_s=30, what="grown vda", alive=guest.running
        )
        assert report.disks.get("vdb") == 48 * MIB

        guest.dom.shutdownFlags(libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN)
        guest.serial.wait(lambda r: r.first("shutdown") is not None, timeout_s=30, what="shutdown line")
        deadline = time.monotonic() + 30
        while guest.running():
            assert time.monotonic() < deadline, "the guest did not power off after the ACPI power button"
            time.sleep(0.2)  # polling the domain state
        assert guest.dom.info()[0] == libvirt.VIR_DOMAIN_SHUTOFF
