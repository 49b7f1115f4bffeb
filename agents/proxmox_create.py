"""Creating a Proxmox VM: VMID allocation with retry on "already exists", full clone or create from
parameters, then waiting for the task (or for the config lock of a create already in flight).

A spec with disks is created from parameters: the root disk ``scsi0`` imported from the image the node
downloaded (``<storage>:0,import-from=<volid>``, see :mod:`agents.proxmox_storage`) or empty, then grown to
its size (``PUT .../resize``); a spec with a cloud-init seed gets PVE's cloud-init drive and options
(:mod:`agents.proxmox_cloudinit`), also after a clone. NICs on segments (:mod:`agents.proxmox_network`) are
``netN`` options of the create, or set on the clone after its task. Data volumes and the firewall are the
driver's part afterwards."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from agents import proxmox_cloudinit as cloudinit
from agents import proxmox_network as network
from agents.base import VMSpec
from agents.errors import DriverError, NotFound, OperationTimeout
from agents.proxmox_meta import GIB, TAG, describe, pve_name, size_bytes
from agents.proxmox_node import ProxmoxNode
from agents.proxmox_storage import Storages


class Creator:
    """Creates our VM on ``node``; the driver's ``create`` holds the VM's lock around it."""

    def __init__(self, node: ProxmoxNode, storages: Storages) -> None:
        self.node = node
        self.storages = storages
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
        nets = network.check_spec(spec, self.opts, self.node.uri)
        network.require_bridges(self.client, self.node.name, nets, self.node.uri)
        template = None if spec.disks else self.template(spec)
        if template is None:
            extra = {**self._disk_params(spec), **nets}  # the image is on the node before a VMID is taken
            return self._allocate(spec, key, lambda vmid: self._create_params(spec, vmid, extra))
        # Clones of one template are serialised in this process; other processes meet "can't lock file"
        # and retry with backoff. The lock is held until the clone task is over.
        with self.node.lock("template", str(template[1])):
            vmid = self._allocate(spec, key, lambda vmid: self._clone(spec, template, vmid))
            self.wait(spec, vmid, key)
            return vmid

    def _allocate(self, spec: VMSpec, key: str, start: Callable[[int], object]) -> int:
        return self.node.allocate(key, repr(spec.vm_id), start)

    def _disk_params(self, spec: VMSpec) -> dict[str, Any]:
        """``scsi0`` (imported from the image, or empty), the boot order and the cloud-init options; the image is
        downloaded last, when everything else is known to be right."""
        out: dict[str, Any] = {}
        root = spec.disks[0] if spec.disks else None
        storage = self.storages.storage(root.pool) if root is not None else self.opts.storage
        if spec.cloud_init is not None:
            out.update(cloudinit.params(spec.cloud_init, spec.vm_id, storage, self.opts, self.node.uri))
            nets = spec.cloud_init.networks
            if nets and nets[0].mac and not spec.nics:
                out["net0"] = f"virtio={nets[0].mac},bridge={self.opts.bridge}"
        if root is None:
            return out
        out["boot"] = "order=scsi0;net0"
        if root.image is None:
            out["scsi0"] = f"{storage}:{root.size_gib}"
            return out
        if root.image.virtual_size_bytes > root.size_gib * GIB:
            raise DriverError(
                f"root disk {root.volume_id!r} ({root.size_gib} GiB) is smaller than image "
                f"{root.image.image_id!r} ({root.image.virtual_size_bytes} bytes)",
                host=self.node.uri,
                code="DISK_TOO_SMALL",
            )
        out["scsi0"] = f"{storage}:0,import-from={self.storages.ensure_image(root.image)}"
        return out

    def _create_params(self, spec: VMSpec, vmid: int, extra: dict[str, Any]) -> str:
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
        if spec.disk_gib > 0 and not spec.disks:
            params["scsi0"] = f"{self.opts.storage}:{spec.disk_gib}"
        params.update(extra)
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
        """Wait for the task, then give a clone the requested CPUs, RAM, tag, NICs and cloud-init options, and grow
        the root disk to its size (idempotent)."""
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
        if spec.nics:  # a clone has its template's NICs; a redelivered create may find a VM half made
            wanted.update(network.nic_changes(cfg, network.nic_params(spec.nics, self.opts, self.node.uri)))
        if wanted:
            path = self.node.qemu(vmid, "/config")
            self.client.retry_locked(lambda: self.client.call("PUT", path, **wanted), f"configure VMID {vmid}")
        if spec.cloud_init is not None:  # a clone (of a template with or without a cloud-init drive)
            ci = cloudinit.params(spec.cloud_init, spec.vm_id, self.opts.storage, self.opts, self.node.uri)
            if "cloudinit" in str(cfg.get(cloudinit.DRIVE, "")):
                del ci[cloudinit.DRIVE]
            ci = {k: v for k, v in ci.items() if str(cfg.get(k)) != str(v)}
            if ci:
                config = self.node.qemu(vmid, "/config")
                self._task(f"cloud-init drive of {spec.vm_id}", lambda: self.client.call("POST", config, **ci))
        if spec.disks and size_bytes(str(self.node.config(vmid).get("scsi0", ""))) < spec.disks[0].size_gib * GIB:
            size, resize = f"{spec.disks[0].size_gib}G", self.node.qemu(vmid, "/resize")
            what = f"growing the root disk of {spec.vm_id}"
            self._task(what, lambda: self.client.call("PUT", resize, disk="scsi0", size=size))

    def _task(self, what: str, launch: Callable[[], object]) -> None:
        upid = str(self.client.retry_locked(launch, what))
        self.client.wait_task(upid, self.opts.task_timeout_s, what)
