"""Vectorised evaluation of VM swaps: VM a (on host A) and VM b (on host B) trade places.

A swap moves the *difference* of two demand vectors, so it can make adjustments no single move can.
It is only offered when it can run as two sequential migrations without over-commit (a to B fits
before b leaves, or b to A fits before a leaves) and without two anti-affinity partners meeting.
"""

from __future__ import annotations

import numpy as np

from placement.moves import StaticTargets
from placement.state import EPS, FloatArray, IntArray, State

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
    """Up to ``limit`` improving swaps among ``vms``, best gain per extra budget move first."""
    c = state.c
    k = len(vms)
    if k < 2 or state.n == 0:
        return []
    host = state.vm_host[vms]
    d = c.vm_demand[vms]
    u, inv, al = state.util[host], c.inv_cap[host], state.alloc[host]
    cp = c.cap[host] * (1.0 + EPS) + EPS
    soft = ~c.hard
    sch = c.schedulable[host].astype(float)[:, None]
    # [i, j]: i goes to host(j), j goes to host(i); host(i) changes by d_j - d_i.
    delta = d[None, :, :] - d[:, None, :]
    valid = np.triu(host[:, None] != host[None, :], 1)
    keys = static.key_of_vm[vms]
    valid &= static.masks[keys][:, host] & static.masks[keys][:, host].T
    valid &= ((al[:, None, :] + delta <= cp[:, None, :]) | soft).all(axis=2)
    valid &= ((al[None, :, :] - delta <= cp[None, :, :]) | soft).all(axis=2)
    i_first = ((al[None, :, :] + d[:, None, :] <= cp[None, :, :]) | soft).all(axis=2)
    j_first = ((al[:, None, :] + d[None, :, :] <= cp[:, None, :]) | soft).all(axis=2)
    valid &= i_first | j_first
    # Budget: VMs ending away from home and their RAM.
    o = origin[vms]
    away_i_before = host != o
    away_i_after = host[None, :] != o[:, None]  # i on host(j)
    away_j_after = host[:, None] != o[None, :]  # j on host(i)
    extra = (
        away_i_after.astype(np.int64) + away_j_after - away_i_before[:, None].astype(np.int64) - away_i_before[None, :]
    )
    cst = cost[vms]
    extra_ram = cst[:, None] * (away_i_after.astype(float) - away_i_before[:, None]) + cst[None, :] * (
        away_j_after.astype(float) - away_i_before[None, :]
    )
    valid &= (extra <= moves_left) & (extra_ram <= ram_left + 1e-9)
    if not valid.any():
        return []
    du_i = delta * inv[:, None, :]
    du_j = -delta * inv[None, :, :]
    ds1 = sch[:, None, :] * du_i + sch[None, :, :] * du_j
    ds2 = sch[:, None, :] * du_i * (2 * u[:, None, :] + du_i) + sch[None, :, :] * du_j * (2 * u[None, :, :] + du_j)
    s1 = state.s1 + ds1
    s2 = state.s2 + ds2
    mean = s1 / state.n
    after = np.sqrt(np.maximum(s2 / state.n - mean * mean, 0.0)) @ c.weights
    gain = current - after
    valid &= gain > 1e-9
    valid &= (extra <= 0) | (gain >= min_gain * np.maximum(extra, 1))
    idx = np.flatnonzero(valid)
    if len(idx) == 0:
        return []
    score = gain.flat[idx] / np.maximum(extra.flat[idx], 1)
    order = idx[np.argsort(-score, kind="stable")]
    out: list[Swap] = []
    for flat in order[: limit * 4]:
        i, j = divmod(int(flat), k)
        va, vb = int(vms[i]), int(vms[j])
        if (c.vm_anti[va] or c.vm_anti[vb]) and (
            _anti_conflict(state, va, int(host[j]), vb) or _anti_conflict(state, vb, int(host[i]), va)
        ):
            continue
        out.append((float(gain.flat[flat]), va, vb, int(extra.flat[flat])))
        if len(out) >= limit:
            break
    return out


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
