"""Hosts that do not answer, made of real sockets on 127.0.0.1 (used by the libvirt and Proxmox isolation tests).

- :class:`BlackHole` accepts every TCP connection and never sends a byte (a wedged daemon or middlebox).
  :meth:`BlackHole.forward_to` makes it a plain relay to a live server (the host came back): the connections
  it holds are closed first (their peers see EOF), new ones are relayed to a TCP address or a Unix socket.
- :class:`FullBacklog` listens with a full backlog and never accepts: connects are never completed (SYNs
  are dropped and retried, like a host that fell off the network).

On these machines an unroutable address is no black hole: outgoing TCP is intercepted by a proxy that
accepts it (``qemu+tcp://10.255.255.1`` gets an HTTP reply), so the tests use these instead.
"""

from __future__ import annotations

import contextlib
import socket
import threading

Target = tuple[str, int] | str  # (host, port) or the path of a Unix socket


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
        dst.shutdown(socket.SHUT_WR)
    except OSError:  # the other direction closed both
        pass
    finally:
        _shut(src)
        _shut(dst)


class BlackHole:
    """A listener that accepts and stays silent until :meth:`forward_to`."""

    def __init__(self) -> None:
        self._srv = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.port: int = self._srv.getsockname()[1]
        self.accepted = 0  # connections accepted so far (held or relayed)
        self._lock = threading.Lock()
        self._held: list[socket.socket] = []
        self._target: Target | None = None
        self._thread = threading.Thread(target=self._serve, name=f"black-hole-{self.port}", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._srv.accept()
            except OSError:  # closed
                return
            with self._lock:
                self.accepted += 1
                self._held.append(conn)
                target = self._target
            if target is not None:
                threading.Thread(target=self._relay, args=(conn, target), daemon=True).start()

    def _relay(self, conn: socket.socket, target: Target) -> None:
        family = socket.AF_UNIX if isinstance(target, str) else socket.AF_INET
        upstream = socket.socket(family, socket.SOCK_STREAM)
        try:
            upstream.connect(target)
        except OSError:
            _shut(upstream)
            _shut(conn)
            return
        with self._lock:
            self._held.append(upstream)
        threading.Thread(target=_pump, args=(upstream, conn), daemon=True).start()
        _pump(conn, upstream)

    def forward_to(self, target: Target) -> None:
        """Drop the connections held so far; relay the next ones to ``target``."""
        with self._lock:
            self._target = target
            held, self._held = self._held, []
        for sock in held:
            _shut(sock)

    def close(self) -> None:
        _shut(self._srv)  # shutdown wakes the accept() of the serving thread
        self._thread.join(5)
        with self._lock:
            held, self._held = self._held, []
        for sock in held:
            _shut(sock)


class FullBacklog:
    """A listener whose accept queue is full: new connections never complete."""

    def __init__(self) -> None:
        self._srv = socket.create_server(("127.0.0.1", 0), backlog=0)
        self.port: int = self._srv.getsockname()[1]
        self._fillers: list[socket.socket] = []
        for _ in range(16):
            sock = socket.socket()
            sock.settimeout(0.5)
            try:
                sock.connect(("127.0.0.1", self.port))
            except TimeoutError:  # the queue is full: this connect is not answered any more
                sock.close()
                return
            self._fillers.append(sock)
        raise RuntimeError("could not fill the listen backlog")

    def close(self) -> None:
        for sock in self._fillers:
            _shut(sock)
        _shut(self._srv)
