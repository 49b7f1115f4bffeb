"""Abuse limits (issue 12): failed authentications per client address, VM requests per principal, 429 as
problem+json with Retry-After, and a limiter whose storage is down or silent never wedges the API."""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.api.extra_app import bearer, extra_app
from tests.api.test_errors_common import assert_problem
from tests.conftest import World, drain_worker

GOOD_VM = {"name": "web", "flavor": "small"}


def _get(client: Any, token: str | None, addr: str, **headers: str) -> Any:
    auth = bearer(token) if token is not None else {}
    return client.get("/v1/vms", headers={**auth, **headers}, environ_base={"REMOTE_ADDR": addr})


def _assert_429(resp: Any, lang: str = "en") -> dict[str, Any]:
    body = assert_problem(resp, 429, "too-many-requests")
    wait = int(resp.headers["Retry-After"])
    assert 1 <= wait <= 60 and body["retry_after"] == wait
    assert body["title"] == {"en": "Too many requests", "es": "Demasiadas solicitudes"}[lang]
    return body


def test_wrong_tokens_get_429_after_the_limit_and_valid_tokens_keep_working(world: World, app: Any,
                                                                             database_url: str) -> None:
    with extra_app(app, database_url, ratelimit_auth_failures="20/minute") as limited:
        c, good, addr = limited.test_client(), world.admin_a.token, "203.0.113.7"
        answers = []
        for i in range(300):
            answers.append(_get(c, f"cfl_wrong{i:03d}", addr).status_code)
            if i % 60 == 0:  # the same address with a valid token, before and after the limit is reached
                assert _get(c, good, addr).status_code == 200
        assert answers[:20] == [401] * 20
        assert set(answers[20:]) == {429}
        body = _assert_429(_get(c, "cfl_wrong", addr))
        assert "20 per minute" in body["detail"] and "valid token" in body["detail"]
        es = _assert_429(_get(c, "cfl_wrong", addr, **{"Accept-Language": "es"}), "es")
        assert "reintente" in es["detail"] and "20 por minuto" in es["detail"]
        _assert_429(_get(c, None, addr))  # no token at all is a failed authentication too
        assert _get(c, good, addr).status_code == 200
        assert_problem(_get(c, "cfl_wrong", "203.0.113.8"), 401, "unauthorized")  # another client


def test_valid_tokens_do_not_use_up_the_failure_budget(world: World, app: Any, database_url: str) -> None:
    with extra_app(app, database_url, ratelimit_auth_failures="5/minute") as limited:
        c, addr = limited.test_client(), "198.51.100.20"
        for _ in range(30):
            assert _get(c, world.member_a.token, addr).status_code == 200
        assert [_get(c, "cfl_nope", addr).status_code for _ in range(6)] == [401] * 5 + [429]


def test_an_ipv6_client_is_counted_by_its_64(world: World, app: Any, database_url: str) -> None:
    with extra_app(app, database_url, ratelimit_auth_failures="3/minute") as limited:
        c = limited.test_client()
        answers = [_get(c, "cfl_x", f"2001:db8:1:2::{n}").status_code for n in range(1, 5)]
        assert answers == [401, 401, 401, 429]
        assert _get(c, "cfl_x", "2001:db8:1:3::1").status_code == 401  # the next /64 is someone else


def test_x_forwarded_for_counts_only_behind_a_trusted_proxy(world: World, app: Any, database_url: str) -> None:
    def spoofed(client: Any, n: int) -> int:
        return int(_get(client, "cfl_x", "10.0.0.1", **{"X-Forwarded-For": f"192.0.2.{n}"}).status_code)

    with extra_app(app, database_url, ratelimit_auth_failures="2/minute") as direct:
        assert [spoofed(direct.test_client(), n) for n in range(3)] == [401, 401, 429]  # a made-up header
    with extra_app(app, database_url, ratelimit_auth_failures="2/minute", trusted_proxies=1) as proxied:
        c = proxied.test_client()
        assert [spoofed(c, n) for n in range(3)] == [401, 401, 401]  # three clients behind one proxy
        assert [spoofed(c, 7) for _ in range(3)] == [401, 401, 429]


def test_vm_requests_are_limited_per_principal(world: World, app: Any, database_url: str) -> None:
    from tests.api.test_errors_common import db_state

    with extra_app(app, database_url, ratelimit_vm_creates="3/minute") as limited:
        c = limited.test_client()
        admin, member = bearer(world.admin_a.token), bearer(world.member_a.token)
        for i in range(3):
            assert c.post("/v1/vms", json={**GOOD_VM, "name": f"web-{i}"}, headers=admin).status_code == 202
        drain_worker(app)  # the three builds are done: the rows stop changing
        before = db_state(limited)
        over = c.post("/v1/vms", json={**GOOD_VM, "name": "web-4"}, headers={**admin, "Idempotency-Key": "k4"})
        body = _assert_429(over)
        assert "VM requests from this user" in body["detail"] and "3 per minute" in body["detail"]
        assert db_state(limited) == before  # refused before anything was written (no idempotency record)
        assert c.get("/v1/vms", headers=admin).status_code == 200  # reads are not limited
        assert c.post("/v1/vms", json={**GOOD_VM, "name": "m-1"}, headers=member).status_code == 202


def test_the_problem_type_is_described_in_both_languages(world: World) -> None:
    body = world.admin_a.client.get("/problems/too-many-requests").get_json()
    assert body["status"] == 429 and body["title"] == {"en": "Too many requests", "es": "Demasiadas solicitudes"}


def test_a_malformed_limit_stops_the_start_naming_the_variable(app: Any, database_url: str) -> None:
    with pytest.raises(ValueError, match="CONFLUENCIA_RATELIMIT_VM_CREATES='lots'"), \
            extra_app(app, database_url, ratelimit_vm_creates="lots"):
        pass


@pytest.fixture
def refused_port() -> int:
    """A local port nothing listens on (connections are refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def silent_redis() -> Iterator[int]:
    """A port that accepts TCP connections and never answers (a hung Redis)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    try:
        yield int(s.getsockname()[1])
    finally:
        s.close()


def test_storage_down_fails_open_with_a_warning(world: World, app: Any, database_url: str, refused_port: int,
                                                caplog: pytest.LogCaptureFixture) -> None:
    url = f"redis://127.0.0.1:{refused_port}/14"
    with caplog.at_level(logging.WARNING, logger="confluencia.ratelimit"), \
            extra_app(app, database_url, ratelimit_storage_url=url, ratelimit_auth_failures="5/minute",
                      ratelimit_vm_creates="2/minute") as limited:
        c, admin = limited.test_client(), bearer(world.admin_a.token)
        assert c.post("/v1/vms", json=GOOD_VM, headers=admin).status_code == 202
        assert c.get("/v1/vms", headers=admin).status_code == 200
        warnings = [r for r in caplog.records if r.name == "confluencia.ratelimit" and r.levelno == logging.WARNING]
        assert warnings and "unreachable" in warnings[0].getMessage()
        # the limits still hold, counted in this process's memory until the storage is back
        assert [_get(c, "cfl_bad", "192.0.2.9").status_code for _ in range(6)] == [401] * 5 + [429]
        assert c.post("/v1/vms", json={**GOOD_VM, "name": "web-2"}, headers=admin).status_code == 202
        _assert_429(c.post("/v1/vms", json={**GOOD_VM, "name": "web-3"}, headers=admin))


def test_a_silent_storage_does_not_hang_the_api(world: World, app: Any, database_url: str,
                                                silent_redis: int) -> None:
    url = f"redis://127.0.0.1:{silent_redis}/14"
    with extra_app(app, database_url, ratelimit_storage_url=url) as limited:
        c, admin = limited.test_client(), bearer(world.admin_a.token)
        started = time.monotonic()
        assert [c.post("/v1/vms", json={**GOOD_VM, "name": f"s-{i}"}, headers=admin).status_code
                for i in range(5)] == [202] * 5
        assert _get(c, "cfl_bad", "192.0.2.10").status_code == 401
        assert time.monotonic() - started < 10  # one storage timeout (1 s), then per-process counters


def _redis_url() -> str:
    base = urlsplit(os.environ.get("TEST_REDIS_URL") or "redis://127.0.0.1:6379/0")
    return f"redis://{base.hostname or '127.0.0.1'}:{base.port or 6379}/14"


@pytest.mark.redis
def test_two_api_processes_share_the_counters_through_redis(world: World, app: Any, database_url: str) -> None:
    import redis

    url = _redis_url()
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError:
        pytest.skip(f"no Redis at {url}")
    addr = f"2001:db8:{uuid.uuid4().hex[:4]}:{uuid.uuid4().hex[:4]}::1"  # a /64 of this run only
    with extra_app(app, database_url, ratelimit_storage_url=url, ratelimit_auth_failures="20/minute") as one, \
            extra_app(app, database_url, ratelimit_storage_url=url, ratelimit_auth_failures="20/minute") as two:
        a, b = one.test_client(), two.test_client()
        answers = [_get(a if i % 2 else b, "cfl_bad", addr).status_code for i in range(20)]
        assert answers == [401] * 20
        _assert_429(_get(a, "cfl_bad", addr))
        _assert_429(_get(b, "cfl_bad", addr))
        assert _get(b, world.admin_a.token, addr).status_code == 200
    r = redis.Redis.from_url(url)
    prefix = addr.split("::")[0]
    for key in r.scan_iter(match=f"*{prefix}*"):
        r.delete(key)
