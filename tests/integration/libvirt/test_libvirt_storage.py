"""Storage of the libvirt driver on the lab: pools made on first use, images uploaded with streams (once, also
when several workers want the same image at once, again after an interrupted upload), checksums, cold moves.

Lab hosts 1 and 2 share the image directory and the ``shared`` pool; each has its own ``default`` pool.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agents.base import DiskSpec, DomainState, ImageRef, VMSpec
from agents.errors import DriverError
from agents.libvirt_lab import Lab
from agents.libvirt_lab_storage import LOCAL_POOL
from tests.lab.guest_image import guest_image_for
from tests.lab.session import driver_options, host

pytestmark = pytest.mark.libvirt
GIB = 1024**3


@pytest.fixture(scope="module")
def image(request: pytest.FixtureRequest) -> ImageRef:
    return guest_image_for(request.config).image_ref()


@pytest.fixture
def fresh_image(image: ImageRef, d1: Any) -> Iterator[Callable[..., ImageRef]]:
    """The test image under ids of its own (so this test uploads it); removed from the image dir after."""
    made: list[ImageRef] = []

    def make(**changes: Any) -> ImageRef:
        made.append(dataclasses.replace(image, image_id=f"img-{uuid.uuid4().hex[:8]}", **changes))
        return made[-1]

    yield make
    for ref in made:
        for suffix in ("", ".ok"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(d1.opts.storage.image_dir, f"{ref.image_id}.{ref.format}{suffix}"))


def _ensure(driver: Any, ref: ImageRef, **kw: Any) -> Any:
    from agents.libvirt_storage import ensure_image

    return driver._call(lambda conn: ensure_image(conn, driver.opts.storage, ref, **kw).path(), "ensure image")


def _sha256(path: str) -> str:
    return "sha256:" + hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_concurrent_first_uses_of_an_image_upload_it_once(lab: Lab, d1: Any, d2: Any, fresh_image) -> None:
    """Two hosts sharing the image directory and two workers per host want a new image at the same moment
    (three rounds, each with a new image: the interleavings differ)."""
    from agents.libvirt_driver import LibvirtDriver
    from agents.libvirt_storage import STALL_S

    workers = [d1, d2, LibvirtDriver(d1.uri, **driver_options(host(lab, 1))), d2]
    for _ in range(3):
        ref = fresh_image()
        paths: list[str] = []
        errors: list[BaseException] = []

        def want(driver: Any, ref: ImageRef = ref, paths: list[str] = paths, errors: list[BaseException] = errors
                 ) -> None:  # fmt: skip
            try:
                paths.append(_ensure(driver, ref))
            except DriverError as exc:  # reported by the assertion below
                errors.append(exc)

        started = time.monotonic()
        threads = [threading.Thread(target=want, args=(w,)) for w in workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        took = time.monotonic() - started
        assert not errors, errors
        assert took < STALL_S / 2, "the others waited for a stall, not for the first upload"
        assert len(paths) == 4 and len(set(paths)) == 1
        assert _sha256(paths[0]) == ref.checksum  # whole and intact
        assert sorted(n for n in os.listdir(d1.opts.storage.image_dir) if n.startswith(ref.image_id)) == [
            f"{ref.image_id}.qcow2", f"{ref.image_id}.qcow2.ok"]  # fmt: skip
        print(f"\nimage upload ({os.path.getsize(ref.path) / 2**20:.1f} MiB, 4 workers): {took:.2f} s")


def test_an_interrupted_upload_is_done_again(d1: Any, fresh_image) -> None:
    from agents.libvirt_storage import pool, volume_xml

    ref = fresh_image()
    data = Path(ref.path).read_bytes()
    name = f"{ref.image_id}.qcow2"

    def half_upload(conn: Any) -> None:  # what a worker killed in the middle of its upload leaves
        p = pool(conn, d1.opts.storage, "images")
        vol = p.createXML(volume_xml(p, name, len(data), fmt="raw", mode=0o644), 0)
        stream = conn.newStream(0)
        vol.upload(stream, 0, len(data) // 2, 0)
        stream.send(data[: len(data) // 2])
        stream.finish()

    d1._call(half_upload, "half upload")
    assert not os.path.exists(os.path.join(d1.opts.storage.image_dir, name + ".ok"))
    started = time.monotonic()
    path = _ensure(d1, ref, stall_s=1.0)
    assert time.monotonic() - started >= 1.0  # it waited for the other "uploader" first
    assert _sha256(path) == ref.checksum


def test_an_image_that_does_not_match_its_checksum_is_refused_and_removed(d1: Any, fresh_image) -> None:
    ref = fresh_image(checksum="sha256:" + "0" * 64)
    with pytest.raises(DriverError) as failed:
        _ensure(d1, ref)
    assert failed.value.code == "CHECKSUM_MISMATCH"
    assert not [n for n in os.listdir(d1.opts.storage.image_dir) if n.startswith(ref.image_id)]


def test_a_pool_is_made_once_when_several_workers_use_it_first(lab: Lab) -> None:
    """Each thread has its own connection: to the daemon they are separate clients, as processes are."""
    import libvirt

    from agents.libvirt_driver import LibvirtDriver

    h1 = host(lab, 1)
    opts = driver_options(h1)
    base = opts["pools"].split(",")[0].partition("=")[2]  # host 1's own directory: its daemon may write there
    name = f"race{uuid.uuid4().hex[:6]}"
    directory = os.path.join(base, name)  # does not exist yet: built by the first user
    drivers = [LibvirtDriver(h1.uri, **{**opts, "pools": f"{opts['pools']},{name}={directory}"}) for _ in range(4)]
    errors: list[BaseException] = []

    def use(driver: Any) -> None:
        try:
            driver.delete_disk(DiskSpec(volume_id="nothing-here", size_gib=1, pool=name))  # gone: success
        except DriverError as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=use, args=(d,)) for d in drivers]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors
        conn = libvirt.open(h1.uri)
        try:
            pools = [p for p in conn.listAllStoragePools(0) if p.name() == f"confluencia-{name}"]
            assert len(pools) == 1 and pools[0].isActive() and pools[0].autostart()
        finally:
            for p in pools:
                with contextlib.suppress(libvirt.libvirtError):
                    p.destroy()
                p.undefine()
            conn.close()
        assert os.path.isdir(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_a_stopped_vm_moves_with_copies_of_its_local_disks(d1: Any, d2: Any, new_spec, image: ImageRef) -> None:
    """An offline migration cannot copy storage: the driver copies the files with streams first."""
    spec: VMSpec = new_spec(ram_mib=128, disk_gib=1)
    root = DiskSpec(volume_id=f"{spec.vm_id}-root", size_gib=1, pool=LOCAL_POOL, image=image)
    spec = dataclasses.replace(spec, disks=(root,))
    d1.create(spec)
    vol = DiskSpec(volume_id=f"{spec.vm_id}-data", size_gib=1, pool=LOCAL_POOL)
    d1.attach_disk(spec.vm_id, vol)
    src, dst = (d.opts.storage.dir_of(LOCAL_POOL) for d in (d1, d2))
    names = [f"{spec.vm_id}-root.qcow2", f"{vol.volume_id}.qcow2", f"{spec.vm_id}-console.log"]
    sizes = [os.path.getsize(os.path.join(src, n)) for n in names]
    try:
        d1.migrate(spec.vm_id, d2, timeout_s=60)
        moved = d2.get(spec.vm_id)
        assert moved is not None and moved.state == DomainState.STOPPED
        assert moved.volumes == (root.volume_id, vol.volume_id)
        assert [os.path.exists(os.path.join(src, n)) for n in names] == [False] * 3
        assert [os.path.getsize(os.path.join(dst, n)) for n in names] == sizes
        assert d2.grow_disk(spec.vm_id, DiskSpec(vol.volume_id, 2, LOCAL_POOL)).size_gib == 2  # a usable volume
    finally:
        d2.delete(spec.vm_id)
        for drv in (d1, d2):
            drv.delete_disk(vol)
    assert not [n for n in os.listdir(dst) if n.startswith(spec.vm_id)]


def test_a_full_copy_root_disk_has_no_backing_file_and_the_requested_size(d1: Any, new_spec, image: ImageRef) -> None:
    import json
    import subprocess

    spec: VMSpec = new_spec(ram_mib=128, disk_gib=2)
    root = DiskSpec(volume_id=f"{spec.vm_id}-root", size_gib=2, pool=LOCAL_POOL, image=image, full_copy=True)
    d1.create(dataclasses.replace(spec, disks=(root,)))
    path = os.path.join(d1.opts.storage.dir_of(LOCAL_POOL), f"{spec.vm_id}-root.qcow2")
    info = json.loads(subprocess.run(["qemu-img", "info", "-U", "--output=json", path], capture_output=True,
                                     text=True, check=True).stdout)  # fmt: skip
    assert (info["format"], info["virtual-size"], info.get("backing-filename")) == ("qcow2", 2 * GIB, None)
    assert d1.grow_disk(spec.vm_id, DiskSpec(root.volume_id, 1, LOCAL_POOL)).size_gib == 2  # never shrinks
    d1.delete(spec.vm_id)
    assert not os.path.exists(path)
