"""Host secrets at rest (issue 12), without a database: which options are secret, sealing and opening,
where the keys come from, the demo key file, and errors that name the problem (never a value)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from controlplane.config import Settings
from controlplane.core.secrets import (
    PREFIX,
    DataKeyError,
    is_secret,
    key_ring,
    reseal_options,
    reveal_options,
    seal_options,
    under_primary,
)

K1, K2 = Fernet.generate_key().decode(), Fernet.generate_key().decode()
PG = "postgresql+psycopg://u@db/confluencia"
OPTIONS = {"token_id": "confluencia@pve!ctl", "token_secret": "s3cr3t-token", "password": "hunter2",
           "ssh_password": "ssh-pw-4711", "api_secret": "api-secret-0815", "verify_ssl": "false"}


def keyed(keys: str) -> Settings:
    return Settings(database_url=PG, data_key=keys)


def test_secret_option_names() -> None:
    assert [n for n in OPTIONS if is_secret(n)] == ["token_secret", "password", "ssh_password", "api_secret"]
    assert is_secret("Token_Secret") and not is_secret("secretary") and not is_secret("password_hint")


def test_sealed_options_hide_every_secret_and_open_again() -> None:
    sealed = seal_options(OPTIONS, keyed(K1))
    assert sealed is not None and sealed.keys() == OPTIONS.keys()
    for name, value in OPTIONS.items():
        if is_secret(name):
            assert sealed[name].startswith(PREFIX) and value not in sealed[name]
        else:
            assert sealed[name] == value
    assert reveal_options(sealed, "pve1", keyed(K1)) == OPTIONS
    assert seal_options(OPTIONS, keyed(K1)) != sealed  # a fresh IV every time


def test_plaintext_values_keep_working_and_reseal_encrypts_them() -> None:
    assert reveal_options(OPTIONS, "old", Settings(database_url=PG)) == OPTIONS  # no key needed for plaintext
    ring = key_ring(keyed(K1))
    assert ring is not None
    out = reseal_options(OPTIONS, "old", ring)
    assert out.encrypted == ["api_secret", "password", "ssh_password", "token_secret"] and out.rotated == []
    assert reveal_options(out.options, "old", keyed(K1)) == OPTIONS
    odd = {"template": PREFIX + "not-ours"}  # only secret options are ever sealed or opened
    assert reveal_options(odd, "h", keyed(K1)) == odd and not reseal_options(odd, "h", ring).changed


def test_rotation_moves_every_value_to_the_new_primary_key() -> None:
    sealed = seal_options(OPTIONS, keyed(K1))
    both = key_ring(keyed(f"{K2}, {K1}"))
    assert both is not None and not under_primary(sealed["token_secret"], both)  # type: ignore[index]
    out = reseal_options(sealed, "pve1", both)
    assert out.rotated == ["api_secret", "password", "ssh_password", "token_secret"] and out.encrypted == []
    assert all(under_primary(out.options[n], both) for n in out.rotated)  # type: ignore[index]
    assert reveal_options(out.options, "pve1", keyed(K2)) == OPTIONS  # the old key is no longer needed
    with pytest.raises(DataKeyError):
        reveal_options(out.options, "pve1", keyed(K1))


def test_a_wrong_key_names_host_and_option_but_no_value() -> None:
    sealed = seal_options({"token_secret": "s3cr3t-token"}, keyed(K1))
    with pytest.raises(DataKeyError) as err:
        reveal_options(sealed, "pve1", keyed(K2))
    text = f"{err.value.detail.en} {err.value.detail.es}"
    assert "'token_secret'" in text and "pve1" in text and "s3cr3t" not in text and K1 not in text
    assert "no se puede descifrar" in err.value.detail.es and err.value.status == 503


def test_without_a_key_in_production_secrets_are_refused() -> None:
    prod = Settings(database_url=PG)
    assert key_ring(prod) is None
    with pytest.raises(DataKeyError, match="CONFLUENCIA_DATA_KEY or CONFLUENCIA_DATA_KEY_FILE"):
        seal_options({"token_secret": "x"}, prod)
    assert seal_options({"migrate_uri": "tcp://10.0.0.5"}, prod) == {"migrate_uri": "tcp://10.0.0.5"}
    with pytest.raises(DataKeyError, match="No data key"):
        reveal_options(seal_options({"password": "x"}, keyed(K1)), "h", prod)


def test_key_sources_and_their_errors(tmp_path: Path) -> None:
    key_file = tmp_path / "keys"
    key_file.write_text(f"# newest first\n{K2}\n\n{K1}  # the old one\n")
    ring = key_ring(Settings(database_url=PG, data_key_file=str(key_file)))
    assert ring is not None and ring.keys == (K2.encode(), K1.encode()) and K2 not in repr(ring)
    with pytest.raises(DataKeyError, match="not both"):
        key_ring(Settings(database_url=PG, data_key=K1, data_key_file=str(key_file)))
    with pytest.raises(DataKeyError, match=r"Key 2 of CONFLUENCIA_DATA_KEY is not a Fernet key"):
        key_ring(keyed(f"{K1},not-a-key"))
    with pytest.raises(DataKeyError, match="Cannot read CONFLUENCIA_DATA_KEY_FILE"):
        key_ring(Settings(database_url=PG, data_key_file=str(tmp_path / "missing")))
    assert K1 not in repr(keyed(K1))  # Settings never shows the key


def test_the_demo_keeps_its_key_next_to_its_sqlite_database(tmp_path: Path) -> None:
    demo = Settings(database_url=f"sqlite:///{tmp_path}/var/confluencia.sqlite3")
    assert key_ring(demo) is None  # not created by reading
    sealed = seal_options({"token_secret": "abc"}, demo)
    path = tmp_path / "var" / "confluencia-data.key"
    assert path.exists() and stat.S_IMODE(path.stat().st_mode) == 0o600
    first = path.read_text()
    assert reveal_options(sealed, "h", demo) == {"token_secret": "abc"}  # the next start reads the same key
    seal_options({"password": "x"}, demo)
    assert path.read_text() == first
