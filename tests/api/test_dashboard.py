"""The dashboard without a browser (issue 15): sign-in by token, CSRF, roles, both languages, safe redirects,
and catalogs that translate every message. The browser tests are in tests/browser."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from tests.conftest import World

ROOT = Path(__file__).resolve().parents[2]
CATALOGS = ROOT / "api" / "translations"


def csrf(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, html[:500]
    return m.group(1)


def sign_in(app: Any, token: str, lang: str = "es") -> Any:
    client = app.test_client()
    page = client.get(f"/ui/login?lang={lang}").get_data(as_text=True)
    r = client.post("/ui/login", data={"csrf_token": csrf(page), "token": token})
    assert r.status_code == 302 and r.headers["Location"] == "/ui/", r.get_data(as_text=True)[:300]
    return client


def test_pages_in_both_languages_for_each_role(app: Any, world: World) -> None:
    op = sign_in(app, world.operator.token, "es")
    assert op.get("/ui/").headers["Location"] == "/ui/operator"
    es = op.get("/ui/operator").get_data(as_text=True)
    assert "<h1>Centro de datos</h1>" in es and 'lang="es"' in es
    en = op.get("/ui/operator?lang=en").get_data(as_text=True)
    assert "<h1>Data center</h1>" in en and 'lang="en"' in en
    muni = sign_in(app, world.admin_a.token, "en")
    page = muni.get("/ui/municipality")
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    assert "Municipio A" in page.get_data(as_text=True)
    denied = muni.get("/ui/operator")
    assert denied.status_code == 403 and denied.mimetype == "text/html"
    browser_es = app.test_client()
    assert "Iniciar sesión" in browser_es.get("/ui/login", headers={"Accept-Language": "es-AR,es;q=0.9"}).get_data(
        as_text=True)
    assert "Sign in" in app.test_client().get("/ui/login", headers={"Accept-Language": "en-GB"}).get_data(
        as_text=True)


def test_forms_without_their_csrf_token_change_nothing(app: Any, world: World) -> None:
    op = sign_in(app, world.operator.token)
    host = world.hosts["hv1"]
    r = op.post(f"/ui/hosts/{host}/maintenance", data={"enabled": "on"})
    assert r.status_code == 400 and r.mimetype == "text/html"
    r = op.post(f"/ui/hosts/{host}/maintenance", data={"enabled": "on", "csrf_token": "forged"})
    assert r.status_code == 400
    assert world.operator.get(f"/v1/hosts/{host}").get_json()["state"] == "enabled"
    token = csrf(op.get("/ui/operator").get_data(as_text=True))
    assert op.post(f"/ui/hosts/{host}/maintenance", data={"enabled": "on", "csrf_token": token}).status_code == 302
    assert world.operator.get(f"/v1/hosts/{host}").get_json()["state"] == "maintenance"
    entry = world.operator.get(f"/v1/audit?target_id={host}").get_json()["items"][0]
    assert entry["actor_name"] == "op"  # the world's operator, signed in to the dashboard
    assert entry["action"].startswith("host.") and entry["after"]["state"] == "maintenance"


def test_sign_in_refusals_and_no_open_redirect(app: Any, world: World, settings_override: Any) -> None:
    client = app.test_client()
    page = client.get("/ui/login?lang=en").get_data(as_text=True)
    bad = client.post("/ui/login", data={"csrf_token": csrf(page), "token": "cfl_nope"})
    assert bad.status_code == 401 and "not valid" in bad.get_data(as_text=True)
    assert client.get("/ui/municipality").status_code == 302  # still signed out
    page = client.get("/ui/login").get_data(as_text=True)
    r = client.post("/ui/login?next=https://evil.example/", data={"csrf_token": csrf(page),
                                                                  "token": world.admin_a.token})
    assert r.headers["Location"] == "/ui/"
    assert client.get("/ui/login/oidc").status_code == 404  # no identity provider configured
    settings_override(oidc_issuer="http://127.0.0.1:9", oidc_client_id="confluencia")
    down = client.get("/ui/login/oidc")
    assert down.status_code == 503 and "The identity provider does not answer" in down.get_data(as_text=True)


def test_every_message_of_the_dashboard_is_translated_and_compiled() -> None:
    method_map = [("api/dashboard/**.py", "python"), ("api/templates/dashboard/**.html", "jinja2")]
    wanted = {msg for _file, _line, msg, _comments, _context in extract_from_dir(str(ROOT), method_map)}
    assert len(wanted) > 50
    with (CATALOGS / "es" / "LC_MESSAGES" / "messages.po").open("rb") as f:
        po = read_po(f)
    missing = [m for m in wanted if not po.get(m) or not po.get(m).string]
    assert missing == []
    for lang in ("es", "en"):
        with (CATALOGS / lang / "LC_MESSAGES" / "messages.po").open("rb") as f:
            source = {m.id: m.string for m in read_po(f) if m.id}
        with (CATALOGS / lang / "LC_MESSAGES" / "messages.mo").open("rb") as f:
            compiled = {m.id: m.string for m in read_mo(f) if m.id}
        assert compiled == source, f"{lang}: run pybabel compile -d api/translations -D messages"


def test_usage_pages_and_the_imbalance_history(app: Any, world: World) -> None:
    from controlplane.core.usage import CLOCK
    from controlplane.models.base import utcnow
    from controlplane.tasks.cluster import balance_sample
    from tests.conftest import wait_for

    for caller, name in ((world.admin_a, "u-a"), (world.admin_b, "u-b")):
        assert caller.post("/v1/vms", json={"name": name, "flavor": "small"}).status_code == 202
        wait_for(lambda c=caller: c.get("/v1/vms").get_json()["items"][0]["state"] == "ACTIVE")
    CLOCK.now = lambda: utcnow() + timedelta(hours=1)  # an hour later: both VMs have run for an hour
    try:
        op = sign_in(app, world.operator.token, "en")
        page = op.get("/ui/usage").get_data(as_text=True)
        assert "municipio-a" in page and "municipio-b" in page and "u-a" in page and "u-b" in page
        muni = sign_in(app, world.admin_a.token, "en")
        own = muni.get("/ui/usage").get_data(as_text=True)
        assert "u-a" in own and "u-b" not in own and "municipio-b" not in own
    finally:
        CLOCK.now = utcnow
    csv = muni.get("/ui/usage?format=csv")
    assert csv.mimetype == "text/csv" and csv.get_data(as_text=True).startswith("month,tenant,vm_id")
    bad = muni.get("/ui/usage?month=2026-13")
    assert bad.status_code == 422 and bad.mimetype == "text/html"

    def points() -> int:
        m = re.search(r'id="history-points">(\d+)<', op.get("/ui/operator").get_data(as_text=True))
        assert m
        return int(m.group(1))

    assert points() == 1  # only now
    balance_sample()
    balance_sample()
    assert points() == 3


def test_the_hosts_table_shows_measured_load_fencing_and_facts_that_disagree(app: Any, world: World) -> None:
    from controlplane.core.tx import transaction
    from controlplane.db import db
    from controlplane.models import Host, HostAgentState
    from controlplane.models.base import utcnow

    mismatch = {"code": "RAM_MISMATCH", "resource": "ram_mib", "registered": 1, "measured": 2,
                "reason": "registered with 1 MiB of RAM, the host has 2", "reason_es": "registrado con 1 MiB de RAM"}
    with app.app_context(), transaction():
        db.session.add(HostAgentState(host_id=world.hosts["hv1"], load_cpu=0.42, load_mem=0.7, load_at=utcnow(),
                                      facts_mismatch=[mismatch]))
        db.session.get(Host, world.hosts["hv2"]).fenced_at = utcnow()
    es = sign_in(app, world.operator.token, "es").get("/ui/operator").get_data(as_text=True)
    row = es[es.index('<th scope="row">hv1</th>'):es.index('<th scope="row">hv2</th>')]
    assert "42&nbsp;% / 70&nbsp;%" in row and "registrado con 1 MiB de RAM" in row
    assert "CPU / RAM medidas" in es and es.count("aislado por alta disponibilidad") == 1
    en = sign_in(app, world.operator.token, "en").get("/ui/operator").get_data(as_text=True)
    assert "registered with 1 MiB of RAM, the host has 2" in en and "fenced by high availability" in en
