"""Storages and volumes of the simulated cluster: ``/nodes/{node}/storage``, the content listing and
``download-url`` (the node really fetches the URL, checks the checksum and the image's header, like PVE)."""

from __future__ import annotations

import hashlib
import re
import ssl
import struct
import urllib.error
import urllib.request
from typing import Any

from agents.proxmox_sim.cluster import Cluster
from agents.proxmox_sim.model import GIB, MIB, ApiError, SimStorage, SimVM, SimVolume, TaskFailed, format_size

ALGORITHMS = ("md5", "sha1", "sha224", "sha256", "sha384", "sha512")
_SUBDIR = {"iso": "iso", "vztmpl": "vztmpl", "import": "import"}  # volid prefix of each content type
_EXTENSION = {
    "iso": re.compile(r"^[^/]+\.(iso|img)$"),
    "vztmpl": re.compile(r"^[^/]+\.tar\.(gz|xz|zst|bz2)$"),
    "import": re.compile(r"^[a-zA-Z0-9\-.+=_]+\.(ova|qcow2|raw|vmdk)$"),  # PVE's UPLOAD_IMPORT_EXT_RE_1
}
MAX_DOWNLOAD = 4 * GIB


def image_header(data: bytes, fmt: str, where: str) -> int:
    """The virtual size, checked the way PVE checks an untrusted image (``qemu-img info`` on the file)."""
    if fmt != "qcow2":
        return len(data)
    if len(data) < 32 or data[:4] != b"QFI\xfb":
        raise TaskFailed("failed to query file information with qemu-img")
    backing_offset, size = struct.unpack(">Q", data[8:16])[0], struct.unpack(">Q", data[24:32])[0]
    if backing_offset:
        raise TaskFailed(f"backing file not allowed for untrusted image '{where}'!")
    return int(size)


class StorageCluster(Cluster):
    # ---- setup ------------------------------------------------------------------------------------------
    def add_storage(
        self, name: str, type: str = "dir", content: tuple[str, ...] = ("snippets",), *, shared: bool = False,
        path: str | None = None,
    ) -> SimStorage:
        """Add a storage to ``storage.cfg`` (e.g. a shared directory with ``snippets`` for ``cicustom``)."""
        with self.lock:
            self.storages[name] = SimStorage(name, type, frozenset(content), shared=shared, path=path)
            return self.storages[name]

    def add_template(
        self, vmid: int, node: str, name: str, *, disk_gib: int = 2, memory_mib: int = 512, storage: str = "local-lvm"
    ) -> SimVM:
        with self.lock:
            vm = SimVM(vmid, node, name=name, memory_mib=memory_mib, template=True)
            vol = self.alloc(node, storage, vmid, disk_gib * GIB, name=f"base-{vmid}-disk-0")
            vm.drives["scsi0"] = f"{vol.volid},size={format_size(vol.size)}"
            self.vms[vmid] = vm
            return vm

    # ---- volumes ----------------------------------------------------------------------------------------
    def storage_of(self, node: str, name: str) -> SimStorage:
        self.node(node)
        st = self.storages.get(name)
        if st is None:
            raise ApiError(500, f"storage '{name}' does not exist")
        return st

    def volume(self, node: str, volid: str) -> SimVolume | None:
        storage = volid.split(":", 1)[0]
        if storage not in self.storages:
            return None
        return self.volumes.get((self.scope(storage, node), volid))

    def _free_name(self, node: str, storage: str, vmid: int, ext: str) -> str:
        scope = self.scope(storage, node)
        taken = {v for (sc, v) in self.volumes if sc == scope}
        n = 0
        while any(f"{storage}:{p}vm-{vmid}-disk-{n}{ext}" in taken for p in ("", f"{vmid}/")):
            n += 1
        return f"vm-{vmid}-disk-{n}"

    def alloc(
        self, node: str, storage: str, vmid: int, size: int, *, fmt: str | None = None, name: str | None = None
    ) -> SimVolume:
        """``vdisk_alloc``: a new volume of ``size`` bytes owned by ``vmid`` (``vm-N-disk-K`` by default)."""
        st = self.storages.get(storage)
        if st is None:
            raise TaskFailed(f"storage '{storage}' does not exist")
        if "images" not in st.content:
            raise TaskFailed(f"storage '{storage}' does not support vm images")
        fmt = fmt or ("qcow2" if st.path else "raw")
        ext = f".{fmt}" if st.path else ""
        name = name or self._free_name(node, storage, vmid, ext)
        volid = f"{storage}:{vmid}/{name}{ext}" if st.path else f"{storage}:{name}"
        key = (self.scope(storage, node), volid)
        if key in self.volumes:
            raise TaskFailed(f"unable to create image: volume '{volid}' already exists")
        self.volumes[key] = SimVolume(volid, size, fmt, "images", vmid)
        return self.volumes[key]

    def free(self, node: str, volid: str) -> None:
        storage = volid.split(":", 1)[0]
        if storage in self.storages:
            self.volumes.pop((self.scope(storage, node), volid), None)

    def rename(self, node: str, volid: str, vmid: int) -> str:
        """``rename_volume``: the volume now belongs to ``vmid`` under its next free disk name."""
        vol = self.volume(node, volid)
        if vol is None:
            raise TaskFailed(f"volume '{volid}' does not exist")
        self.free(node, volid)
        new = self.alloc(node, vol.storage, vmid, vol.size, fmt=vol.format)
        return new.volid

    # ---- listings ---------------------------------------------------------------------------------------
    def storage_index(self, node: str, p: dict[str, Any]) -> list[dict[str, Any]]:
        with self.lock:
            self.node(node)
            wanted = set(filter(None, str(p.get("content", "")).split(",")))
            target = p.get("target")
            out = []
            for st in sorted(self.storages.values(), key=lambda s: s.name):
                if (wanted and not wanted & st.content) or (p.get("storage") not in (None, st.name)):
                    continue
                if target is not None and target != node and not st.shared:
                    continue
                used = self.used_bytes(node, st.name)
                entry: dict[str, Any] = {
                    "storage": st.name,
                    "type": st.type,
                    "content": ",".join(sorted(st.content)),
                    "shared": st.shared,
                    "active": True,
                    "enabled": True,
                    "total": st.total,
                    "used": used,
                    "avail": st.total - used,
                    "used_fraction": used / st.total,
                }
                if p.get("format"):
                    formats = ["qcow2", "raw", "vmdk"] if st.path else ["raw"]
                    entry["formats"] = {"default": formats[0], "supported": formats}
                    entry["select_existing"] = False
                out.append(entry)
            return out

    def storage_content(self, node: str, storage: str, p: dict[str, Any]) -> list[dict[str, Any]]:
        with self.lock:
            self.storage_of(node, storage)
            scope = self.scope(storage, node)
            out = []
            for (sc, volid), vol in sorted(self.volumes.items()):
                if sc != scope or vol.storage != storage:
                    continue
                if p.get("content") not in (None, vol.content) or p.get("vmid") not in (None, vol.vmid):
                    continue
                entry: dict[str, Any] = {
                    "volid": volid, "format": vol.format, "size": vol.size, "content": vol.content, "ctime": vol.ctime
                }
                if vol.vmid is not None:
                    entry["vmid"] = vol.vmid
                out.append(entry)
            return out

    # ---- download-url -----------------------------------------------------------------------------------
    def download_url(self, node: str, storage: str, p: dict[str, Any], user: str) -> str:
        with self.lock:
            st = self.storage_of(node, storage)
            for a, b in (("checksum", "checksum-algorithm"), ("checksum-algorithm", "checksum")):
                if a in p and b not in p:
                    raise ApiError(400, "Parameter verification failed.", {b: f"missing property - '{a}' requires this "
                                                                              "property"})
            if st.path is None:
                raise ApiError(500, f"can't upload to storage type '{st.type}', not a file based storage!")
            content = str(p["content"])
            if content not in st.content:
                raise ApiError(500, f"storage '{storage}' is not configured for content-type '{content}'")
            filename = re.sub(r"[^a-zA-Z0-9_.-]", "_", re.sub(r"^.*[/\\]", "", str(p["filename"]).rstrip("\n")))
            match = _EXTENSION[content].match(filename)
            if match is None:
                text = "invalid filename or wrong extension" if content == "import" else "wrong file extension"
                raise ApiError(400, "Parameter verification failed.", {"filename": text})
            fmt = match[1] if content == "import" else content
            volid, dest = f"{storage}:{_SUBDIR[content]}/{filename}", f"{st.path}/{_SUBDIR[content]}/{filename}"
            scope, url = self.scope(storage, node), str(p["url"])
            alg, expected = p.get("checksum-algorithm"), str(p.get("checksum", "")).lower()
            verify = p.get("verify-certificates", True)
            got: dict[str, Any] = {}

            def fetch() -> None:  # in the worker, without the cluster lock
                with self.lock:
                    existing = self.volumes.get((scope, volid))
                if existing is not None:
                    if alg is None:
                        raise TaskFailed(f"refusing to override existing file '{dest}'")
                    if existing.digests.get(alg) != expected:
                        raise TaskFailed(f"checksum mismatch: got '{existing.digests.get(alg)}' != expect "
                                         f"'{expected}', aborting")
                    got["log"] = ["calculating checksum of existing file...OK, got correct file already, "
                                  "no need to download"]
                    return
                data = self._fetch(url, verify, dest)
                digests = {a: hashlib.new(a, data).hexdigest() for a in ALGORITHMS}
                if alg is not None and digests[alg] != expected:
                    raise TaskFailed(f"checksum mismatch: got '{digests[alg]}' != expect '{expected}'")
                size = image_header(data, fmt, f"{dest}.tmp") if content == "import" else len(data)
                got["volume"] = SimVolume(volid, size, fmt, content, digests=digests)
                got["log"] = ["calculating checksum...OK, checksum verified"] if alg else []
                got["log"].append(f"download of '{url}' to '{dest}' finished")

            def done() -> None:
                if "volume" in got:
                    self.volumes[(scope, volid)] = got["volume"]
                self.engine.tasks[upid].log.extend(got.get("log", []))

            upid = self.engine.spawn(
                node, "download", filename, user, done, prepare=fetch, log=[f"downloading {url} to {dest}"]
            )
            return upid

    @staticmethod
    def _fetch(url: str, verify: bool, dest: str) -> bytes:
        """What ``wget`` does for PVE: GET the URL (certificates checked unless ``verify-certificates=0``)."""
        context = None
        if url.startswith("https:") and not verify:
            context = ssl.create_default_context()
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        try:
            with urllib.request.urlopen(url, timeout=60, context=context) as resp:
                data: bytes = resp.read(MAX_DOWNLOAD + 1)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise TaskFailed(
                f"download failed: command 'wget --progress=dot:giga -O {dest}.tmp {url}' failed: exit code 8 "
                f"({exc})"
            ) from None
        if len(data) > MAX_DOWNLOAD:
            raise TaskFailed(f"download failed: the simulator keeps downloads under {MAX_DOWNLOAD // MIB} MiB")
        return data
