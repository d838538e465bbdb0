"""The account pages' forms as the server reads them: within a size and a field count, in the
one encoding our pages send, or refused with 400 or 413 (``HTTPException``, answered by
``lib.web.routes.OwnRoutes`` with one line in the log).

Our forms hold a few short fields (a password is at most ``users.PASSWORD_MAX`` characters), so
anything far larger is not one of them; the body is never read past the limit."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request

FORM_BYTES = 16 * 1024
FORM_FIELDS = 10
URLENCODED = "application/x-www-form-urlencoded"
_DIGITS = re.compile(r"[0-9]{1,12}")
TOO_LARGE = f"This form is larger than {FORM_BYTES // 1024} KiB; Switchboard's forms are far smaller."


async def read_form(request: Request) -> dict[str, str]:
    """The fields of an ``application/x-www-form-urlencoded`` body in UTF-8, each named once."""
    if request.headers.get("content-type", "").partition(";")[0].strip().lower() != URLENCODED:
        raise HTTPException(400, f"Send this form as {URLENCODED}, as Switchboard's own pages do.")
    declared = request.headers.get("content-length")
    if declared is not None and (not _DIGITS.fullmatch(declared) or int(declared) > FORM_BYTES):
        raise HTTPException(413, TOO_LARGE)
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > FORM_BYTES:
                raise HTTPException(413, TOO_LARGE)
    except ClientDisconnect:
        raise HTTPException(400, "The form arrived incomplete.") from None
    try:
        fields = parse_qsl(
            body.decode("ascii"), keep_blank_values=True, encoding="utf-8", errors="strict", max_num_fields=FORM_FIELDS
        )
    except UnicodeError:
        raise HTTPException(400, "This form is not URL-encoded UTF-8.") from None
    except ValueError:
        raise HTTPException(400, f"This form has more than {FORM_FIELDS} fields.") from None
    form = dict(fields)
    if len(form) != len(fields):
        raise HTTPException(400, "This form names a field more than once.")
    return form
