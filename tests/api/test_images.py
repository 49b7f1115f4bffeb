"""/v1/images: import with checksum and inspection (real qemu-img on real files), visibility, quota, refusals."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import shutil
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.test_errors_common import assert_problem, db_state
from tests.conftest import World

QEMU_IMG = shutil.which("qemu-img")
needs_qemu_img = pytest.mark.skipif(QEMU_IMG is None, reason="qemu-img (Debian qemu-utils) is not installed")


def sha(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def imports(image_dirs: tuple[str, str]) -> Iterator[Path]:
    """A fresh directory inside the import directory the test app allows."""
    d = Path(image_dirs[1]) / uuid.uuid4().hex[:8]
    d.mkdir()
    yield d
    shutil.rmtree(d, ignore_errors=True)


def qcow2(dest: Path, size: str = "64M", *extra: str) -> Path:
    assert QEMU_IMG is not None
    subprocess.run([QEMU_IMG, "create", "-q", "-f", "qcow2", *extra, str(dest), size], check=True)
    return dest


def body(path: Path, **kw: Any) -> dict[str, Any]:
    return {"name": kw.pop("name", "debian-12"), "source": str(path), "checksum": sha(path), "min_disk_gib": 1,
            "os_name": "debian", "os_version": "12", **kw}


def imported(world: World, payload: dict[str, Any], caller: Any = None) -> dict[str, Any]:
    caller = caller or world.operator
    r = caller.post("/v1/images", json=payload)
    assert r.status_code == 202, r.get_json()
    op = caller.wait_op(r.get_json()["operation_id"])
    image = caller.get(f"/v1/images/{r.get_json()['image']['id']}").get_json()
    return {"op": op, "image": image}


@needs_qemu_img
def test_an_operator_imports_a_public_qcow2_every_municipality_sees(world: World, imports: Path, image_dirs):
    path = qcow2(imports / "debian.qcow2")
    done = imported(world, body(path, min_ram_mib=256))
    image = done["image"]
    assert done["op"]["status"] == "succeeded", done["op"]
    assert (image["state"], image["format"], image["visibility"]) == ("active", "qcow2", "public")
    assert image["virtual_size_bytes"] == 64 << 20 and image["size_bytes"] == path.stat().st_size
    stored = Path(image_dirs[0]) / f"{image['id']}.qcow2"
    assert stored.read_bytes() == path.read_bytes() and oct(stored.stat().st_mode & 0o777) == "0o644"
    for caller in (world.admin_a, world.member_a, world.admin_b):
        names = [i["name"] for i in caller.get("/v1/images").get_json()["items"]]
        assert names == ["debian-12"]
    audit = world.operator.get("/v1/audit?action=image.").get_json()["items"]
    assert {e["action"] for e in audit} == {"image.create", "image.import.succeeded"}


def test_a_raw_image_needs_no_tool_and_is_sized_by_its_bytes(world: World, imports: Path):
    path = imports / "disk.raw"
    path.write_bytes(b"\0" * (2 << 20))
    image = imported(world, body(path, format="raw"))["image"]
    assert (image["state"], image["format"], image["virtual_size_bytes"]) == ("active", "raw", 2 << 20)


@needs_qemu_img
@pytest.mark.parametrize("case, reason", [
    ("checksum", "checksum mismatch"),
    ("backing", "backing file"),
    ("data-file", "external data file"),
    ("too-big", "exceeds the declared minimum disk"),
    ("declared-raw", "declared as raw but the file is qcow2"),
    ("vmdk", "not supported"),
])
def test_a_bad_image_ends_in_error_with_the_reason_and_leaves_no_file(world: World, imports: Path, image_dirs,
                                                                     case: str, reason: str):
    path = imports / "bad.img"
    extra: dict[str, Any] = {}
    if case == "checksum":
        qcow2(path)
        extra["checksum"] = "sha256:" + "0" * 64
    elif case == "backing":
        base = qcow2(imports / "base.qcow2")
        qcow2(path, "64M", "-b", str(base), "-F", "qcow2")
    elif case == "data-file":
        qcow2(path, "64M", "-o", f"data_file={imports / 'data.raw'}")
    elif case == "too-big":
        qcow2(path, "2G")
    elif case == "declared-raw":
        qcow2(path)
        extra["format"] = "raw"
    elif case == "vmdk":
        assert QEMU_IMG is not None
        subprocess.run([QEMU_IMG, "create", "-q", "-f", "vmdk", str(path), "64M"], check=True)
    done = imported(world, body(path, **extra))
    assert done["op"]["status"] == "failed" and reason in done["op"]["error"], done["op"]
    assert done["image"]["state"] == "error" and reason in done["image"]["status_reason"]
    assert sorted(p.name for p in Path(image_dirs[0]).iterdir() if done["image"]["id"] in p.name) == []


@pytest.mark.parametrize("payload, field", [
    ({"source": "/etc/passwd"}, "source"),  # outside the import directories
    ({"source": "relative/path.qcow2"}, "source"),
    ({"source": "ftp://example.org/x.qcow2"}, "source"),
    ({"checksum": "md5:abc"}, "checksum"),
    ({"checksum": "sha256:" + "A" * 64}, "checksum"),
    ({"min_disk_gib": 0}, "min_disk_gib"),
    ({"format": "vmdk"}, "format"),
    ({"visibility": "public", "tenant_id": "x" * 36}, "tenant_id"),
])
def test_bad_import_requests_are_refused_and_change_nothing(app: Any, world: World, imports: Path,
                                                             payload: dict[str, Any], field: str):
    path = imports / "ok.raw"
    path.write_bytes(b"\0" * 4096)
    before = db_state(app)
    r = world.operator.post("/v1/images", json={**body(path), **payload})
    problem = assert_problem(r, 422)
    assert field in problem.get("errors", {}), problem
    assert db_state(app) == before


def test_municipalities_keep_private_images_under_quota_and_only_they_see_them(app: Any, world: World):
    from controlplane.db import db
    from controlplane.models import Tenant

    with app.app_context():
        db.session.get(Tenant, world.tenant_a).quota_images = 1
        db.session.commit()
    with serve_dir() as (base, directory):
        (directory / "mine.raw").write_bytes(b"\1" * 8192)
        payload = body(directory / "mine.raw", name="mine", source=f"{base}/mine.raw")
        if base.startswith("http://127."):
            pytest.skip("no address other than loopback to serve from (municipalities may not import from it)")
        mine = imported(world, payload, world.admin_a)["image"]
        assert (mine["state"], mine["visibility"], mine["tenant_id"]) == ("active", "private", world.tenant_a)
        before = db_state(app)
        over = world.admin_a.post("/v1/images", json={**payload, "name": "second"})
        assert assert_problem(over, 403, "quota-exceeded")["quota"]["images"]["limit"] == 1
        assert db_state(app) == before
    assert [i["name"] for i in world.admin_b.get("/v1/images").get_json()["items"]] == []
    assert_problem(world.admin_b.get(f"/v1/images/{mine['id']}"), 404)
    assert_problem(world.member_a.post("/v1/images", json=payload), 403)  # members do not import
    assert_problem(world.admin_a.post("/v1/images", json={**payload, "visibility": "public"}), 403)


def test_municipalities_cannot_make_the_control_plane_fetch_from_itself(app: Any, world: World, imports: Path):
    path = imports / "x.raw"
    path.write_bytes(b"\0" * 4096)
    before = db_state(app)
    for source in ("http://127.0.0.1:8080/v1/tokens", "http://[::1]/x", "http://169.254.169.254/latest",
                   str(path)):
        assert_problem(world.admin_a.post("/v1/images", json={**body(path), "source": source}), 422)
    assert db_state(app) == before


def test_an_image_a_vm_uses_cannot_be_deleted(world: World, imports: Path):
    path = imports / "d.raw"
    path.write_bytes(b"\0" * (1 << 20))
    image = imported(world, body(path, format="raw"))["image"]
    r = world.admin_a.post("/v1/vms", json={"name": "web", "flavor": "small", "image": "debian-12"})
    assert r.status_code == 202, r.get_json()
    vm = r.get_json()["vm"]
    assert vm["image_id"] == image["id"]
    assert_problem(world.operator.delete(f"/v1/images/{image['id']}"), 409, "conflict")
    world.admin_a.wait_op(r.get_json()["operation_id"])
    world.admin_a.wait_op(world.admin_a.delete(f"/v1/vms/{vm['id']}").get_json()["id"])
    assert world.operator.delete(f"/v1/images/{image['id']}").status_code == 204
    assert world.operator.get(f"/v1/images/{image['id']}").get_json()["state"] == "deleted"


def _own_address() -> str:
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing interface
        return str(s.getsockname()[0])
    return "127.0.0.1"


@contextlib.contextmanager
def serve_dir() -> Iterator[tuple[str, Path]]:
    """A real HTTP server on this machine's own (non-loopback when there is one) address."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=tmp)
        server = http.server.ThreadingHTTPServer(("0.0.0.0", 0), handler)
        server.RequestHandlerClass.log_message = lambda *a: None  # type: ignore[method-assign]
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://{_own_address()}:{server.server_address[1]}", Path(tmp)
        finally:
            server.shutdown()
            server.server_close()


def test_hypervisors_download_an_image_through_a_signed_expiring_link(app: Any, world: World, imports: Path,
                                                                       settings_override):
    from cryptography.fernet import Fernet

    from controlplane.core import image_urls

    path = imports / "dl.raw"
    path.write_bytes(bytes(range(256)) * 4096)
    image = imported(world, body(path, format="raw"))["image"]
    client = app.test_client()
    with app.app_context():
        assert image_urls.signed_url(image["id"]) is None  # no data key, no links
    settings_override(data_key=Fernet.generate_key().decode(), public_url="http://cp.example:8080")
    with app.app_context():
        url = image_urls.signed_url(image["id"])
        expired = image_urls.signed_url(image["id"], lifetime_s=-10)
    assert url is not None and url.startswith(f"http://cp.example:8080/image-files/{image['id']}?expires=")
    local = url.split("cp.example:8080", 1)[1]
    r = client.get(local)  # no bearer token: the link is the credential
    assert r.status_code == 200 and r.data == path.read_bytes()
    partial = client.get(local, headers={"Range": "bytes=0-9"})
    assert partial.status_code == 206 and partial.data == path.read_bytes()[:10]
    tampered = local[:-1] + ("0" if local[-1] != "0" else "1")
    for bad in (tampered, expired.split("cp.example:8080", 1)[1] if expired else "", local.replace(image["id"], "x"),
                f"/image-files/{image['id']}"):
        assert_problem(client.get(bad), 404)
