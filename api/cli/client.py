"""The operators' HTTP client of the API (``confluencia plans``, ``confluencia hosts``): requests,
RFC 9457 problems as errors, shared options and table rendering.

Standard library HTTP only (urllib), so it runs on any operator's machine with the package installed.
Exit codes: 0 ok, 1 API or connection error, 2 usage error, 3 a plan that failed or was cancelled.
"""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import click

DEFAULT_URL = "http://127.0.0.1:8080"
FINISHED = ("succeeded", "failed", "cancelled", "discarded")
POLL_SECONDS = 0.5
EXIT_PLAN_FAILED = 3
RESOURCES = (("vcpu", "vCPU"), ("ram_mib", "RAM"), ("disk_gib", "disk"))


class ApiError(click.ClickException):
    """An API problem (RFC 9457) or a connection failure: title and detail on stderr, exit 1."""

    exit_code = 1

    def __init__(self, title: str, detail: str = "", status: int | None = None) -> None:
        super().__init__(f"{title}: {detail}" if detail else title)
        self.title, self.detail, self.status = title, detail, status

    def show(self, file: Any = None) -> None:
        status = f" ({self.status})" if self.status else ""
        click.echo(f"Error{status}: {self.message}", err=True)


class Client:
    """A tiny JSON client of /v1 with the operator's bearer token."""

    def __init__(self, url: str, token: str | None, lang: str | None = None, timeout: float = 30.0) -> None:
        self.base, self.token, self.lang, self.timeout = url.rstrip("/"), token, lang, timeout

    def call(self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None,
             text: bool = False) -> Any:
        url = self.base + path
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.lang:
            headers["Accept-Language"] = self.lang
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raise problem_of(exc) from None
        except OSError as exc:  # URLError, refused, reset, timeout
            reason = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
            raise ApiError(f"Cannot reach the API at {self.base} / No se puede conectar con la API",
                           f"{reason}. Check --url or CONFLUENCIA_URL.") from None
        if text:
            return raw.decode("utf-8")
        return json.loads(raw) if raw else None

    def get(self, path: str, **query: Any) -> Any:
        return self.call("GET", path, query=query or None)

    def get_text(self, path: str, **query: Any) -> str:
        return str(self.call("GET", path, query=query or None, text=True))

    def post(self, path: str, body: Any = None) -> Any:
        return self.call("POST", path, body)

    def pages(self, path: str, **query: Any) -> Iterable[dict[str, Any]]:
        offset = 0
        while True:
            page = self.get(path, limit=500, offset=offset, **query)
            yield from page["items"]
            offset += len(page["items"])
            if not page["items"] or offset >= page["total"]:
                return


def problem_of(exc: urllib.error.HTTPError) -> ApiError:
    try:
        body = json.loads(exc.read() or b"{}")
    except ValueError:
        body = None
    body = body if isinstance(body, dict) else {}
    detail = str(body.get("detail") or "")
    errors = body.get("errors")
    if errors:
        detail = f"{detail} {json.dumps(errors, ensure_ascii=False)}".strip()
    return ApiError(str(body.get("title") or exc.reason or "HTTP error"), detail, exc.code)


# --- options shared by every command ---------------------------------------------------------------------

def api_command(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add --url, --token, --lang and --json; pass a ready ``client`` and ``as_json`` to the command."""

    def wrapper(url: str, token: str | None, lang: str | None, as_json: bool, **kw: Any) -> Any:
        return fn(client=Client(url, token, lang), as_json=as_json, **kw)

    wrapper.__name__, wrapper.__doc__ = fn.__name__, fn.__doc__
    for opt in reversed([
        click.option("--url", envvar="CONFLUENCIA_URL", default=DEFAULT_URL, show_default=True,
                     help="API base URL (env CONFLUENCIA_URL) / URL de la API."),
        click.option("--token", envvar="CONFLUENCIA_TOKEN", help="Operator token (env CONFLUENCIA_TOKEN) / "
                     "token de operador."),
        click.option("--lang", envvar="CONFLUENCIA_LANG", type=click.Choice(["en", "es"]),
                     help="Language of error titles / idioma de los errores."),
        click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON / salida JSON."),
    ]):
        wrapper = opt(wrapper)
    return wrapper


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True))


# --- rendering -------------------------------------------------------------------------------------------

def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(c) for c in headers]] + [["-" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def short(ident: str | None) -> str:
    return (ident or "-")[:8]


class Names:
    """Host and VM names for ids, fetched lazily; an id stays (shortened) when its name is unknown."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.hosts: dict[str, str] | None = None
        self.vms: dict[str, str] = {}

    def host(self, ident: str | None) -> str:
        if self.hosts is None:
            self.hosts = {}
            with contextlib.suppress(ApiError):
                self.hosts = {h["id"]: h["name"] for h in self.client.pages("/v1/hosts")}
        return self.hosts.get(ident or "", short(ident))

    def load_vms(self, ids: set[str]) -> None:
        with contextlib.suppress(ApiError):
            for vm in self.client.pages("/v1/vms", include_deleted="true"):
                self.vms[vm["id"]] = vm["name"]
                if ids <= self.vms.keys():
                    return

    def vm(self, ident: str) -> str:
        return self.vms.get(ident, short(ident))


def fmt_num(value: Any, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def quote(ident: str) -> str:
    return urllib.parse.quote(ident, safe="")
