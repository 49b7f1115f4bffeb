"""Storage on a Proxmox VE node: our pools mapped onto PVE storages, their ``shared`` flag, and disk images
downloaded onto the node.

Pools: the driver option ``pools=NAME=STORAGE,...`` names the storage of each pool; the pool ``default`` is
the ``storage`` option unless ``pools`` names it. Whether a storage is shared (Ceph, NFS, ...) is the
``shared`` flag ``GET /nodes/{node}/storage`` reports: disks on a shared storage do not bind a VM to its
node, disks on a local one are copied by a migration (``with-local-disks=1``, which
:mod:`agents.proxmox_migrate` sets when the precheck lists local disks).

Images: the node fetches the image from the control plane with ``POST /nodes/{node}/storage/{storage}/
download-url`` (content ``import``, filename ``<image_id>.<format>``, the sha256 checksum that PVE verifies
before it keeps the file) into the ``image_storage`` option's storage (default ``local``, which needs the
``import`` content type enabled), once per node and storage: the storage's content is looked at first, and a
download already running (ours, remembered in the journal, or anyone's, in the node's task list) is waited
for. A root disk is then created with ``import-from=<that volume>``.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

from agents.base import ImageRef
from agents.errors import DriverError, NotFound, OperationTimeout
from agents.proxmox_node import ProxmoxNode

LISTING_TTL_S = 30.0  # how long the node's storage listing is reused


class Storages:
    """The storages of one node, as the driver, the creator and the disk manager use them."""

    def __init__(self, node: ProxmoxNode) -> None:
        self.node = node
        self.client = node.client
        self.opts = node.opts
        self._cache: tuple[float, dict[str, dict[str, Any]]] | None = None
        self._guard = threading.Lock()

    # ---- pools ------------------------------------------------------------------------------------------
    def listing(self, fresh: bool = False) -> dict[str, dict[str, Any]]:
        """``GET /nodes/{node}/storage`` by storage id (kept for ``LISTING_TTL_S``)."""
        with self._guard:
            if not fresh and self._cache is not None and time.monotonic() - self._cache[0] < LISTING_TTL_S:
                return self._cache[1]
        found = {str(s["storage"]): dict(s) for s in self.client.call("GET", f"nodes/{self.node.name}/storage") or []}
        with self._guard:
            self._cache = (time.monotonic(), found)
        return found

    def storage(self, pool: str) -> str:
        """The PVE storage of ``pool`` on this node; it must exist there and hold VM images."""
        mapping = self.opts.pool_storages()
        if pool not in mapping:
            raise DriverError(
                f"pool {pool!r} is not configured for Proxmox node {self.node.name} (option pools=NAME=STORAGE,..."
                f"; configured: {', '.join(sorted(mapping))})",
                host=self.node.uri,
                code="NO_POOL",
            )
        storage = mapping[pool]
        info = self.listing().get(storage) or self.listing(fresh=True).get(storage)
        if info is None or "images" not in str(info.get("content", "")).split(","):
            raise DriverError(
                f"storage {storage!r} of pool {pool!r} is not a storage for VM images on node {self.node.name}",
                host=self.node.uri,
                code="NO_POOL",
            )
        return storage

    def shared_pools(self) -> dict[str, bool]:
        """Every configured pool whose storage the node has, and whether that storage is shared."""
        listing = self.listing()
        return {
            pool: bool(listing[storage].get("shared"))
            for pool, storage in self.opts.pool_storages().items()
            if storage in listing
        }

    # ---- images -----------------------------------------------------------------------------------------
    def _has(self, storage: str, volid: str) -> bool:
        path = f"nodes/{self.node.name}/storage/{storage}/content"
        return any(str(v.get("volid")) == volid for v in self.client.call("GET", path, content="import") or [])

    def _running_download(self, filename: str) -> str | None:
        tasks = self.client.call("GET", f"nodes/{self.node.name}/tasks", source="active", typefilter="download")
        for t in tasks or []:
            if t.get("type") == "download" and t.get("id") == filename and "upid" in t:
                return str(t["upid"])
        return None

    def ensure_image(self, image: ImageRef) -> str:
        """The ``import`` volume of ``image`` on this node (downloaded when missing); its volid."""
        where = f"image {image.image_id!r}"
        if not image.url:
            raise DriverError(
                f"{where} has no URL: a Proxmox node downloads images from the control plane, which must give "
                "each image a URL the nodes can reach",
                host=self.node.uri,
                code="NO_IMAGE_URL",
            )
        algorithm, _, digest = image.checksum.partition(":")
        if image.format not in ("qcow2", "raw") or algorithm != "sha256" or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise DriverError(
                f"{where}: a qcow2/raw image with a sha256:<hex> checksum is needed (got {image.format}, "
                f"{image.checksum!r})",
                host=self.node.uri,
                code="BAD_IMAGE",
            )
        storage = self.opts.image_storage
        filename = re.sub(r"[^a-zA-Z0-9_.-]", "_", image.image_id) + f".{image.format}"  # as PVE normalises it
        volid = f"{storage}:import/{filename}"
        key = f"{self.node.host}:{self.node.port}/{self.node.name}/download/{storage}/{filename}"
        what = f"download of {where} to {self.node.name}/{storage}"
        with self.node.lock("image", self.node.name, storage, filename):
            if self._has(storage, volid):
                self.node.journal.forget(key)
                return volid
            upid = self.node.journal.recall(key) or self._running_download(filename)
            if upid is None:
                upid = str(
                    self.client.call(
                        "POST",
                        f"nodes/{self.node.name}/storage/{storage}/download-url",
                        url=image.url,
                        content="import",
                        filename=filename,
                        checksum=digest,
                        **{"checksum-algorithm": "sha256"},
                    )
                )
                self.node.journal.remember(key, upid)
            try:
                self.client.wait_task(upid, self.opts.task_timeout_s, what)
            except OperationTimeout:
                raise  # the UPID stays in the journal: a retry waits for the same download
            except DriverError as exc:
                self.node.journal.forget(key)
                if isinstance(exc, NotFound):  # the journal named a task the node forgot: start over
                    return self.ensure_image(image)
                raise DriverError(
                    f"{what} failed: {exc.message}", host=self.node.uri, code="IMAGE_DOWNLOAD_FAILED"
                ) from None
            self.node.journal.forget(key)
            if not self._has(storage, volid):
                raise DriverError(f"{what} ended but {volid} is not there", host=self.node.uri, code="TASK_FAILED")
            return volid
