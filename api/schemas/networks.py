"""Networks, ports and security groups."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from api.schemas.common import Count, Name, PageArgs, StrictSchema

ADDRESS = validate.Length(min=2, max=45)


class NetworkCreate(StrictSchema):
    name = Name(required=True)
    cidr = fields.String(required=True, validate=validate.Length(min=9, max=64),
                         metadata={"description": "IPv4 subnet, e.g. 10.20.0.0/24 (at most /29)"})
    gateway = fields.String(validate=ADDRESS, metadata={"description": "Default: the subnet's first address"})
    dns = fields.List(fields.String(validate=ADDRESS), validate=validate.Length(max=4))
    allocation_start = fields.String(validate=ADDRESS, metadata={"description": "Default: after the gateway"})
    allocation_end = fields.String(validate=ADDRESS, metadata={"description": "Default: the last host address"})
    cidr6 = fields.String(validate=validate.Length(max=64), metadata={
        "description": "Optional IPv6 /64: each port also gets the address its MAC makes there (EUI-64)"})
    gateway6 = fields.String(validate=ADDRESS)
    description = fields.String(validate=validate.Length(max=500), allow_none=True)
    kind = fields.String(validate=validate.OneOf(["private", "provider"]), metadata={
        "description": "private (a municipality's; the default) or provider (operators: the province's shared "
                       "networks, granted to municipalities)"})
    physnet = Name(metadata={"description": "Provider networks: the physical network they are on"})
    segment = Count(1, 4094, metadata={"description": "Provider networks: their segment (VLAN id)"})
    tenant_id = fields.String(validate=validate.Length(equal=36), metadata={"description": "Operators: whose"})


class NetworkUpdate(StrictSchema):
    name = Name()
    dns = fields.List(fields.String(validate=ADDRESS), validate=validate.Length(max=4))
    description = fields.String(validate=validate.Length(max=500), allow_none=True)


class Network(Schema):
    id = fields.String()
    name = fields.String()
    kind = fields.String()
    tenant_id = fields.String(allow_none=True)
    cidr = fields.String()
    gateway = fields.String(allow_none=True)
    dns = fields.List(fields.String())
    allocation_start = fields.String(attribute="alloc_start")
    allocation_end = fields.String(attribute="alloc_end")
    cidr6 = fields.String(allow_none=True)
    gateway6 = fields.String(allow_none=True)
    physnet = fields.String(metadata={"description": "The physical network it is realised on"})
    segment = fields.Integer(metadata={"description": "The segment (VLAN id)"})
    description = fields.String(allow_none=True)
    granted_to = fields.List(fields.String(), metadata={"description": "Provider networks: the municipalities"})
    version = fields.Integer()
    created_at = fields.DateTime()


class NetworkListArgs(PageArgs):
    kind = fields.String(validate=validate.OneOf(["private", "provider"]))
    tenant_id = fields.String(validate=validate.Length(max=36), metadata={"description": "Operators only"})


class GrantArgs(StrictSchema):
    tenant_id = fields.String(required=True, validate=validate.Length(equal=36))


class PortCreate(StrictSchema):
    network = fields.String(required=True, validate=validate.Length(min=1, max=63))
    address = fields.String(validate=ADDRESS, metadata={"description": "A fixed address (default: the next free)"})
    name = Name(allow_none=True)
    tenant_id = fields.String(validate=validate.Length(equal=36), metadata={"description": "Operators only"})


class Port(Schema):
    id = fields.String()
    name = fields.String(allow_none=True)
    network_id = fields.String()
    tenant_id = fields.String()
    vm_id = fields.String(allow_none=True)
    device_index = fields.Integer(allow_none=True)
    mac = fields.String()
    address = fields.String()
    address6 = fields.String(allow_none=True, metadata={"description": "On a network with an IPv6 subnet: from "
                                                                       "the MAC (EUI-64)"})
    reserved = fields.Boolean(metadata={"description": "Made on its own: kept (with its address) when its VM goes"})
    created_at = fields.DateTime()


class PortListArgs(PageArgs):
    network_id = fields.String(validate=validate.Length(max=36))
    vm_id = fields.String(validate=validate.Length(max=36))
    tenant_id = fields.String(validate=validate.Length(max=36), metadata={"description": "Operators only"})


class GroupCreate(StrictSchema):
    name = Name(required=True)
    description = fields.String(validate=validate.Length(max=500), allow_none=True)
    tenant_id = fields.String(validate=validate.Length(equal=36), metadata={"description": "Operators only"})


class RuleCreate(StrictSchema):
    protocol = fields.String(required=True, validate=validate.OneOf(["tcp", "udp", "icmp", "any"]))
    port_min = fields.Integer(strict=True, allow_none=True, metadata={"description": "tcp/udp: 1-65535"})
    port_max = fields.Integer(strict=True, allow_none=True, metadata={"description": "Default: port_min"})
    remote_cidr = fields.String(validate=validate.Length(max=64), allow_none=True,
                                metadata={"description": "From this network (default 0.0.0.0/0)"})
    remote_group = fields.String(validate=validate.Length(max=63), allow_none=True,
                                 metadata={"description": "From the VMs of this group of yours"})
    description = fields.String(validate=validate.Length(max=500), allow_none=True)


class Rule(Schema):
    id = fields.String()
    protocol = fields.String()
    port_min = fields.Integer(allow_none=True)
    port_max = fields.Integer(allow_none=True)
    remote_cidr = fields.String(allow_none=True)
    remote_group_id = fields.String(allow_none=True)
    description = fields.String(allow_none=True)
    created_at = fields.DateTime()


class Group(Schema):
    id = fields.String()
    name = fields.String()
    tenant_id = fields.String()
    description = fields.String(allow_none=True)
    rules = fields.List(fields.Nested(Rule))
    created_at = fields.DateTime()


class GroupListArgs(PageArgs):
    tenant_id = fields.String(validate=validate.Length(max=36), metadata={"description": "Operators only"})
