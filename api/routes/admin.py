"""Operator side: /v1/hosts, /v1/tenants, /v1/users, /v1/tokens, POST /v1/flavors."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, url_for
from flask_smorest import Blueprint
from marshmallow import fields

from api.http import etag_of, if_match, operator_only, operators_only, principal
from api.idempotency import idempotent
from api.schemas import admin as s
from api.schemas import plans as ps
from api.schemas import tenant as ts
from api.schemas.common import PageArgs, StrictSchema, page, page_schema
from controlplane.models import Host, Tenant
from controlplane.services import catalog, hosts, identity, reconcile, tenants

hosts_bp = operators_only(
    Blueprint("hosts", __name__, url_prefix="/v1/hosts", description="Hypervisor hosts (operators)"))
tenants_bp = Blueprint("tenants", __name__, url_prefix="/v1/tenants", description="Municipalities (operators)")
users_bp = Blueprint("users", __name__, url_prefix="/v1/users", description="Users")
tokens_bp = Blueprint("tokens", __name__, url_prefix="/v1/tokens", description="API tokens")
reconcile_bp = operators_only(Blueprint("reconcile", __name__, url_prefix="/v1/reconcile",
                                        description="Database vs hypervisors drift (operators)"))
flavor_admin_bp = operators_only(
    Blueprint("flavor_admin", __name__, url_prefix="/v1/flavors", description="Flavors (operators)"))


def _with_etag(body: Any, version: int, status: int = 200, location: str | None = None) -> Response:
    resp = jsonify(body)
    resp.status_code = status
    resp.headers["ETag"] = etag_of(version)
    if location:
        resp.headers["Location"] = location
    return resp


def _host_fields(h: Host) -> dict[str, Any]:
    skip = ("usage", "option_keys")
    return {**{c: getattr(h, c) for c in s.Host._declared_fields if c not in skip},
            "option_keys": sorted(h.driver_options or {})}


def _host_body(h: Host) -> Any:
    return s.Host().dump({**_host_fields(h), "usage": hosts.utilisation([h])[h.id]})


# --- hosts ---------------------------------------------------------------------------------------------

@hosts_bp.route("", methods=["POST"])
@idempotent
@hosts_bp.arguments(s.HostCreate)
@hosts_bp.response(201, s.Host)
def create_host(args: dict[str, Any]) -> Response:
    """Register a host. The URI is checked for its driver (e.g. `qemu+ssh://user@host/system`)."""
    h = hosts.create_host(principal(), args)
    return _with_etag(_host_body(h), h.version, 201, url_for("hosts.get_host", host_id=h.id))


@hosts_bp.route("", methods=["GET"])
@hosts_bp.arguments(s.HostListArgs, location="query")
@hosts_bp.response(200, page_schema(s.Host, "HostPage"))
def list_hosts(args: dict[str, Any]) -> dict[str, Any]:
    """Hosts with their capacity, allocation and utilisation per resource."""
    items, total = hosts.list_hosts(principal(), state=args.get("state"), zone=args.get("zone"),
                                    driver=args.get("driver"), limit=args["limit"], offset=args["offset"])
    usage = hosts.utilisation(items)
    dumped = [{**_host_fields(h), "usage": usage[h.id]} for h in items]
    return page(dumped, total, args)


@hosts_bp.route("/<host_id>", methods=["GET"])
@hosts_bp.response(200, s.Host)
def get_host(host_id: str) -> Response:
    h = hosts.get_host(principal(), host_id)
    return _with_etag(_host_body(h), h.version)


@hosts_bp.route("/<host_id>", methods=["PATCH"])
@hosts_bp.arguments(s.HostUpdate)
@hosts_bp.response(200, s.Host)
def update_host(args: dict[str, Any], host_id: str) -> Response:
    """Change a host (needs `If-Match`). `{"state": "maintenance"}` stops new placements on it."""
    h = hosts.update_host(principal(), host_id, args, if_match(required=True))
    return _with_etag(_host_body(h), h.version)


@hosts_bp.route("/<host_id>/maintenance", methods=["POST"])
@hosts_bp.arguments(ps.MaintenanceIn)
@hosts_bp.response(200, s.Host)
def host_maintenance(args: dict[str, Any], host_id: str) -> Response:
    """Maintenance on: no new VMs, and a drain plan spreads the host's VMs over the others (it runs at
    once; see /v1/plans). Off: the host takes VMs again and a drain still running is cancelled."""
    h = hosts.set_maintenance(principal(), host_id, args["enabled"], args.get("reason"))
    return _with_etag(_host_body(h), h.version)


@hosts_bp.route("/<host_id>", methods=["DELETE"])
@hosts_bp.response(204)
def delete_host(host_id: str) -> None:
    hosts.delete_host(principal(), host_id, if_match())


# --- tenants (municipalities) --------------------------------------------------------------------------

@tenants_bp.route("", methods=["POST"])
@operator_only
@idempotent
@tenants_bp.arguments(s.TenantCreate)
@tenants_bp.response(201, s.Tenant)
def create_tenant(args: dict[str, Any]) -> Response:
    t = tenants.create_tenant(principal(), args)
    return _with_etag(s.Tenant().dump(t), t.version, 201, url_for("tenants.get_tenant", tenant_id=t.id))


@tenants_bp.route("", methods=["GET"])
@operator_only
@tenants_bp.arguments(PageArgs, location="query")
@tenants_bp.response(200, page_schema(s.Tenant, "TenantPage"))
def list_tenants(args: dict[str, Any]) -> dict[str, Any]:
    items, total = tenants.list_tenants(principal(), args["limit"], args["offset"])
    return page(items, total, args)


@tenants_bp.route("/<tenant_id>", methods=["GET"])
@tenants_bp.response(200, s.Tenant)
def get_tenant(tenant_id: str) -> Response:
    t: Tenant = tenants.get_tenant(principal(), tenant_id)
    return _with_etag(s.Tenant().dump(t), t.version)


@tenants_bp.route("/<tenant_id>", methods=["PATCH"])
@operator_only
@tenants_bp.arguments(s.TenantUpdate)
@tenants_bp.response(200, s.Tenant)
def update_tenant(args: dict[str, Any], tenant_id: str) -> Response:
    """Change name or quotas (needs `If-Match`). Lowering a quota below use keeps existing VMs."""
    t = tenants.update_tenant(principal(), tenant_id, args, if_match(required=True))
    return _with_etag(s.Tenant().dump(t), t.version)


# --- users and tokens ------------------------------------------------------------------------------------

@users_bp.route("", methods=["POST"])
@idempotent
@users_bp.arguments(s.UserCreate)
@users_bp.response(201, s.User)
def create_user(args: dict[str, Any]) -> Any:
    return identity.create_user(principal(), args["username"], args["role"], args.get("tenant_id"),
                                args.get("display_name", ""))


@users_bp.route("", methods=["GET"])
@users_bp.arguments(s.UserListArgs, location="query")
@users_bp.response(200, page_schema(s.User, "UserPage"))
def list_users(args: dict[str, Any]) -> dict[str, Any]:
    items = identity.list_users(principal(), args.get("tenant_id"))
    return page(items[args["offset"]:args["offset"] + args["limit"]], len(items), args)


@tokens_bp.route("", methods=["POST"])
@idempotent
@tokens_bp.arguments(s.TokenCreate)
@tokens_bp.response(201, s.Token)
def create_token(args: dict[str, Any]) -> Any:
    """Create an API token. The secret (`token`) is shown only in this answer: store it safely."""
    who = principal()
    tok, secret = identity.issue_token(who, args.get("user_id") or who.user_id or "", args["name"],
                                       args.get("expires_at"))
    return {**identity.token_view(tok), "token": secret}


@tokens_bp.route("", methods=["GET"])
@tokens_bp.arguments(s.UserListArgs, location="query")
@tokens_bp.response(200, page_schema(s.Token, "TokenPage"))
def list_tokens(args: dict[str, Any]) -> dict[str, Any]:
    items = identity.list_tokens(principal())
    return page([identity.token_view(t) for t in items[args["offset"]:args["offset"] + args["limit"]]],
                len(items), args)


@tokens_bp.route("/<token_id>", methods=["DELETE"])
@tokens_bp.response(200, s.Token)
def revoke_token(token_id: str) -> Any:
    """Revoke a token at once; requests with it get 401 from now on."""
    return identity.token_view(identity.revoke_token(principal(), token_id))


@flavor_admin_bp.route("", methods=["POST"])
@idempotent
@flavor_admin_bp.arguments(s.FlavorCreate)
@flavor_admin_bp.response(201, ts.Flavor)
def create_flavor(args: dict[str, Any]) -> Any:
    return catalog.create_flavor(principal(), args)


class ReconcileArgs(StrictSchema):
    dry_run = fields.Boolean(load_default=False)


@reconcile_bp.route("", methods=["POST"])
@reconcile_bp.arguments(ReconcileArgs, location="query")
@reconcile_bp.response(200)
def run_reconcile(args: dict[str, Any]) -> Any:
    """Compare the database with every host's inventory now; fix what is safe unless `dry_run`."""
    return reconcile.reconcile(fix=not args["dry_run"]).as_dict()
