"""/v1/hosts (operators): register, list with utilisation, change, maintenance on/off, delete."""

from __future__ import annotations

from typing import Any

from flask import Response, url_for
from flask_smorest import Blueprint

from api.http import if_match, operators_only, principal, with_etag
from api.idempotency import idempotent
from api.openapi import ETAG, ETAG_LOCATION, reads_if_match
from api.schemas import hosts as s
from api.schemas.common import page, page_schema
from controlplane.models import Host
from controlplane.services import hosts

bp = operators_only(Blueprint("hosts", __name__, url_prefix="/v1/hosts",
                              description="Hypervisor hosts (operators) / Hosts de virtualización (operadores)"))


def _fields(h: Host, agent: dict[str, Any] | None) -> dict[str, Any]:
    skip = ("usage", "option_keys", "storage_pools", "physnets", "migration_domain", "agent")
    return {**{c: getattr(h, c) for c in s.Host._declared_fields if c not in skip},
            "option_keys": sorted(h.driver_options or {}), "storage_pools": h.pool_names,
            "physnets": h.physnet_names, "migration_domain": hosts.migration_domain(h),
            "agent": agent}


def _view(h: Host) -> dict[str, Any]:
    """One host as the API shows it (a page of hosts is read in bulk by ``list_hosts``)."""
    return {**_fields(h, hosts.agent_views([h])[h.id]), "usage": hosts.utilisation([h])[h.id]}


def _body(h: Host) -> Any:
    return s.Host().dump(_view(h))


@bp.route("", methods=["POST"])
@idempotent
@bp.arguments(s.HostCreate)
@bp.response(201, s.Host, headers=ETAG_LOCATION)
def create_host(args: dict[str, Any]) -> Response:
    """Register a host. The URI is checked for its driver (e.g. `qemu+ssh://user@host/system`)."""
    h = hosts.create_host(principal(), args)
    return with_etag(_body(h), h.version, 201, url_for("hosts.get_host", host_id=h.id))


@bp.route("", methods=["GET"])
@bp.arguments(s.HostListArgs, location="query")
@bp.response(200, page_schema(s.Host, "HostPage"))
def list_hosts(args: dict[str, Any]) -> dict[str, Any]:
    """Hosts with their capacity, allocation and utilisation per resource."""
    items, total = hosts.list_hosts(principal(), state=args.get("state"), zone=args.get("zone"),
                                    driver=args.get("driver"), limit=args["limit"], offset=args["offset"])
    usage, agents = hosts.utilisation(items), hosts.agent_views(items)
    return page([{**_fields(h, agents[h.id]), "usage": usage[h.id]} for h in items], total, args)


@bp.route("/<host_id>", methods=["GET"])
@bp.response(200, s.Host, headers=ETAG)
def get_host(host_id: str) -> Response:
    h = hosts.get_host(principal(), host_id)
    return with_etag(_body(h), h.version)


@bp.route("/<host_id>", methods=["PATCH"])
@reads_if_match(required=True)
@bp.arguments(s.HostUpdate)
@bp.response(200, s.Host, headers=ETAG)
def update_host(args: dict[str, Any], host_id: str) -> Response:
    """Change a host (needs `If-Match`). `{"state": "maintenance"}` stops new placements on it."""
    h = hosts.update_host(principal(), host_id, args, if_match(required=True))
    return with_etag(_body(h), h.version)


@bp.route("/<host_id>/maintenance", methods=["POST"])
@bp.arguments(s.MaintenanceIn)
@bp.response(200, s.Host, headers=ETAG)
def host_maintenance(args: dict[str, Any], host_id: str) -> Response:
    """Maintenance on: no new VMs, and a drain plan spreads the host's VMs over the others (it runs at
    once; see /v1/plans). Off: the host takes VMs again and a drain still running is cancelled."""
    h = hosts.set_maintenance(principal(), host_id, args["enabled"], args.get("reason"))
    return with_etag(_body(h), h.version)


@bp.route("/<host_id>/gather", methods=["POST"])
@bp.response(202, s.Host)
def host_gather(host_id: str) -> Any:
    """Send the SSH host agent now: its facts (compared with the registration) and a load sample appear in
    ``agent`` when it is back (409 when the host has no ``agent_ssh``)."""
    h = hosts.request_gather(principal(), host_id)
    return _view(h)


@bp.route("/<host_id>", methods=["DELETE"])
@reads_if_match()
@bp.response(204)
def delete_host(host_id: str) -> None:
    hosts.delete_host(principal(), host_id, if_match())
