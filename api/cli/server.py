"""``confluencia serve`` and ``confluencia demo``: the API with, on the in-memory broker, an embedded
Celery worker and beat in the same process."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
from pathlib import Path

import click
from werkzeug.serving import run_simple

from api import create_app
from api.cli.console import novnc_dir, proxy_command
from controlplane.app import create_core_app
from controlplane.config import Settings
from controlplane.core.secrets import key_ring
from controlplane.schema import upgrade
from controlplane.seed import seed_demo
from controlplane.tasks.embedded import EmbeddedBeat, EmbeddedWorker


def _start_console_proxy(settings: Settings) -> Path | None:
    """``confluencia console-proxy`` as a child of the demo (it ends with it); returns the noVNC directory."""
    listen = settings.console_url.split("://", 1)[-1].split("/", 1)[0]
    web = novnc_dir()
    cmd = proxy_command(listen, web, settings.database_url)
    subprocess.Popen(cmd, preexec_fn=_die_with_parent, stdout=subprocess.DEVNULL)
    return web


def _die_with_parent() -> None:
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _serve(settings: Settings, banner: str = "") -> None:
    app = create_app(settings)
    worker = EmbeddedWorker(app, settings.worker_concurrency).start() if settings.embedded_worker else None
    beat = EmbeddedBeat().start() if settings.embedded_worker else None  # nightly, health checks, reconcile
    host, _, port = settings.bind.rpartition(":")
    if banner:
        click.echo(banner)
    try:
        run_simple(host or "127.0.0.1", int(port), app, threaded=True, use_reloader=False)
    finally:
        if beat is not None:
            beat.stop()
        if worker is not None:
            worker.stop()


@click.command()
def serve() -> None:
    """Run the API (and, with the in-memory broker, an embedded Celery worker) on CONFLUENCIA_BIND."""
    settings = Settings.from_env()
    upgrade(settings.database_url)
    _serve(settings)


@click.command()
def demo() -> None:
    """Embedded demo: SQLite, in-process worker, simulated data center; prints tokens and curl commands."""
    os.environ.setdefault("CONFLUENCIA_SIM_DELAY_SCALE", "1.0")
    os.environ.setdefault("CONFLUENCIA_LOG_FORMAT", "text")  # a terminal: lines for people
    settings = Settings.from_env()
    upgrade(settings.database_url)
    ring = key_ring(settings, create=True)  # on first start: the demo's data key, next to its database
    with create_core_app(settings).app_context():
        tokens = seed_demo()
    base = f"http://{settings.bind}"
    admin_token = tokens.tenants["san-martin"][0]
    lines = [
        "", "Confluencia demo / demostración", "=" * 40,
        f"API:  {base}/v1    docs: {base}/docs    database: {settings.database_url}",
        f"host secrets encrypted with / secretos cifrados con: {ring.source if ring else 'no data key'}",
        f"operator token (operador):            {tokens.operator}",
    ]
    for slug, (adm, mem) in tokens.tenants.items():
        lines.append(f"{slug} admin token:   {adm}")
        lines.append(f"{slug} member token:  {mem}")
    proxy = _start_console_proxy(settings)
    lines.append(f"console proxy / proxy de consolas:   {settings.console_url} "
                 f"({'noVNC from ' + str(proxy) if proxy else 'no noVNC page installed'})")
    lines += [
        "", "Try / pruebe:",
        f"export TOKEN={admin_token}",
        f"curl -s -X POST {base}/v1/vms -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' "
        "-d '{\"name\": \"web-01\", \"flavor\": \"m1.small\", \"image\": \"imagen-demo\"}'",
        f"curl -s {base}/v1/vms -H \"Authorization: Bearer $TOKEN\"",
        f"curl -s {base}/v1/quota -H \"Authorization: Bearer $TOKEN\"",
        "", "Ctrl+C to stop / para detener.", "",
    ]
    _serve(settings, "\n".join(lines))
