"""HTTPS front of the simulator: ``/api2/json``, ``PVEAPIToken`` auth, ``{"data": ...}`` and 0/1 booleans."""

from __future__ import annotations

import hmac
import json
import re
import ssl
import sys
import tempfile
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from agents.proxmox_sim import params as P
from agents.proxmox_sim.model import ApiError
from agents.proxmox_sim.operations import SimCluster
from agents.proxmox_sim.tls import make_self_signed

Handler = Callable[[SimCluster, dict[str, str], dict[str, Any], str], Any]
_N, _V, _U = r"(?P<node>[^/]+)", r"(?P<vmid>[^/]+)", r"(?P<upid>[^/]+)"
_Q, _ST = f"/nodes/{_N}/qemu/{_V}", f"/nodes/{_N}/storage/(?P<storage>[^/]+)"
_FW, _SET = f"/nodes/{_N}/qemu/{_V}/firewall", r"(?P<name>[^/]+)"


def _fw(m: dict[str, str]) -> tuple[str, int]:
    return m["node"], P.vmid(m["vmid"])


def _pos(m: dict[str, str]) -> int:
    return int(P.parse({"pos": "i"}, {"pos": m["pos"]})["pos"])

ROUTES: list[tuple[str, str, P.Spec, Handler]] = [
    ("GET", "/version", P.NONE, lambda c, m, p, u: c.version()),
    ("GET", "/nodes", P.NONE, lambda c, m, p, u: c.nodes_index()),
    ("GET", "/cluster/resources", P.RESOURCES, lambda c, m, p, u: c.resources(p.get("type"))),
    ("GET", "/cluster/nextid", {"vmid": "v"}, lambda c, m, p, u: c.nextid(p.get("vmid"), u)),
    ("GET", f"/nodes/{_N}/status", P.NONE, lambda c, m, p, u: c.node_status(m["node"])),
    ("GET", f"/nodes/{_N}/qemu", {"full": "b"}, lambda c, m, p, u: c.qemu_index(m["node"])),
    ("POST", f"/nodes/{_N}/qemu", P.CREATE, lambda c, m, p, u: c.create_vm(m["node"], p, u)),
    ("DELETE", _Q, P.DESTROY, lambda c, m, p, u: c.destroy_vm(m["node"], P.vmid(m["vmid"]), p, u)),
    ("POST", f"{_Q}/clone", P.CLONE, lambda c, m, p, u: c.clone_vm(m["node"], P.vmid(m["vmid"]), p, u)),
    (
        "GET",
        f"{_Q}/config",
        P.GET_CONFIG,
        lambda c, m, p, u: c.config(m["node"], P.vmid(m["vmid"]), bool(p.get("current"))),
    ),
    (
        "POST",
        f"{_Q}/config",
        P.SET_CONFIG_ASYNC,
        lambda c, m, p, u: c.set_config(m["node"], P.vmid(m["vmid"]), p, u, sync=False),
    ),
    (
        "PUT",
        f"{_Q}/config",
        P.SET_CONFIG,
        lambda c, m, p, u: c.set_config(m["node"], P.vmid(m["vmid"]), p, u, sync=True),
    ),
    ("GET", f"{_Q}/pending", P.NONE, lambda c, m, p, u: c.pending(m["node"], P.vmid(m["vmid"]))),
    ("PUT", f"{_Q}/resize", P.RESIZE, lambda c, m, p, u: c.resize(m["node"], P.vmid(m["vmid"]), p, u)),
    ("POST", f"{_Q}/move_disk", P.MOVE_DISK, lambda c, m, p, u: c.move_disk(m["node"], P.vmid(m["vmid"]), p, u)),
    ("PUT", f"{_Q}/unlink", P.UNLINK, lambda c, m, p, u: c.unlink(m["node"], P.vmid(m["vmid"]), p)),
    ("POST", f"{_Q}/vncproxy", P.VNCPROXY, lambda c, m, p, u: c.vncproxy(m["node"], P.vmid(m["vmid"]), p, u)),
    ("GET", f"/nodes/{_N}/storage", P.STORAGE_INDEX, lambda c, m, p, u: c.storage_index(m["node"], p)),
    (
        "GET",
        f"{_ST}/content",
        P.STORAGE_CONTENT,
        lambda c, m, p, u: c.storage_content(m["node"], m["storage"], p),
    ),
    (
        "POST",
        f"{_ST}/download-url",
        P.DOWNLOAD_URL,
        lambda c, m, p, u: c.download_url(m["node"], m["storage"], p, u),
    ),
    (
        "GET",
        f"{_Q}/migrate",
        {"target": "s"},
        lambda c, m, p, u: c.migrate_precheck(m["node"], P.vmid(m["vmid"]), p.get("target")),
    ),
    ("POST", f"{_Q}/migrate", P.MIGRATE, lambda c, m, p, u: c.migrate_vm(m["node"], P.vmid(m["vmid"]), p, u)),
    (
        "GET",
        f"{_Q}/status/current",
        P.NONE,
        lambda c, m, p, u: c.status_current(m["node"], P.vmid(m["vmid"])),
    ),
    (
        "POST",
        f"{_Q}/status/start",
        P.START,
        lambda c, m, p, u: c.start_vm(m["node"], P.vmid(m["vmid"]), p, u),
    ),
    (
        "POST",
        f"{_Q}/status/shutdown",
        P.SHUTDOWN,
        lambda c, m, p, u: c.shutdown_vm(m["node"], P.vmid(m["vmid"]), p, u),
    ),
    ("POST", f"{_Q}/status/stop", P.STOP, lambda c, m, p, u: c.stop_vm(m["node"], P.vmid(m["vmid"]), p, u)),
    ("GET", f"/nodes/{_N}/tasks", P.TASKS, lambda c, m, p, u: c.tasks_index(m["node"], p)),
    (
        "GET",
        f"/nodes/{_N}/tasks/{_U}/status",
        P.NONE,
        lambda c, m, p, u: c.task(m["node"], m["upid"]).status_dict(),
    ),
    (
        "GET",
        f"/nodes/{_N}/tasks/{_U}/log",
        P.TASK_LOG,
        lambda c, m, p, u: c.task_log(m["node"], m["upid"], p.get("start", 0), p.get("limit", 50)),
    ),
    ("DELETE", f"/nodes/{_N}/tasks/{_U}", P.NONE, lambda c, m, p, u: c.stop_task(m["node"], m["upid"])),
    ("GET", f"/nodes/{_N}/network", P.NETWORK, lambda c, m, p, u: c.network_index(m["node"], p.get("type"))),
    ("GET", f"{_FW}/options", P.NONE, lambda c, m, p, u: c.fw_options(*_fw(m))),
    ("PUT", f"{_FW}/options", P.FW_OPTIONS, lambda c, m, p, u: c.set_fw_options(*_fw(m), p)),
    ("GET", f"{_FW}/rules", P.NONE, lambda c, m, p, u: c.fw_rules(*_fw(m))),
    ("POST", f"{_FW}/rules", P.FW_RULE, lambda c, m, p, u: c.add_fw_rule(*_fw(m), p)),
    ("GET", f"{_FW}/ipset", P.NONE, lambda c, m, p, u: c.ipset_index(*_fw(m))),
    ("POST", f"{_FW}/ipset", P.IPSET_CREATE, lambda c, m, p, u: c.create_ipset(*_fw(m), p)),
    # Real PVE endpoints the schema extract does not list (pve-firewall's Rules.pm and IPSet.pm):
    (
        "DELETE",
        f"{_FW}/rules/(?P<pos>[^/]+)",
        P.DIGEST,
        lambda c, m, p, u: c.delete_fw_rule(*_fw(m), _pos(m), p),
    ),
    ("GET", f"{_FW}/ipset/{_SET}", P.NONE, lambda c, m, p, u: c.ipset_entries(*_fw(m), m["name"])),
    ("POST", f"{_FW}/ipset/{_SET}", P.IPSET_ADD, lambda c, m, p, u: c.add_ipset_entry(*_fw(m), m["name"], p)),
    ("DELETE", f"{_FW}/ipset/{_SET}", P.IPSET_DELETE, lambda c, m, p, u: c.delete_ipset(*_fw(m), m["name"], p)),
    (
        "DELETE",
        f"{_FW}/ipset/{_SET}/(?P<cidr>[^/]+)",
        P.DIGEST,
        lambda c, m, p, u: c.delete_ipset_entry(*_fw(m), m["name"], m["cidr"], p),
    ),
]
# Real PVE endpoints the simulator offers that ../shared/reference/pve-api-subset.json does not list.
NOT_IN_EXTRACT = {
    ("DELETE", "/nodes/{node}/qemu/{vmid}/firewall/rules/{pos}"),
    ("GET", "/nodes/{node}/qemu/{vmid}/firewall/ipset/{name}"),
    ("POST", "/nodes/{node}/qemu/{vmid}/firewall/ipset/{name}"),
    ("DELETE", "/nodes/{node}/qemu/{vmid}/firewall/ipset/{name}"),
    ("DELETE", "/nodes/{node}/qemu/{vmid}/firewall/ipset/{name}/{cidr}"),
}
_COMPILED = [(meth, re.compile(f"^/api2/json{pat}/?$"), spec, fn) for meth, pat, spec, fn in ROUTES]
_TOKEN = re.compile(r"^PVEAPIToken=(?P<id>[^!=\s]+@[^!=\s]+![^=\s]+)=(?P<secret>\S+)$")


def wire(value: Any) -> Any:
    """Booleans as 0/1, like the Perl API server."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, dict):
        return {k: wire(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [wire(v) for v in value]
    return value


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "pve-api-daemon/3.0"
    disable_nagle_algorithm = True  # headers and body leave in two writes: no 40 ms delayed-ACK stall each
    cluster: SimCluster  # set on the subclass made by SimServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet: never logs headers
        return

    def _reply(self, status: int, reason: str, body: dict[str, Any]) -> None:
        payload = json.dumps(wire(body)).encode()
        reason = " ".join(reason.split()).encode("latin-1", "replace").decode("latin-1")
        self.send_response(status, reason)
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "max-age=0")
        self.end_headers()
        self.wfile.write(payload)

    def _user(self) -> str:
        match = _TOKEN.match(self.headers.get("Authorization", ""))
        if match is None:
            raise ApiError(401, "No ticket")
        secret = self.cluster.tokens.get(match["id"])
        if secret is None or not hmac.compare_digest(secret, match["secret"]):
            raise ApiError(401, "authentication failure")
        return match["id"]

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        try:
            url = urlsplit(self.path)
            path = url.path  # matched still encoded: a volume id in the path holds ':' and '/' as %3A, %2F
            user = self._user()
            raw = dict(parse_qsl(url.query, keep_blank_values=True))
            raw.update(parse_qsl(body, keep_blank_values=True))
            for meth, rx, spec, fn in _COMPILED:
                match = rx.match(path)
                if match and meth == method:
                    groups = {k: unquote(v) for k, v in match.groupdict().items()}
                    data = fn(self.cluster, groups, P.parse(spec, raw), user)
                    self._reply(200, "OK", {"data": data})
                    return
            raise ApiError(501, f"Method '{method} {unquote(path)}' not implemented")
        except ApiError as exc:
            body_out: dict[str, Any] = {"data": None, "message": exc.message + "\n"}
            if exc.errors:
                body_out["errors"] = exc.errors
            self._reply(exc.status, exc.message, body_out)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")


class _HTTPSServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that reject our self-signed certificate or hang up are normal; stay quiet."""
        exc = sys.exc_info()[1]
        if not isinstance(exc, ssl.SSLError | ConnectionError | TimeoutError):
            super().handle_error(request, client_address)


class SimServer:
    """One HTTPS endpoint for the whole simulated cluster (any PVE node answers for all of them)."""

    def __init__(
        self, cluster: SimCluster, host: str = "127.0.0.1", port: int = 0, cert_dir: Path | None = None
    ) -> None:
        self.cluster = cluster
        self._tmp = None if cert_dir else tempfile.TemporaryDirectory(prefix="pve-sim-")
        self.cert_path, key_path = make_self_signed(cert_dir or Path(self._tmp.name))  # type: ignore[union-attr]
        handler = type("Handler", (_Handler,), {"cluster": cluster})
        self.httpd = _HTTPSServer((host, port), handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert_path, key_path)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True, do_handshake_on_connect=False)
        self.host, self.port = host, self.httpd.server_address[1]
        cluster.vnc_host = host
        cluster.vnc.cert = self.cert_path.read_text()
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"https://{self.address}/api2/json"

    def start(self) -> SimServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="pve-sim", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.cluster.vnc.close_all()
        self.cluster.engine.release_hung()
        if self._tmp is not None:
            self._tmp.cleanup()
