"""Helpers shared by the end-to-end modules that run on the Proxmox VE API simulator (in this process) and
that poll the stack for conditions with deadlines."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from agents.proxmox_sim import SimCluster, SimServer
from tests.e2e.stack import Stack

TOKEN_ID = "confluencia@pve!ctl"
T = TypeVar("T")


@dataclass
class PveSim:
    cluster: SimCluster
    server: SimServer
    options: dict[str, str]  # driver options of every node (token, CA, short deadlines)

    def uri(self, node: str) -> str:
        return f"pve://{self.server.address}/{node}"

    def host(self, node: str, **fields: Any) -> dict[str, Any]:
        """The POST /v1/hosts body of one simulated node."""
        return {"name": node, "driver": "proxmox", "uri": self.uri(node), "options": self.options, **fields}

    def inventory(self, nodes: list[str]) -> dict[str, list[str]]:
        """Our VM id -> every node whose driver lists it (exactly one node each, when nothing is duplicated)."""
        from agents.registry import open_driver

        where: dict[str, list[str]] = {}
        for node in nodes:
            for d in open_driver("proxmox", self.uri(node), self.options).list_domains():
                if d.tenant_id is not None:
                    where.setdefault(d.vm_id, []).append(node)
        return where


@contextmanager
def pve_sim(nodes: list[str], **node_kw: Any) -> Iterator[PveSim]:
    cluster = SimCluster(nodes, **node_kw)
    secret = cluster.add_token(TOKEN_ID)
    server = SimServer(cluster).start()
    options = {"token_id": TOKEN_ID, "token_secret": secret, "ca_bundle": str(server.cert_path),
               "poll_interval": "0.1", "connect_timeout": "3"}
    try:
        yield PveSim(cluster, server, options)
    finally:
        server.stop()


def wait_for(check: Callable[[], T | None], timeout: float, what: str | Callable[[], str],
             every: float = 0.2) -> T:
    """Poll ``check`` until it returns something truthy; AssertionError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"after {timeout:.0f} s: {what() if callable(what) else what}")
        time.sleep(every)


def everything(stack: Stack, path: str, token: str | None = None) -> list[dict[str, Any]]:
    """All items of a list endpoint (pages of 500)."""
    items: list[dict[str, Any]] = []
    sep = "&" if "?" in path else "?"
    while True:
        page = stack.ok("GET", f"{path}{sep}limit=500&offset={len(items)}", token)
        items += page["items"]
        if len(items) >= page["total"] or not page["items"]:
            return items
