"""Limits on JSON request bodies, checked before anything parses them.

Python's ``json`` module parses nested arrays and objects recursively: a body of 5,000 ``[`` raises
``RecursionError`` deep inside webargs (a 500). So the raw body's nesting depth is measured first, by a
linear scan that skips strings and parses nothing, and a body nested deeper than ``MAX_JSON_DEPTH`` is
refused with 400. Reading the body here also enforces ``MAX_CONTENT_LENGTH`` (413, set in api.http) for
bodies sent with ``Content-Length`` and for chunked bodies without it alike (see :func:`read_body`).
"""

from __future__ import annotations

import re

from flask import Flask, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from controlplane.errors import BadRequest, Msg

# our deepest body nests 2 levels (a plan and its budget); 32 leaves room and stays far from the recursion limit
MAX_JSON_DEPTH = 32

# an escape (backslash and the byte it escapes), a quote, or a bracket: all the scan needs to look at
_TOKENS = re.compile(rb'\\.|["\[\]{}]', re.DOTALL)


def exceeds_depth(raw: bytes, limit: int) -> bool:
    """True when the JSON text ``raw`` nests arrays and objects more than ``limit`` deep.

    Brackets inside strings do not count (escaped quotes are honoured). Linear in the size of ``raw``; the
    text need not be valid JSON (the parser judges that afterwards).
    """
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    depth, in_string = 0, False
    for token in _TOKENS.findall(raw):
        if token == b'"':
            in_string = not in_string
        elif in_string or len(token) == 2:  # inside a string, or an escape
            continue
        elif token in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def read_body() -> bytes:
    """The body, or 413 past ``MAX_CONTENT_LENGTH``. werkzeug raises that itself for a Content-Length over the
    limit; a body without one (chunked) it reads up to the limit and returns cut short, silently: one more
    byte from the server's stream tells that it was longer."""
    raw = request.get_data(cache=True)
    maximum = request.max_content_length
    if maximum is not None and request.content_length is None and len(raw) >= maximum \
            and request.environ["wsgi.input"].read(1):
        raise RequestEntityTooLarge()
    return raw


def check_json_body() -> None:
    if request.method not in ("POST", "PUT", "PATCH") or not request.is_json:
        return
    raw = read_body()
    limit = current_app.config["MAX_JSON_DEPTH"]
    if exceeds_depth(raw, limit):
        raise BadRequest(Msg(f"The JSON body nests arrays or objects more than {limit} levels deep.",
                             f"El cuerpo JSON anida listas u objetos a más de {limit} niveles."))


def register(app: Flask) -> None:
    """Install the check; register it after api.http (whose hook sets the request id and checks the type)."""
    app.config.setdefault("MAX_JSON_DEPTH", MAX_JSON_DEPTH)
    app.before_request(check_json_body)
