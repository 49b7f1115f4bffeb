"""Layer 4, wiring: the websockify token plugin of the console proxy (``confluencia console-proxy``).

websockify calls :meth:`DatabaseTokens.lookup` with the ``token`` of each WebSocket connection; the plugin
spends it in our database (:func:`controlplane.services.consoles.consume`) and answers the guest's VNC address,
or None (websockify then refuses the handshake). websockify serves each connection in a child process, so the
application (and its database connections) is made once per process, never shared across a fork.
"""

from __future__ import annotations

import logging
import os
import threading

from flask import Flask

from controlplane.app import create_core_app
from controlplane.config import Settings
from controlplane.services import consoles

log = logging.getLogger("confluencia.console")


class DatabaseTokens:
    """``--token-plugin controlplane.console_proxy.DatabaseTokens --token-source <DATABASE_URL>``."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._app: tuple[int, Flask] | None = None
        self._lock = threading.Lock()

    def _application(self) -> Flask:
        with self._lock:
            if self._app is None or self._app[0] != os.getpid():  # first use, or a child after fork
                settings = Settings.from_env(database_url=self.source or Settings.from_env().database_url,
                                             embedded_worker=False)
                self._app = (os.getpid(), create_core_app(settings))
            return self._app[1]

    def lookup(self, token: str) -> tuple[str, int] | None:
        if not token or len(token) > 200:
            return None
        try:
            with self._application().app_context():
                target = consoles.consume(token)
        except Exception:  # never let a database problem open a console: refuse, and say why in the log
            log.exception("console token lookup failed")
            return None
        if target is None:
            log.warning("console token refused (unknown, used or expired)")
        return target
