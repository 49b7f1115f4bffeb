"""Networks of the simulated data center: every host has the physical networks of the driver option
``physnets`` (default ``tenants,servicios``) with every segment; a domain's NICs are kept in its metadata and the
firewall set on a host in the store's ``firewalls`` table, so tests and the demo can read back what a real host
would apply."""

from __future__ import annotations

import json
from dataclasses import asdict, replace

from agents.base import FirewallSpec, NicSpec, VMSpec
from agents.errors import DriverError
from agents.simulated_store import SimDomain, Tx

NICS_KEY = "nics"
DEFAULT_PHYSNETS = frozenset({"tenants", "servicios"})


def physnets(option: str | None) -> frozenset[str]:
    if option is None:
        return DEFAULT_PHYSNETS
    return frozenset(p.strip() for p in option.split(",") if p.strip())


def check_nics(nics: tuple[NicSpec, ...], have: frozenset[str], host: str, uri: str) -> None:
    for nic in nics:
        if nic.physnet not in have:
            raise DriverError(f"host {host} has no physical network {nic.physnet!r} (it has {sorted(have)})",
                              host=uri, code="NO_BRIDGE")
        if not 1 <= nic.segment <= 4094:
            raise DriverError(f"segment {nic.segment} is not a VLAN id (1-4094)", host=uri, code="INVALID_ARG")


def with_nics(dom: SimDomain, spec: VMSpec) -> SimDomain:
    if not spec.nics:
        return dom
    return replace(dom, metadata={**dom.metadata, NICS_KEY: json.dumps([asdict(n) for n in spec.nics])})


def same_nics(dom: SimDomain, spec: VMSpec) -> bool:
    """Whether the domain was made with the spec's NICs (in order)."""
    had = json.loads(dom.metadata.get(NICS_KEY, "[]"))
    return bool(had == json.loads(json.dumps([asdict(n) for n in spec.nics])))


def set_firewall(tx: Tx, host: str, vm_id: str, nics: tuple[NicSpec, ...], firewall: FirewallSpec) -> None:
    spec = json.dumps({"nics": [asdict(n) for n in nics], "firewall": asdict(firewall)}, sort_keys=True)
    tx.execute("INSERT INTO firewalls (host, vm_id, spec) VALUES (?, ?, ?) "
               "ON CONFLICT (host, vm_id) DO UPDATE SET spec = excluded.spec", host, vm_id, spec)


def clear_firewall(tx: Tx, host: str, vm_id: str) -> None:
    tx.execute("DELETE FROM firewalls WHERE host = ? AND vm_id = ?", host, vm_id)


def firewall_of(tx: Tx, host: str, vm_id: str) -> dict[str, object] | None:
    row = tx.execute("SELECT spec FROM firewalls WHERE host = ? AND vm_id = ?", host, vm_id).fetchone()
    return dict(json.loads(row["spec"])) if row else None
