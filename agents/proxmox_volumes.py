"""Where our data volumes are kept on a Proxmox VE node while no VM uses them: holder VMs.

PVE has no free-standing disks: every volume belongs to a VM (``vm-<vmid>-disk-N``) and is destroyed with
it. A detached data volume must outlive the VM it was attached to, so the driver hands it over, with
``POST .../move_disk`` (``target-vmid``, ``target-disk``: PVE renames the volume for the new owner), to a
*holder VM* of the node: a stopped VM named ``cf--volumes`` (never a name of one of our VMs) whose
description carries ``confluencia:holder=<node>`` and the ``confluencia:volumes=`` map (volume id ->
``scsiN``), and from there to the VM it is attached to next. Holders are never started, never migrated
and not reported by ``list_domains``; a full one (31 SCSI slots) gets a sibling. PVE reassigns disks only
between VMs of one node, so a detached volume is attached again on the node where it was detached.

Every map change is written with the config ``digest`` (PVE refuses a write over a config that changed
meanwhile; we re-read and retry) and before the move it announces, so an interrupted move is finished by
the next call instead of losing track of the volume.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agents.errors import DriverError, NotFound
from agents.proxmox_client import Locked
from agents.proxmox_meta import HOLDER_NAME, TAG, read_volumes, with_volumes
from agents.proxmox_node import Entry, ProxmoxNode

SLOTS = tuple(f"scsi{i}" for i in range(31))  # scsi0..scsi30, the move_disk target-disk enum
_LOCK_TEXTS = ("is locked", "can't lock file")
_CHANGED_TEXTS = ("modified configuration", "checksum mismatch")


class Volumes:
    def __init__(self, node: ProxmoxNode) -> None:
        self.node = node
        self.client = node.client
        self.opts = node.opts

    # ---- tasks and config writes -----------------------------------------------------------------------
    def task(self, what: str, launch: Callable[[], object]) -> None:
        """Launch a task (the call returns its UPID) and wait for it; a busy config, refused by the call or
        by the task (``can't lock file ... got timeout``), is retried with backoff."""

        def attempt() -> None:
            upid = str(launch())
            try:
                self.client.wait_task(upid, self.opts.task_timeout_s, what)
            except DriverError as exc:
                if exc.code == "TASK_FAILED" and any(t in exc.message for t in _LOCK_TEXTS):
                    raise Locked(exc.message, host=self.node.uri, code="LOCKED") from None
                raise

        self.client.retry_locked(attempt, what)

    def edit(
        self,
        vmid: int,
        change: Callable[[dict[str, str]], object],
        what: str,
        extra: dict[str, Any] | None = None,
        task: bool = False,
    ) -> None:
        """Rewrite the volume map of VM ``vmid`` (plus ``extra`` options in the same write; ``task``: through
        the asynchronous ``POST .../config``, needed when ``extra`` allocates a disk)."""
        for _ in range(5):
            cfg = self.node.config(vmid)
            mapping = read_volumes(cfg.get("description"))
            change(mapping)
            params = {"description": with_volumes(cfg.get("description"), mapping), "digest": cfg["digest"]}
            params.update(extra or {})
            try:
                self._write(vmid, params, what, task)
                return
            except DriverError as exc:
                if not any(t in exc.message for t in _CHANGED_TEXTS):
                    raise
        raise DriverError(f"{what}: the config kept changing under us", host=self.node.uri, code="CONFIG_CHANGED")

    def _write(self, vmid: int, params: dict[str, Any], what: str, task: bool) -> None:
        path = self.node.qemu(vmid, "/config")
        if task:
            self.task(what, lambda: self.client.call("POST", path, **params))
        else:
            self.client.retry_locked(lambda: self.client.call("PUT", path, **params), what)

    def move(self, src: int, src_slot: str, dst: int, dst_slot: str, what: str) -> None:
        """``move_disk`` from ``src``/``src_slot`` to ``dst``/``dst_slot``; one that already happened is fine."""
        params = {"disk": src_slot, "target-vmid": dst, "target-disk": dst_slot}
        try:
            self.task(what, lambda: self.client.call("POST", self.node.qemu(src, "/move_disk"), **params))
        except DriverError:
            if dst_slot in self.node.config(dst) and src_slot not in self.node.config(src):
                return  # an earlier attempt moved it and we lost its answer
            raise

    # ---- holders -----------------------------------------------------------------------------------------
    def holder_lock(self) -> Any:
        return self.node.lock("holders", self.node.name)

    def holders(self) -> list[tuple[int, Entry]]:
        """The holder VMs of this node with their configs."""
        out = []
        for entry in self.node.entries():
            if entry.get("name") != HOLDER_NAME or entry.get("template"):
                continue
            try:
                cfg = self.node.config(entry["vmid"])
            except NotFound:
                continue
            if "confluencia:holder=" in str(cfg.get("description", "")):
                out.append((int(entry["vmid"]), cfg))
        return out

    def held(self, volume_id: str) -> tuple[int, str, Entry] | None:
        """``(holder vmid, slot, holder config)`` of a volume kept on this node."""
        for vmid, cfg in self.holders():
            slot = read_volumes(cfg.get("description")).get(volume_id)
            if slot is not None and slot in cfg:
                return vmid, slot, cfg
        return None

    def free_slot(self, volume_id: str) -> tuple[int, str]:
        """Where to put ``volume_id``: the slot an interrupted move announced for it, else a free one (a new
        holder when all are full)."""
        holders = self.holders()
        for vmid, cfg in holders:
            slot = read_volumes(cfg.get("description")).get(volume_id)
            if slot in SLOTS and slot not in cfg:
                return vmid, slot
        for vmid, cfg in holders:
            claimed = set(read_volumes(cfg.get("description")).values())
            for slot in SLOTS:
                if slot not in cfg and slot not in claimed:
                    return vmid, slot
        return self._new_holder(), SLOTS[0]

    def _new_holder(self) -> int:
        key = self.node.key("holder", "create")
        description = (
            "Confluencia keeps detached data volumes here: do not start, edit or delete this VM.\n"
            f"confluencia:holder={self.node.name}\nconfluencia:volumes="
        )

        def start(vmid: int) -> object:
            return self.client.call(
                "POST",
                f"nodes/{self.node.name}/qemu",
                vmid=vmid,
                name=HOLDER_NAME,
                description=description,
                tags=TAG,
                memory="16",
                cores=1,
                sockets=1,
                ostype="other",
                onboot=0,
            )

        vmid = self.node.allocate(key, f"a volume holder on {self.node.name}", start)
        upid = self.node.journal.recall(key)
        try:
            if upid is not None:
                self.client.wait_task(upid, self.opts.task_timeout_s, f"create of holder VM {vmid}")
        finally:
            self.node.journal.forget(key)
        return vmid
