"""Pure placement algorithms: no I/O, deterministic for a given input and seed.

Public API::

    from placement import (HostSnapshot, VMSnapshot, ClusterSnapshot, VMRequest, PlacementRequest,
                           PlacementResult, place, PlacementInputError,
                           Budget, Move, Plan, plan_rebalance, plan_drain, replay)
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
    "VMRequest",
    "VMSnapshot",
    "cluster_from_dict",
    "cluster_to_dict",
    "place",
    "plan_drain",
    "plan_rebalance",
    "ram_lower_bound_mib",
    "replay",
]
