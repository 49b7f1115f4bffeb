"""Vectorised evaluation of two-move chains: VM v leaves host X for host Y, then VM u takes its place.

``v: X -> Y`` then ``u: A -> X``. The first move may make the objective worse on its own (it makes room),
which is exactly what a greedy step or a swap cannot find. Budget and feasibility are those of two
sequential migrations; the first leg must fit as is, the second after the first.
"""

from __future__ import annotations

import numpy as np

from placement.compiled import FloatArray, IntArray
from placement.moves import StaticTargets
from placement.state import EPS, State

Chain = tuple[float, int, int, int, int]  # (gain, u, v, target of v, extra budget moves)


def best_chain(
    state: State,
    us: IntArray,
    vs: IntArray,
    static: StaticTargets,
    origin: IntArray,
    cost: FloatArray,
    moves_left: int,
    ram_left: float,
    current: float,
    min_gain: float,
) -> Chain | None:
    """The best improving chain with u in ``us`` and v in ``vs`` (budget-feasible), or None."""
    c = state.c
    if len(us) == 0 or len(vs) == 0 or state.n == 0:
        return None
    hu, hv = state.vm_host[us], state.vm_host[vs]
    du, dv = c.vm_demand[us], c.vm_demand[vs]
    n_h = len(c.host_ids)
    # Pair (i, j): u_i goes to X = host(v_j); needs X != host(u_i) and u_i != v_j.
    pair_ok = (hu[:, None] != hv[None, :]) & (us[:, None] != vs[None, :])
    pair_ok &= static.masks[static.key_of_vm[us]][:, hv]
    ii, jj = np.nonzero(pair_ok)
    if len(ii) == 0:
        return None
    a, x = hu[ii], hv[jj]
    d_u, d_v = du[ii], dv[jj]
    # Host X after both: + d_u - d_v; must fit (v leaves first, so no transient over-commit on X).
    soft = ~c.hard
    cap = c.cap * (1.0 + EPS) + EPS
    fit_x = ((state.alloc[x] + d_u - d_v <= cap[x]) | soft).all(axis=1)
    ii, jj, a, x, d_u, d_v = ii[fit_x], jj[fit_x], a[fit_x], x[fit_x], d_u[fit_x], d_v[fit_x]
    if len(ii) == 0:
        return None
    util, alloc, inv = state.util, state.alloc, c.inv_cap
    sched = c.schedulable.astype(float)[:, None]
    ua_new = (alloc[a] - d_u) * inv[a]
    ux_new = (alloc[x] + d_u - d_v) * inv[x]
    ds1 = sched[a] * (ua_new - util[a]) + sched[x] * (ux_new - util[x])
    ds2 = sched[a] * (ua_new**2 - util[a] ** 2) + sched[x] * (ux_new**2 - util[x] ** 2)
    # Y: every host; (P, H, R) increments for v landing on Y.
    duy = d_v[:, None, :] * inv[None, :, :] * sched[None, :, :]
    s1 = state.s1 + ds1[:, None, :] + duy
    s2 = state.s2 + ds2[:, None, :] + duy * (2.0 * util[None, :, :] + duy)
    mean = s1 / state.n
    after = np.sqrt(np.maximum(s2 / state.n - mean * mean, 0.0)) @ c.weights
    valid = static.masks[static.key_of_vm[vs[jj]]].copy()
    hosts = np.arange(n_h)
    valid &= (hosts[None, :] != a[:, None]) & (hosts[None, :] != x[:, None])  # Y = A is a swap
    valid &= ((alloc[None, :, :] + d_v[:, None, :] <= cap[None, :, :]) | soft).all(axis=2)
    gain = current - after
    valid &= gain > 1e-9
    # Budget.
    u_id, v_id = us[ii], vs[jj]
    ou, ov = origin[u_id], origin[v_id]
    extra_u = (x != ou).astype(np.int64) - (a != ou)
    away_v_before = (x != ov).astype(np.int64)
    extra = extra_u[:, None] + (hosts[None, :] != ov[:, None]) - away_v_before[:, None]
    ram_u = cost[u_id] * extra_u
    ram = ram_u[:, None] + cost[v_id][:, None] * ((hosts[None, :] != ov[:, None]) - away_v_before[:, None])
    valid &= (extra <= moves_left) & (ram <= ram_left + 1e-9)
    valid &= (extra <= 0) | (gain >= min_gain * np.maximum(extra, 1))
    if not valid.any():
        return None
    score = np.where(valid, gain / np.maximum(extra, 1), -np.inf)
    for flat in np.argsort(-score, axis=None, kind="stable")[:32]:
        p, y = divmod(int(flat), n_h)
        if not np.isfinite(score[p, y]):
            return None
        uu, vv = int(u_id[p]), int(v_id[p])
        if c.vm_anti[uu] or c.vm_anti[vv]:
            blocked_v = state.anti_blocked(c.vm_anti[vv], int(x[p]))
            blocked_u = state.anti_blocked(c.vm_anti[uu], int(a[p]))
            if y in blocked_v or int(x[p]) in blocked_u or (c.vm_anti[uu] & c.vm_anti[vv]):
                continue
        return float(gain[p, y]), uu, vv, y, int(extra[p, y])
    return None
