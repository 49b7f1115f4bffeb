"""/v1/vms: a municipality's virtual machines."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify
from flask_smorest import Blueprint

from api.http import accepted, etag_of, if_match, operator_only, principal
from api.idempotency import idempotent
from api.openapi import ETAG, ETAG_LOCATION, LOCATION, reads_if_match
from api.schemas import operations as ops
from api.schemas import vms as s
from api.schemas.common import page, page_schema
from controlplane.models import VM
from controlplane.services import consoles
from controlplane.services.vms import access, create, delete, migrate, power, resize

bp = Blueprint("vms", __name__, url_prefix="/v1/vms", description="Virtual machines / Máquinas virtuales")
VMPage = page_schema(s.VM, "VMPage")
VM_BODY = s.VM()  # one instance: a marshmallow schema copies its fields when it is made


@bp.route("", methods=["POST"])
@idempotent
@bp.arguments(s.VMCreate)
@bp.response(202, s.VMAccepted, headers=ETAG_LOCATION)
@bp.alt_response(403, description="Quota exceeded (`/problems/quota-exceeded`, with `quota`), or a field only "
                                  "operators may set / Cuota excedida, o un campo solo para operadores")
@bp.alt_response(409, description="No host has room (`/problems/insufficient-capacity`, with `reasons`), or the "
                                  "chosen host takes no VMs / Ningún host tiene lugar")
def create_vm(args: dict[str, Any]) -> Response:
    """Ask for a VM. Quota and capacity are claimed at once; the build runs in the background.

    Poll the operation in `Location` (or the VM) until it is `ACTIVE`. Send `Idempotency-Key` to retry
    safely: the same key and body replays the first answer.
    """
    vm, op = create.create_vm(principal(), create.VMRequestData(**args))
    return accepted(op, {"vm": VM_BODY.dump(vm), "operation_id": op.id}, vm.version)


@bp.route("", methods=["GET"])
@bp.arguments(s.VMListArgs, location="query")
@bp.response(200, VMPage)
def list_vms(args: dict[str, Any]) -> dict[str, Any]:
    """List VMs (your municipality's; operators see all). Deleted VMs only with `include_deleted`."""
    filters = {k: v for k, v in args.items() if k not in ("limit", "offset")}
    items, total = access.list_vms(principal(), limit=args["limit"], offset=args["offset"], **filters)
    return page(items, total, args)


@bp.route("/<vm_id>", methods=["GET"])
@bp.response(200, s.VM, headers=ETAG)
def get_vm(vm_id: str) -> Response:
    vm: VM = access.get_vm(principal(), vm_id)
    resp = jsonify(s.VM().dump(vm))
    resp.headers["ETag"] = etag_of(vm.version)
    return resp


@bp.route("/<vm_id>", methods=["PATCH"])
@reads_if_match(required=True)
@bp.arguments(s.VMUpdate)
@bp.response(200, s.VM, headers=ETAG)
def update_vm(args: dict[str, Any], vm_id: str) -> Response:
    """Operators: `{"pinned": true}` keeps the VM on its host (plans never move it). Needs `If-Match`."""
    vm = access.update_vm(principal(), vm_id, args, if_match(required=True))
    resp = jsonify(s.VM().dump(vm))
    resp.headers["ETag"] = etag_of(vm.version)
    return resp


@bp.route("/<vm_id>", methods=["DELETE"])
@reads_if_match()
@bp.response(202, ops.Operation, headers=LOCATION)
def delete_vm(vm_id: str) -> Response:
    """Delete a VM (`If-Match` optional). A VM that is still being built cannot be deleted yet (409)."""
    op = delete.delete_vm(principal(), vm_id, if_match())
    return accepted(op, ops.Operation().dump(op))


@bp.route("/<vm_id>/start", methods=["POST"])
@reads_if_match()
@idempotent
@bp.response(202, ops.Operation, headers=LOCATION)
def start_vm(vm_id: str) -> Response:
    op = power.power(principal(), vm_id, "start", if_match())
    return accepted(op, ops.Operation().dump(op))


@bp.route("/<vm_id>/stop", methods=["POST"])
@reads_if_match()
@idempotent
@bp.response(202, ops.Operation, headers=LOCATION)
def stop_vm(vm_id: str) -> Response:
    op = power.power(principal(), vm_id, "stop", if_match())
    return accepted(op, ops.Operation().dump(op))


@bp.route("/<vm_id>/migrate", methods=["POST"])
@operator_only
@reads_if_match()
@idempotent
@bp.arguments(s.MigrateArgs)
@bp.response(202, ops.Operation, headers=LOCATION)
def migrate_vm(args: dict[str, Any], vm_id: str) -> Response:
    """Operators: live-migrate an ACTIVE VM to another host (its capacity is claimed at once)."""
    op = migrate.request_migration(principal(), vm_id, args["host"], if_match())
    return accepted(op, ops.Operation().dump(op))


@bp.route("/<vm_id>/resize", methods=["POST"])
@reads_if_match()
@idempotent
@bp.arguments(s.ResizeArgs)
@bp.response(202, ops.Operation, headers=LOCATION)
@bp.alt_response(403, description="Quota exceeded / Cuota excedida")
@bp.alt_response(409, description="No host has room for the new size / Ningún host tiene lugar")
def resize_vm(args: dict[str, Any], vm_id: str) -> Response:
    """Change to another flavor (disks only grow). If the VM's host has no room, the VM moves first to a host
    that has; a running guest sees the new vCPUs and RAM after its next start, a grown disk at once."""
    op = resize.request_resize(principal(), vm_id, args["flavor"], if_match())
    return accepted(op, ops.Operation().dump(op))


@bp.route("/<vm_id>/console", methods=["POST"])
@bp.response(201, s.Console)
@bp.alt_response(409, description="The VM is not running / La VM no está en marcha")
@bp.alt_response(503, description="Its host did not answer / Su host no respondió")
def open_console(vm_id: str) -> Any:
    """A link to the VM's screen (noVNC through the console proxy) with a token good for one connection
    within seconds (`CONFLUENCIA_CONSOLE_TOKEN_S`)."""
    return consoles.open_console(principal(), vm_id)
