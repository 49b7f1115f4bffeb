"""The screens of simulated guests: a small RFB 3.8 (VNC) server per running simulated guest.

A simulated guest has no framebuffer, yet the console path (API token -> websockify -> VNC) must be real on
the demo. :func:`screen_for` opens, in the calling process, a listener on 127.0.0.1 that speaks enough RFB for
noVNC and other viewers: version 3.8, security type None, ServerInit with the guest's name, raw-encoded
framebuffer updates of a plain screen, and it ignores key, pointer and clipboard events (RFC 6143). Each
screen lives until :func:`close_screen` (the driver calls it when the domain stops or goes away).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading

WIDTH, HEIGHT = 640, 400
BACKGROUND = (0x1E, 0x3A, 0x5F)  # navy, with a lighter band where a boot screen would print
BAND = (0x3C, 0x6E, 0xA8)
_screens: dict[str, Screen] = {}
_lock = threading.Lock()


def _recv(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("viewer went away")
        data += chunk
    return data


class Screen:
    """One listener; every viewer gets its own thread."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = int(self.sock.getsockname()[1])
        self.closed = False
        threading.Thread(target=self._accept, name=f"sim-vnc-{name}", daemon=True).start()

    def close(self) -> None:
        self.closed = True
        with contextlib.suppress(OSError):
            self.sock.close()

    def _accept(self) -> None:
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError, ConnectionError, struct.error):
            conn.settimeout(300)
            conn.sendall(b"RFB 003.008\n")
            _recv(conn, 12)  # the viewer's version
            conn.sendall(bytes([1, 1]))  # one security type: None
            _recv(conn, 1)
            conn.sendall(struct.pack(">I", 0))  # SecurityResult OK
            _recv(conn, 1)  # ClientInit (shared flag)
            fmt = [32, 24, 0, 1, 255, 255, 255, 16, 8, 0]  # bpp, depth, big-endian, true colour, maxes, shifts
            name = f"Confluencia (simulated) {self.name}".encode()
            conn.sendall(struct.pack(">HHBBBBHHHBBB3x", WIDTH, HEIGHT, *fmt) + struct.pack(">I", len(name)) + name)
            self._messages(conn, fmt)

    def _messages(self, conn: socket.socket, fmt: list[int]) -> None:
        while not self.closed:
            kind = _recv(conn, 1)[0]
            if kind == 0:  # SetPixelFormat
                body = _recv(conn, 19)
                fmt[:] = list(struct.unpack(">BBBBHHHBBB", body[3:16]))
            elif kind == 2:  # SetEncodings
                count = struct.unpack(">xH", _recv(conn, 3))[0]
                _recv(conn, 4 * count)
            elif kind == 3:  # FramebufferUpdateRequest
                _recv(conn, 9)
                conn.sendall(self._frame(fmt))
            elif kind == 4:  # KeyEvent
                _recv(conn, 7)
            elif kind == 5:  # PointerEvent
                _recv(conn, 5)
            elif kind == 6:  # ClientCutText
                length = struct.unpack(">3xI", _recv(conn, 7))[0]
                _recv(conn, length)
            else:
                return

    @staticmethod
    def _frame(fmt: list[int]) -> bytes:
        bpp, _depth, big, _true, rmax, gmax, bmax, rs, gs, bs = fmt
        width = max(bpp // 8, 1)

        def pixel(rgb: tuple[int, int, int]) -> bytes:
            r, g, b = (c * m // 255 for c, m in zip(rgb, (rmax, gmax, bmax), strict=True))
            return ((r << rs) | (g << gs) | (b << bs)).to_bytes(width, "big" if big else "little")

        row_bg, row_band = pixel(BACKGROUND) * WIDTH, pixel(BAND) * WIDTH
        rows = b"".join(row_band if HEIGHT // 3 <= y < HEIGHT // 3 + 24 else row_bg for y in range(HEIGHT))
        return struct.pack(">BxHHHHHi", 0, 1, 0, 0, WIDTH, HEIGHT, 0) + rows  # one raw rectangle


def screen_for(vm_id: str, name: str) -> Screen:
    """The screen of ``vm_id`` in this process, opened on first use."""
    with _lock:
        screen = _screens.get(vm_id)
        if screen is None or screen.closed:
            screen = _screens[vm_id] = Screen(name)
        return screen


def close_screen(vm_id: str) -> None:
    with _lock:
        screen = _screens.pop(vm_id, None)
    if screen is not None:
        screen.close()
