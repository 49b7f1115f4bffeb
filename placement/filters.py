"""Named host filters. Each one says, in English, why it rejected a host.

A host rejected by several filters is counted once, under the first filter (in ``FILTERS`` order) that
rejects it, as Nomad and the Kubernetes scheduler do. Static host properties (state, tenants, zones,
labels) are turned into boolean masks once per snapshot and cached on the compiled snapshot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from placement.state import BoolArray, Compiled, FloatArray, State

RESOURCE_LABELS = {"vcpu": "vCPU", "ram_mib": "RAM", "disk_gib": "disk"}
STATE_REASONS = {"maintenance": "in maintenance", "disabled": "disabled", "down": "down"}


@dataclass(frozen=True)
class Candidate:
    """What the filters need to know about the VM being placed or moved."""

    vm_id: str
    demand: FloatArray
    tenant: str = ""
    anti: frozenset[str] = frozenset()
    aff: frozenset[str] = frozenset()
    zones: frozenset[str] | None = None
    required_labels: frozenset[str] = frozenset()
    source: int = -1  # current host when the VM is moved, -1 when it is new


def _cached(comp: Compiled, key: tuple[object, ...], build: Callable[[], BoolArray]) -> BoolArray:
    cache = comp.mask_cache
    mask = cache.get(key)
    if mask is None:
        mask = build()
        if len(cache) < 4096:
            cache[key] = mask
    return mask


def state_mask(comp: Compiled, state_name: str) -> BoolArray:
    return _cached(
        comp,
        ("state", state_name),
        lambda: np.array([s == state_name for s in comp.state_names], dtype=bool),
    )


def tenant_mask(comp: Compiled, tenant: str) -> BoolArray:
    all_open = _cached(
        comp, ("all_open",), lambda: np.array([all(a is None for a in comp.allowed_tenants)], dtype=bool)
    )
    if all_open[0]:
        return _cached(comp, ("true",), lambda: np.ones(len(comp.host_ids), dtype=bool))
    return _cached(
        comp,
        ("tenant", tenant),
        lambda: np.array([a is None or tenant in a for a in comp.allowed_tenants], dtype=bool),
    )


def zone_mask(comp: Compiled, zones: frozenset[str]) -> BoolArray:
    key = ("zones", *sorted(zones))
    return _cached(comp, key, lambda: np.array([z is not None and z in zones for z in comp.zones], dtype=bool))


def label_mask(comp: Compiled, labels: frozenset[str]) -> BoolArray:
    key = ("labels", *sorted(labels))
    return _cached(comp, key, lambda: np.array([labels <= have for have in comp.labels], dtype=bool))


@dataclass(frozen=True)
class Verdict:
    passing: BoolArray
    rejections: dict[str, int]


def evaluate(
    state: State,
    cand: Candidate,
    excluded: BoolArray | None = None,
    schedulable_only: BoolArray | None = None,
) -> Verdict:
    """Run every filter for ``cand``; return the passing hosts and rejection counts by reason.

    ``schedulable_only`` lets the rebalancer narrow the targets further (e.g. hosts excluded from
    rebalance), reported as "excluded from rebalance".
    """
    comp = state.c
    n_hosts = len(comp.host_ids)
    remaining = np.ones(n_hosts, dtype=bool)
    if cand.source >= 0:
        remaining[cand.source] = False  # a VM's own host is never a target, and not a "rejection"
    rejections: dict[str, int] = {}

    def apply(mask: BoolArray, reason: str) -> None:
        nonlocal remaining
        rejected = int(np.count_nonzero(remaining & ~mask))
        if rejected:
            rejections[reason] = rejections.get(reason, 0) + rejected
            remaining = remaining & mask

    # 1. host state
    if not comp.schedulable.all():
        for state_name, reason in STATE_REASONS.items():
            apply(~state_mask(comp, state_name), reason)
    if excluded is not None:
        apply(~excluded, "excluded by request")
    if schedulable_only is not None:
        apply(schedulable_only, "excluded from rebalance")
    # 2. tenant allow-list, zones, labels
    apply(tenant_mask(comp, cand.tenant), "tenant not allowed")
    if cand.zones is not None:
        apply(zone_mask(comp, cand.zones), "outside the VM's zones")
    if cand.required_labels:
        apply(label_mask(comp, cand.required_labels), "missing required labels")
    # 3. anti-affinity and affinity (dynamic)
    if cand.anti:
        blocked = state.anti_blocked(cand.anti, cand.source)
        if blocked:
            mask = np.ones(n_hosts, dtype=bool)
            mask[blocked] = False
            apply(mask, "anti-affinity conflict")
    if cand.aff:
        allowed = state.affinity_hosts(cand.aff, cand.source)
        if allowed is not None:
            mask = np.zeros(n_hosts, dtype=bool)
            mask[sorted(allowed)] = True
            apply(mask, "affinity group lives elsewhere")
    # 4. capacity, one reason per resource
    if remaining.any():
        fits = state.fits(cand.demand)
        for r, name in enumerate(comp.resources):
            if comp.hard[r]:
                apply(fits[:, r], f"not enough {RESOURCE_LABELS.get(name, name)}")
    return Verdict(passing=remaining, rejections=rejections)


def explain_rejections(rejections: dict[str, int]) -> str:
    """``"12 hosts: not enough RAM; 3 hosts: in maintenance"`` (largest count first)."""
    if not rejections:
        return ""
    parts = sorted(rejections.items(), key=lambda kv: (-kv[1], kv[0]))
    return "; ".join(f"{n} host{'s' if n != 1 else ''}: {reason}" for reason, n in parts)
