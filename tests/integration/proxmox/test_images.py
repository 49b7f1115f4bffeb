"""Root disks from images: the node downloads the image (``download-url``, checksum checked) once per node and
storage, the root disk is imported from it and grown to its size."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor

import pytest

from agents.errors import DriverError
from agents.proxmox_meta import pve_name
from tests.integration.proxmox.conftest import Pve
from tests.integration.proxmox.images import ImageServer


def _imports(pve: Pve, node: str) -> list[str]:
    return [v["volid"] for v in pve.data("GET", f"nodes/{node}/storage/local/content", params={"content": "import"})]


def _our_vms(pve: Pve) -> list[int]:
    return [v.vmid for v in pve.cluster.vms.values() if not v.template]


def test_the_root_disk_is_imported_from_the_downloaded_image_and_grown(pve: Pve, make_driver, disk_spec,
                                                                      image_store: ImageServer):
    s = disk_spec(root_gib=4)
    info = make_driver().create(s)
    assert (info.disk_gib, info.volumes) == (4, (s.disks[0].volume_id,))
    cfg = pve.data("GET", f"nodes/pve1/qemu/{info.native_id}/config")
    assert cfg["scsi0"] == f"local-lvm:vm-{info.native_id}-disk-0,size=4G" and cfg["boot"] == "order=scsi0;net0"
    assert _imports(pve, "pve1") == ["local:import/cf-test-image.qcow2"]
    imported = pve.data("GET", "nodes/pve1/storage/local/content", params={"content": "import"})[0]
    assert imported["size"] == image_store.image.virtual_size_bytes == 64 * 2**20  # the qcow2's virtual size
    tasks = pve.data("GET", "nodes/pve1/tasks", params={"typefilter": "download"})
    log = pve.data("GET", f"nodes/pve1/tasks/{tasks[0]['upid']}/log")
    assert "calculating checksum...OK, checksum verified" in [line["t"] for line in log]


def test_the_image_is_downloaded_once_per_node(pve: Pve, make_driver, disk_spec, image_store: ImageServer):
    name = "cf-test-image.qcow2"
    before = image_store.requests[name]
    d1, d2 = make_driver("pve1"), make_driver("pve2")
    with ThreadPoolExecutor(3) as pool:  # three creates at once on one node: still one download
        list(pool.map(lambda s: d1.create(s), [disk_spec() for _ in range(3)]))
    d1.create(disk_spec())
    assert image_store.requests[name] - before == 1
    assert len(pve.cluster.tasks_of_type("download")) == 1
    d2.create(disk_spec())  # another node has its own local storage: it downloads too
    assert image_store.requests[name] - before == 2
    assert _imports(pve, "pve1") == _imports(pve, "pve2") == ["local:import/cf-test-image.qcow2"]


def test_a_wrong_checksum_fails_cleanly_and_a_retry_with_the_right_one_works(pve: Pve, make_driver, disk_spec,
                                                                          image_store: ImageServer):
    wrong = dataclasses.replace(image_store.image, checksum="sha256:" + "0" * 64)
    drv = make_driver()
    s = disk_spec(image=wrong)
    with pytest.raises(DriverError) as caught:
        drv.create(s)
    assert caught.value.code == "IMAGE_DOWNLOAD_FAILED" and not caught.value.transient
    assert "checksum mismatch: got '" in caught.value.message and "!= expect '0000" in caught.value.message
    assert drv.get(s.vm_id) is None and _our_vms(pve) == [] and _imports(pve, "pve1") == []
    right = dataclasses.replace(s, disks=(dataclasses.replace(s.disks[0], image=image_store.image),))
    assert drv.create(right).volumes == (s.disks[0].volume_id,)


def test_a_file_that_is_not_the_announced_format_is_refused_by_the_node(pve: Pve, make_driver, disk_spec,
                                                                       image_store: ImageServer):
    garbage = image_store.add("not-an-image", b"this is not a qcow2 file\n" * 100)
    with pytest.raises(DriverError, match="failed to query file information with qemu-img") as caught:
        make_driver().create(disk_spec(image=garbage))
    assert caught.value.code == "IMAGE_DOWNLOAD_FAILED" and _imports(pve, "pve1") == []


def test_images_without_url_or_too_big_for_the_disk_are_refused_before_anything_happens(pve: Pve, make_driver,
                                                                                      disk_spec, image_store):
    drv = make_driver()
    with pytest.raises(DriverError, match="has no URL") as no_url:
        drv.create(disk_spec(image=dataclasses.replace(image_store.image, url=None)))
    assert no_url.value.code == "NO_IMAGE_URL"
    big = dataclasses.replace(image_store.image, virtual_size_bytes=3 * 2**30)
    with pytest.raises(DriverError, match="smaller than image") as too_small:
        drv.create(disk_spec(root_gib=2, image=big))
    assert too_small.value.code == "DISK_TOO_SMALL"
    with pytest.raises(DriverError) as no_pool:
        drv.create(disk_spec(pool="gold"))
    assert no_pool.value.code == "NO_POOL" and "pools=NAME=STORAGE" in no_pool.value.message
    assert _our_vms(pve) == [] and _imports(pve, "pve1") == [] and not pve.cluster.tasks_of_type("download")


def test_a_pool_maps_to_its_storage_and_reports_whether_it_is_shared(pve: Pve, make_driver, disk_spec):
    drv = make_driver(pools="fast=local-lvm,shared=ceph")
    assert drv.pools() == {"default": False, "fast": False, "shared": True}
    info = drv.create(disk_spec(pool="shared"))
    cfg = pve.data("GET", f"nodes/pve1/qemu/{info.native_id}/config")
    assert cfg["scsi0"].startswith("ceph:vm-") and cfg["ide2"].startswith("ceph:vm-")
    assert cfg["name"] == pve_name(info.vm_id)
