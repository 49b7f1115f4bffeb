"""``place()``: choose hosts for new VMs (all-or-nothing), with reasons when it cannot."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from placement.errors import PlacementInputError
from placement.filters import Candidate, evaluate
from placement.model import ClusterSnapshot, PlacementRequest, VMRequest
from placement.reasons import Reason, explain_rejections
from placement.scorers import DEFAULT_SCORERS, Scorer, total_score
from placement.state import State


@dataclass(frozen=True)
class PlacementResult:
    """Outcome of ``place()``. On failure ``assignments`` is empty (all-or-nothing)."""

    ok: bool
    assignments: dict[str, str]
    objective_before: float
    objective_after: float
    rejections: dict[str, int] = field(default_factory=dict)
    failed_vm: str | None = None
    scores: dict[str, float] = field(default_factory=dict)
    # one VM requested: every feasible host, best first (the chosen host is the first), so a caller that
    # finds the best one busy can try the next without placing again
    ranking: tuple[str, ...] = ()

    @property
    def host(self) -> str | None:
        """The chosen host when exactly one VM was requested."""
        if len(self.assignments) == 1:
            return next(iter(self.assignments.values()))
        return None

    def explain(self) -> str:
        if self.ok:
            moves = ", ".join(f"{vm} -> {host}" for vm, host in self.assignments.items())
            return f"placed {moves}; objective {self.objective_before:.4f} -> {self.objective_after:.4f}"
        reasons = explain_rejections(self.rejections) or Reason.NO_HOSTS.value
        return f"cannot place {self.failed_vm}: {reasons}"


def _candidate(vm: VMRequest) -> Candidate:
    return Candidate(
        vm_id=vm.id,
        demand=np.asarray(vm.demand, dtype=np.float64),
        tenant=vm.tenant,
        anti=vm.anti_affinity,
        aff=vm.affinity,
        zones=vm.zones,
        required_labels=vm.required_labels,
    )


def _validate(snapshot: ClusterSnapshot, request: PlacementRequest) -> None:
    if not isinstance(snapshot, ClusterSnapshot):
        raise PlacementInputError(f"expected a ClusterSnapshot, got {type(snapshot).__name__}")
    if not isinstance(request, PlacementRequest):
        raise PlacementInputError(f"expected a PlacementRequest, got {type(request).__name__}")
    comp = snapshot.compiled
    n_res = len(comp.resources)
    for vm in request.vms:
        if vm.id in comp.vm_index:
            raise PlacementInputError(f"vm request {vm.id!r}: a VM with this id already exists")
        if len(vm.demand) != n_res:
            raise PlacementInputError(
                f"vm request {vm.id!r}: demand has {len(vm.demand)} values, expected {n_res} {comp.resources}"
            )
    unknown = sorted(h for h in request.exclude_hosts if h not in comp.host_index)
    if unknown:
        raise PlacementInputError(f"exclude_hosts: unknown host(s) {unknown}")


def place(
    snapshot: ClusterSnapshot,
    request: PlacementRequest,
    scorers: tuple[Scorer, ...] = DEFAULT_SCORERS,
) -> PlacementResult:
    """Place every VM of ``request`` or none of them.

    VMs are placed largest first (by their largest share of the mean host capacity), each on the
    feasible host with the lowest total score (default: the balancing objective after placement);
    ties go to the host listed first. Later VMs see the earlier ones (anti-affinity, affinity,
    capacity), so a multi-VM request is consistent.
    """
    _validate(snapshot, request)
    comp = snapshot.compiled
    state = State(comp)
    before = comp.objective0
    excluded = None
    if request.exclude_hosts:
        excluded = np.zeros(len(comp.host_ids), dtype=bool)
        excluded[[comp.host_index[h] for h in request.exclude_hosts]] = True
    order = list(range(len(request.vms)))
    if len(order) > 1:
        mean_cap = comp.cap.mean(axis=0) if len(comp.host_ids) else np.ones(len(comp.resources))
        mean_cap = np.where(mean_cap > 0, mean_cap, 1.0)
        order.sort(key=lambda i: (-float(np.max(np.asarray(request.vms[i].demand) / mean_cap)), i))
    chosen: dict[str, str] = {}
    scores: dict[str, float] = {}
    ranking: tuple[str, ...] = ()
    for i in order:
        vm = request.vms[i]
        cand = _candidate(vm)
        verdict = evaluate(state, cand, excluded)
        hosts = np.flatnonzero(verdict.passing)
        if len(hosts) == 0:
            return PlacementResult(
                ok=False,
                assignments={},
                objective_before=before,
                objective_after=before,
                rejections=verdict.rejections,
                failed_vm=vm.id,
            )
        total = total_score(state, cand, hosts, scorers)
        best = int(hosts[int(np.argmin(total))])
        if len(order) == 1:  # stable: equal scores keep the host order, so the first is argmin's choice
            ranking = tuple(comp.host_ids[int(h)] for h in hosts[np.argsort(total, kind="stable")])
        state.add_vm(best, cand.demand, cand.anti, cand.aff)
        chosen[vm.id] = comp.host_ids[best]
        scores[vm.id] = float(total.min())
    assignments = {vm.id: chosen[vm.id] for vm in request.vms}
    return PlacementResult(
        ok=True,
        assignments=assignments,
        objective_before=before,
        objective_after=state.objective(),
        scores=scores,
        ranking=ranking,
    )
