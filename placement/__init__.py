"""Pure placement algorithms: no I/O, deterministic for a given input and seed.

Public API::

    from placement import (HostSnapshot, VMSnapshot, ClusterSnapshot, VMRequest, PlacementRequest,
                           PlacementResult, place, PlacementInputError)
"""

from placement.errors import PlacementInputError
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

__all__ = [
    "DEFAULT_RESOURCES",
    "HOST_STATES",
    "ClusterSnapshot",
    "HostSnapshot",
    "PlacementInputError",
    "PlacementRequest",
    "PlacementResult",
    "VMRequest",
    "VMSnapshot",
    "place",
]
