"""Pure placement algorithms: no I/O, deterministic for a given input and seed.

Public API::

    from placement import (HostSnapshot, VMSnapshot, ClusterSnapshot, VMRequest, PlacementRequest,
                           PlacementResult, place, PlacementInputError,
                           Budget, Move, Plan, plan_rebalance, plan_drain, replay,
                           Reason, explain_rejections)

``Reason`` codes say why a host was rejected (``PlacementResult.rejections`` is keyed by them);
``explain_rejections(rejections, lang="es")`` phrases them in English or Spanish.
"""

from placement.drain import plan_drain
from placement.errors import PlacementInputError
from placement.jsonfmt import cluster_from_dict, cluster_to_dict
from placement.model import (
    DEFAULT_RESOURCES,
    HOST_STATES,
    ClusterSnapshot,
    HostSnapshot,
    PlacementRequest,
    VMRequest,
    VMSnapshot,
)
from placement.place import PlacementResult, place
from placement.plan import Budget, Move, Plan, PlanReplayError, replay
from placement.reasons import Reason, explain_rejections
from placement.rebalance import plan_rebalance, ram_lower_bound_mib

__all__ = [
    "DEFAULT_RESOURCES",
    "HOST_STATES",
    "Budget",
    "ClusterSnapshot",
    "HostSnapshot",
    "Move",
    "PlacementInputError",
    "PlacementRequest",
    "PlacementResult",
    "Plan",
    "PlanReplayError",
    "Reason",
    "VMRequest",
    "VMSnapshot",
    "cluster_from_dict",
    "cluster_to_dict",
    "explain_rejections",
    "place",
    "plan_drain",
    "plan_rebalance",
    "ram_lower_bound_mib",
    "replay",
]
