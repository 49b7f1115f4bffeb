"""Named host filters, each reporting one :class:`~placement.reasons.Reason` (Nomad's feasibility checkers,
the Kubernetes scheduler's Filter plugins).

A filter is a small function from a :class:`FilterInput` to the mask of hosts it lets through (or None
when it does not apply to this VM), with a name and the reason it gives for the hosts it rejects.
:func:`evaluate` runs :data:`FILTERS` in order; a host rejected by several filters is counted once,
under the first filter (in ``FILTERS`` order) that rejects it. Static host properties (state, tenants,
zones, labels) are turned into boolean masks once per snapshot and cached on the compiled snapshot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from placement.compiled import BoolArray, Compiled, FloatArray
from placement.reasons import Reason
from placement.state import State

#: The capacity filter of each well-known resource; any other hard resource is checked by "other_capacity".
CAPACITY_FILTERS: dict[str, tuple[str, Reason]] = {
    "vcpu": ("vcpu", Reason.NOT_ENOUGH_VCPU),
    "ram_mib": ("ram", Reason.NOT_ENOUGH_RAM),
    "disk_gib": ("disk", Reason.NOT_ENOUGH_DISK),
}


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


# --- cached static masks -------------------------------------------------------------------------
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


def other_hard_columns(comp: Compiled) -> BoolArray:
    """(R,) the hard resources that have no capacity filter of their own."""
    return _cached(
        comp,
        ("other_hard",),
        lambda: np.array([comp.hard[r] and n not in CAPACITY_FILTERS for r, n in enumerate(comp.resources)], bool),
    )


# --- the filters ---------------------------------------------------------------------------------
class FilterInput:
    """What one :func:`evaluate` call shows its filters. ``fits`` is computed on first use, then shared."""

    __slots__ = ("_fits", "cand", "comp", "excluded", "schedulable_only", "state")

    def __init__(
        self, state: State, cand: Candidate, excluded: BoolArray | None, schedulable_only: BoolArray | None
    ) -> None:
        self.state = state
        self.comp: Compiled = state.c
        self.cand = cand
        self.excluded = excluded
        self.schedulable_only = schedulable_only
        self._fits: BoolArray | None = None

    @property
    def fits(self) -> BoolArray:
        """(H, R) bool: resource r of host h can take the candidate's demand."""
        if self._fits is None:
            self._fits = self.state.fits(self.cand.demand)
        return self._fits


#: Hosts a filter lets through, or None when it does not apply (every host passes).
FilterFn = Callable[[FilterInput], BoolArray | None]


@dataclass(frozen=True)
class Filter:
    name: str
    reason: Reason
    fn: FilterFn


def _host_state(state_name: str) -> FilterFn:
    def check(x: FilterInput) -> BoolArray | None:
        if x.comp.schedulable.all():
            return None
        return ~state_mask(x.comp, state_name)

    return check


def _excluded_by_request(x: FilterInput) -> BoolArray | None:
    return None if x.excluded is None else ~x.excluded


def _rebalance_targets(x: FilterInput) -> BoolArray | None:
    return x.schedulable_only


def _tenant(x: FilterInput) -> BoolArray | None:
    return tenant_mask(x.comp, x.cand.tenant)


def _zones(x: FilterInput) -> BoolArray | None:
    return None if x.cand.zones is None else zone_mask(x.comp, x.cand.zones)


def _labels(x: FilterInput) -> BoolArray | None:
    return label_mask(x.comp, x.cand.required_labels) if x.cand.required_labels else None


def _anti_affinity(x: FilterInput) -> BoolArray | None:
    if not x.cand.anti:
        return None
    blocked = x.state.anti_blocked(x.cand.anti, x.cand.source)
    if not blocked:
        return None
    mask = np.ones(len(x.comp.host_ids), dtype=bool)
    mask[blocked] = False
    return mask


def _affinity(x: FilterInput) -> BoolArray | None:
    if not x.cand.aff:
        return None
    allowed = x.state.affinity_hosts(x.cand.aff, x.cand.source)
    if allowed is None:
        return None
    mask = np.zeros(len(x.comp.host_ids), dtype=bool)
    mask[sorted(allowed)] = True
    return mask


def _capacity(resource: str) -> FilterFn:
    def check(x: FilterInput) -> BoolArray | None:
        comp = x.comp
        if resource not in comp.resources:
            return None
        r = comp.resources.index(resource)
        return x.fits[:, r] if comp.hard[r] else None

    return check


def _other_capacity(x: FilterInput) -> BoolArray | None:
    cols = other_hard_columns(x.comp)
    if not cols.any():
        return None
    return np.asarray(x.fits[:, cols].all(axis=1), dtype=bool)


FILTERS: tuple[Filter, ...] = (
    # 1. host state, then what the caller excluded
    Filter("maintenance", Reason.HOST_MAINTENANCE, _host_state("maintenance")),
    Filter("disabled", Reason.HOST_DISABLED, _host_state("disabled")),
    Filter("down", Reason.HOST_DOWN, _host_state("down")),
    Filter("pending", Reason.HOST_PENDING, _host_state("pending")),
    Filter("exclude_hosts", Reason.EXCLUDED_BY_REQUEST, _excluded_by_request),
    Filter("rebalance_targets", Reason.EXCLUDED_FROM_REBALANCE, _rebalance_targets),
    # 2. tenant allow-list, zones, labels (static, cached per snapshot)
    Filter("tenant", Reason.TENANT_NOT_ALLOWED, _tenant),
    Filter("zones", Reason.OUTSIDE_ZONES, _zones),
    Filter("labels", Reason.MISSING_LABELS, _labels),
    # 3. anti-affinity and affinity (dynamic: the state after the previous moves)
    Filter("anti_affinity", Reason.ANTI_AFFINITY, _anti_affinity),
    Filter("affinity", Reason.AFFINITY_ELSEWHERE, _affinity),
    # 4. capacity, one filter per well-known resource, then every other hard resource
    *(Filter(name, reason, _capacity(resource)) for resource, (name, reason) in CAPACITY_FILTERS.items()),
    Filter("other_capacity", Reason.NOT_ENOUGH_OTHER, _other_capacity),
)


@dataclass(frozen=True)
class Verdict:
    passing: BoolArray
    #: Rejected hosts per reason (keys are :class:`Reason` members, which are strings).
    rejections: dict[str, int]


def evaluate(
    state: State,
    cand: Candidate,
    excluded: BoolArray | None = None,
    schedulable_only: BoolArray | None = None,
) -> Verdict:
    """Run :data:`FILTERS` for ``cand``; return the passing hosts and rejection counts by reason.

    ``excluded`` hosts are rejected as "excluded by request"; ``schedulable_only`` lets the rebalancer
    narrow the targets further (e.g. hosts excluded from rebalance), reported as "excluded from rebalance".
    The VM's own host (``cand.source``) is never a target, and not a rejection.
    """
    n_hosts = len(state.c.host_ids)
    remaining = np.ones(n_hosts, dtype=bool)
    left = n_hosts
    if cand.source >= 0:
        remaining[cand.source] = False
        left -= 1
    rejections: dict[str, int] = {}
    x = FilterInput(state, cand, excluded, schedulable_only)
    for f in FILTERS:
        if left <= 0:
            break  # nothing left to reject
        mask = f.fn(x)
        if mask is None:
            continue
        rejected = int(np.count_nonzero(remaining & ~mask))
        if rejected:
            rejections[f.reason] = rejections.get(f.reason, 0) + rejected
            remaining = remaining & mask
            left -= rejected
    return Verdict(passing=remaining, rejections=rejections)
