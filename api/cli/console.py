"""``confluencia console-proxy``: the console proxy (websockify) between browsers and guests' VNC consoles.

It serves the noVNC page (Debian's ``novnc`` package, ``/usr/share/novnc``, or ``--web DIR``; nothing comes from
the internet) and proxies ``ws://HOST:PORT/websockify?token=...`` to the guest whose one-use token the API
handed out (``POST /v1/vms/<id>/console``), asking the control plane's database through the token plugin
:class:`controlplane.console_proxy.DatabaseTokens`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from controlplane.config import Settings

NOVNC_DIRS = (Path("/usr/share/novnc"),)


def novnc_dir() -> Path | None:
    wanted = os.environ.get("CONFLUENCIA_NOVNC_DIR")
    for candidate in ([Path(wanted)] if wanted else list(NOVNC_DIRS)):
        if (candidate / "vnc.html").is_file():
            return candidate
    return None


def proxy_command(listen: str, web: Path | None, database_url: str) -> list[str]:
    host, _, port = listen.rpartition(":")
    cmd = [sys.executable, "-m", "websockify", "--token-plugin", "controlplane.console_proxy.DatabaseTokens",
           "--token-source", database_url]
    if web is not None:
        cmd += ["--web", str(web)]
    return [*cmd, f"{host or '127.0.0.1'}:{port}"]


@click.command("console-proxy")
@click.option("--listen", default=None, help="HOST:PORT to listen on (default: the host and port of "
                                              "CONFLUENCIA_CONSOLE_URL)")
@click.option("--web", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="noVNC directory to serve (default: CONFLUENCIA_NOVNC_DIR or /usr/share/novnc)")
def console_proxy(listen: str | None, web: Path | None) -> None:
    """Run the console proxy (websockify with our token plugin) / proxy de consolas."""
    settings = Settings.from_env()
    if listen is None:
        listen = settings.console_url.split("://", 1)[-1].split("/", 1)[0]
    web = web or novnc_dir()
    if web is None:
        click.echo("console-proxy: no noVNC page found (install Debian's novnc or pass --web); "
                   "WebSocket connections are still proxied", err=True)
    cmd = proxy_command(listen, web, settings.database_url)
    os.execv(cmd[0], cmd)
