"""Secret driver options encrypted at rest (Fernet; MultiFernet for key rotation).

A host's ``driver_options`` is a JSON object of strings. The values of *secret* options (``password``,
``secret``, ``token_secret`` and every name ending in ``_secret`` or ``_password``) are stored as
``enc:fernet:<token>``; the other options stay readable. Services seal what they write
(:func:`seal_options`); only the code that builds a driver opens them again (:func:`reveal_options`, called
from :mod:`controlplane.core.drivers`). A value stored before encryption existed has no prefix: it keeps
working as it is, and ``confluencia secrets rotate`` encrypts it.

Where the keys come from (first key = primary: it encrypts; the others only decrypt, during a rotation):

- ``CONFLUENCIA_DATA_KEY``: one or more Fernet keys, separated by commas or spaces;
- ``CONFLUENCIA_DATA_KEY_FILE``: a file with one key per line (blank lines and ``#`` comments allowed);
- neither, with a SQLite database file (the demo): ``confluencia-data.key`` next to that file, created
  with mode 0600 the first time a secret is written;
- neither, otherwise (production): no key. Writing a secret option is refused (503) and an encrypted value
  cannot be read; values still in plaintext keep working.

No key, ciphertext or plaintext value is ever logged or put in an error message: errors name the host and
the option only.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy.engine import make_url

from controlplane.config import Settings, settings
from controlplane.errors import Msg, ProblemError

log = logging.getLogger("confluencia.secrets")

PREFIX = "enc:fernet:"
SECRET_NAMES = frozenset({"password", "secret", "token_secret"})
SECRET_SUFFIXES = ("_secret", "_password")
DEMO_KEY_NAME = "confluencia-data.key"
_KEY_SPLIT = re.compile(r"[\s,]+")
_warned_modes: set[str] = set()


class DataKeyError(ProblemError):
    """The data key is missing, malformed or does not open a stored value (503: an operator must act)."""

    slug = "service-unavailable"


def is_secret(name: str) -> bool:
    low = name.lower()
    return low in SECRET_NAMES or low.endswith(SECRET_SUFFIXES)


def is_sealed(value: object) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


@dataclass(frozen=True)
class KeyRing:
    """The configured keys, newest (primary) first. ``repr()`` names the source only."""

    source: str
    keys: tuple[bytes, ...] = field(repr=False)

    @property
    def fernet(self) -> MultiFernet:
        return _multi(self.keys)

    @property
    def primary(self) -> Fernet:
        return _single(self.keys[0])

    @property
    def primary_id(self) -> str:
        """A fingerprint of the primary key for audit entries and `secrets status` (not the key)."""
        return key_id(self.keys[0])


def key_id(key: bytes) -> str:
    return hashlib.sha256(b"confluencia-data-key\0" + key).hexdigest()[:12]


@lru_cache(maxsize=16)
def _single(key: bytes) -> Fernet:
    return Fernet(key)


@lru_cache(maxsize=16)
def _multi(keys: tuple[bytes, ...]) -> MultiFernet:
    return MultiFernet([_single(k) for k in keys])


def _parse(text: str, source: str) -> tuple[bytes, ...]:
    lines = (line.split("#", 1)[0] for line in text.splitlines())
    keys = tuple(k.encode() for line in lines for k in _KEY_SPLIT.split(line.strip()) if k)
    if not keys:
        raise DataKeyError(Msg(f"{source} holds no key.", f"{source} no contiene ninguna clave."))
    for n, key in enumerate(keys, 1):
        try:
            Fernet(key)
        except ValueError:
            raise DataKeyError(Msg(
                f"Key {n} of {source} is not a Fernet key (32 bytes in URL-safe base64); make one with "
                "`confluencia secrets generate-key`.",
                f"La clave {n} de {source} no es una clave Fernet (32 bytes en base64 URL-safe); genere una "
                "con `confluencia secrets generate-key`.")) from None
    return keys


def _read_file(path: Path, source: str) -> tuple[bytes, ...]:
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise DataKeyError(Msg(f"Cannot read {source}: {reason}.", f"No se puede leer {source}: {reason}.")) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO) and str(path) not in _warned_modes:
        _warned_modes.add(str(path))
        log.warning("data key file %s is readable by other users; chmod 600 it", path)
    return _parse(text, source)


def demo_key_path(s: Settings, name: str = DEMO_KEY_NAME) -> Path | None:
    """Where the demo keeps a key: next to a SQLite database file (None for other databases)."""
    if not s.uses_sqlite:
        return None
    database = make_url(s.database_url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).resolve().parent / name


def _create_demo_key(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process of the demo made it first: use theirs
        return
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(Fernet.generate_key().decode() + "\n")
    log.info("created the demo data key %s", path)


def key_ring(s: Settings | None = None, *, create: bool = False) -> KeyRing | None:
    """The configured keys, or None when there is none. ``create``: make the demo key file if missing."""
    s = s or settings()
    if s.data_key and s.data_key_file:
        raise DataKeyError(Msg("Set CONFLUENCIA_DATA_KEY or CONFLUENCIA_DATA_KEY_FILE, not both.",
                               "Defina CONFLUENCIA_DATA_KEY o CONFLUENCIA_DATA_KEY_FILE, no ambas."))
    if s.data_key:
        return KeyRing("CONFLUENCIA_DATA_KEY", _parse(s.data_key, "CONFLUENCIA_DATA_KEY"))
    if s.data_key_file:
        source = f"CONFLUENCIA_DATA_KEY_FILE ({s.data_key_file})"
        return KeyRing(source, _read_file(Path(s.data_key_file), source))
    path = demo_key_path(s)
    if path is None:
        return None
    if not path.exists():
        if not create:
            return None
        _create_demo_key(path)
    source = f"the demo key file {path}"
    return KeyRing(source, _read_file(path, source))


NO_KEY = Msg("No data key is configured, so secret driver options can be neither stored nor read: set "
             "CONFLUENCIA_DATA_KEY or CONFLUENCIA_DATA_KEY_FILE on the API and on every worker.",
             "No hay clave de datos configurada: las opciones secretas de los drivers no se pueden guardar ni "
             "leer. Defina CONFLUENCIA_DATA_KEY o CONFLUENCIA_DATA_KEY_FILE en la API y en cada worker.")


def _required(s: Settings | None, create: bool) -> KeyRing:
    ring = key_ring(s, create=create)
    if ring is None:
        raise DataKeyError(NO_KEY)
    return ring


def seal_options(options: Mapping[str, str] | None, s: Settings | None = None) -> dict[str, str] | None:
    """``options`` as they are stored: secret values encrypted under the primary key. Every value given
    is plaintext from the client (even one that happens to start with the prefix)."""
    if options is None:
        return None
    out = dict(options)
    names = [k for k, v in out.items() if is_secret(k) and isinstance(v, str)]
    if names:
        ring = _required(s, create=True)
        for name in names:
            out[name] = PREFIX + ring.fernet.encrypt(out[name].encode()).decode()
    return out


def unreadable(host: str, option: str, source: str) -> DataKeyError:
    return DataKeyError(Msg(
        f"The secret option {option!r} of host {host} cannot be decrypted with the keys of {source}: the key "
        "that encrypted it is not among them (a wrong key, or an old key removed before `confluencia secrets "
        "rotate` ran).",
        f"La opción secreta {option!r} del host {host} no se puede descifrar con las claves de {source}: la "
        "clave que la cifró no está entre ellas (una clave equivocada, o una clave vieja quitada antes de "
        "ejecutar `confluencia secrets rotate`)."))


def _open(ring: KeyRing, value: str, host: str, option: str) -> str:
    try:
        return ring.fernet.decrypt(value[len(PREFIX):].encode()).decode()
    except (InvalidToken, UnicodeDecodeError):
        raise unreadable(host, option, ring.source) from None


def reveal_options(stored: Mapping[str, str] | None, host: str, s: Settings | None = None) -> dict[str, str] | None:
    """The plaintext options of host ``host`` (for building its driver only; never log or return them)."""
    if stored is None:
        return None
    out = dict(stored)
    sealed = [k for k, v in out.items() if is_secret(k) and is_sealed(v)]
    if sealed:
        ring = key_ring(s)
        if ring is None:
            raise DataKeyError(NO_KEY)
        for name in sealed:
            out[name] = _open(ring, out[name], host, name)
    return out


@dataclass(frozen=True)
class Resealed:
    options: dict[str, str] | None
    rotated: list[str]  # were encrypted: now under the primary key
    encrypted: list[str]  # were plaintext: now encrypted

    @property
    def changed(self) -> bool:
        return bool(self.rotated or self.encrypted)


def reseal_options(stored: Mapping[str, str] | None, host: str, ring: KeyRing) -> Resealed:
    """Every secret value of ``stored`` under the primary key (MultiFernet.rotate keeps the timestamp)."""
    if not stored:
        return Resealed(dict(stored) if stored is not None else None, [], [])
    out, rotated, encrypted = dict(stored), [], []
    for name, value in stored.items():
        if not is_secret(name):
            continue
        if is_sealed(value):
            try:
                token = ring.fernet.rotate(value[len(PREFIX):].encode())
            except InvalidToken:
                raise unreadable(host, name, ring.source) from None
            out[name] = PREFIX + token.decode()
            rotated.append(name)
        elif isinstance(value, str):
            out[name] = PREFIX + ring.fernet.encrypt(value.encode()).decode()
            encrypted.append(name)
    return Resealed(out, sorted(rotated), sorted(encrypted))


def under_primary(value: str, ring: KeyRing) -> bool | None:
    """True when the primary key opens ``value``, False when only an older key does, None when none does."""
    token = value[len(PREFIX):].encode()
    try:
        ring.primary.decrypt(token)
        return True
    except InvalidToken:
        pass
    try:
        ring.fernet.decrypt(token)
        return False
    except InvalidToken:
        return None
