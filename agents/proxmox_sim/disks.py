"""VM disks in the simulated cluster: allocating drives (``STORAGE:SIZE``, ``STORAGE:0,import-from=VOLID``,
``STORAGE:cloudinit``), config updates with PVE's pending/hotplug rules and unused volumes, ``resize``,
``move_disk`` (reassign to another VM), ``unlink``, and the config file lock long disk tasks hold."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from agents.proxmox_sim.drives import NEW_DISK, check_options
from agents.proxmox_sim.model import (
    DISK_KEY,
    GIB,
    MIB,
    UNUSED_KEY,
    ApiError,
    SimVM,
    TaskFailed,
    format_size,
    parse_drive,
    parse_size,
    print_drive,
)
from agents.proxmox_sim.network import NET_KEY, normalize_net, require_bridges
from agents.proxmox_sim.storage import StorageCluster

Effect = Callable[[], None]
# Options a running VM only gets at its next start (hotplug defaults to network,disk,usb: no cpu, no memory);
# cloud-init options stay pending until the drive is regenerated (at start).
COLD = re.compile(r"^(cores|sockets|memory|ciuser|cipassword|sshkeys|nameserver|searchdomain|cicustom|citype|"
                  r"ipconfig\d+)$")
_META = {"digest", "delete", "skiplock", "revert", "force", "background_delay"}


def split_list(text: str) -> list[str]:
    return [t for t in re.split(r"[\s,;]+", text or "") if t]


class DiskCluster(StorageCluster):
    # ---- the config file lock of long disk tasks ---------------------------------------------------------
    def acquire_file(self, vmid: int, holder: str) -> None:
        """``lock_config``: wait for ``/var/lock/qemu-server/lock-N.conf`` (PVE waits 10 s) or fail."""
        if not self.file_lock_cond.wait_for(lambda: vmid not in self.file_locks, self.faults.clone_lock_wait_s):
            self.lock_timeouts += 1
            raise ApiError(500, f"can't lock file '/var/lock/qemu-server/lock-{vmid}.conf' - got timeout")
        self.file_locks[vmid] = holder

    def release_files(self, *vmids: int) -> None:
        for vmid in vmids:
            self.file_locks.pop(vmid, None)
        self.file_lock_cond.notify_all()

    def locked_task(
        self, node: str, kind: str, ident: str, user: str, vmids: tuple[int, ...], effect: Effect, log: list[str]
    ) -> str:
        """A task that holds the config file locks of ``vmids`` from its start to its end."""
        taken: list[int] = []
        try:
            for vmid in vmids:
                self.acquire_file(vmid, kind)
                taken.append(vmid)
        except ApiError:
            self.release_files(*taken)
            raise

        def done() -> None:
            try:
                effect()
            finally:
                self.release_files(*vmids)

        return self.engine.spawn(node, kind, ident, user, done, on_fail=lambda: self.release_files(*vmids), log=log)

    # ---- drives --------------------------------------------------------------------------------------------
    def materialize(self, vm: SimVM, node: str, key: str, value: str, made: list[str]) -> str:
        """The drive string PVE writes for ``value``, allocating (or importing into) a volume when asked."""
        file, opts = parse_drive(value)
        opts = dict(opts)
        storage, _, rest = file.partition(":")
        if file in ("", "none", "cdrom"):
            opts.pop("size", None)
            return print_drive(file or "none", opts)
        if rest == "cloudinit":
            other = next((k for k, d in vm.drives.items() if k != key and "-cloudinit" in d), None)
            if other is not None:
                raise TaskFailed(f"{key} - cloud-init drive is already attached at '{other}'")
            fmt = "qcow2" if self.storages.get(storage) and self.storages[storage].path else None
            name = f"vm-{vm.vmid}-cloudinit" + (".qcow2" if fmt else "")
            vol = self.alloc(node, storage, vm.vmid, 4 * MIB, fmt=fmt, name=name)
            made.append(vol.volid)
            opts.pop("format", None)
            opts["media"] = "cdrom"
            return print_drive(vol.volid, opts)
        match = NEW_DISK.match(file)
        if match is not None:
            size = int(float(match[3]) * GIB)
            source = opts.pop("import-from", None)
            if source is not None:
                src = self.volume(node, source)
                if src is None:
                    raise TaskFailed(f"cannot import from '{source}' - could not get size of {source}")
                size = src.size
            vol = self.alloc(node, match[2] or "local-lvm", vm.vmid, size, fmt=opts.pop("format", None))
            made.append(vol.volid)
            opts["size"] = format_size(vol.size)
            return print_drive(vol.volid, opts)
        existing = self.volume(node, file)
        if existing is None:
            raise TaskFailed(f"volume {file} does not exist")
        opts["size"] = format_size(existing.size)
        return print_drive(file, opts)

    def _unused(self, vm: SimVM, volid: str) -> None:
        """``vmconfig_register_unused_drive``: the VM's own volume becomes ``unusedN``; its cloud-init volume
        and other VMs' volumes are dropped (the former freed)."""
        if "-cloudinit" in volid:
            self.free(vm.node, volid)
            return
        vol = self.volume(vm.node, volid)
        if vol is None or vol.vmid != vm.vmid or volid in vm.volids():
            return
        n = 0
        while f"unused{n}" in vm.drives:
            n += 1
        vm.drives[f"unused{n}"] = volid

    def _forget_unused(self, vm: SimVM, volid: str) -> None:
        for key in [k for k, v in vm.drives.items() if UNUSED_KEY.match(k) and v == volid]:
            del vm.drives[key]

    def apply_config(self, vm: SimVM, p: dict[str, Any]) -> None:
        """Apply a checked config update: deletions first, then additions; a running VM hotplugs disks at
        once and keeps CPU, memory and cloud-init changes pending until its next start."""
        running = vm.status == "running"
        if "digest" in p and p["digest"] != vm.config()["digest"]:
            raise TaskFailed("detected modified configuration - file changed by other user? Try again.")
        if running:  # NICs are hot-plugged: their bridges must be there
            require_bridges({k: v for k, v in p.items() if NET_KEY.match(k)}, self.nodes[vm.node].bridges)
        for opt in split_list(str(p.get("delete", ""))):
            if DISK_KEY.match(opt) and opt in vm.drives:
                volid = parse_drive(vm.drives.pop(opt))[0]
                if p.get("force") and "-cloudinit" not in volid:
                    self.free(vm.node, volid)
                else:
                    self._unused(vm, volid)
            elif UNUSED_KEY.match(opt) and opt in vm.drives:
                self.free(vm.node, parse_drive(vm.drives.pop(opt))[0])
            elif opt in ("description", "tags", "name"):
                setattr(vm, opt, "")
            else:
                vm.options.pop(opt, None)
                vm.pending.pop(opt, None)
        made: list[str] = []
        try:
            for opt in sorted(k for k in p if DISK_KEY.match(k)):
                new = self.materialize(vm, vm.node, opt, str(p[opt]), made)
                old = vm.drives.get(opt)
                vm.drives[opt] = new
                self._forget_unused(vm, parse_drive(new)[0])
                if old is not None and parse_drive(old)[0] != parse_drive(new)[0]:
                    self._unused(vm, parse_drive(old)[0])
        except TaskFailed:
            for volid in made:
                self.free(vm.node, volid)
            raise
        for opt, value in p.items():
            if opt in _META or DISK_KEY.match(opt):
                continue
            if UNUSED_KEY.match(opt):
                vm.drives[opt] = str(value)
            elif opt in ("name", "description", "tags"):
                setattr(vm, opt, value)
            elif opt == "lock":
                vm.lock = value or None
            elif running and COLD.match(opt):
                vm.pending[opt] = str(value) if opt == "memory" else value
            else:
                self._set(vm, opt, value)

    @staticmethod
    def _set(vm: SimVM, opt: str, value: Any) -> None:
        if opt in ("cores", "sockets"):
            setattr(vm, opt, int(value))
        elif opt == "memory":
            text = str(value)
            vm.memory_mib = int(dict(x.split("=", 1) for x in text.split(",")).get("current", 0) if "=" in text
                                else text)
        elif NET_KEY.match(opt):
            vm.options[opt] = normalize_net(vm, opt, str(value))
        else:
            vm.options[opt] = value

    def apply_pending(self, vm: SimVM) -> None:
        """At start: the pending changes become the current config."""
        for opt, value in list(vm.pending.items()):
            self._set(vm, opt, value)
        vm.pending.clear()

    def set_config(self, node: str, vmid: int, p: dict[str, Any], user: str, sync: bool) -> str | None:
        """PUT (synchronous) or POST (a ``qmconfig`` task) ``/config``."""
        with self.lock:
            vm = self.vm(node, vmid)
            check_options(p)
            if not p.get("skiplock"):
                self.check_lock(vm)
            if "digest" in p and p["digest"] != vm.config()["digest"]:
                raise ApiError(500, "detected modified configuration - file changed by other user? Try again.")
            if sync:
                self.acquire_file(vmid, "config")
                try:
                    self.apply_config(vm, p)
                except TaskFailed as exc:
                    raise ApiError(500, str(exc)) from None
                finally:
                    self.release_files(vmid)
                return None
            log = ["update VM {}: {}".format(vmid, " ".join(f"-{k} {v}" for k, v in sorted(p.items())))]
            upid = self.locked_task(node, "qmconfig", str(vmid), user, (vmid,), lambda: self.apply_config(vm, p), log)
            task = self.engine.tasks[upid]
        if p.get("background_delay"):  # wait that long for the task: null when it ended well, its error if not
            deadline = time.monotonic() + int(p["background_delay"])
            while task.status == "running" and time.monotonic() < deadline:
                time.sleep(0.01)
            if task.status != "running":
                if task.exitstatus != "OK":
                    raise ApiError(500, f"failed to update VM {vmid}: {task.exitstatus}")
                return None
        return upid

    def unlink(self, node: str, vmid: int, p: dict[str, Any]) -> None:
        """``PUT unlink``: ``update_vm`` with ``delete=idlist`` (unused volumes, and with ``force`` disks, are
        destroyed)."""
        self.set_config(node, vmid, {"delete": p["idlist"], "force": p.get("force", False)}, "", sync=True)

    # ---- resize --------------------------------------------------------------------------------------------
    def resize(self, node: str, vmid: int, p: dict[str, Any], user: str) -> str:
        with self.lock:
            vm = self.vm(node, vmid)
            disk, text = str(p["disk"]), str(p["size"])

            def effect() -> None:
                if "digest" in p and p["digest"] != vm.config()["digest"]:
                    raise TaskFailed("checksum mismatch (file change by other user?)")
                if vm.lock and not p.get("skiplock"):
                    raise TaskFailed(f"VM is locked ({vm.lock})")
                if disk not in vm.drives:
                    raise TaskFailed(f"disk '{disk}' does not exist")
                file, opts = parse_drive(vm.drives[disk])
                if opts.get("media") == "cdrom":
                    raise TaskFailed("you can't resize a cdrom")
                vol = self.volume(vm.node, file)
                if vol is None:
                    raise TaskFailed(f"Could not determine current size of volume '{file}'")
                new = parse_size(text.lstrip("+")) + (vol.size if text.startswith("+") else 0)
                if new < vol.size:
                    raise TaskFailed("shrinking disks is not supported")
                vol.size = new
                vm.drives[disk] = print_drive(file, {**opts, "size": format_size(new)})

            log = [f"update VM {vmid}: resize --disk {disk} --size {text}"]
            return self.locked_task(node, "resize", str(vmid), user, (vmid,), effect, log)

    # ---- move_disk -----------------------------------------------------------------------------------------
    def move_disk(self, node: str, vmid: int, p: dict[str, Any], user: str) -> str:
        """Reassign a disk to another VM of the same node (``target-vmid``); the volume is renamed for it."""
        with self.lock:
            target, disk = p.get("target-vmid"), str(p["disk"])
            target_disk = str(p.get("target-disk", disk))
            if target is not None and "storage" in p:
                msg = "either set 'storage' or 'target-vmid', but not both"
                raise ApiError(400, "Parameter verification failed.", {"target-vmid": msg, "storage": msg})
            if target is None:
                msg = "both 'storage' and 'target-vmid' missing, either needs to be set"
                if "storage" in p:  # moving between storages is not something the simulator does
                    raise ApiError(501, "move_disk to another storage is not simulated")
                raise ApiError(400, "Parameter verification failed.", {"target-vmid": msg, "storage": msg})
            if target == vmid:
                raise ApiError(400, "Parameter verification failed.",
                               {"target-vmid": "must be different than source VMID to reassign disk"})

            def check() -> tuple[SimVM, SimVM, str, dict[str, str]]:
                src, dst = self.vms.get(vmid), self.vms.get(int(target))
                if src is None:
                    raise ApiError(500, f"could not find VM {vmid}")
                if dst is None:
                    raise ApiError(500, f"could not find target VM {target}")
                if src.node != dst.node:
                    raise ApiError(500, f"Both VMs need to be on the same node ({src.node} != {dst.node})")
                self.check_lock(src)
                self.check_lock(dst)
                if src.template or dst.template:
                    raise ApiError(500, "Can't move disks from or to template VMs")
                for digest, vm in ((p.get("digest"), src), (p.get("target-digest"), dst)):
                    if digest is not None and digest != vm.config()["digest"]:
                        raise ApiError(500, f"VM {vm.vmid}: detected modified configuration - file changed by "
                                            "other user? Try again.")
                if disk not in src.drives:
                    raise ApiError(500, f"Disk '{disk}' for VM '{vmid}' does not exist")
                if target_disk in dst.drives:
                    raise ApiError(500, f"Target disk key '{target_disk}' is already in use for VM '{target}'")
                file, opts = parse_drive(src.drives[disk])
                if opts.get("media") == "cdrom":
                    raise ApiError(500, "CD drive contents can't be moved to another VM")
                if src.status == "running" and not UNUSED_KEY.match(disk):
                    raise ApiError(500, "Cannot move disk to another VM while the source VM is running - detach first")
                return src, dst, file, opts

            check()

            def effect() -> None:
                try:
                    src, dst, file, opts = check()
                except ApiError as exc:
                    raise TaskFailed(exc.message) from None
                new = self.rename(src.node, file, dst.vmid)
                del src.drives[disk]
                if UNUSED_KEY.match(target_disk):
                    dst.drives[target_disk] = new
                else:  # like update_vm_api with {target_disk: drive}: the size comes from the volume
                    dst.drives[target_disk] = self.materialize(dst, dst.node, target_disk, print_drive(new, opts), [])

            log = [f"reassign disk '{disk}' from VM '{vmid}' as '{target_disk}' to VM '{target}'"]
            ident = f"{vmid}-{disk}>{target}-{target_disk}"
            return self.locked_task(node, "qmmove", ident, user, (vmid, int(target)), effect, log)

    # ---- what other operations need ------------------------------------------------------------------------
    def local_disks(self, vm: SimVM) -> list[dict[str, Any]]:
        """``$check_vm_disks_local``: volumes on non-shared storages (disks, cloud-init, unused)."""
        out = []
        for key, value in sorted(vm.drives.items()):
            file, opts = parse_drive(value)
            storage = file.split(":", 1)[0]
            if ":" not in file or (storage in self.storages and self.storages[storage].shared):
                continue
            vol = self.volume(vm.node, file)
            cdrom = opts.get("media") == "cdrom"
            entry: dict[str, Any] = {"volid": file, "size": vol.size if vol else 0, "cdrom": cdrom,
                                     "is_unused": bool(UNUSED_KEY.match(key)), "is_cloudinit": "-cloudinit" in file,
                                     "is_attached": not UNUSED_KEY.match(key)}
            if DISK_KEY.match(key):
                entry["drivename"] = key
            out.append(entry)
        return out

    def move_volumes(self, vm: SimVM, target: str) -> None:
        """Migration: the VM's volumes on local storages now live on ``target``."""
        for volid in vm.volids():
            storage = volid.split(":", 1)[0]
            if storage in self.storages and not self.storages[storage].shared:
                vol = self.volumes.pop((vm.node, volid), None)
                if vol is not None:
                    self.volumes[(target, volid)] = vol

    def destroy_volumes(self, vm: SimVM, unreferenced: bool) -> None:
        """``qm destroy``: the config's volumes, and with ``destroy-unreferenced-disks`` every volume it owns."""
        for volid in vm.volids():
            self.free(vm.node, volid)
        if unreferenced:
            for (scope, volid), vol in list(self.volumes.items()):
                if vol.vmid == vm.vmid and scope in (vm.node, "*"):
                    del self.volumes[(scope, volid)]

    def clone_drives(self, src: SimVM, new: SimVM, node: str, storage: str | None) -> list[str]:
        """A full clone's drives: every disk copied (into ``storage`` when given), a new cloud-init drive."""
        made: list[str] = []
        for key, value in sorted(src.drives.items()):
            file, opts = parse_drive(value)
            if not DISK_KEY.match(key) or (opts.get("media") == "cdrom" and "-cloudinit" not in file):
                continue
            if "-cloudinit" in file:
                new.drives[key] = self.materialize(new, new.node, key, f"{storage or file.split(':')[0]}:cloudinit",
                                                   made)
                continue
            vol = self.volume(node, file)
            size = vol.size if vol else parse_size(opts.get("size", "0"))
            copy = self.alloc(new.node, storage or file.split(":")[0], new.vmid, size)
            made.append(copy.volid)
            new.drives[key] = print_drive(copy.volid, {**opts, "size": format_size(size)})
        return made
