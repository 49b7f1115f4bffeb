"""Shared fixtures: a real database (PostgreSQL when TEST_DATABASE_URL is set, else SQLite), migrated with
Alembic ``upgrade head``, the API app with an embedded Celery worker, and a seeded data center."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import text

from tests.databases import fresh_database

os.environ.setdefault("CONFLUENCIA_SIM_DELAY_SCALE", "0")
os.environ.setdefault("CONFLUENCIA_STRICT_IO", "1")  # a driver call inside a database transaction fails the test
# the simulated data center of this test session (shared with the helper processes the tests start): a store
# file of its own, never the demo's var/simulated-datacenter.sqlite3
SIM_STATE_DIR = tempfile.mkdtemp(prefix="confluencia-sim-")
atexit.register(shutil.rmtree, SIM_STATE_DIR, True)
os.environ["CONFLUENCIA_SIM_STATE"] = os.path.join(SIM_STATE_DIR, "simulated-datacenter.sqlite3")
# the key that signs the audit tree's heads in this test session (and its helper processes)
os.environ["CONFLUENCIA_AUDIT_KEY_FILE"] = os.path.join(SIM_STATE_DIR, "audit-signing.key")
with open(os.environ["CONFLUENCIA_AUDIT_KEY_FILE"], "wb") as _key_file:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    _key_file.write(Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))

TABLES = ["host_agent_state", "balance_samples", "usage_intervals", "audit_tree_heads", "audit_entries",
          "idempotency_records", "operations", "plan_moves", "plans", "console_tokens", "volumes",
          "port_security_groups", "ports", "vms",
          "security_rules", "security_groups", "network_grants", "networks", "keypairs", "images", "api_tokens",
          "users", "flavors", "host_allocations", "tenant_usage", "pool_allocations", "hosts", "storage_pools",
          "tenants"]


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.02, what: str = "") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with fresh_database(tmp_path_factory.mktemp("db") / "test.sqlite3", "confluencia_test") as url:
        yield url


@pytest.fixture(scope="session")
def image_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """The test app's image store and the directory operators may import local files from."""
    return str(tmp_path_factory.mktemp("image-store")), str(tmp_path_factory.mktemp("image-imports"))


@pytest.fixture(scope="session")
def app(database_url: str, image_dirs: tuple[str, str]) -> Iterator[Any]:
    from api import create_app
    from controlplane.config import Settings
    from controlplane.schema import upgrade
    from controlplane.tasks.embedded import EmbeddedWorker

    upgrade(database_url)
    # the abuse limits are tested on apps of their own (tests/api/test_rate_limits.py); here they would
    # only count the hundreds of bad tokens and VM requests the other tests send from one address
    application = create_app(Settings.from_env(database_url=database_url, broker_url="memory://",
                                               secret_key="test", ratelimit_auth_failures="off",
                                               ratelimit_vm_creates="off", image_dir=image_dirs[0],
                                               image_import_dirs=(image_dirs[1],)))
    application.config["TESTING"] = True
    worker = EmbeddedWorker(application, concurrency=4).start(resend_unfinished=False)
    yield application
    worker.stop()


def drain_worker(app: Any, timeout: float = 20.0) -> None:
    """Wait until the embedded worker has no task in hand and no operation is unfinished, so that a
    test never resets the database or the simulated hosts under a task left over by the previous one."""
    from celery.worker import state as worker_state

    from controlplane.db import db
    from controlplane.models import Operation

    def idle() -> bool:
        with app.app_context():
            unfinished = db.session.query(Operation).filter(Operation.status.in_(["pending", "running"])).count()
            db.session.rollback()
        return not worker_state.active_requests and not worker_state.reserved_requests and unfinished == 0

    deadline = time.monotonic() + timeout
    while not idle() and time.monotonic() < deadline:
        time.sleep(0.02)


@pytest.fixture(autouse=False)
def clean_db(app: Any) -> Iterator[None]:
    from agents.simulated import open_datacenter
    from controlplane.db import db

    drain_worker(app)
    open_datacenter().reset()
    open_datacenter().set_delay_scale(0.0)
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            db.session.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
        else:
            for table in TABLES:
                db.session.execute(text(f"DELETE FROM {table}"))
        db.session.execute(text("UPDATE audit_head SET last_hash = '', last_seq = 0"))
        db.session.execute(text("UPDATE executor_locks SET holder = NULL, acquired_at = NULL"))
        db.session.commit()
    yield
    drain_worker(app)


@pytest.fixture
def settings_override(app: Any) -> Iterator[Callable[..., None]]:
    """Change the application's settings for one test (``settings_override(lease_s=1.0)``), restored after."""
    import dataclasses

    from controlplane.config import SETTINGS_KEY

    original = app.extensions[SETTINGS_KEY]

    def set_(**changes: Any) -> None:
        app.extensions[SETTINGS_KEY] = dataclasses.replace(original, **changes)

    yield set_
    app.extensions[SETTINGS_KEY] = original


@dataclass
class Caller:
    """A test client that sends one principal's bearer token."""

    client: Any
    token: str
    user_id: str = ""
    tenant_id: str | None = None

    def _headers(self, headers: dict[str, str] | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", **(headers or {})}

    def get(self, path: str, **kw: Any) -> Any:
        return self.client.get(path, headers=self._headers(kw.pop("headers", None)), **kw)

    def post(self, path: str, json: Any = None, **kw: Any) -> Any:
        return self.client.post(path, json=json, headers=self._headers(kw.pop("headers", None)), **kw)

    def patch(self, path: str, json: Any = None, **kw: Any) -> Any:
        return self.client.patch(path, json=json, headers=self._headers(kw.pop("headers", None)), **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.client.delete(path, headers=self._headers(kw.pop("headers", None)), **kw)

    def wait_op(self, op_id: str, timeout: float = 20.0) -> dict[str, Any]:
        def done() -> Any:
            body = self.get(f"/v1/operations/{op_id}").get_json()
            return body if body["status"] in ("succeeded", "failed") else None

        return wait_for(done, timeout, what=f"operation {op_id}")  # type: ignore[no-any-return]


@dataclass
class World:
    operator: Caller
    admin_a: Caller
    member_a: Caller
    admin_b: Caller
    tenant_a: str
    tenant_b: str
    hosts: dict[str, str]  # name -> id


HOSTS = [("hv1", 16, 65536, 1000), ("hv2", 16, 65536, 1000), ("hv3", 32, 131072, 2000)]


@pytest.fixture
def world(app: Any, clean_db: None) -> World:
    """Three simulated hosts, two municipalities (A with quota for 20 VMs, B smaller), tokens per role."""
    from controlplane.seed import SEEDER
    from controlplane.services import flavors, hosts, tenants, tokens, users

    with app.app_context():
        host_ids = {}
        for name, vcpus, ram, disk in HOSTS:
            h = hosts.create_host(SEEDER, {"name": name, "driver": "simulated", "uri": f"sim://{name}",
                                           "vcpus": vcpus, "ram_mib": ram, "disk_gib": disk}, verify=False)
            host_ids[name] = h.id
        for name, vcpus, ram, disk in (("small", 1, 1024, 10), ("medium", 2, 4096, 40)):
            flavors.create_flavor(SEEDER, {"name": name, "vcpus": vcpus, "ram_mib": ram, "disk_gib": disk})
        ta = tenants.create_tenant(SEEDER, {"slug": "municipio-a", "name": "Municipio A", "quota_vcpus": 40,
                                            "quota_ram_mib": 81920, "quota_disk_gib": 800, "quota_vms": 20})
        tb = tenants.create_tenant(SEEDER, {"slug": "municipio-b", "name": "Municipio B", "quota_vcpus": 8,
                                            "quota_ram_mib": 8192, "quota_disk_gib": 100, "quota_vms": 4})
        op = users.create_user(SEEDER, "op", "operator", None)
        aa = users.create_user(SEEDER, "admin-a", "admin", ta.id)
        ma = users.create_user(SEEDER, "member-a", "member", ta.id)
        ab = users.create_user(SEEDER, "admin-b", "admin", tb.id)
        client = app.test_client()
        callers = {u.username: Caller(client, tokens.issue_token(SEEDER, u.id, "t")[1], u.id, u.tenant_id)
                   for u in (op, aa, ma, ab)}
        return World(callers["op"], callers["admin-a"], callers["member-a"], callers["admin-b"], ta.id, tb.id,
                     host_ids)
