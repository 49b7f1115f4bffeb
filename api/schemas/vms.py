"""A municipality's virtual machines."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from api.schemas.common import Bool, Count, Name, PageArgs, StrictSchema

HOSTNAME = validate.Regexp(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$",
                           error="A host name: letters, digits and '-', 1-63 characters, no '-' at the ends.")
USER_DATA_MAX = 16384


class NicIn(StrictSchema):
    network = fields.String(validate=validate.Length(min=1, max=63), metadata={"description": "Id or name"})
    address = fields.String(validate=validate.Length(min=2, max=45), metadata={"description": "A fixed address"})
    port = fields.String(validate=validate.Length(equal=36), metadata={"description": "A reserved port instead"})


class NetworkIn(StrictSchema):
    """A static address for the VM's first NIC (DHCP when left out)."""

    address = fields.String(required=True, validate=validate.Length(max=64),
                            metadata={"description": "CIDR, e.g. 10.20.0.5/24"})
    gateway = fields.String(validate=validate.Length(max=45), allow_none=True)
    nameservers = fields.List(fields.String(validate=validate.Length(max=45)), validate=validate.Length(max=4))

VM_STATES = ["PENDING", "BUILDING", "ACTIVE", "STOPPED", "MIGRATING", "DELETING", "DELETED", "ERROR"]


class VMCreate(StrictSchema):
    name = Name(required=True, metadata={"description": "1-63 characters, no control characters"})
    flavor = fields.String(validate=validate.Length(min=1, max=63),
                           metadata={"description": "Flavor name or id; or give vcpus, ram_mib and disk_gib"})
    vcpus = Count(1, 256)
    ram_mib = Count(16, 4 * 1024 * 1024, metadata={"description": "16 MiB to 4 TiB"})
    disk_gib = Count(0, 64 * 1024)
    image = fields.String(validate=validate.Length(min=1, max=200), allow_none=True, metadata={
        "description": "Image id or name (GET /v1/images): the root disk is made from it; or "
                       "`pve-template:NAME` for a Proxmox template"})
    pool = Name(metadata={"description": "Storage pool of the root disk (default: the default pool)"})
    hostname = fields.String(validate=HOSTNAME, metadata={"description": "Default: made from the name"})
    ssh_keys = fields.List(fields.String(validate=validate.Length(min=1, max=16384)), validate=validate.Length(max=16),
                           metadata={"description": "OpenSSH public keys for the default user"})
    key_name = Name(metadata={"description": "A keypair of yours (GET /v1/keypairs), added to ssh_keys"})
    user_data = fields.String(validate=validate.Length(max=USER_DATA_MAX), metadata={
        "description": "cloud-init user data, at most 16 KiB: a `#cloud-config` YAML document or a `#!` script"})
    network = fields.Nested(NetworkIn, allow_none=True, metadata={
        "description": "A static address for the first NIC, without a network of ours (see networks instead)"})
    networks = fields.List(fields.Nested(NicIn), validate=validate.Length(max=4), metadata={
        "description": "NICs on your networks, in order: an address is allocated from each (or reserved ports)"})
    security_groups = fields.List(Name(), validate=validate.Length(max=8), metadata={
        "description": "Groups of the VM's ports (default: default)"})
    anti_affinity_group = Name(allow_none=True, metadata={
        "description": "VMs of your municipality with the same group never share a host"})
    tenant_id = fields.String(validate=validate.Length(equal=36), metadata={"description": "Operators only"})
    host = fields.String(validate=validate.Length(min=1, max=63),
                         metadata={"description": "Operators only: place on this host (override)"})


class NicOut(Schema):
    port_id = fields.String(attribute="id")
    network_id = fields.String()
    address = fields.String()
    address6 = fields.String(allow_none=True)
    mac = fields.String()


class VM(Schema):
    id = fields.String()
    name = fields.String()
    tenant_id = fields.String()
    state = fields.String()
    status_reason = fields.String(allow_none=True)
    flavor_id = fields.String(allow_none=True)
    vcpus = fields.Integer()
    ram_mib = fields.Integer()
    disk_gib = fields.Integer()
    image = fields.String(allow_none=True)
    image_id = fields.String(allow_none=True)
    root_disk = fields.String(allow_none=True, metadata={"description": "Id of the root disk (with the VM's "
                                                                       "disk_gib, in pool_id); data volumes: "
                                                                       "GET /v1/volumes?vm_id="})
    pool_id = fields.String(allow_none=True)
    hostname = fields.String(allow_none=True)
    key_name = fields.String(allow_none=True)
    network = fields.Dict(allow_none=True)
    nics = fields.List(fields.Nested(NicOut), attribute="ports", metadata={"description": "Its NICs, in order"})
    anti_affinity_group = fields.String(allow_none=True)
    pinned = fields.Boolean()
    ha_enabled = fields.Boolean()
    ha_priority = fields.Integer()
    host_id = fields.String(allow_none=True)
    version = fields.Integer()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    launched_at = fields.DateTime(allow_none=True)
    deleted_at = fields.DateTime(allow_none=True)


class VMAccepted(Schema):
    vm = fields.Nested(VM)
    operation_id = fields.String()


class VMListArgs(PageArgs):
    state = fields.String(validate=validate.OneOf(VM_STATES))
    name = fields.String(validate=validate.Length(max=63), metadata={"description": "substring"})
    tenant_id = fields.String(validate=validate.Length(max=36), metadata={"description": "Operators only"})
    host_id = fields.String(validate=validate.Length(max=36), metadata={"description": "Operators only"})
    include_deleted = Bool(query=True, load_default=False)


class VMUpdate(StrictSchema):
    pinned = Bool(metadata={"description": "Operators: never move this VM (rebalance or drain)"})
    ha_enabled = Bool(metadata={"description": "Operators: restart it on another host when its host is fenced "
                                               "(default true)"})
    ha_priority = Count(0, 1000, metadata={"description": "Operators: higher restarts first after a host failure"})


class MigrateArgs(StrictSchema):
    host = fields.String(required=True, validate=validate.Length(min=1, max=63),
                         metadata={"description": "Target host name or id"})


class Console(Schema):
    url = fields.String(metadata={"description": "Open it in a browser: the noVNC page, connected at once"})
    token = fields.String(metadata={"description": "One use, for `ws://<proxy>/websockify?token=...`"})
    expires_at = fields.DateTime()
    password = fields.String(allow_none=True, metadata={"description": "A one-time VNC password, when the "
                                                                       "hypervisor hands one out (Proxmox)"})


class ResizeArgs(StrictSchema):
    flavor = fields.String(required=True, validate=validate.Length(min=1, max=63),
                           metadata={"description": "The new flavor (name or id); its disk may not be smaller"})
