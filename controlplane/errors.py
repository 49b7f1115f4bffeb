"""Domain errors that the API turns into RFC 9457 problem+json, with titles in English and Spanish.

Services raise these; nothing else ever reaches a client (unexpected exceptions become a generic 500
without internals).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Msg:
    """A user-facing sentence in both languages the product speaks."""

    en: str
    es: str

    def get(self, lang: str) -> str:
        return self.es if lang == "es" else self.en


# slug -> (HTTP status, title)
PROBLEM_TYPES: dict[str, tuple[int, Msg]] = {
    "malformed-request": (400, Msg("Malformed request", "Solicitud mal formada")),
    "validation-error": (422, Msg("Invalid request data", "Datos de la solicitud no válidos")),
    "unauthorized": (401, Msg("Authentication required", "Se requiere autenticación")),
    "forbidden": (403, Msg("Not allowed", "Operación no permitida")),
    "quota-exceeded": (403, Msg("Quota exceeded", "Cuota excedida")),
    "not-found": (404, Msg("Not found", "No encontrado")),
    "method-not-allowed": (405, Msg("Method not allowed", "Método no permitido")),
    "conflict": (409, Msg("Conflict", "Conflicto")),
    "invalid-state": (409, Msg("Invalid state for this operation", "Estado no válido para esta operación")),
    "insufficient-capacity": (409, Msg("No host has room", "Ningún host tiene capacidad")),
    "insufficient-storage": (409, Msg("Storage pool full", "Pool de almacenamiento lleno")),
    "idempotency-in-progress": (409, Msg("Request with this Idempotency-Key still in progress",
                                         "Solicitud con esta Idempotency-Key todavía en curso")),
    "precondition-failed": (412, Msg("Precondition failed (ETag mismatch)",
                                     "Falló la precondición (ETag no coincide)")),
    "payload-too-large": (413, Msg("Request body too large", "Cuerpo de la solicitud demasiado grande")),
    "unsupported-media-type": (415, Msg("Unsupported media type", "Tipo de contenido no admitido")),
    "idempotency-key-reused": (422, Msg("Idempotency-Key reused with a different request",
                                        "Idempotency-Key reutilizada con otra solicitud")),
    "precondition-required": (428, Msg("If-Match header required", "Se requiere la cabecera If-Match")),
    "too-many-requests": (429, Msg("Too many requests", "Demasiadas solicitudes")),
    "internal-error": (500, Msg("Internal error", "Error interno")),
    "service-unavailable": (503, Msg("Service unavailable", "Servicio no disponible")),
}


class ProblemError(Exception):
    """Base of every error a client may see. ``extra`` members are added to the problem document."""

    slug = "internal-error"

    def __init__(self, detail: Msg | str, *, slug: str | None = None, **extra: Any) -> None:
        self.detail = detail if isinstance(detail, Msg) else Msg(detail, detail)
        if slug is not None:
            self.slug = slug
        if self.slug not in PROBLEM_TYPES:
            raise ValueError(f"unknown problem type {self.slug!r}")
        self.extra = extra
        super().__init__(self.detail.en)

    @property
    def status(self) -> int:
        return PROBLEM_TYPES[self.slug][0]


class BadRequest(ProblemError):
    slug = "malformed-request"


class ValidationFailed(ProblemError):
    slug = "validation-error"


class Unauthorized(ProblemError):
    slug = "unauthorized"


class Forbidden(ProblemError):
    slug = "forbidden"


class QuotaExceeded(ProblemError):
    slug = "quota-exceeded"


class NotFound(ProblemError):
    slug = "not-found"


class Conflict(ProblemError):
    slug = "conflict"


class InvalidState(ProblemError):
    slug = "invalid-state"


class InsufficientCapacity(ProblemError):
    slug = "insufficient-capacity"


class PreconditionFailed(ProblemError):
    slug = "precondition-failed"


class PreconditionRequired(ProblemError):
    slug = "precondition-required"


def not_found(kind: str, ident: str) -> NotFound:
    """The same answer whether the object does not exist or belongs to another tenant."""
    if len(ident) > 80:  # never echo a huge id back
        ident = ident[:77] + "..."
    kinds_es = {"vm": "VM", "host": "host", "tenant": "municipio", "flavor": "flavor",
                "operation": "operación", "token": "token", "user": "usuario", "image": "imagen",
                "volume": "volumen", "keypair": "par de claves", "storage pool": "pool de almacenamiento"}
    return NotFound(Msg(f"No {kind} with id {ident!r} was found.",
                        f"No se encontró {kinds_es.get(kind, kind)} con id {ident!r}."))
