"""Configuration from environment variables (see the README's configuration table).

``Settings.from_env()`` reads them once; the application keeps the result on its Flask app, and any code
running in an app context (API request, Celery task, CLI command) reads it with :func:`settings`.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from flask import current_app

DEFAULT_DB_PATH = Path("var") / "confluencia.sqlite3"


def _list(value: str | None, default: tuple[str, ...]) -> tuple[str, ...]:
    """A comma-separated list from the environment (unset: ``default``)."""
    if value is None:
        return default
    return tuple(v.strip() for v in value.split(",") if v.strip())


def _bool(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on", "si", "sí"}


@dataclass(frozen=True)
class Settings:
    database_url: str = f"sqlite:///{DEFAULT_DB_PATH.resolve()}"
    broker_url: str = "memory://"
    secret_key: str = field(default_factory=lambda: secrets.token_hex(32))
    bind: str = "127.0.0.1:8080"
    embedded_worker: bool = True
    worker_concurrency: int = 4
    placement_retries: int = 3
    log_level: str = "INFO"
    lease_s: float = 60.0  # an operation's lease, renewed by its worker's heartbeat; a dead worker's expires
    broker_visibility_s: float = 300.0  # Redis redelivers an unacknowledged task after this long
    plan_resume_s: float = 60.0  # how often approved/running plans whose step chain is overdue are resumed
    strict_io: bool = False  # a driver call inside an open database transaction raises (the test suite)
    nightly_cron: str = "0 2 * * *"
    nightly_tz: str = "America/Argentina/Buenos_Aires"
    maintenance_window: str = "01:00-06:00"  # local time in nightly_tz; empty = always open
    nightly_threshold: float = 0.05  # summed stdev of utilisation below which nothing is planned
    nightly_auto_approve: bool = False
    nightly_max_moves: int = 20
    nightly_max_copy_gib: float | None = None
    nightly_min_gain: float = 0.05
    health_check_s: float = 60.0
    # high availability (issue 16): a host down this long is fenced, then its VMs restart on other hosts
    ha_enabled: bool = True
    ha_grace_s: float = 120.0
    fence_timeout_s: float = 60.0  # the fencing command's deadline (then it counts as failed)
    # the SSH host agent (issue 16): facts and measured load of hosts with an "agent_ssh" address
    ssh_key_file: str | None = None  # the control plane's private key; None: no agent runs
    ssh_known_hosts: str | None = None  # the hosts' keys; an unknown or changed key is refused, never added
    host_agent_s: float = 60.0  # how often load is measured (facts: every hour); 0: never
    load_weight_cpu: float = 0.5  # weight of measured CPU busy in the balancing objective (0: off)
    load_weight_mem: float = 0.5  # weight of measured memory in use
    load_deadband: float = 0.10  # hysteresis: measured deviations from the mean within this count as none
    load_alpha: float = 0.3  # smoothing: each sample's weight in the exponentially weighted mean
    load_stale_s: float = 900.0  # measurements older than this are not used
    # abuse limits (issue 12): "N/period" strings as flask-limiter reads them, or "off"
    ratelimit_storage_url: str = "memory://"
    ratelimit_auth_failures: str = "20/minute"  # failed authentications per client address
    ratelimit_vm_creates: str = "60/minute"  # POST /v1/vms per principal
    trusted_proxies: int = 0  # reverse proxies in front of the API whose X-Forwarded-For is believed
    # the key(s) that encrypt secret driver options at rest (controlplane.core.secrets); never in repr()
    data_key: str | None = field(default=None, repr=False)
    data_key_file: str | None = None
    # the Ed25519 key that signs the audit tree's heads (controlplane.core.audit_tree); PEM, PKCS#8
    audit_key_file: str | None = None
    # usage accounting: months begin at midnight here; an optional price sheet turns usage into a showback cost
    province_tz: str = ""  # empty: the nightly job's time zone
    price_sheet: str | None = None
    # single sign-on against the province's OpenID Connect provider (controlplane.services.sso); off when unset
    oidc_issuer: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: str = field(default="", repr=False)
    oidc_audience: str = ""  # accepted "aud" of bearer JWTs; empty: the client id
    oidc_scopes: str = "openid profile email"
    oidc_username_claim: str = "preferred_username"
    oidc_groups_claim: str = "groups"
    oidc_tenant_claim: str = "municipio"  # its value is a municipality's slug
    oidc_operator_groups: tuple[str, ...] = ("confluencia-operators",)
    oidc_admin_groups: tuple[str, ...] = ("confluencia-admins",)
    # images (issue 13): where imported image files are kept, which local directories operators may import
    # from, and the control plane's address as hypervisors and browsers reach it
    image_dir: str = ""  # empty: images/ next to the SQLite database, else /var/lib/confluencia/images
    image_import_dirs: tuple[str, ...] | None = None  # None: image-imports/ next to the SQLite database
    public_url: str = ""  # empty: http://<bind>
    console_url: str = "http://127.0.0.1:6080"  # the console proxy (confluencia console-proxy)
    console_token_s: float = 30.0  # a console token is good for one connection within this many seconds
    # networks (issue 14): where municipalities' private networks are realised, and which segments they take
    tenant_physnet: str = "tenants"
    segment_range: str = "100-3999"  # VLAN ids handed to private networks, "FIRST-LAST"

    def __post_init__(self) -> None:
        first, _, last = self.segment_range.partition("-")
        if not (first.isdigit() and (last or first).isdigit() and 1 <= int(first) <= int(last or first) <= 4094):
            raise ValueError(f"CONFLUENCIA_SEGMENT_RANGE must be FIRST-LAST within 1-4094, got {self.segment_range!r}")
        if not 0 < self.lease_s < self.broker_visibility_s:
            raise ValueError(f"CONFLUENCIA_LEASE_S ({self.lease_s}) must be positive and shorter than "
                             f"CONFLUENCIA_BROKER_VISIBILITY_S ({self.broker_visibility_s})")

    @property
    def time_zone(self) -> str:
        """The province's time zone (month boundaries of usage reports)."""
        return self.province_tz or self.nightly_tz

    @property
    def uses_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def state_dir(self) -> Path | None:
        """The directory of the SQLite database (the demo's ``var/``), None on a server database."""
        if not self.uses_sqlite or ":memory:" in self.database_url:
            return None
        return Path(self.database_url.split("///", 1)[-1]).expanduser().absolute().parent

    @property
    def images_path(self) -> Path:
        if self.image_dir:
            return Path(self.image_dir)
        state = self.state_dir
        return state / "images" if state is not None else Path("/var/lib/confluencia/images")

    @property
    def import_dirs(self) -> tuple[Path, ...]:
        if self.image_import_dirs is not None:
            return tuple(Path(d) for d in self.image_import_dirs if d)
        state = self.state_dir
        return (state / "image-imports",) if state is not None else ()

    @property
    def segments(self) -> tuple[int, int]:
        first, _, last = self.segment_range.partition("-")
        return int(first), int(last or first)

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.bind}").rstrip("/")

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: object) -> Settings:
        e = dict(os.environ if env is None else env)
        broker = e.get("CELERY_BROKER_URL") or "memory://"
        values: dict[str, object] = {
            "database_url": e.get("DATABASE_URL") or cls.database_url,
            "broker_url": broker,
            "secret_key": e.get("CONFLUENCIA_SECRET_KEY") or secrets.token_hex(32),
            "bind": e.get("CONFLUENCIA_BIND") or cls.bind,
            "embedded_worker": _bool(e.get("CONFLUENCIA_EMBEDDED_WORKER"), broker.startswith("memory")),
            "worker_concurrency": int(e.get("CONFLUENCIA_WORKER_CONCURRENCY") or cls.worker_concurrency),
            "placement_retries": int(e.get("CONFLUENCIA_PLACEMENT_RETRIES") or cls.placement_retries),
            "log_level": e.get("CONFLUENCIA_LOG_LEVEL") or cls.log_level,
            "nightly_cron": e.get("CONFLUENCIA_NIGHTLY_CRON") or cls.nightly_cron,
            "nightly_tz": e.get("CONFLUENCIA_NIGHTLY_TZ") or cls.nightly_tz,
            "maintenance_window": e.get("CONFLUENCIA_MAINTENANCE_WINDOW", cls.maintenance_window),
            "nightly_threshold": float(e.get("CONFLUENCIA_NIGHTLY_THRESHOLD") or cls.nightly_threshold),
            "nightly_auto_approve": _bool(e.get("CONFLUENCIA_NIGHTLY_AUTO_APPROVE"), False),
            "nightly_max_moves": int(e.get("CONFLUENCIA_NIGHTLY_MAX_MOVES") or cls.nightly_max_moves),
            "nightly_max_copy_gib": float(e["CONFLUENCIA_NIGHTLY_MAX_COPY_GIB"])
            if e.get("CONFLUENCIA_NIGHTLY_MAX_COPY_GIB") else None,
            "nightly_min_gain": float(e.get("CONFLUENCIA_NIGHTLY_MIN_GAIN") or cls.nightly_min_gain),
            "health_check_s": float(e.get("CONFLUENCIA_HEALTH_CHECK_S") or cls.health_check_s),
            "ha_enabled": _bool(e.get("CONFLUENCIA_HA"), True),
            "ha_grace_s": float(e.get("CONFLUENCIA_HA_GRACE_S") or cls.ha_grace_s),
            "fence_timeout_s": float(e.get("CONFLUENCIA_FENCE_TIMEOUT_S") or cls.fence_timeout_s),
            "ssh_key_file": e.get("CONFLUENCIA_SSH_KEY_FILE") or None,
            "ssh_known_hosts": e.get("CONFLUENCIA_SSH_KNOWN_HOSTS") or None,
            "host_agent_s": float(e.get("CONFLUENCIA_HOST_AGENT_S") or cls.host_agent_s),
            "load_weight_cpu": float(e.get("CONFLUENCIA_LOAD_WEIGHT_CPU") or cls.load_weight_cpu),
            "load_weight_mem": float(e.get("CONFLUENCIA_LOAD_WEIGHT_MEM") or cls.load_weight_mem),
            "load_deadband": float(e.get("CONFLUENCIA_LOAD_DEADBAND") or cls.load_deadband),
            "load_alpha": float(e.get("CONFLUENCIA_LOAD_ALPHA") or cls.load_alpha),
            "load_stale_s": float(e.get("CONFLUENCIA_LOAD_STALE_S") or cls.load_stale_s),
            "lease_s": float(e.get("CONFLUENCIA_LEASE_S") or cls.lease_s),
            "strict_io": _bool(e.get("CONFLUENCIA_STRICT_IO"), False),
            "plan_resume_s": float(e.get("CONFLUENCIA_PLAN_RESUME_S") or cls.plan_resume_s),
            "broker_visibility_s": float(e.get("CONFLUENCIA_BROKER_VISIBILITY_S") or cls.broker_visibility_s),
            "ratelimit_storage_url": e.get("CONFLUENCIA_RATELIMIT_STORAGE_URL") or cls.ratelimit_storage_url,
            "ratelimit_auth_failures": e.get("CONFLUENCIA_RATELIMIT_AUTH_FAILURES") or cls.ratelimit_auth_failures,
            "ratelimit_vm_creates": e.get("CONFLUENCIA_RATELIMIT_VM_CREATES") or cls.ratelimit_vm_creates,
            "trusted_proxies": int(e.get("CONFLUENCIA_TRUSTED_PROXIES") or cls.trusted_proxies),
            "data_key": e.get("CONFLUENCIA_DATA_KEY") or None,
            "data_key_file": e.get("CONFLUENCIA_DATA_KEY_FILE") or None,
            "audit_key_file": e.get("CONFLUENCIA_AUDIT_KEY_FILE") or None,
            "province_tz": e.get("CONFLUENCIA_PROVINCE_TZ") or "",
            "price_sheet": e.get("CONFLUENCIA_PRICE_SHEET") or None,
            "oidc_issuer": (e.get("CONFLUENCIA_OIDC_ISSUER") or "").rstrip("/"),
            "oidc_client_id": e.get("CONFLUENCIA_OIDC_CLIENT_ID") or "",
            "oidc_client_secret": e.get("CONFLUENCIA_OIDC_CLIENT_SECRET") or "",
            "oidc_audience": e.get("CONFLUENCIA_OIDC_AUDIENCE") or "",
            "oidc_scopes": e.get("CONFLUENCIA_OIDC_SCOPES") or cls.oidc_scopes,
            "oidc_username_claim": e.get("CONFLUENCIA_OIDC_USERNAME_CLAIM") or cls.oidc_username_claim,
            "oidc_groups_claim": e.get("CONFLUENCIA_OIDC_GROUPS_CLAIM") or cls.oidc_groups_claim,
            "oidc_tenant_claim": e.get("CONFLUENCIA_OIDC_TENANT_CLAIM") or cls.oidc_tenant_claim,
            "oidc_operator_groups": _list(e.get("CONFLUENCIA_OIDC_OPERATOR_GROUPS"), cls.oidc_operator_groups),
            "oidc_admin_groups": _list(e.get("CONFLUENCIA_OIDC_ADMIN_GROUPS"), cls.oidc_admin_groups),
            "image_dir": e.get("CONFLUENCIA_IMAGE_DIR") or "",
            "image_import_dirs": tuple(e["CONFLUENCIA_IMAGE_IMPORT_DIRS"].split(":"))
            if "CONFLUENCIA_IMAGE_IMPORT_DIRS" in e else None,
            "public_url": e.get("CONFLUENCIA_PUBLIC_URL") or "",
            "console_url": e.get("CONFLUENCIA_CONSOLE_URL") or cls.console_url,
            "console_token_s": float(e.get("CONFLUENCIA_CONSOLE_TOKEN_S") or cls.console_token_s),
            "tenant_physnet": e.get("CONFLUENCIA_TENANT_PHYSNET") or cls.tenant_physnet,
            "segment_range": e.get("CONFLUENCIA_SEGMENT_RANGE") or cls.segment_range,
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


SETTINGS_KEY = "confluencia.settings"


def settings() -> Settings:
    """The settings of the running application (needs an app context)."""
    s = current_app.extensions[SETTINGS_KEY]
    assert isinstance(s, Settings)
    return s
