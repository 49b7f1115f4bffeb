"""Transaction helpers shared by the services."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from flask import g, has_app_context
from sqlalchemy import Select, func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm.exc import StaleDataError

from controlplane.db import db
from controlplane.errors import Conflict, Msg, PreconditionFailed

T = TypeVar("T")
# PostgreSQL aborts one of two transactions that deadlock (40P01) or cannot be serialised (40001): the other
# goes through, and the aborted one may simply be tried again
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})


@contextmanager
def transaction(*, keep_loaded: bool = False) -> Iterator[None]:
    """Commit when the block succeeds, roll back when it raises; run after-commit hooks on success.

    ``keep_loaded``: the objects keep their attributes after the commit (they were just written, and the
    caller replies from them), instead of being reloaded from the database on the next access."""
    session = db.session()
    expire = session.expire_on_commit
    try:
        yield
        session.expire_on_commit = expire and not keep_loaded
        db.session.commit()
    except StaleDataError as exc:
        db.session.rollback()
        _clear_hooks()
        raise Conflict(Msg("The object was changed at the same time by another request; retry.",
                           "Otra solicitud modificó el objeto al mismo tiempo; reintente.")) from exc
    except DBAPIError as exc:
        db.session.rollback()
        _clear_hooks()
        if getattr(exc.orig, "sqlstate", None) in RETRYABLE_SQLSTATES:
            raise Conflict(Msg("Another request changed the same objects at the same time; retry.",
                               "Otra solicitud modificó los mismos objetos al mismo tiempo; reintente.")) from exc
        raise
    except BaseException:
        db.session.rollback()
        _clear_hooks()
        raise
    finally:
        session.expire_on_commit = expire
    hooks = _clear_hooks()
    for hook in hooks:
        hook()


def after_commit(hook: Callable[[], Any]) -> None:
    """Run ``hook`` once the current transaction has committed (e.g. enqueue a Celery task)."""
    _hooks().append(hook)


def _hooks() -> list[Callable[[], Any]]:
    if not has_app_context():
        raise RuntimeError("after_commit needs an application context")
    if "after_commit" not in g:
        g.after_commit = []
    hooks: list[Callable[[], Any]] = g.after_commit
    return hooks


def _clear_hooks() -> list[Callable[[], Any]]:
    hooks = _hooks()
    g.after_commit = []
    return hooks


def paginate(stmt: Select[Any], limit: int, offset: int) -> tuple[list[Any], int]:
    """One page of ``stmt`` and the total count."""
    total = db.session.execute(select(func.count()).select_from(stmt.order_by(None).subquery())).scalar_one()
    rows = list(db.session.execute(stmt.limit(limit).offset(offset)).scalars())
    return rows, int(total)


def check_version(current: int, expected: int | None) -> None:
    """ETag / If-Match: ``expected`` None means the caller did not send one (checked by the API)."""
    if expected is not None and expected != current:
        raise PreconditionFailed(Msg(
            f"If-Match does not match the current version ({current}); reload and retry.",
            f"If-Match no coincide con la versión actual ({current}); vuelva a cargar y reintente."))
