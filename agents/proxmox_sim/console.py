"""``POST /nodes/{node}/qemu/{vmid}/vncproxy`` as PVE 9.1.3 does it without ``websocket``: a ``vncproxy`` worker
listens on the node's next free port in 5900-5999, waits 10 s for ONE connection (then closes the listener)
and runs ``qm vncproxy`` on it, which speaks to the guest's VNC server (``RFB 003.008\\n`` first). The answer
carries the port, a ``PVEVNC`` ticket prefixed with a generated 8-character VNC password (the FIXME "hack"
of qemu-server) and that password. A stopped guest still gets a listener; its connection is closed at once
("Failed to run vncproxy."), as ``qm vncproxy`` fails.

Since qemu-server 9.1.7 the non-websocket listener speaks TLS first (the node's pveproxy certificate); the
simulated version predates that. The simulator stops after the RFB greeting (no authentication)."""

from __future__ import annotations

import base64
import contextlib
import secrets
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

from agents.proxmox_sim.model import ApiError, TaskFailed

if TYPE_CHECKING:
    from agents.proxmox_sim.cluster import Cluster

PORTS = range(5900, 6000)  # PVE::Tools::next_vnc_port
GREETING = b"RFB 003.008\n"


def vnc_password() -> str:
    """``PVE::Ticket::generate_vnc_password(8)``: printable ASCII from '!' to '~'."""
    return "".join(chr(33 + secrets.randbelow(94)) for _ in range(8))


class VncProxies:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.cert = ""  # the PEM the answer carries (SimServer sets its own certificate)
        self._open: set[socket.socket] = set()  # listeners and sessions, closed by close_all()
        self._guard = threading.Lock()

    def _track(self, sock: socket.socket, keep: bool) -> None:
        with self._guard:
            (self._open.add if keep else self._open.discard)(sock)

    def close_all(self) -> None:
        """End every proxy at once (the simulator stops, or a test cleans up)."""
        with self._guard:
            socks, self._open = list(self._open), set()
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _listen(self, host: str) -> socket.socket:
        for port in PORTS:
            sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # IO::Socket::IP ReuseAddr => 1
            try:
                sock.bind((host, port))
                sock.listen(1)
                return sock
            except OSError:
                sock.close()
        raise ApiError(500, f"unable to find free port ({PORTS[0]}-{PORTS[-1]})")

    def _session(self, conn: socket.socket, node: str, vmid: int, timeout: float, outcome: dict[str, str]) -> None:
        """``qm vncproxy`` on the accepted connection: the guest's VNC server greets, the session lasts until
        the client leaves or stays silent for the timeout."""
        with self.cluster.lock:
            vm = self.cluster.vms.get(vmid)
            running = vm is not None and vm.node == node and vm.status == "running"
        if not running:
            outcome["error"] = "Failed to run vncproxy."
            return
        try:
            conn.sendall(GREETING)
            conn.settimeout(timeout)
            while conn.recv(4096):
                pass
        except OSError:
            return

    def open(self, node: str, vmid: int, user: str, *, websocket: bool) -> dict[str, Any]:
        """Start the worker (called with the cluster lock held); the port listens before the answer."""
        c = self.cluster
        sock = self._listen("127.0.0.1" if websocket else c.vnc_host)
        port = int(sock.getsockname()[1])
        password = vnc_password()
        signature = base64.b64encode(secrets.token_bytes(256)).decode()
        ticket = f"{password}:PVEVNC:{int(time.time()):08X}::{signature}"
        outcome: dict[str, str] = {}

        def effect() -> None:
            if "error" in outcome:
                raise TaskFailed(outcome["error"])

        upid = c.engine.spawn(node, "vncproxy", str(vmid), user, effect, duration=3600.0,
                              log=[f"starting vnc proxy on port {port}"])
        task = c.engine.tasks[upid]
        timeout = c.vnc_timeout_s

        def serve() -> None:
            try:
                sock.settimeout(timeout)
                try:
                    conn, _ = sock.accept()
                except OSError:
                    outcome["error"] = "connection timed out"
                    return
                finally:
                    self._track(sock, False)
                    sock.close()
                self._track(conn, True)
                with conn:
                    self._session(conn, node, vmid, timeout, outcome)
                self._track(conn, False)
            finally:
                task.release.set()

        self._track(sock, True)
        threading.Thread(target=serve, name=f"pve-vncproxy-{vmid}", daemon=True).start()
        return {"user": user, "ticket": ticket, "port": port, "upid": upid, "cert": self.cert, "password": password}
