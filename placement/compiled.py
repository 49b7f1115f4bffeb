"""The numpy form of a snapshot (``Compiled``), built once per :class:`~placement.model.ClusterSnapshot`.

:func:`placement.model.compile_snapshot` builds it (``ClusterSnapshot.compiled``); this module imports
nothing of the model, so the two never form a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Compiled:
    """Immutable arrays built once per snapshot."""

    resources: tuple[str, ...]
    weights: FloatArray  # (R,)
    hard: BoolArray  # (R,) capacity is enforced for this resource
    host_ids: tuple[str, ...]
    host_index: dict[str, int]
    cap: FloatArray  # (H, R)
    inv_cap: FloatArray  # (H, R) 1/cap, 0 where cap == 0
    alloc: FloatArray  # (H, R) base usage + sum of VM demands
    schedulable: BoolArray  # (H,)
    rebalance_ok: BoolArray  # (H,) schedulable and not excluded from rebalance
    state_names: tuple[str, ...]
    zones: tuple[str | None, ...]
    labels: tuple[frozenset[str], ...]
    allowed_tenants: tuple[frozenset[str] | None, ...]
    vm_ids: tuple[str, ...]
    vm_index: dict[str, int]
    vm_demand: FloatArray  # (V, R)
    vm_host: IntArray  # (V,)
    pinned: BoolArray  # (V,)
    vm_tenant: tuple[str, ...]
    vm_anti: tuple[frozenset[str], ...]
    vm_aff: tuple[frozenset[str], ...]
    vm_zones: tuple[frozenset[str] | None, ...]
    vm_labels: tuple[frozenset[str], ...]  # what a host must carry to take the VM (e.g. its storage pool)
    vm_copy: FloatArray  # (V,) MiB a migration copies besides RAM (local disks)
    anti_table: dict[str, dict[int, int]]  # group -> host -> members (read-only after compile)
    aff_table: dict[str, dict[int, int]]
    util: FloatArray  # (H, R) alloc / cap at snapshot time
    s1: FloatArray  # (R,) sum of util over schedulable hosts
    s2: FloatArray  # (R,) sum of util**2 over schedulable hosts
    n_sched: int
    objective0: float  # the objective of the snapshot as given
    #: Static host masks built on demand by the filters (tenant, zones, labels, state), bounded size.
    mask_cache: dict[tuple[object, ...], BoolArray] = field(default_factory=dict, compare=False, repr=False)


def objective_of(util: FloatArray, mask: BoolArray, weights: FloatArray) -> float:
    """``sum_r w_r * stdev`` of the rows of ``util`` selected by ``mask`` (0 for no host)."""
    rows = util if mask.all() else util[mask]
    if rows.shape[0] == 0:
        return 0.0
    return float(np.dot(weights, rows.std(axis=0)))
