"""Issue 16: smoothed measured CPU and memory pressure as extra balancing dimensions, with hysteresis.

The "load source" is a fake: the tests say what each host measured. The cluster's allocation is perfectly
balanced, so every move a plan proposes is for the measured columns.
"""

from __future__ import annotations

import random

import pytest

from placement import Budget, ClusterSnapshot, HostSnapshot, PlacementInputError, VMSnapshot, plan_rebalance
from placement.measured import LoadWeights, MeasuredLoad, banded, with_measured_load

HOSTS = 10
VMS_PER_HOST = 6
NIGHTLY = Budget(max_moves=20, max_per_host=1, min_gain=0.05)  # the nightly job's defaults


def balanced() -> ClusterSnapshot:
    hosts = [HostSnapshot(id=f"h{i}", capacity=(64.0, 262144.0, 4000.0)) for i in range(HOSTS)]
    vms = [VMSnapshot(id=f"v{i}-{j}", host=f"h{i}", demand=(4.0, 16384.0, 100.0))
           for i in range(HOSTS) for j in range(VMS_PER_HOST)]
    return ClusterSnapshot(hosts=hosts, vms=vms)


def noisy(seed: int, noise: float) -> dict[str, MeasuredLoad]:
    rng = random.Random(seed)
    return {f"h{i}": MeasuredLoad(cpu=0.5 + rng.uniform(-noise, noise), mem=0.6 + rng.uniform(-noise, noise))
            for i in range(HOSTS)}


@pytest.mark.parametrize("seed", range(10))
def test_noise_of_five_points_never_triggers_a_migration(seed: int) -> None:
    snap = with_measured_load(balanced(), noisy(seed, 0.05), LoadWeights(cpu=1.0, mem=1.0, deadband=0.10))
    plan = plan_rebalance(snap, NIGHTLY)
    assert plan.moves == () and plan.objective_before == pytest.approx(0.0, abs=1e-9)


def test_without_the_band_the_same_noise_would_move_vms() -> None:
    """The band is what keeps noise out: at 0 every seed's noise is a (tiny) imbalance to chase."""
    moved = [len(plan_rebalance(with_measured_load(balanced(), noisy(seed, 0.05), LoadWeights(1.0, 1.0, 0.0)),
                                Budget(max_moves=20, max_per_host=1, min_gain=0.0)).moves) for seed in range(10)]
    assert sum(moved) > 0, moved


def test_a_hot_host_sheds_vms_to_cool_ones() -> None:
    load = {f"h{i}": MeasuredLoad(cpu=0.35, mem=0.5) for i in range(HOSTS)}
    load["h3"] = MeasuredLoad(cpu=0.95, mem=0.5)  # same allocation, but its guests are busy
    snap = with_measured_load(balanced(), load, LoadWeights(cpu=1.0, mem=0.5))
    plan = plan_rebalance(snap, NIGHTLY)
    # the busy guests leave h3; cool ones come back in their place (swaps), so allocation stays even
    assert "h3" in {m.source for m in plan.moves}, plan.moves
    assert plan.objective_after < plan.objective_before
    assert plan.stdev_after["cpu_load"] < 0.5 * plan.stdev_before["cpu_load"]
    assert plan.stdev_after["vcpu"] <= 0.05 and plan.stdev_after["ram_mib"] <= 0.05


def test_weights_zero_leave_the_snapshot_as_it_is_and_allocation_still_rules() -> None:
    snap = balanced()
    assert with_measured_load(snap, noisy(1, 0.4), LoadWeights()) is snap
    assert with_measured_load(snap, {}, LoadWeights(cpu=1.0)) is snap  # nothing measured: allocation alone
    out = with_measured_load(snap, {"h0": MeasuredLoad(0.9, 0.9)}, LoadWeights(cpu=2.0))
    assert out.resources == ("vcpu", "ram_mib", "disk_gib", "cpu_load") and out.soft_resources == {"cpu_load"}
    assert out.weights == (1.0, 1.0, 1.0, 2.0)
    # a host without a measurement counts as the mean of the measured ones (here: only h0)
    assert plan_rebalance(out, NIGHTLY).moves == ()


def test_the_band_pulls_values_towards_the_mean_and_never_past_it() -> None:
    assert banded({"a": 0.5, "b": 0.56, "c": 0.44}, 0.10) == pytest.approx({"a": 0.5, "b": 0.5, "c": 0.5})
    got = banded({"a": 0.2, "b": 0.8}, 0.1)
    assert got == pytest.approx({"a": 0.3, "b": 0.7})
    assert banded({}, 0.1) == {}


@pytest.mark.parametrize("bad", [
    lambda: MeasuredLoad(cpu=1.2, mem=0.1),
    lambda: MeasuredLoad(cpu=float("nan"), mem=0.1),
    lambda: LoadWeights(cpu=-1.0),
    lambda: with_measured_load(balanced(), {"nope": MeasuredLoad(0.1, 0.1)}, LoadWeights(cpu=1.0)),
    lambda: with_measured_load(with_measured_load(balanced(), {"h1": MeasuredLoad(0.1, 0.1)}, LoadWeights(cpu=1.0)),
                               {"h1": MeasuredLoad(0.1, 0.1)}, LoadWeights(cpu=1.0)),
])
def test_bad_measurements_are_refused_by_name(bad: object) -> None:
    with pytest.raises(PlacementInputError):
        bad()  # type: ignore[operator]
