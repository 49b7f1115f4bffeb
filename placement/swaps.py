"""Vectorised evaluation of VM swaps: VM a (on host A) and VM b (on host B) trade places.

A swap moves the *difference* of two demand vectors, so it can make adjustments no single move can.
It is only offered when it can run as two sequential migrations without over-commit (a to B fits
before b leaves, or b to A fits before a leaves) and without two anti-affinity partners meeting.
"""

from __future__ import annotations

import numpy as np

from placement.compiled import FloatArray, IntArray
from placement.moves import StaticTargets
from placement.state import EPS, State

Swap = tuple[float, int, int, int]  # (gain, vm a, vm b, extra budget moves)


def swap_candidates(
    state: State,
    vms: IntArray,
    static: StaticTargets,
    origin: IntArray,
    cost: FloatArray,
    moves_left: int,
    ram_left: float,
    current: float,
    min_gain: float,
    limit: int = 32,
) -> list[Swap]:
    """Up to ``limit`` improving swaps among ``vms``, best gain per extra budget move first.

    Gains are computed first for every pair on different hosts (cheap arithmetic on the running
    sums); the feasibility and budget checks then run only on the improving pairs.
    """
    c = state.c
    k = len(vms)
    if k < 2 or state.n == 0:
        return []
    host = state.vm_host[vms]
    i_idx, j_idx = _pairs(k)
    keep = host[i_idx] != host[j_idx]
    i_idx, j_idx = i_idx[keep], j_idx[keep]
    # Resource by resource on 1-D arrays of pairs (much faster than (pairs, R) arrays reduced over R), in
    # float32 (ranking only; every applied swap is re-checked in float64).
    n = state.n
    d_cols = c.vm_demand[vms].T.astype(np.float32)  # (R, k)
    inv_cols = (c.inv_cap[host] * c.schedulable[host][:, None]).T.astype(np.float32)  # 0 on unschedulable hosts
    two_u_cols = (2.0 * state.util[host]).T.astype(np.float32)
    mean0 = (state.s1 / n).astype(np.float32)
    var0 = np.maximum(state.s2 / n - (state.s1 / n) ** 2, 0.0).astype(np.float32)
    after = np.zeros(len(i_idx), dtype=np.float32)
    for r in range(d_cols.shape[0]):
        # Swap (i, j): host(i) changes by delta = d_j - d_i, host(j) by -delta.
        delta = d_cols[r][j_idx] - d_cols[r][i_idx]
        du_i = delta * inv_cols[r][i_idx]
        du_j = -delta * inv_cols[r][j_idx]
        # Deviations from the current sums, so float32 keeps the precision where it matters:
        # var' - var0 = ds2/n - (2 mean0 ds1/n + (ds1/n)^2)
        ds1 = du_i + du_j
        ds2 = du_i * (two_u_cols[r][i_idx] + du_i) + du_j * (two_u_cols[r][j_idx] + du_j)
        var = ds2 / n - ds1 / n * (2 * mean0[r] + ds1 / n)
        var += var0[r]
        np.maximum(var, 0.0, out=var)
        np.sqrt(var, out=var)
        var *= np.float32(c.weights[r])
        after += var
    gain = (current - after).astype(np.float64)
    sel = np.flatnonzero(gain > 1e-7)
    if len(sel) == 0:
        return []
    i_idx, j_idx, gain = i_idx[sel], j_idx[sel], gain[sel]
    hi, hj = host[i_idx], host[j_idx]
    a, b = vms[i_idx], vms[j_idx]
    keys = static.key_of_vm
    valid = static.masks[keys[a], hj] & static.masks[keys[b], hi]
    i_first = np.ones(len(sel), dtype=bool)
    j_first = np.ones(len(sel), dtype=bool)
    for hard in np.flatnonzero(c.hard):  # capacity: after the swap, and for one of the two halves run first
        cap_r = c.cap[:, hard] * (1.0 + EPS) + EPS
        alloc_r, d_r = state.alloc[:, hard], c.vm_demand[:, hard]
        al_i, al_j, cp_i, cp_j, da, db = alloc_r[hi], alloc_r[hj], cap_r[hi], cap_r[hj], d_r[a], d_r[b]
        valid &= (al_i + (db - da) <= cp_i) & (al_j - (db - da) <= cp_j)
        i_first &= al_j + da <= cp_j
        j_first &= al_i + db <= cp_i
    valid &= i_first | j_first
    # Budget: VMs ending away from home, and their RAM.
    oa, ob = origin[a], origin[b]
    before_a, before_b = hi != oa, hj != ob
    after_a, after_b = hj != oa, hi != ob
    extra = after_a.astype(np.int64) + after_b - before_a - before_b
    extra_ram = cost[a] * (after_a.astype(float) - before_a) + cost[b] * (after_b.astype(float) - before_b)
    valid &= (extra <= moves_left) & (extra_ram <= ram_left + 1e-9)
    valid &= (extra <= 0) | (gain >= min_gain * np.maximum(extra, 1))
    idx = np.flatnonzero(valid)
    if len(idx) == 0:
        return []
    score = gain[idx] / np.maximum(extra[idx], 1)
    order = idx[np.argsort(-score, kind="stable")]
    out: list[Swap] = []
    for p in order[: limit * 4]:
        va, vb = int(a[p]), int(b[p])
        if (c.vm_anti[va] or c.vm_anti[vb]) and (
            _anti_conflict(state, va, int(hj[p]), vb) or _anti_conflict(state, vb, int(hi[p]), va)
        ):
            continue
        out.append((float(gain[p]), va, vb, int(extra[p])))
        if len(out) >= limit:
            break
    return out


_PAIRS: dict[int, tuple[IntArray, IntArray]] = {}


def _pairs(k: int) -> tuple[IntArray, IntArray]:
    """Upper-triangle index pairs for k items (cached; deterministic)."""
    got = _PAIRS.get(k)
    if got is None:
        i, j = np.triu_indices(k, 1)
        got = (i.astype(np.int64), j.astype(np.int64))
        if len(_PAIRS) > 64:
            _PAIRS.clear()
        _PAIRS[k] = got
    return got


def _anti_conflict(state: State, vm: int, target: int, leaving: int) -> bool:
    # No discount for ``leaving``: the two halves of a swap run one after the other, so two members of
    # one group may never trade places.
    groups = state.c.vm_anti[vm]
    return any(state.anti.get(g, {}).get(target, 0) > 0 or g in state.c.vm_anti[leaving] for g in groups)


def swap_feasible(state: State, a: int, b: int) -> bool:
    """Exact check against the current state (used before applying a batch of swaps)."""
    c = state.c
    ha, hb = int(state.vm_host[a]), int(state.vm_host[b])
    if ha == hb:
        return False
    delta = c.vm_demand[b] - c.vm_demand[a]
    if not (state.fits_host(ha, delta) and state.fits_host(hb, -delta)):
        return False
    if not (state.fits_host(hb, c.vm_demand[a]) or state.fits_host(ha, c.vm_demand[b])):
        return False
    return not (_anti_conflict(state, a, hb, b) or _anti_conflict(state, b, ha, a))


def apply_swap(state: State, a: int, b: int) -> None:
    """Swap in the order that never over-commits (a first when it fits, else b first)."""
    ha, hb = int(state.vm_host[a]), int(state.vm_host[b])
    if state.fits_host(hb, state.c.vm_demand[a]):
        state.move(a, hb)
        state.move(b, ha)
    else:
        state.move(b, ha)
        state.move(a, hb)
