"""Networks, their ports (addresses) and security groups (firewall rules).

A ``private`` network belongs to one municipality; a ``provider`` network (the province's shared services) is
an operator's, granted to chosen municipalities. Each is realised on the hosts as ``segment`` of ``physnet``
(a VLAN of a physical network in production). A port is one address of a network, held by a VM (or reserved);
its address is unique in its network while the port exists. Security groups hold inbound allow rules; a port
belongs to groups; everything else inbound is dropped."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from controlplane.db import db
from controlplane.models.base import created_column, id_column, updated_column


class NetworkKind(enum.StrEnum):
    PRIVATE = "private"
    PROVIDER = "provider"


class Network(db.Model):  # type: ignore[name-defined]
    __tablename__ = "networks"
    __table_args__ = (UniqueConstraint("physnet", "segment", name="uq_networks_segment"),
                      Index("ix_networks_tenant", "tenant_id"))

    id: Mapped[str] = id_column()
    tenant_id: Mapped[str | None] = mapped_column(ForeignKey("tenants.id"), nullable=True)  # None: provider
    name: Mapped[str] = mapped_column(String(63), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # a NetworkKind
    physnet: Mapped[str] = mapped_column(String(63), nullable=False)
    segment: Mapped[int] = mapped_column(Integer, nullable=False)  # VLAN id in production
    cidr: Mapped[str] = mapped_column(String(64), nullable=False)
    gateway: Mapped[str | None] = mapped_column(String(45), nullable=True)
    dns: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    alloc_start: Mapped[str] = mapped_column(String(45), nullable=False)
    alloc_end: Mapped[str] = mapped_column(String(45), nullable=False)
    cidr6: Mapped[str | None] = mapped_column(String(64), nullable=True)
    gateway6: Mapped[str | None] = mapped_column(String(45), nullable=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    created_at: Mapped[datetime] = created_column()
    updated_at: Mapped[datetime] = updated_column()

    __mapper_args__ = {"version_id_col": version}


class NetworkGrant(db.Model):  # type: ignore[name-defined]
    """A provider network a municipality may use."""

    __tablename__ = "network_grants"

    network_id: Mapped[str] = mapped_column(ForeignKey("networks.id", ondelete="CASCADE"), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    created_at: Mapped[datetime] = created_column()


class Port(db.Model):  # type: ignore[name-defined]
    __tablename__ = "ports"
    __table_args__ = (UniqueConstraint("network_id", "address", name="uq_ports_address"),
                      UniqueConstraint("network_id", "mac", name="uq_ports_mac"),
                      Index("ix_ports_vm", "vm_id"), Index("ix_ports_tenant", "tenant_id"))

    id: Mapped[str] = id_column()
    network_id: Mapped[str] = mapped_column(ForeignKey("networks.id"), nullable=False)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), nullable=False)
    vm_id: Mapped[str | None] = mapped_column(ForeignKey("vms.id"), nullable=True)
    device_index: Mapped[int | None] = mapped_column(Integer, nullable=True)  # its NIC's place in the VM
    mac: Mapped[str] = mapped_column(String(17), nullable=False)
    address: Mapped[str] = mapped_column(String(45), nullable=False)  # without the prefix
    address6: Mapped[str | None] = mapped_column(String(45), nullable=True)  # EUI-64 of the MAC in the /64
    reserved: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)  # made on its own: kept
    name: Mapped[str | None] = mapped_column(String(63), nullable=True)
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[datetime] = created_column()


class SecurityGroup(db.Model):  # type: ignore[name-defined]
    __tablename__ = "security_groups"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_security_groups_name"),)

    id: Mapped[str] = id_column()
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), nullable=False)
    name: Mapped[str] = mapped_column(String(63), nullable=False)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    created_at: Mapped[datetime] = created_column()

    __mapper_args__ = {"version_id_col": version}


class SecurityRule(db.Model):  # type: ignore[name-defined]
    """Allow inbound ``protocol`` (tcp, udp, icmp, any) on ``port_min..port_max`` from ``remote_cidr`` or from
    the ports of ``remote_group_id``."""

    __tablename__ = "security_rules"

    id: Mapped[str] = id_column()
    group_id: Mapped[str] = mapped_column(ForeignKey("security_groups.id", ondelete="CASCADE"), nullable=False,
                                          index=True)
    protocol: Mapped[str] = mapped_column(String(8), nullable=False)
    port_min: Mapped[int | None] = mapped_column(Integer, nullable=True)
    port_max: Mapped[int | None] = mapped_column(Integer, nullable=True)
    remote_cidr: Mapped[str | None] = mapped_column(String(64), nullable=True)
    remote_group_id: Mapped[str | None] = mapped_column(ForeignKey("security_groups.id"), nullable=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = created_column()


class PortSecurityGroup(db.Model):  # type: ignore[name-defined]
    __tablename__ = "port_security_groups"

    port_id: Mapped[str] = mapped_column(ForeignKey("ports.id", ondelete="CASCADE"), primary_key=True)
    group_id: Mapped[str] = mapped_column(ForeignKey("security_groups.id"), primary_key=True)
