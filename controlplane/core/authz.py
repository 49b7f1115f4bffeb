"""Role checks shared by the use cases (tenant scoping is done where objects are looked up)."""

from __future__ import annotations

from controlplane.context import Principal
from controlplane.errors import Forbidden, Msg


def require_operator(actor: Principal) -> None:
    if not actor.is_operator:
        raise Forbidden(Msg("This needs the data-center operator role.",
                            "Esto requiere el rol de operador del centro de datos."))
