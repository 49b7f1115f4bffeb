"""Reason codes: why a host was rejected or a VM was left behind, and how to say it to a person.

A :class:`Reason` is a ``str`` whose value is the English text the library has always reported, so
``{Reason.NOT_ENOUGH_RAM: 2} == {"not enough RAM": 2}`` and JSON output reads the same as before; the
member *name* is the stable code. :data:`TEXTS` holds the English and Spanish wording, and
:func:`explain_rejections` is the one place that turns rejection counts into a sentence::

    explain_rejections({Reason.NOT_ENOUGH_RAM: 12, Reason.HOST_MAINTENANCE: 1}, lang="es")
    # "12 hosts: RAM insuficiente; 1 host: en mantenimiento"
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from placement.errors import PlacementInputError


class Reason(enum.StrEnum):
    """Why a filter rejected a host (or why a VM could not be placed or moved)."""

    # host state
    HOST_MAINTENANCE = "in maintenance"
    HOST_DISABLED = "disabled"
    HOST_DOWN = "down"
    HOST_PENDING = "not checked yet"
    # what the caller asked
    EXCLUDED_BY_REQUEST = "excluded by request"
    EXCLUDED_FROM_REBALANCE = "excluded from rebalance"
    # static host properties
    TENANT_NOT_ALLOWED = "tenant not allowed"
    OUTSIDE_ZONES = "outside the VM's zones"
    MISSING_LABELS = "missing required labels"
    # groups
    ANTI_AFFINITY = "anti-affinity conflict"
    AFFINITY_ELSEWHERE = "affinity group lives elsewhere"
    # capacity
    NOT_ENOUGH_VCPU = "not enough vCPU"
    NOT_ENOUGH_RAM = "not enough RAM"
    NOT_ENOUGH_DISK = "not enough disk"
    NOT_ENOUGH_OTHER = "not enough capacity"  # any other hard resource (e.g. a "gpu" column)
    # a VM as a whole (drain, place)
    PINNED = "pinned"
    NO_OTHER_HOST = "no other host"
    NO_HOSTS = "no hosts in the cluster"


#: Languages of :data:`TEXTS`, in tuple order.
LANGS: tuple[str, ...] = ("en", "es")

_SPANISH: dict[Reason, str] = {
    Reason.HOST_MAINTENANCE: "en mantenimiento",
    Reason.HOST_DISABLED: "deshabilitado",
    Reason.HOST_DOWN: "fuera de servicio",
    Reason.HOST_PENDING: "todavía sin verificar",
    Reason.EXCLUDED_BY_REQUEST: "excluido por la solicitud",
    Reason.EXCLUDED_FROM_REBALANCE: "excluido del rebalanceo",
    Reason.TENANT_NOT_ALLOWED: "reservado para otros municipios",
    Reason.OUTSIDE_ZONES: "fuera de las zonas permitidas",
    Reason.MISSING_LABELS: "no tiene las etiquetas requeridas",
    Reason.ANTI_AFFINITY: "conflicto de antiafinidad (ya hay una VM del mismo grupo)",
    Reason.AFFINITY_ELSEWHERE: "el grupo de afinidad está en otro host",
    Reason.NOT_ENOUGH_VCPU: "vCPU insuficientes",
    Reason.NOT_ENOUGH_RAM: "RAM insuficiente",
    Reason.NOT_ENOUGH_DISK: "disco insuficiente",
    Reason.NOT_ENOUGH_OTHER: "capacidad insuficiente",
    Reason.PINNED: "fijada a su host",
    Reason.NO_OTHER_HOST: "no hay otro host",
    Reason.NO_HOSTS: "no hay hosts en el clúster",
}

#: ``(English, Spanish)`` for every reason; the English text is the member's value.
TEXTS: dict[Reason, tuple[str, str]] = {r: (r.value, _SPANISH[r]) for r in Reason}


def _lang_index(lang: str) -> int:
    try:
        return LANGS.index(lang)
    except ValueError:
        raise PlacementInputError(f"unknown language {lang!r} (expected one of {list(LANGS)})") from None


def _text(reason: str, idx: int, overrides: Mapping[Reason, tuple[str, str]] | None) -> str:
    try:
        code = Reason(reason)
    except ValueError:
        return str(reason)
    if overrides is not None and code in overrides:
        return overrides[code][idx]
    return TEXTS[code][idx]


def reason_text(reason: str, lang: str = "en", overrides: Mapping[Reason, tuple[str, str]] | None = None) -> str:
    """The text of one reason in ``lang``; a string that is no :class:`Reason` is shown as it is."""
    return _text(reason, _lang_index(lang), overrides)


def explain_rejections(
    rejections: Mapping[str, int],
    lang: str = "en",
    overrides: Mapping[Reason, tuple[str, str]] | None = None,
) -> str:
    """``"12 hosts: not enough RAM; 3 hosts: in maintenance"`` (largest count first, "" when empty).

    ``lang`` is ``"en"`` or ``"es"``; ``overrides`` replaces the ``(English, Spanish)`` text of some
    reasons (a caller phrasing a reason in its own context). Ties are ordered by the reason's code text
    (its English value), so the order is the same in every language and with any overrides. Keys that
    are no :class:`Reason` are shown as they are.
    """
    idx = _lang_index(lang)
    parts = sorted(rejections.items(), key=lambda kv: (-kv[1], str(kv[0])))
    return "; ".join(f"{n} host{'s' if n != 1 else ''}: {_text(reason, idx, overrides)}" for reason, n in parts)
