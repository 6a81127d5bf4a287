"""The admin token for the page's actions: read from `--admin-token-file`, checked per request.

The file is re-read on every action, so a rotated Kubernetes Secret takes effect without a
restart. A request proves it holds the token with `Authorization: Bearer <token>` only: never
a URL (logs, history, Referer) and never a cookie (a browser attaches those to cross-site
requests). A cross-site page cannot set that header without a CORS preflight, which this server
never grants, so the header is the CSRF defence too.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

TokenSource = Callable[[], str | None]


class TokenFileError(ValueError):
    """The token file cannot serve: unreadable or empty (said at start-up, exit 2)."""


def read_token_file(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            token = handle.read().strip()
    except OSError as error:
        raise TokenFileError(f"cannot read {path}: {error.strerror or error}") from None
    if not token:
        raise TokenFileError(f"{path} is empty: put the admin token in it")
    return token


def token_file_source(path: str) -> TokenSource:
    """A source that re-reads `path`; None (actions refused, logged) once it stops serving."""

    def current() -> str | None:
        try:
            return read_token_file(path)
        except TokenFileError as error:
            log.warning("web actions refused: admin token file: %s", error)
            return None

    return current


def check(headers: Mapping[str, str], token: str | None) -> str | None:
    """None when the request may act, else the reason it may not (for a 403)."""
    if token is None:
        return "read-only: this daemon was started without --admin-token-file"
    given = _header(headers, "Authorization")
    scheme, _, value = given.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return "an action needs the admin token as `Authorization: Bearer <token>`"
    # Constant time: the comparison must not tell a guesser how many characters were right.
    if not hmac.compare_digest(value.strip().encode(), token.encode()):
        return "wrong admin token"
    origin = _header(headers, "Origin")
    if origin and urlsplit(origin).netloc != _header(headers, "Host"):
        return f"cross-origin request from {origin} refused"
    return None


def _header(headers: Mapping[str, str], name: str) -> str:
    lowered = name.lower()
    return next((value for key, value in headers.items() if key.lower() == lowered), "")
