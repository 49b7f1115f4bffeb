"""Reason codes, their English/Spanish texts, explain_rejections() and the named filters (FILTERS)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import placement
from placement import (
    ClusterSnapshot,
    HostSnapshot,
    PlacementInputError,
    PlacementRequest,
    Reason,
    VMRequest,
    VMSnapshot,
    explain_rejections,
    place,
    plan_drain,
)
from placement.filters import FILTERS, Candidate, Filter, FilterInput, evaluate
from placement.reasons import LANGS, TEXTS, reason_text
from placement.state import State
from tests.unit.placement.pl_strategies import clusters

#: The texts the library reported before reason codes existed: JSON output and old assertions rely on them.
LEGACY = {
    "HOST_MAINTENANCE": "in maintenance",
    "HOST_DISABLED": "disabled",
    "HOST_DOWN": "down",
    "EXCLUDED_BY_REQUEST": "excluded by request",
    "EXCLUDED_FROM_REBALANCE": "excluded from rebalance",
    "TENANT_NOT_ALLOWED": "tenant not allowed",
    "OUTSIDE_ZONES": "outside the VM's zones",
    "MISSING_LABELS": "missing required labels",
    "ANTI_AFFINITY": "anti-affinity conflict",
    "AFFINITY_ELSEWHERE": "affinity group lives elsewhere",
    "NOT_ENOUGH_VCPU": "not enough vCPU",
    "NOT_ENOUGH_RAM": "not enough RAM",
    "NOT_ENOUGH_DISK": "not enough disk",
    "PINNED": "pinned",
    "NO_OTHER_HOST": "no other host",
    "NO_HOSTS": "no hosts in the cluster",
}


def _legacy_explain(rejections: dict[str, int]) -> str:
    """The implementation explain_rejections() replaced (English only)."""
    if not rejections:
        return ""
    parts = sorted(rejections.items(), key=lambda kv: (-kv[1], kv[0]))
    return "; ".join(f"{n} host{'s' if n != 1 else ''}: {reason}" for reason, n in parts)


# --- Reason and TEXTS ----------------------------------------------------------------------------
def test_every_reason_has_english_and_spanish_text() -> None:
    assert set(TEXTS) == set(Reason)
    assert len(Reason.__members__) == len(list(Reason)), "two codes share a value (an enum alias)"
    assert LANGS == ("en", "es")
    for reason in Reason:
        en, es = TEXTS[reason]
        assert en and es and en.strip() == en and es.strip() == es, reason.name
        assert en == reason.value == str(reason), reason.name
        assert es != en, f"{reason.name}: the Spanish text is the English one"
        assert reason.name.isupper() and reason.name.isidentifier()


def test_reason_values_keep_the_legacy_strings() -> None:
    for name, text in LEGACY.items():
        assert Reason[name] == text
    assert {Reason.HOST_MAINTENANCE: 1} == {"in maintenance": 1}
    assert {"not enough RAM": 2}[Reason.NOT_ENOUGH_RAM] == 2
    assert json.dumps({Reason.NOT_ENOUGH_RAM: 2, "x": Reason.PINNED}) == '{"not enough RAM": 2, "x": "pinned"}'
    assert f"{Reason.HOST_DOWN}" == "down"
    assert Reason.NOT_ENOUGH_OTHER == "not enough capacity"


def test_some_spanish_texts() -> None:
    es = {r: TEXTS[r][1] for r in Reason}
    assert es[Reason.HOST_MAINTENANCE] == "en mantenimiento"
    assert es[Reason.HOST_DISABLED] == "deshabilitado"
    assert es[Reason.HOST_DOWN] == "fuera de servicio"
    assert es[Reason.NOT_ENOUGH_RAM] == "RAM insuficiente"
    assert es[Reason.NOT_ENOUGH_VCPU] == "vCPU insuficientes"
    assert es[Reason.NOT_ENOUGH_DISK] == "disco insuficiente"
    assert es[Reason.ANTI_AFFINITY] == "conflicto de antiafinidad (ya hay una VM del mismo grupo)"
    assert es[Reason.TENANT_NOT_ALLOWED] == "reservado para otros municipios"
    assert es[Reason.OUTSIDE_ZONES] == "fuera de las zonas permitidas"


def test_public_api_exports() -> None:
    assert placement.Reason is Reason and placement.explain_rejections is explain_rejections
    assert {"Reason", "explain_rejections"} <= set(placement.__all__)


# --- explain_rejections ----------------------------------------------------------------------------
def test_explain_in_english_and_spanish() -> None:
    rej = {Reason.HOST_MAINTENANCE: 1, Reason.NOT_ENOUGH_RAM: 12}
    assert explain_rejections(rej) == "12 hosts: not enough RAM; 1 host: in maintenance"
    assert explain_rejections(rej, "en") == explain_rejections(rej)
    assert explain_rejections(rej, lang="es") == "12 hosts: RAM insuficiente; 1 host: en mantenimiento"
    assert explain_rejections({}) == "" and explain_rejections({}, "es") == ""


def test_explain_accepts_plain_strings_and_unknown_reasons() -> None:
    assert explain_rejections({"not enough RAM": 3}, "es") == "3 hosts: RAM insuficiente"
    mixed = {"not enough gpu": 1, "down": 2}
    assert explain_rejections(mixed, "es") == "2 hosts: fuera de servicio; 1 host: not enough gpu"
    assert reason_text("down", "es") == "fuera de servicio" and reason_text("whatever", "es") == "whatever"


def test_explain_ties_follow_the_reason_code_text_in_every_language() -> None:
    rej = {Reason.NOT_ENOUGH_VCPU: 2, Reason.HOST_DOWN: 2, Reason.ANTI_AFFINITY: 2}
    # "anti-affinity conflict" < "down" < "not enough vCPU", whatever the language
    assert explain_rejections(rej) == "2 hosts: anti-affinity conflict; 2 hosts: down; 2 hosts: not enough vCPU"
    assert explain_rejections(rej, "es") == (
        "2 hosts: conflicto de antiafinidad (ya hay una VM del mismo grupo); 2 hosts: fuera de servicio; "
        "2 hosts: vCPU insuficientes"
    )


def test_explain_with_overrides() -> None:
    overrides = {Reason.EXCLUDED_BY_REQUEST: ("a build already failed there", "ya falló una construcción allí")}
    rej = {Reason.EXCLUDED_BY_REQUEST: 1, Reason.NOT_ENOUGH_RAM: 2}
    en = explain_rejections(rej, overrides=overrides)
    assert en == "2 hosts: not enough RAM; 1 host: a build already failed there"
    es = explain_rejections(rej, "es", overrides)
    assert es == "2 hosts: RAM insuficiente; 1 host: ya falló una construcción allí"
    # a plain-string key finds its override too; an override that is not used changes nothing
    assert explain_rejections({"excluded by request": 1}, "es", overrides) == "1 host: ya falló una construcción allí"
    assert explain_rejections({Reason.HOST_DOWN: 1}, "en", overrides) == "1 host: down"


def test_explain_rejects_unknown_language() -> None:
    with pytest.raises(PlacementInputError, match="language"):
        explain_rejections({Reason.HOST_DOWN: 1}, lang="fr")
    with pytest.raises(PlacementInputError, match="language"):
        explain_rejections({}, lang="de")


@given(st.dictionaries(st.sampled_from([*Reason, "not enough gpu"]), st.integers(1, 50), max_size=8))
@settings(max_examples=200, deadline=None)
def test_english_output_is_byte_identical_to_the_legacy_format(rejections: dict[str, int]) -> None:
    assert explain_rejections(rejections) == _legacy_explain(rejections)
    assert explain_rejections({str(k): v for k, v in rejections.items()}) == _legacy_explain(rejections)


# --- FILTERS -------------------------------------------------------------------------------------
def test_filters_have_unique_names_and_reasons() -> None:
    assert all(isinstance(f, Filter) and isinstance(f.reason, Reason) and callable(f.fn) for f in FILTERS)
    names = [f.name for f in FILTERS]
    assert len(set(names)) == len(names) and all(names)
    reasons = [f.reason for f in FILTERS]
    assert len(set(reasons)) == len(reasons)
    assert names[:3] == ["maintenance", "disabled", "down"]
    assert names.index("tenant") < names.index("anti_affinity") < names.index("affinity") < names.index("ram")
    assert names[-1] == "other_capacity"


def test_a_host_rejected_by_several_filters_counts_once_under_the_first() -> None:
    hosts = [
        # in maintenance, reserved for another tenant, too small: counted as "in maintenance"
        HostSnapshot(id="m", capacity=(1, 512, 1), state="maintenance", allowed_tenants=frozenset({"other"})),
        # reserved for another tenant and too small: "tenant not allowed"
        HostSnapshot(id="t", capacity=(1, 512, 1), allowed_tenants=frozenset({"other"})),
        # too small in vCPU and RAM: "not enough vCPU" (vCPU is checked before RAM)
        HostSnapshot(id="s", capacity=(1, 512, 100)),
        HostSnapshot(id="r", capacity=(8, 512, 100)),
    ]
    request = PlacementRequest(vms=[VMRequest(id="n", demand=(2, 1024, 10), tenant="me")])
    r = place(ClusterSnapshot(hosts=hosts), request)
    assert not r.ok
    assert r.rejections == {
        Reason.HOST_MAINTENANCE: 1,
        Reason.TENANT_NOT_ALLOWED: 1,
        Reason.NOT_ENOUGH_VCPU: 1,
        Reason.NOT_ENOUGH_RAM: 1,
    }
    assert all(type(k) is Reason for k in r.rejections)
    assert list(r.rejections) == [
        Reason.HOST_MAINTENANCE,
        Reason.TENANT_NOT_ALLOWED,
        Reason.NOT_ENOUGH_VCPU,
        Reason.NOT_ENOUGH_RAM,
    ]  # FILTERS order


def test_other_hard_resources_and_soft_resources() -> None:
    hosts = [HostSnapshot(id=f"h{i}", capacity=(8, 8192, 100, float(i), 1.0)) for i in range(3)]
    snap = ClusterSnapshot(
        hosts=hosts, resources=("vcpu", "ram_mib", "disk_gib", "gpu", "load"), soft_resources=frozenset({"load"})
    )
    r = place(snap, PlacementRequest(vms=[VMRequest(id="n", demand=(1, 1024, 1, 2.0, 5.0))]))
    assert r.ok and r.host == "h2"  # the soft "load" never rejects
    r = place(snap, PlacementRequest(vms=[VMRequest(id="n", demand=(1, 1024, 1, 3.0, 0.0))]))
    assert r.rejections == {Reason.NOT_ENOUGH_OTHER: 3}
    assert r.explain() == "cannot place n: 3 hosts: not enough capacity"


@given(clusters(max_hosts=6, max_vms=14), st.data())
@settings(max_examples=80, deadline=None)
def test_each_rejected_host_is_counted_under_the_first_filter_that_rejects_it(snap: ClusterSnapshot, data) -> None:
    comp = snap.compiled
    state = State(comp)
    n_hosts = len(comp.host_ids)
    if comp.vm_ids and data.draw(st.booleans()):
        v = data.draw(st.integers(0, len(comp.vm_ids) - 1))
        cand = Candidate(
            vm_id=comp.vm_ids[v],
            demand=comp.vm_demand[v],
            tenant=comp.vm_tenant[v],
            anti=comp.vm_anti[v],
            aff=comp.vm_aff[v],
            zones=comp.vm_zones[v],
            source=int(comp.vm_host[v]),
        )
    else:
        cand = Candidate(
            vm_id="new",
            demand=np.array(
                [
                    data.draw(st.sampled_from([1.0, 8.0, 40.0])),
                    data.draw(st.sampled_from([512.0, 30000.0])),
                    data.draw(st.sampled_from([5.0, 150.0])),
                ]
            ),
            tenant=data.draw(st.sampled_from(["t1", "t2"])),
            anti=data.draw(st.sampled_from([frozenset(), frozenset({"g1"})])),
            zones=data.draw(st.sampled_from([None, frozenset({"a"})])),
        )
    excluded = np.array(data.draw(st.lists(st.booleans(), min_size=n_hosts, max_size=n_hosts)), dtype=bool)
    only = comp.rebalance_ok if data.draw(st.booleans()) else None
    verdict = evaluate(state, cand, excluded, only)
    x = FilterInput(state, cand, excluded, only)
    masks = [f.fn(x) for f in FILTERS]
    expected: dict[str, int] = {}
    for h in range(n_hosts):
        if h == cand.source:
            assert not verdict.passing[h]
            continue
        first = next((f for f, m in zip(FILTERS, masks, strict=True) if m is not None and not m[h]), None)
        assert verdict.passing[h] == (first is None)
        if first is not None:
            expected[first.reason] = expected.get(first.reason, 0) + 1
    assert verdict.rejections == expected


# --- callers: drain, replay, no imports inside functions ----------------------------------------
def test_drain_reasons_are_reason_texts() -> None:
    solo = ClusterSnapshot(
        hosts=[HostSnapshot(id="solo", capacity=(8, 8192, 100))],
        vms=[
            VMSnapshot(id="v", host="solo", demand=(1, 512, 1)),
            VMSnapshot(id="p", host="solo", demand=(1, 512, 1), pinned=True),
        ],
    )
    plan = plan_drain(solo, "solo")
    assert plan.unplaced == {"v": Reason.NO_OTHER_HOST, "p": Reason.PINNED}
    assert all(type(why) is str for why in plan.unplaced.values())


def test_no_imports_inside_functions_in_placement() -> None:
    root = Path(placement.__file__).parent
    offenders = []
    for path in sorted(root.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                inner = [n for n in ast.walk(node) if isinstance(n, ast.Import | ast.ImportFrom)]
                offenders += [f"{path.name}:{n.lineno}" for n in inner]
    assert offenders == []
