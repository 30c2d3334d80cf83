"""HTTP out to notification receivers (webhooks, Slack): the standard library only.

Registry I/O lives in registry/ (and only it uses `requests`); this is the
one other place the dashboard opens an HTTP connection, to a URL a channel's
owner gave. A timeout bounds every call, the answer's body is read up to a
cap, and redirects are never followed: a receiver that answers 3xx fails the
attempt, so a signed body is never replayed to another origin.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request

MAX_RESPONSE_BYTES = 64 * 1024


class OutboundError(Exception):
    """The receiver could not be reached or did not accept the request (message fit for a log and a page)."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D401 - urllib's hook
        return None  # urllib then raises HTTPError with the 3xx status


_opener = urllib.request.build_opener(_NoRedirect)


def url_check(url: str) -> str:
    """An http(s) URL with a host; raises ValueError in the user's words."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("give an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise ValueError("put no credentials in the URL; use the secret")
    return url


def post(url: str, *, body: bytes, headers: dict[str, str], timeout: float,
         max_response: int = MAX_RESPONSE_BYTES) -> int:
    """POST `body`; returns the 2xx status, raises OutboundError for anything else."""
    url_check(url)
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"User-Agent": "manifest-dashboard", **headers})
    try:
        with _opener.open(request, timeout=timeout) as response:
            response.read(max_response)
            return response.status
    except urllib.error.HTTPError as exc:
        text = exc.read(max_response).decode("utf-8", errors="replace")[:300] if exc.fp else ""
        if 300 <= exc.code < 400:
            raise OutboundError(f"the receiver answered {exc.code} (a redirect, not followed)") from None
        raise OutboundError(f"the receiver answered {exc.code}" + (f": {text}" if text else "")) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise OutboundError(f"cannot reach the receiver: {reason}") from None
