"""Creating a Proxmox VM: VMID allocation with retry on "already exists", full clone or create from
parameters, then waiting for the task (or for the config lock of a create already in flight)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_attempt

from agents.base import VMSpec
from agents.errors import AlreadyExists, DriverError, NotFound, OperationTimeout
from agents.proxmox_meta import TAG, describe, pve_name
from agents.proxmox_node import ProxmoxNode


class Creator:
    """Creates our VM on ``node``; the driver's ``create`` holds the VM's lock around it."""

    def __init__(self, node: ProxmoxNode) -> None:
        self.node = node
        self.client = node.client
        self.opts = node.opts

    # ---- templates -------------------------------------------------------------------------------------
    def template(self, spec: VMSpec) -> tuple[str, int] | None:
        """``(node, vmid)`` of the template named by ``spec.image`` (VMID or name) or the host option."""
        ref = spec.image or self.opts.template
        if not ref:
            return None
        ref = ref.removeprefix("pve-template:").removeprefix("template:")
        matches = []
        for res in self.client.call("GET", "cluster/resources", type="vm") or []:
            if not res.get("template"):
                continue
            if str(res.get("vmid")) == ref or res.get("name") == ref:
                matches.append((res.get("node") != self.node.name, str(res["node"]), int(res["vmid"])))
        if not matches:
            raise DriverError(f"no Proxmox template {ref!r} in the cluster", host=self.node.uri, code="NO_IMAGE")
        _, node, vmid = min(matches)  # prefer a template on our own node
        return node, vmid

    # ---- allocation and launch -------------------------------------------------------------------------
    def launch(self, spec: VMSpec, key: str) -> int:
        """Allocate a VMID and start the create/clone task; the UPID goes to the journal. Returns the VMID."""
        template = self.template(spec)
        if template is None:
            return self._allocate(spec, key, lambda vmid: self._create_params(spec, vmid))
        # Clones of one template are serialised in this process; other processes meet "can't lock file"
        # and retry with backoff. The lock is held until the clone task is over.
        with self.node.lock("template", str(template[1])):
            vmid = self._allocate(spec, key, lambda vmid: self._clone(spec, template, vmid))
            self.wait(spec, vmid, key)
            return vmid

    def _allocate(self, spec: VMSpec, key: str, start: Callable[[int], object]) -> int:
        """Take the next free VMID and ``start`` with it; another client may take it between ``nextid`` and
        our create ("already exists"): then the next one, at most ``vmid_retries`` times (tenacity)."""
        tried = [0]  # the last VMID tried: the next attempt takes a higher one

        def attempt() -> int:
            nextid = int(self.client.call("GET", "cluster/nextid"))  # a string on the wire
            candidate = tried[0] = max(nextid, self.opts.vmid_min, tried[0] + 1)
            if candidate != nextid:
                self.client.call("GET", "cluster/nextid", vmid=candidate)  # 400 when taken
            self.node.journal.remember(key, str(start(candidate)))
            return candidate

        retrying = Retrying(
            stop=stop_after_attempt(self.opts.vmid_retries), retry=retry_if_exception_type(AlreadyExists)
        )
        try:
            return retrying(attempt)
        except RetryError:
            raise DriverError(
                f"no free VMID for {spec.vm_id!r} after {self.opts.vmid_retries} attempts",
                host=self.node.uri,
                code="VMID_EXHAUSTED",
            ) from None

    def _create_params(self, spec: VMSpec, vmid: int) -> str:
        params: dict[str, Any] = {
            "vmid": vmid,
            "name": pve_name(spec.vm_id),
            "description": describe(spec),
            "tags": TAG,
            "memory": str(spec.ram_mib),
            "cores": spec.vcpus,
            "sockets": 1,
            "ostype": "l26",
            "scsihw": "virtio-scsi-single",
            "net0": f"virtio,bridge={self.opts.bridge}",
        }
        if spec.disk_gib > 0:
            params["scsi0"] = f"{self.opts.storage}:{spec.disk_gib}"
        return str(self.client.call("POST", f"nodes/{self.node.name}/qemu", **params))

    def _clone(self, spec: VMSpec, template: tuple[str, int], vmid: int) -> str:
        node, tvmid = template
        params: dict[str, Any] = {
            "newid": vmid,
            "name": pve_name(spec.vm_id),
            "description": describe(spec),
            "full": 1,
            "storage": self.opts.storage,
        }
        if node != self.node.name:
            params["target"] = self.node.name
        path = f"nodes/{node}/qemu/{tvmid}/clone"
        return str(
            self.client.retry_locked(
                lambda: self.client.call("POST", path, **params), f"clone of template {tvmid} for {spec.vm_id}"
            )
        )

    # ---- completion ------------------------------------------------------------------------------------
    def wait(self, spec: VMSpec, vmid: int, key: str) -> None:
        """Wait for the create/clone task we (or an earlier delivery) started."""
        upid = self.node.journal.recall(key)
        what = f"create of {spec.vm_id} (VMID {vmid})"
        if upid is None:
            upid = self.client.active_task(self.node.name, vmid, ("qmcreate",))
        if upid is not None:
            try:
                self.client.wait_task(upid, self.opts.task_timeout_s, what)
            except OperationTimeout:
                raise
            except DriverError as exc:
                if exc.code in ("TASK_FAILED", "NO_DOMAIN"):
                    self.node.journal.forget(key)
                if exc.code == "TASK_FAILED":
                    raise
            else:
                self.node.journal.forget(key)
        self._wait_unlocked(vmid, what)

    def _wait_unlocked(self, vmid: int, what: str) -> None:
        """A clone by another process (its UPID is on the template): wait until the config lock is gone."""
        deadline = time.monotonic() + self.opts.task_timeout_s
        pause = 0.05
        while True:
            try:
                lock = self.node.config(vmid).get("lock")
            except NotFound:
                raise DriverError(
                    f"{what} failed: the VM disappeared (the clone task failed)",
                    host=self.node.uri,
                    code="TASK_FAILED",
                ) from None
            if lock not in ("create", "clone"):
                return
            if time.monotonic() > deadline:
                raise OperationTimeout(f"{what}: config still locked ({lock})", host=self.node.uri, code="TASK_TIMEOUT")
            time.sleep(pause)
            pause = min(pause * 2, self.opts.poll_interval_s)

    def finish(self, spec: VMSpec, vmid: int, key: str) -> None:
        """Wait for the task, then give a clone the requested CPUs, RAM and tag (idempotent)."""
        self.wait(spec, vmid, key)
        cfg = self.node.config(vmid)
        cores, sockets = int(cfg.get("cores", 1)), int(cfg.get("sockets", 1))
        memory = str(cfg.get("memory", "512")).split(",")[0].removeprefix("current=")
        wanted: dict[str, Any] = {}
        if cores * sockets != spec.vcpus:
            wanted.update(cores=spec.vcpus, sockets=1)
        if memory != str(spec.ram_mib):
            wanted["memory"] = str(spec.ram_mib)
        if TAG not in str(cfg.get("tags", "")).split(";"):
            wanted["tags"] = ";".join(t for t in (str(cfg.get("tags", "")), TAG) if t)
        if wanted:
            path = self.node.qemu(vmid, "/config")
            self.client.retry_locked(lambda: self.client.call("PUT", path, **wanted), f"configure VMID {vmid}")
