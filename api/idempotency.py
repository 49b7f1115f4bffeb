"""``Idempotency-Key`` on POST: replay the stored response for the same key and body."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from typing import Any

from flask import Response, request

from api.http import principal
from api.openapi import mark_idempotent
from controlplane.errors import BadRequest, Msg
from controlplane.services import idempotency

REPLAYED_HEADERS = ("Location", "ETag", "Content-Type")
# Secrets are shown once and never stored in clear (tokens are kept hashed): a stored response keeps
# everything but these members, so a replay says which object was created without repeating the secret.
SECRET_MEMBERS = frozenset({"token"})


def _storable(body: Any) -> Any:
    if isinstance(body, dict) and SECRET_MEMBERS & body.keys():
        return {k: v for k, v in body.items() if k not in SECRET_MEMBERS}
    return body


def _body_hash() -> str:
    raw = request.get_data(cache=True)
    try:
        canonical = json.dumps(json.loads(raw or b"null"), sort_keys=True, separators=(",", ":")).encode()
    except ValueError:
        canonical = raw
    return hashlib.sha256(request.method.encode() + b" " + request.path.encode() + b"\n" + canonical).hexdigest()


def idempotent(view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        key = request.headers.get("Idempotency-Key")
        if key is None:
            return view(*args, **kwargs)
        if not (1 <= len(key) <= 255) or not key.isprintable():
            raise BadRequest(Msg("Idempotency-Key must be 1-255 printable characters.",
                                 "Idempotency-Key debe tener de 1 a 255 caracteres imprimibles."))
        who = principal()
        got = idempotency.begin(who.user_id or who.username, key, request.method, request.path, _body_hash())
        if isinstance(got, idempotency.Replay):
            resp = Response(json.dumps(got.body), status=got.status, headers=got.headers)
            resp.headers["Idempotent-Replayed"] = "true"
            return resp
        try:
            resp = view(*args, **kwargs)
        except BaseException:
            idempotency.abandon(got)
            raise
        if isinstance(resp, Response) and 200 <= resp.status_code < 300:
            headers = {h: resp.headers[h] for h in REPLAYED_HEADERS if h in resp.headers}
            idempotency.complete(got, resp.status_code, _storable(resp.get_json(silent=True)), headers)
        else:
            idempotency.abandon(got)
        return resp

    return mark_idempotent(wrapper)
