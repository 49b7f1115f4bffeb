"""Typed errors of the placement library."""

from __future__ import annotations


class PlacementInputError(ValueError):
    """The snapshot or request is malformed (unknown ids, duplicates, negative or non-finite sizes...).

    A VM that simply does not fit anywhere is NOT an input error: ``place()`` returns ``ok=False``
    with the rejection reasons instead.
    """
