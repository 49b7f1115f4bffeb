"""SSH public keys as municipalities give them: one OpenSSH line each, checked and fingerprinted like
``ssh-keygen -l`` (SHA256), and new Ed25519 keypairs for those who have none (cryptography)."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from controlplane.errors import Msg, ValidationFailed

ALLOWED_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa",
                 "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com")
MIN_RSA_BITS = 2048
MAX_KEYS = 16


@dataclass(frozen=True)
class SSHKey:
    line: str  # "type base64 [comment]", normalised to single spaces
    key_type: str
    fingerprint: str  # SHA256:<base64 without padding>


def _bad(field: str, en: str, es: str) -> ValidationFailed:
    return ValidationFailed(Msg(en, es), errors={field: [en]})


def parse_key(line: str, field: str = "public_key") -> SSHKey:
    parts = line.strip().split(None, 2)
    if len(parts) < 2 or "\n" in line.strip():
        raise _bad(field, "An SSH public key is one line: type, base64 key, optional comment.",
                   "Una clave pública SSH es una línea: tipo, clave en base64 y un comentario opcional.")
    key_type, blob = parts[0], parts[1]
    if key_type not in ALLOWED_TYPES:
        raise _bad(field, f"Key type {key_type[:40]!r} is not accepted; use ssh-ed25519, ecdsa or ssh-rsa.",
                   f"El tipo de clave {key_type[:40]!r} no se acepta; use ssh-ed25519, ecdsa o ssh-rsa.")
    try:
        raw = base64.b64decode(blob, validate=True)
        if not key_type.startswith("sk-"):  # security-key types: cryptography cannot load them; the blob is checked
            key = serialization.load_ssh_public_key(f"{key_type} {blob}".encode())
            if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
                raise _bad(field, f"RSA keys need at least {MIN_RSA_BITS} bits.",
                           f"Las claves RSA necesitan al menos {MIN_RSA_BITS} bits.")
        if raw[4:4 + len(key_type)].decode(errors="replace") != key_type:
            raise ValueError("type in the blob differs")
    except (ValueError, TypeError, UnicodeError):
        raise _bad(field, "The SSH public key is malformed (its base64 part does not decode to a key of that type).",
                   "La clave pública SSH está mal formada (su parte base64 no es una clave de ese tipo).") from None
    fingerprint = "SHA256:" + base64.b64encode(hashlib.sha256(raw).digest()).decode().rstrip("=")
    return SSHKey(" ".join(parts), key_type, fingerprint)


def parse_keys(lines: list[str], field: str = "ssh_keys") -> list[SSHKey]:
    if len(lines) > MAX_KEYS:
        raise _bad(field, f"At most {MAX_KEYS} SSH keys.", f"Como máximo {MAX_KEYS} claves SSH.")
    return [parse_key(line, field) for line in lines]


def generate(comment: str) -> tuple[SSHKey, str]:
    """A new Ed25519 keypair: the public key and the private key in OpenSSH format (shown once)."""
    private = ed25519.Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
    public = private.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                               serialization.PublicFormat.OpenSSH).decode()
    return parse_key(f"{public} {comment}"), pem
