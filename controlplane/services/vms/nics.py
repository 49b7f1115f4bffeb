"""A VM request's networks: which networks (or reserved ports) its NICs go on, with which addresses and
security groups. Checked before anything is claimed; the ports are allocated in the request's transaction once
the VM row exists (:func:`attach`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from controlplane.core.quotas import lock_tenant
from controlplane.db import db
from controlplane.errors import Conflict, Msg, ValidationFailed
from controlplane.models import VM, Network, Port, SecurityGroup
from controlplane.services.networks import usable_network
from controlplane.services.ports import MAX_NICS, allocate, check_address_quota, join_groups
from controlplane.services.security_groups import groups_for, sync_for_members

FIELD = "networks"


@dataclass
class NicRequest:
    network: Network
    address: str | None = None
    port: Port | None = None


@dataclass
class Nics:
    wanted: list[NicRequest] = field(default_factory=list)
    groups: list[SecurityGroup] = field(default_factory=list)

    @property
    def labels(self) -> frozenset[str]:
        """What placement requires: hosts attached to every physical network of the VM's NICs."""
        return frozenset(f"net:{n.network.physnet}" for n in self.wanted)


def _bad(en: str, es: str) -> ValidationFailed:
    return ValidationFailed(Msg(en, es), errors={FIELD: [en]})


def resolve(tenant_id: str, requested: list[dict[str, Any]] | None, group_names: list[str] | None,
            static: dict[str, Any] | None) -> Nics:
    if not requested:
        if group_names:
            raise ValidationFailed(Msg("Security groups apply to a VM's networks; name its networks too.",
                                       "Los grupos de seguridad se aplican a las redes de la VM; indique sus redes."),
                                   errors={"security_groups": ["Needs networks."]})
        return Nics()
    if static:
        raise ValidationFailed(Msg("Give networks (addresses from the network) or network (a static address), "
                                   "not both.", "Indique networks (direcciones de la red) o network (una dirección "
                                   "fija), no ambos."), errors={"network": ["Not together with networks."]})
    if len(requested) > MAX_NICS:
        raise _bad(f"At most {MAX_NICS} networks per VM.", f"Como máximo {MAX_NICS} redes por VM.")
    nics = Nics()
    seen: set[str] = set()
    for item in requested:
        if item.get("port"):
            port = db.session.get(Port, item["port"])
            if port is None or port.tenant_id != tenant_id:
                raise _bad(f"Unknown port {item['port']!r}; see GET /v1/ports.",
                           f"Puerto desconocido {item['port']!r}; vea GET /v1/ports.")
            if port.vm_id is not None:
                raise Conflict(Msg(f"Port {port.address} is in use by another VM.",
                                   f"El puerto {port.address} lo usa otra VM."))
            net = db.session.get(Network, port.network_id)
            assert net is not None
            nics.wanted.append(NicRequest(net, port=port))
        elif item.get("network"):
            nics.wanted.append(NicRequest(usable_network(tenant_id, item["network"]), address=item.get("address")))
        else:
            raise _bad("Each network entry names a network or a port.", "Cada red indica una red o un puerto.")
        if nics.wanted[-1].network.id in seen:
            raise _bad("A VM has one NIC per network.", "Una VM tiene una sola interfaz por red.")
        seen.add(nics.wanted[-1].network.id)
    nics.groups = groups_for(tenant_id, group_names)
    return nics


def attach(vm: VM, nics: Nics, created_by: str | None) -> None:
    """Allocate (or take) the ports of the new VM, in its transaction; other VMs whose rules name its groups
    get the new address on their hosts."""
    if not nics.wanted:
        return
    check_address_quota(lock_tenant(vm.tenant_id), sum(1 for n in nics.wanted if n.port is None))
    db.session.flush()  # the VM row first: its ports refer to it
    for index, nic in enumerate(nics.wanted):
        port = nic.port or allocate(nic.network, vm.tenant_id, address=nic.address, created_by=created_by,
                                    field=FIELD)
        port.vm_id, port.device_index = vm.id, index
        if nic.port is None:
            join_groups(port, nics.groups)
    sync_for_members({g.id for g in nics.groups}, exclude_vm=vm.id)
