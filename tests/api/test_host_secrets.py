"""Host secrets encrypted at rest (issue 12): the stored row and the audit log hold no plaintext, the API
shows option names only, a driver gets the plaintext (a Proxmox host on the in-process simulator answers
only to the right token secret), old plaintext rows keep working, ``confluencia secrets rotate`` moves every
value to a new key, and a wrong or missing key is a clear error."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner, Result
from cryptography.fernet import Fernet
from flask import Flask
from sqlalchemy import select, text, update

from agents.proxmox_sim import SimCluster, SimServer
from tests.api.extra_app import bearer, extra_app
from tests.api.test_errors_common import assert_problem, db_state
from tests.conftest import World

K1, K2, K3 = (Fernet.generate_key().decode() for _ in range(3))
TOKEN_ID = "confluencia@pve!ctl"
SECRET: dict[str, str] = {}  # the simulator's token secret, set by the pve fixture


@pytest.fixture(scope="module")
def pve() -> Iterator[SimServer]:
    cluster = SimCluster(["pve1", "pve2"], mem_total_mib=8192)
    SECRET["token_secret"] = cluster.add_token(TOKEN_ID)
    server = SimServer(cluster).start()
    yield server
    server.stop()


@pytest.fixture
def host_json(pve: SimServer) -> dict[str, Any]:
    return {"name": "pve1", "driver": "proxmox", "uri": f"pve://{pve.address}/pve1", "vcpus": 8, "ram_mib": 8192,
            "disk_gib": 100, "options": {"token_id": TOKEN_ID, "token_secret": SECRET["token_secret"],
                                         "ca_bundle": str(pve.cert_path)}}


@pytest.fixture
def keyed(world: World, app: Any, database_url: str) -> Iterator[Flask]:
    """The API with data key K1 (bound to the queue: the health check of a new host reads its secret)."""
    with extra_app(app, database_url, data_key=K1) as keyed_app:
        yield keyed_app


def _no_secret_in(*texts: str) -> None:
    for chunk in texts:
        assert SECRET["token_secret"] not in chunk


def _stored(app: Flask, host_id: str) -> dict[str, str]:
    from controlplane.db import db

    with app.app_context():
        raw = db.session.execute(text("SELECT driver_options FROM hosts WHERE id = :id"), {"id": host_id}).scalar()
        db.session.rollback()
    return json.loads(raw) if isinstance(raw, str) else dict(raw)


def _audit_text(app: Flask) -> str:
    from controlplane.db import db

    with app.app_context():
        rows = db.session.execute(text("SELECT action, before, after FROM audit_entries")).all()
        db.session.rollback()
    return json.dumps([[str(c) for c in row] for row in rows])


def _driver_works(app: Flask, host_id: str, node: str = "pve1") -> None:
    """The host's driver, built from the stored row, authenticates to the simulator (right secret)."""
    from controlplane.core.drivers import driver_for
    from controlplane.db import db
    from controlplane.models import Host

    with app.app_context():
        host = db.session.get(Host, host_id)
        assert host is not None
        drv = driver_for(host)
        db.session.rollback()  # no transaction open across the driver's I/O
        assert drv.host_facts().hostname == node


def _register(app: Flask, world: World, host_json: dict[str, Any]) -> dict[str, Any]:
    resp = app.test_client().post("/v1/hosts", json=host_json, headers=bearer(world.operator.token))
    assert resp.status_code == 201, resp.get_data(as_text=True)
    _no_secret_in(resp.get_data(as_text=True))
    return resp.get_json()  # type: ignore[no-any-return]


def _cli(rebind: Flask, database_url: str, keys: str, *args: str) -> Result:
    """``confluencia secrets ...`` as an operator runs it, then the queue goes back to ``rebind``."""
    from api.cli import main
    from controlplane import queue

    env = {"DATABASE_URL": database_url, "CONFLUENCIA_DATA_KEY": keys, "CONFLUENCIA_DATA_KEY_FILE": None,
           "CELERY_BROKER_URL": None}
    try:
        return CliRunner().invoke(main, ["secrets", *args], env=env)
    finally:
        queue.bind_app(rebind)


def test_secrets_are_encrypted_at_rest_and_only_the_driver_sees_them(world: World, keyed: Flask,
                                                                     host_json: dict[str, Any],
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    from tests.conftest import wait_for

    caplog.set_level(logging.DEBUG)
    host = _register(keyed, world, host_json)
    assert host["option_keys"] == ["ca_bundle", "token_id", "token_secret"]
    stored = _stored(keyed, host["id"])
    _no_secret_in(json.dumps(stored))
    assert stored["token_secret"].startswith("enc:fernet:") and stored["token_id"] == TOKEN_ID
    c, op = keyed.test_client(), bearer(world.operator.token)
    # the health check (a worker) decrypted it too: the host answered and is enabled
    wait_for(lambda: c.get(f"/v1/hosts/{host['id']}", headers=op).get_json()["state"] == "enabled",
             what="the first health check")
    answers = [c.get("/v1/hosts", headers=op), c.get(f"/v1/hosts/{host['id']}", headers=op),
               c.get("/v1/audit?limit=500", headers=op)]
    assert [r.status_code for r in answers] == [200, 200, 200]
    _no_secret_in(*(r.get_data(as_text=True) for r in answers), _audit_text(keyed))
    _driver_works(keyed, host["id"])
    _no_secret_in(caplog.text)


def test_new_options_are_encrypted_and_a_uri_change_validates_with_the_stored_ones(
        world: World, keyed: Flask, host_json: dict[str, Any], pve: SimServer) -> None:
    host = _register(keyed, world, host_json)
    c, op = keyed.test_client(), bearer(world.operator.token)
    etag = c.get(f"/v1/hosts/{host['id']}", headers=op).headers["ETag"]
    options = {**host_json["options"], "token_secret": "not-the-secret-77"}
    changed = c.patch(f"/v1/hosts/{host['id']}", json={"options": options}, headers={**op, "If-Match": etag})
    assert changed.status_code == 200, changed.get_data(as_text=True)
    stored = _stored(keyed, host["id"])
    assert "not-the-secret-77" not in json.dumps(stored) and stored["token_secret"].startswith("enc:fernet:")

    def patch(body: dict[str, Any]) -> Any:
        """PATCH with the current ETag, again when a health check changed the host meanwhile (412), as any
        client of an optimistically locked object does."""
        for _ in range(20):
            etag = c.get(f"/v1/hosts/{host['id']}", headers=op).headers["ETag"]
            r = c.patch(f"/v1/hosts/{host['id']}", json=body, headers={**op, "If-Match": etag})
            if r.status_code != 412:
                return r
        raise AssertionError("the host kept changing")

    back = patch({"options": host_json["options"]})
    assert back.status_code == 200, back.get_data(as_text=True)
    moved = patch({"uri": f"pve://{pve.address}/pve2"})  # options not sent
    assert moved.status_code == 200, moved.get_data(as_text=True)
    _driver_works(keyed, host["id"], node="pve2")


def test_plaintext_rows_keep_working_until_rotate_encrypts_them(world: World, keyed: Flask,
                                                               host_json: dict[str, Any], database_url: str) -> None:
    from controlplane.db import db
    from controlplane.models import AuditEntry, Host
    from controlplane.services import audit

    host = _register(keyed, world, host_json)
    with keyed.app_context():  # a row written before encryption existed
        db.session.execute(update(Host).where(Host.id == host["id"]).values(driver_options=host_json["options"]))
        db.session.commit()
    assert _stored(keyed, host["id"]) == host_json["options"]
    _driver_works(keyed, host["id"])
    result = _cli(keyed, database_url, K1, "rotate")
    assert result.exit_code == 0, result.output
    assert "0 re-encrypted, 1 encrypted (were plaintext), 1 hosts" in result.output
    _no_secret_in(json.dumps(_stored(keyed, host["id"])), result.output)
    _driver_works(keyed, host["id"])
    with keyed.app_context():
        entry = db.session.execute(select(AuditEntry).where(AuditEntry.action == "host.secrets.rotate")).scalar_one()
        assert entry.target_id == host["id"] and entry.actor_name.startswith("cli:")
        assert entry.after["encrypted"] == ["token_secret"] and entry.after["rotated"] == []
        assert audit.verify().ok
        db.session.rollback()
    _no_secret_in(_audit_text(keyed))


def test_rotate_moves_every_secret_to_the_new_key(world: World, app: Any, keyed: Flask, host_json: dict[str, Any],
                                                  database_url: str) -> None:
    host = _register(keyed, world, host_json)
    before = _cli(keyed, database_url, f"{K2},{K1}", "status")
    assert before.exit_code == 0 and "under older key: 1" in before.output and "under primary:   0" in before.output
    rotated = _cli(keyed, database_url, f"{K2},{K1}", "rotate")
    assert rotated.exit_code == 0 and "1 re-encrypted, 0 encrypted" in rotated.output, rotated.output
    after = _cli(keyed, database_url, K2, "status")
    assert after.exit_code == 0 and "under primary:   1" in after.output, after.output
    old_only = _cli(keyed, database_url, K1, "status")
    assert old_only.exit_code == 1 and "pve1: token_secret" in old_only.output
    with extra_app(app, database_url, data_key=K2) as new_key:  # the old key is no longer needed
        _driver_works(new_key, host["id"])


def test_a_wrong_key_is_a_clear_error_not_a_stack_trace(world: World, app: Any, keyed: Flask,
                                                        host_json: dict[str, Any], database_url: str) -> None:
    from agents import DriverError
    from controlplane.core.drivers import driver_for
    from controlplane.db import db
    from controlplane.models import Host

    host = _register(keyed, world, host_json)
    stored = _stored(keyed, host["id"])
    result = _cli(keyed, database_url, K3, "rotate")
    assert result.exit_code == 1
    assert "cannot be decrypted with the keys of CONFLUENCIA_DATA_KEY" in result.output and "pve1" in result.output
    assert "no se puede descifrar" in result.output and "Traceback" not in result.output
    assert _stored(keyed, host["id"]) == stored  # nothing rotated, nothing lost
    with extra_app(app, database_url, data_key=K3) as wrong:
        with wrong.app_context():
            row = db.session.get(Host, host["id"])
            assert row is not None
            with pytest.raises(DriverError) as err:
                driver_for(row)
            assert err.value.code == "DATA_KEY" and "pve1" in err.value.message
            db.session.rollback()
        c, op = wrong.test_client(), bearer(world.operator.token)
        etag = c.get(f"/v1/hosts/{host['id']}", headers=op).headers["ETag"]
        resp = c.patch(f"/v1/hosts/{host['id']}", json={"zone": "sur", "uri": host_json["uri"]},
                       headers={**op, "If-Match": etag})
        body = assert_problem(resp, 503, "service-unavailable")
        assert "cannot be decrypted" in body["detail"]
        _no_secret_in(resp.get_data(as_text=True))


def test_an_unreadable_key_file_refuses_secrets_and_nothing_else(world: World, app: Any, database_url: str,
                                                                 host_json: dict[str, Any], tmp_path: Any) -> None:
    missing = tmp_path / "no-such.key"
    with extra_app(app, database_url, data_key_file=str(missing)) as broken:
        c, op = broken.test_client(), bearer(world.operator.token)
        before = db_state(broken)
        resp = c.post("/v1/hosts", json=host_json, headers={**op, "Accept-Language": "es"})
        body = assert_problem(resp, 503, "service-unavailable")
        assert f"No se puede leer CONFLUENCIA_DATA_KEY_FILE ({missing})" in body["detail"]
        assert db_state(broken) == before
        plain = c.post("/v1/hosts", json={"name": "sim9", "driver": "simulated", "uri": "sim://sim9", "vcpus": 8,
                                          "ram_mib": 8192, "disk_gib": 100}, headers=op)
        assert plain.status_code == 201
