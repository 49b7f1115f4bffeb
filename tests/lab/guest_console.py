"""What the test guest (:mod:`tests.lab.guest_image`) reports on its serial console, parsed.

The guest's ``/init`` (``guest_init.sh``) writes lines ``CONFLUENCIA-GUEST <word>`` on ttyS0, in this order:

    kernel=<uname -r>                     first line
    module-failed=<file.ko>               only when insmod failed
    cpus=<n>
    mem-kib=<MemTotal in KiB>
    seed=<device>  |  seed=none           the NoCloud CD-ROM (label cidata, iso9660) it mounted
    instance-id=<meta-data instance-id>
    hostname=<meta-data local-hostname>   also set as the guest's host name
    user-data=cloud-config|script|unsupported
    ssh-keys=<count>                      meta-data public-keys and cloud-config ssh_authorized_keys
                                          (also under users:), each key once
    ssh-key=SHA256:<fingerprint> <comment>     one per key, fingerprint as ``ssh-keygen -l`` prints it
    write-file=<path> bytes=<n>           one per write_files entry (written in the guest)
    runcmd=<command>  runcmd-rc=<status>  one pair per runcmd item (run with sh -c)
    user-data-rc=<status>                 a shell-script user-data, after it ran
    nic=<name> mac=<mac>                  the first NIC, when there is one
    network=none|no-nic|static|dhcp|unsupported
    address=<addr/prefix>  |  address=none
    gateway=<addr>                        when network-config gave one
    listen=tcp:7 echo  listen=tcp:80 http services started when the NIC has an address
    disks=<name>:<bytes>,...              /sys/block entries (loop/ram left out), sorted by name
    probe=<round> ping:<addr> ok|fail     with an address and /etc/confluencia/probes (lines "ping ADDR" or
    probe=<round> tcp:<addr>:<port> ok|fail   "tcp ADDR PORT", an echo server): every probe in rounds, 1 s
                                          apart, from the moment the address is set (interleaved with ticks)
    ready
    tick <n>                              every second from ready on, n = 1, 2, ...
    disks=...                             again whenever the set or a size changed (checked every 3 s)
    shutdown                              ACPI power button pressed; the guest powers off at once

Kernel messages (``quiet``) may be interleaved; a report line is found anywhere in a console line.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

PREFIX = "CONFLUENCIA-GUEST "


def ssh_public_key(comment: str) -> tuple[str, str]:
    """A random OpenSSH ed25519 public key line and its ``SHA256:`` fingerprint (as ``ssh-keygen -l`` and the
    guest's ``ssh-key=`` line print it)."""
    blob = struct.pack(">I", 11) + b"ssh-ed25519" + struct.pack(">I", 32) + os.urandom(32)
    fingerprint = "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"ssh-ed25519 {base64.b64encode(blob).decode()} {comment}", fingerprint


class GuestTimeout(AssertionError):
    """The guest did not report what was waited for before the deadline."""


@dataclass
class GuestReport:
    events: list[tuple[str, str]] = field(default_factory=list)  # (key, value) in console order

    def all(self, key: str) -> list[str]:
        return [v for k, v in self.events if k == key]

    def first(self, key: str) -> str | None:
        found = self.all(key)
        return found[0] if found else None

    def last(self, key: str) -> str | None:
        found = self.all(key)
        return found[-1] if found else None

    @property
    def ready(self) -> bool:
        return any(k == "ready" for k, _ in self.events)

    @property
    def hostname(self) -> str | None:
        return self.first("hostname")

    @property
    def address(self) -> str | None:
        return self.last("address")

    @property
    def ssh_keys(self) -> list[tuple[str, str]]:
        """(fingerprint, comment) of each authorized key."""
        return [(v.partition(" ")[0], v.partition(" ")[2]) for v in self.all("ssh-key")]

    @property
    def ticks(self) -> list[int]:
        return [int(v) for v in self.all("tick") if v.isdigit()]

    @property
    def last_tick(self) -> int:
        ticks = self.ticks
        return ticks[-1] if ticks else 0

    def probes(self, target: str) -> list[tuple[int, bool]]:
        """``(round, ok)`` of each result of the probe ``target`` (``ping:ADDR``, ``tcp:ADDR:PORT``), in order."""
        out = []
        for value in self.all("probe"):
            rnd, _, rest = value.partition(" ")
            name, _, result = rest.partition(" ")
            if name == target and rnd.isdigit():
                out.append((int(rnd), result == "ok"))
        return out

    @property
    def last_probe_round(self) -> int:
        rounds = [int(v.partition(" ")[0]) for v in self.all("probe") if v.partition(" ")[0].isdigit()]
        return max(rounds, default=0)

    @property
    def disks(self) -> dict[str, int]:
        """The latest disks report: block device name -> size in bytes."""
        value = self.last("disks") or ""
        pairs = (item.rpartition(":") for item in value.split(",") if item)
        return {name: int(size) for name, _, size in pairs if size.isdigit()}


def parse(text: str) -> GuestReport:
    report = GuestReport()
    for raw in text.splitlines():
        line = raw.rstrip("\r")
        at = line.find(PREFIX)
        if at < 0:
            continue
        body = line[at + len(PREFIX) :].strip()
        if body.startswith("tick "):
            report.events.append(("tick", body[5:].strip()))
        elif "=" in body.split(" ", 1)[0]:
            key, _, value = body.partition("=")
            report.events.append((key, value))
        elif body:
            report.events.append((body, ""))
    return report


class SerialLog:
    """The guest's ``<serial type='file'>`` log, read as it grows."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def text(self) -> str:
        try:
            return self.path.read_bytes().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def report(self) -> GuestReport:
        return parse(self.text())

    def wait(
        self,
        condition: Callable[[GuestReport], bool],
        *,
        timeout_s: float = 60.0,
        what: str = "the expected report",
        alive: Callable[[], bool] | None = None,
    ) -> GuestReport:
        """Poll the log until ``condition(report)`` holds; GuestTimeout with the log's tail otherwise.

        ``alive`` (e.g. "the domain still runs") ends the wait early when it turns false.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            stopped = alive is not None and not alive()  # before reading: its last lines are then in
            text = self.text()
            report = parse(text)
            if condition(report):
                return report
            if "Kernel panic" in text:
                raise GuestTimeout(f"guest kernel panicked before {what}; console:\n{text[-3000:]}")
            if stopped:
                raise GuestTimeout(f"guest stopped before {what}; console:\n{text[-3000:]}")
            if time.monotonic() > deadline:
                raise GuestTimeout(f"no {what} within {timeout_s:.0f} s; console:\n{text[-3000:]}")
            time.sleep(0.2)  # polling the growing console log

    def wait_ready(self, *, timeout_s: float = 60.0, alive: Callable[[], bool] | None = None) -> GuestReport:
        return self.wait(lambda r: r.ready, timeout_s=timeout_s, what="ready line", alive=alive)
