"""``Idempotency-Key`` on the API's creating POSTs: a retried request is answered, not applied
again.

The header is the IETF httpapi draft's: a Structured Field string (``"abc"``), or, as most
payment APIs take it, the bare token (``abc``); 1 to 255 printable ASCII characters. Its scope
is the tenant. The views under ``@idempotent`` add their rows to the session without
committing; this layer owns the commit, so the response it stores is committed in the same
transaction as the rows it reports (``services/idempotency.py`` keeps it):

- no header: the rows are committed, as for any write;
- a new key: the rows and the response are committed together;
- a key whose stored request matches (tenant, method, path and validated body): the stored
  status and body are sent again, with ``Idempotent-Replayed: true``, and nothing is written;
- a key stored for another request: 422; a key another transaction holds right now: 409.

Only successes are stored: a request that failed may be retried with its key and is then
processed afresh.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from datetime import date, datetime
from functools import wraps

from flask import Response, current_app, request
from flask_smorest import abort

from .models.idempotency_key import MAX_KEY_LENGTH
from .services import idempotency, transactions
from .services.exceptions import Conflict
from .tenancy import current_tenant

log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"

# A bare key: printable ASCII without the double quote, which only a quoted key may hold.
_BARE = re.compile(r"[\x20\x21\x23-\x7e]+")
# RFC 8941 sf-string: printable ASCII, with " and \ escaped by a backslash.
_QUOTED = re.compile(r'"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*)"')
_ESCAPE = re.compile(r'\\(["\\])')

PARAMETER = {
    "in": "header",
    "name": HEADER,
    "required": False,
    "description": (
        "Makes the request safe to retry: a request repeated with the same key (same tenant, path "
        "and body) is answered with the first success again, marked `Idempotent-Replayed: true`, "
        "and creates nothing new. A bare token or a quoted string, 1 to 255 printable ASCII "
        "characters. Keys are kept for at least 24 hours."
    ),
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH},
}
REPLAYED_HEADER = {
    REPLAYED: {"description": "`true` when the body is the stored answer to an earlier request with the same "
                              "Idempotency-Key.", "schema": {"type": "string", "enum": ["true"]}},
}


def parse_key(value: str | None) -> str | None:
    """The key in a header value, None without one; a malformed value is a 400."""
    if value is None:
        return None
    quoted = _QUOTED.fullmatch(value)
    key = _ESCAPE.sub(r"\1", quoted.group(1)) if quoted else value
    if (quoted or _BARE.fullmatch(value)) and 1 <= len(key) <= MAX_KEY_LENGTH:
        return key
    abort(400, message=f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters, bare or in double quotes.",
          errors={HEADER: ["Not a valid key."]})
    return None  # not reached


def _plain(value):
    return value.isoformat() if isinstance(value, (datetime, date)) else str(value)


def fingerprint(method: str, path: str, body: dict) -> str:
    """What makes two requests the same one: the validated body, so an omitted default and the
    default sent explicitly, or one instant written with two offsets, are the same request."""
    canonical = json.dumps([method, path, body], sort_keys=True, separators=(",", ":"), default=_plain)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _replay(stored: idempotency.Stored, request_fingerprint: str) -> Response:
    if stored.fingerprint != request_fingerprint:
        abort(422, message=f"This {HEADER} was used for another request; send a new key for a new request.",
              errors={HEADER: ["Already used for another request."]})
    return current_app.response_class(stored.body, status=stored.status, mimetype="application/json",
                                      headers={REPLAYED: "true"})


def _purge_quietly() -> None:
    try:
        purged = idempotency.purge_if_due()
    except Exception:  # noqa: BLE001 - housekeeping must never fail the write it follows
        log.warning("could not purge old idempotency keys", exc_info=True)
        transactions.rollback()
        return
    if purged:
        log.info("purged %d idempotency keys older than %s", purged, idempotency.KEEP)


def idempotent(view):
    """Wrap a creating view placed between ``@blp.arguments`` (whose validated body it is
    given, last) and ``@blp.response``; the view adds its rows without committing."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        key = parse_key(request.headers.get(HEADER))
        if key is None:
            response = view(*args, **kwargs)
            transactions.commit()
            return response
        tenant_id = current_tenant().id
        # The key is the tenant's already; a body's tenantId can only name that tenant.
        body = {name: value for name, value in args[-1].items() if name != "tenantId"}
        request_fingerprint = fingerprint(request.method, request.path, body)
        if not idempotency.hold(tenant_id, key):
            abort(409, message=f"A request with this {HEADER} is still in progress; retry shortly.",
                  headers={"Retry-After": "1"})
        if stored := idempotency.find(tenant_id, key):
            return _replay(stored, request_fingerprint)
        response = view(*args, **kwargs)
        if not idempotency.store(tenant_id, key, request_fingerprint, response.status_code,
                                 response.get_data(as_text=True)):
            # Another request with this key committed first (SQLite: after we read): answer as it did.
            if (stored := idempotency.find(tenant_id, key)) is None:
                raise Conflict("The change conflicts with stored data.")
            return _replay(stored, request_fingerprint)
        transactions.commit()
        _purge_quietly()
        return response

    return wrapper


def documented(blp):
    """``idempotent``, with the header and its answers in the OpenAPI document."""

    def decorator(view):
        view = idempotent(view)
        view = blp.alt_response(409, description=f"A request with this {HEADER} is still in progress.")(view)
        view = blp.alt_response(422, description=f"This {HEADER} was used for another request.")(view)
        return blp.doc(parameters=[PARAMETER])(view)

    return decorator
