"""Hypervisor hosts (operators): registration, update, maintenance, utilisation."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from api.schemas.common import Bool, Count, Name, PageArgs, StrictSchema

DRIVERS = ["simulated", "libvirt", "proxmox"]


HOST_STATES = ["enabled", "maintenance", "disabled", "down"]


def Ratio() -> fields.Float:
    return fields.Float(validate=validate.Range(min=0.1, max=64.0), allow_nan=False)


class HostCreate(StrictSchema):
    name = fields.String(required=True, validate=validate.Regexp(
        r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,61}[A-Za-z0-9])?$", error="A host name: letters, digits, '.', '-'."))
    driver = fields.String(required=True, validate=validate.OneOf(DRIVERS))
    uri = fields.String(required=True, validate=validate.Length(min=1, max=500))
    vcpus = Count(1, 4096, required=True)
    ram_mib = Count(256, 64 * 1024 * 1024, required=True)
    disk_gib = Count(1, 1024 * 1024, required=True)
    reserved_vcpus = Count(0, 4096)
    reserved_ram_mib = Count(0, 64 * 1024 * 1024)
    reserved_disk_gib = Count(0, 1024 * 1024)
    cpu_ratio = Ratio()
    ram_ratio = Ratio()
    disk_ratio = Ratio()
    zone = Name(allow_none=True)
    state = fields.String(validate=validate.OneOf(HOST_STATES))
    exclude_from_rebalance = Bool(metadata={"description": "Never a source or target of rebalancing"})
    storage_pools = fields.List(Name(), validate=validate.Length(max=32), metadata={
        "description": "Names of the shared storage pools this host reaches (see /v1/storage-pools)"})
    physnets = fields.List(Name(), validate=validate.Length(max=32), metadata={
        "description": "Physical networks this host is attached to (e.g. tenants, servicios): VMs on networks "
                       "of a physnet only land on hosts that list it"})
    migration_domain = Name(allow_none=True, metadata={
        "description": "Hosts that can exchange VMs: the Proxmox VE cluster's name, or for libvirt the hosts that "
                       "allow copy-storage migration to each other (default: the Proxmox API endpoint, or "
                       "'default' for libvirt). Plans and drains never move a VM across domains."})
    fence_command = fields.List(fields.String(validate=validate.Length(min=1, max=500)), allow_none=True,
                                validate=validate.Length(min=1, max=64), metadata={
        "description": "High availability: the out-of-band command (argv) that powers the host off, run by the "
                       "workers when the host has been down past the grace period, e.g. [\"ipmitool\", \"-I\", "
                       "\"lanplus\", \"-H\", \"10.0.9.11\", \"-U\", \"admin\", \"-E\", \"chassis\", "
                       "\"power\", \"off\"]. Exit status 0 = fenced: only then are its VMs restarted elsewhere. "
                       "null: never fenced, never evacuated."})
    agent_ssh = fields.String(allow_none=True, validate=validate.Length(min=3, max=300), metadata={
        "description": "Where the SSH host agent reaches the host, user@address[:port] (its key must be in the "
                       "control plane's known_hosts: an unknown or changed key is refused). null: no agent."})
    options = fields.Dict(keys=fields.String(validate=validate.Length(min=1, max=64)),
                          values=fields.String(validate=validate.Length(max=2000)), load_only=True,
                          metadata={"description": "Driver options, e.g. Proxmox token_id/token_secret. "
                                                   "Write-only: never returned."})


class HostUpdate(HostCreate):
    """Every field optional (PATCH). marshmallow has no ``Meta.partial``: load partially by default."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("partial", True)
        super().__init__(*args, **kwargs)

    state_reason = fields.String(validate=validate.Length(max=500), allow_none=True)


class HostUsage(Schema):
    capacity = fields.Dict()
    allocated = fields.Dict()
    utilisation = fields.Dict()
    vms = fields.Integer()


class HostLoad(Schema):
    cpu = fields.Float(metadata={"description": "Smoothed CPU busy + steal, 0..1"})
    mem = fields.Float(metadata={"description": "Smoothed memory in use, 0..1"})
    at = fields.DateTime()
    sample = fields.Dict(metadata={"description": "The last sample: CPU busy/steal %, memory, disk and network "
                                                  "bytes per second"})


class HostAgent(Schema):
    error = fields.String(allow_none=True, metadata={"description": "Why the last visit failed (null: it worked)"})
    facts = fields.Dict(allow_none=True)
    facts_at = fields.DateTime(allow_none=True)
    facts_mismatch = fields.List(fields.Dict(), metadata={
        "description": "How the facts disagree with the registered capacity (code, resource, registered, "
                       "measured, reason, reason_es); empty when they agree"})
    measured = fields.Nested(HostLoad, allow_none=True, data_key="load")


class Host(Schema):
    id = fields.String()
    name = fields.String()
    driver = fields.String()
    uri = fields.String()
    vcpus = fields.Integer()
    ram_mib = fields.Integer()
    disk_gib = fields.Integer()
    reserved_vcpus = fields.Integer()
    reserved_ram_mib = fields.Integer()
    reserved_disk_gib = fields.Integer()
    cpu_ratio = fields.Float()
    ram_ratio = fields.Float()
    disk_ratio = fields.Float()
    zone = fields.String(allow_none=True)
    state = fields.String()
    state_reason = fields.String(allow_none=True)
    exclude_from_rebalance = fields.Boolean()
    storage_pools = fields.List(fields.String())
    physnets = fields.List(fields.String())
    migration_domain = fields.String(metadata={"description": "The migration domain in effect (set or default)"})
    agent_ssh = fields.String(allow_none=True)
    fence_command = fields.List(fields.String(), allow_none=True)
    fenced_at = fields.DateTime(allow_none=True, metadata={
        "description": "When it was fenced and its VMs restarted elsewhere (null once it rejoined)"})
    state_since = fields.DateTime(allow_none=True)
    agent = fields.Nested(HostAgent, allow_none=True, metadata={
        "description": "What the SSH host agent last found: facts, how they disagree with the registration, "
                       "smoothed measured load (fractions of the host) and its last sample"})
    option_keys = fields.List(fields.String(), metadata={"description": "Names of the driver options set"})
    version = fields.Integer()
    usage = fields.Nested(HostUsage)
    created_at = fields.DateTime()


class HostListArgs(PageArgs):
    state = fields.String(validate=validate.OneOf(HOST_STATES))
    zone = fields.String(validate=validate.Length(max=63))
    driver = fields.String(validate=validate.OneOf(DRIVERS))


class MaintenanceIn(StrictSchema):
    enabled = Bool(required=True)
    reason = fields.String(validate=validate.Length(max=500), load_default=None, allow_none=True)
