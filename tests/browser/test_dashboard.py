"""The dashboard in a real headless Chromium (Debian's, driven by Playwright; no browser download), signed in
through a real OpenID Connect provider running locally (issue 15): an operator approves a plan and watches it
finish; a municipality sees its quota gauges and only its own VMs; both languages render; nothing is loaded from
outside the control plane. Screenshots go to ``test-artifacts/`` (``TEST_ARTIFACTS_DIR``)."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect, sync_playwright
from werkzeug.serving import make_server

from tests import oidc
from tests.conftest import World, wait_for

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS_DIR") or Path(__file__).resolve().parents[2] / "test-artifacts")

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    if not os.path.exists(CHROMIUM):
        pytest.skip("needs Debian's chromium (make test installs it as root)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def served(app: Any, world: World, settings_override: Any) -> Iterator[tuple[str, str]]:
    """The app on a real port, signed in through a real provider; (base URL, issuer)."""
    with oidc.provider() as issuer:
        settings_override(oidc_issuer=issuer, oidc_client_id="confluencia", oidc_client_secret="secret")
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_port}", issuer
        finally:
            server.shutdown()
            thread.join(timeout=10)


def sign_in(page: Any, base: str, sub: str) -> None:
    page.goto(f"{base}/ui/")
    page.click("#sso")
    page.fill("input[name=sub]", sub)
    page.click("button[type=submit]:has-text('Authorize')")
    page.wait_for_url(f"{base}/ui/**")


def only_our_origin(context: Any, base: str) -> list[str]:
    """Refuse every request that leaves this machine (an unplugged network) and record those our pages made
    (the test provider's own form loads a stylesheet from a CDN: not ours, and it works without it)."""
    outside: list[str] = []

    def route(r: Any) -> None:
        if urlsplit(r.request.url).hostname == "127.0.0.1":
            r.continue_()
            return
        if r.request.frame.url.startswith(base):
            outside.append(r.request.url)
        r.abort()

    context.route("**/*", route)
    return outside


def test_an_operator_approves_a_plan_and_watches_it_finish(browser: Any, served: tuple[str, str],
                                                           world: World) -> None:
    base, issuer = served
    oidc.set_user(issuer, "op-sub", {"preferred_username": "operadora", "groups": ["confluencia-operators"]})
    for i in range(3):
        assert world.admin_a.post("/v1/vms", json={"name": f"web-{i}", "flavor": "small"}).status_code == 202
    wait_for(lambda: all(v["state"] == "ACTIVE" for v in world.admin_a.get("/v1/vms").get_json()["items"]))
    busy = max(world.operator.get("/v1/hosts").get_json()["items"], key=lambda h: h["usage"]["vms"])
    plan = world.operator.post("/v1/plans", json={"kind": "drain", "host": busy["name"]}).get_json()
    assert plan["status"] == "draft" and plan["progress"]["total"] >= 1, plan

    context = browser.new_context(locale="es-AR", viewport={"width": 1280, "height": 900})
    outside = only_our_origin(context, base)
    page = context.new_page()
    sign_in(page, base, "op-sub")
    assert page.locator("h1").inner_text() == "Centro de datos"
    rows = page.locator("table.heatmap tbody tr")
    assert rows.count() == 3
    assert page.evaluate("typeof window.htmx") == "object"  # served by us
    page.screenshot(path=str(ARTIFACTS / "operator-es.png"), full_page=True)

    page.click(f"a[href='/ui/plans/{plan['id']}']")
    assert page.locator("#plan-status").inner_text() == "borrador"
    page.click("#approve")
    # htmx polls the progress every second: the page itself shows the plan end
    expect(page.locator("#plan-status")).to_have_text("terminado", timeout=60_000)
    done = world.operator.get(f"/v1/plans/{plan['id']}").get_json()
    assert done["status"] == "succeeded"
    assert page.locator("#plan-done").inner_text() == str(done["progress"]["done"])
    assert page.locator("#approve, #cancel").count() == 0  # nothing left to do on a finished plan
    page.screenshot(path=str(ARTIFACTS / "plan-finished-es.png"), full_page=True)
    entries = world.operator.get(f"/v1/audit?target_id={plan['id']}&action=plan.approve").get_json()["items"]
    assert entries and entries[0]["actor_name"] == "operadora"
    assert outside == []
    context.close()


def test_a_municipality_sees_its_gauges_and_only_its_own_vms(browser: Any, served: tuple[str, str],
                                                            world: World) -> None:
    base, issuer = served
    oidc.set_user(issuer, "ana-sub", {"preferred_username": "ana", "groups": ["confluencia-admins"],
                                      "municipio": "municipio-a"})
    mine = {world.admin_a.post("/v1/vms", json={"name": f"mine-{i}", "flavor": "small"}).get_json()["vm"]["name"]
            for i in range(2)}
    world.admin_b.post("/v1/vms", json={"name": "theirs", "flavor": "small"})
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    outside = only_our_origin(context, base)
    page = context.new_page()
    sign_in(page, base, "ana-sub")
    assert page.locator("h1").inner_text() == "Municipio A"
    assert page.locator("#quota-title").inner_text() == "Quota"
    names = set(page.locator("#vms tbody th").all_inner_texts())
    assert names == mine
    quota = world.admin_a.get("/v1/quota").get_json()
    for resource in ("vcpus", "ram_mib", "disk_gib", "vms"):
        shown = page.locator(f".gauge[data-resource={resource}] .used").inner_text()
        assert int(shown) == quota[resource]["used"], resource
    page.screenshot(path=str(ARTIFACTS / "municipality-en.png"), full_page=True)
    page.click("a[hreflang=es]")  # the language switch
    assert page.locator("#quota-title").inner_text() == "Cuota"
    page.screenshot(path=str(ARTIFACTS / "municipality-es.png"), full_page=True)
    page.keyboard.press("Tab")  # the first stop is the skip link, for keyboard users
    assert page.evaluate("document.activeElement.className") == "skip"
    assert outside == []
    context.close()
