"""Plans of VM moves: budget, moves, waves, statistics, and a checked replay.

A plan is an ordered list of moves. Moves carry a ``wave`` number; waves are consecutive in the plan and
the moves of one wave can run in parallel: within a wave each host takes part in at most
``max_per_host`` moves, and a host that gives a VM away in a wave never receives one later in the same
wave, so running a wave's moves at once never needs more room than running them in plan order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from placement.compiled import Compiled, objective_of
from placement.errors import PlacementInputError
from placement.filters import Candidate, evaluate
from placement.model import ClusterSnapshot, VMSnapshot
from placement.reasons import Reason, explain_rejections
from placement.state import State, spread_per_resource, stdev_per_resource


class PlanReplayError(ValueError):
    """Replaying a plan hit an infeasible move (capacity, constraint, pinned or repeated VM)."""


@dataclass(frozen=True)
class Budget:
    """Limits of one rebalance run.

    ``max_moves``/``max_copy_gib``: None = unlimited. ``max_per_host``: concurrent migrations per host
    inside one wave. ``min_gain`` (hysteresis, so a balanced or merely noisy cluster yields an empty
    plan): every move must lower the objective by at least ``min_gain / N`` on average, N being the
    number of schedulable hosts. One move changes a stdev over N hosts by O(1/N), so this keeps the
    threshold meaningful from 10 to 10,000 hosts; ``min_gain = 0.05`` asks 0.005 per move on 10 hosts.
    """

    max_moves: int | None = None
    max_copy_gib: float | None = None
    max_per_host: int = 1
    min_gain: float = 0.05

    def per_move_gain(self, n_hosts: int) -> float:
        """The absolute objective gain a move must bring on a cluster of ``n_hosts`` schedulable hosts."""
        return self.min_gain / max(n_hosts, 1)

    def __post_init__(self) -> None:
        if self.max_moves is not None and (not isinstance(self.max_moves, int) or self.max_moves < 0):
            raise PlacementInputError(f"budget: max_moves must be a non-negative int, got {self.max_moves!r}")
        if self.max_copy_gib is not None and not (math.isfinite(self.max_copy_gib) and self.max_copy_gib >= 0):
            raise PlacementInputError(f"budget: max_copy_gib must be finite and >= 0, got {self.max_copy_gib}")
        if not isinstance(self.max_per_host, int) or self.max_per_host < 1:
            raise PlacementInputError(f"budget: max_per_host must be an int >= 1, got {self.max_per_host!r}")
        if not (math.isfinite(self.min_gain) and self.min_gain >= 0):
            raise PlacementInputError(f"budget: min_gain must be finite and >= 0, got {self.min_gain}")


@dataclass(frozen=True)
class Move:
    vm: str
    source: str
    target: str
    cost_ram_mib: float  # MiB the migration copies: the guest's RAM, plus its local disks (VMSnapshot.copy_mib)
    gain: float
    wave: int


@dataclass(frozen=True)
class Plan:
    moves: tuple[Move, ...]
    objective_before: float
    objective_after: float
    stdev_before: dict[str, float]
    stdev_after: dict[str, float]
    spread_before: dict[str, float]
    spread_after: dict[str, float]
    unplaced: dict[str, str] = field(default_factory=dict)

    @property
    def copy_ram_mib(self) -> float:
        return float(sum(m.cost_ram_mib for m in self.moves))

    @property
    def waves(self) -> int:
        return max((m.wave for m in self.moves), default=0)

    def explain(self) -> str:
        lines = [
            f"{len(self.moves)} moves in {self.waves} waves, {self.copy_ram_mib / 1024:.1f} GiB RAM to copy; "
            f"objective {self.objective_before:.4f} -> {self.objective_after:.4f}"
        ]
        for m in self.moves:
            lines.append(
                f"  wave {m.wave}: {m.vm} {m.source} -> {m.target} ({m.cost_ram_mib:.0f} MiB, gain {m.gain:.4f})"
            )
        for vm, why in self.unplaced.items():
            lines.append(f"  cannot move {vm}: {why}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, object]:
        return {
            "moves": [
                {
                    "vm": m.vm,
                    "source": m.source,
                    "target": m.target,
                    "cost_ram_mib": m.cost_ram_mib,
                    "gain": m.gain,
                    "wave": m.wave,
                }
                for m in self.moves
            ],
            "objective_before": self.objective_before,
            "objective_after": self.objective_after,
            "stdev_before": self.stdev_before,
            "stdev_after": self.stdev_after,
            "spread_before": self.spread_before,
            "spread_after": self.spread_after,
            "copy_ram_mib": self.copy_ram_mib,
            "waves": self.waves,
            "unplaced": self.unplaced,
        }


def ram_column(comp: Compiled) -> int | None:
    return comp.resources.index("ram_mib") if "ram_mib" in comp.resources else None


def assign_waves(moves: list[tuple[int, int, int]], max_per_host: int) -> list[int]:
    """Wave numbers (1-based, non-decreasing in plan order) for (vm, source, target) moves."""
    waves: list[int] = []
    wave = 1
    count: dict[int, int] = {}
    gave: set[int] = set()
    for _vm, src, tgt in moves:
        ok = count.get(src, 0) < max_per_host and count.get(tgt, 0) < max_per_host and tgt not in gave
        if not ok:
            wave += 1
            count = {}
            gave = set()
        count[src] = count.get(src, 0) + 1
        count[tgt] = count.get(tgt, 0) + 1
        gave.add(src)
        waves.append(wave)
    return waves


def build_plan(
    comp: Compiled,
    moves: list[tuple[int, int, int]],
    max_per_host: int,
    unplaced: dict[str, str] | None = None,
    schedulable: np.ndarray | None = None,
) -> Plan:
    """Replay ``moves`` from the compiled start state and wrap them as a :class:`Plan`.

    Gains are the exact objective deltas in plan order; before/after are recomputed from scratch.
    """
    start = State(comp)
    mask = comp.schedulable if schedulable is None else schedulable
    before_util = start.util.copy()
    ram = ram_column(comp)
    waves = assign_waves(moves, max_per_host)
    out: list[Move] = []
    cur = start.objective()
    for (vm, src, tgt), wave in zip(moves, waves, strict=True):
        start.move(vm, tgt)
        nxt = start.objective()
        cost = (float(comp.vm_demand[vm, ram]) if ram is not None else 0.0) + float(comp.vm_copy[vm])
        out.append(
            Move(
                vm=comp.vm_ids[vm],
                source=comp.host_ids[src],
                target=comp.host_ids[tgt],
                cost_ram_mib=cost,
                gain=cur - nxt,
                wave=wave,
            )
        )
        cur = nxt
    names = comp.resources

    return Plan(
        moves=tuple(out),
        objective_before=objective_of(before_util, mask, comp.weights),
        objective_after=objective_of(start.util, mask, comp.weights),
        stdev_before=dict(zip(names, map(float, stdev_per_resource(before_util, mask)), strict=True)),
        stdev_after=dict(zip(names, map(float, stdev_per_resource(start.util, mask)), strict=True)),
        spread_before=dict(zip(names, map(float, spread_per_resource(before_util, mask)), strict=True)),
        spread_after=dict(zip(names, map(float, spread_per_resource(start.util, mask)), strict=True)),
        unplaced=dict(unplaced or {}),
    )


def replay(snapshot: ClusterSnapshot, plan: Plan) -> ClusterSnapshot:
    """Apply ``plan`` move by move, checking every move against the state after the previous ones.

    Raises :class:`PlanReplayError` on the first move that over-commits a host, breaks anti-affinity,
    affinity, zone, tenant rules, targets a non-schedulable host, moves a pinned VM or moves a VM twice.
    Returns the snapshot after the plan.
    """
    comp = snapshot.compiled
    state = State(comp)
    moved: set[str] = set()
    for i, m in enumerate(plan.moves):
        vm = comp.vm_index.get(m.vm)
        src = comp.host_index.get(m.source)
        tgt = comp.host_index.get(m.target)
        if vm is None or src is None or tgt is None:
            raise PlanReplayError(f"move {i}: unknown vm or host in {m}")
        if m.vm in moved:
            raise PlanReplayError(f"move {i}: vm {m.vm} moves twice")
        if comp.pinned[vm]:
            raise PlanReplayError(f"move {i}: vm {m.vm} is pinned")
        if int(state.vm_host[vm]) != src:
            raise PlanReplayError(f"move {i}: vm {m.vm} is not on {m.source}")
        cand = Candidate(
            vm_id=m.vm,
            demand=comp.vm_demand[vm],
            tenant=comp.vm_tenant[vm],
            anti=comp.vm_anti[vm],
            aff=comp.vm_aff[vm],
            zones=comp.vm_zones[vm],
            required_labels=comp.vm_labels[vm],
            source=src,
        )
        verdict = evaluate(state, cand)
        if not verdict.passing[tgt]:
            single = np.zeros_like(verdict.passing)
            single[tgt] = True
            why = dict(evaluate(state, cand, excluded=~single).rejections)
            why.pop(Reason.EXCLUDED_BY_REQUEST, None)
            raise PlanReplayError(f"move {i}: {m.vm} -> {m.target} infeasible: {explain_rejections(why)}")
        state.move(vm, tgt)
        moved.add(m.vm)
    vms = [
        VMSnapshot(
            id=v.id,
            host=comp.host_ids[int(state.vm_host[i])],
            demand=v.demand,
            tenant=v.tenant,
            anti_affinity=v.anti_affinity,
            affinity=v.affinity,
            pinned=v.pinned,
            zones=v.zones,
        )
        for i, v in enumerate(snapshot.vms)
    ]
    return snapshot.with_vms(vms)
