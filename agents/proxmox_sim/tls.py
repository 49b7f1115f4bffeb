"""A throw-away self-signed certificate for the simulator (generated with the ``openssl`` binary)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def make_self_signed(directory: Path, hostname: str = "localhost") -> tuple[Path, Path]:
    """Write ``cert.pem`` and ``key.pem`` into ``directory``; the certificate is its own CA bundle."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("the Proxmox simulator needs the openssl binary to make its certificate")
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "7",
            "-subj",
            f"/CN={hostname}",
            "-addext",
            f"subjectAltName=DNS:{hostname},DNS:localhost,IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    key.chmod(0o600)
    return cert, key
