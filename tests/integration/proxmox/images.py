"""A small real qcow2 image (``qemu-img create``) served over HTTP from this process, as the control plane's
image store serves images to Proxmox nodes; it counts the requests for each file."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from agents.base import ImageRef


@dataclass
class ImageServer:
    image: ImageRef
    base_url: str
    directory: Path
    requests: Counter[str]

    def add(self, image_id: str, data: bytes, fmt: str = "qcow2") -> ImageRef:
        """Serve another file (any bytes) under ``<image_id>.<fmt>``; its checksum is the real one."""
        path = self.directory / f"{image_id}.{fmt}"
        path.write_bytes(data)
        return replace(
            self.image,
            image_id=image_id,
            format=fmt,
            checksum=f"sha256:{hashlib.sha256(data).hexdigest()}",
            path=str(path),
            url=f"{self.base_url}/{path.name}",
        )


def qemu_img() -> str | None:
    return shutil.which("qemu-img")


@contextmanager
def served_image(directory: Path, image_id: str = "cf-test-image", size: str = "64M") -> Iterator[ImageServer]:
    binary = qemu_img()
    assert binary is not None, "qemu-img is needed to make the test image"
    path = directory / f"{image_id}.qcow2"
    subprocess.run([binary, "create", "-q", "-f", "qcow2", str(path), size], check=True)
    info = json.loads(subprocess.run([binary, "info", "--output=json", str(path)], check=True,
                                     capture_output=True, text=True).stdout)
    requests: Counter[str] = Counter()

    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_GET(self) -> None:
            requests[self.path.lstrip("/")] += 1
            super().do_GET()

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, name="image-store", daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    image = ImageRef(
        image_id=image_id,
        format="qcow2",
        virtual_size_bytes=int(info["virtual-size"]),
        checksum=f"sha256:{hashlib.sha256(path.read_bytes()).hexdigest()}",
        path=str(path),
        url=f"{base}/{path.name}",
    )
    try:
        yield ImageServer(image, base, directory, requests)
    finally:
        server.shutdown()
        server.server_close()
