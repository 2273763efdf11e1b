"""Store URLs shown to people (never with a password) and server base URLs checked once."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from sarcoma_risk.errors import InvalidInput


def redact_url(url: str) -> str:
    """A URL without its password and query (where libpq options, a password among them, may be)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host  # an IPv6 address keeps its brackets
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return url.split("://", 1)[0] + "://..."
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit((parts.scheme, f"{user}{host}{port}", parts.path, "", ""))


def check_server_url(url: str) -> str:
    """``url`` as a server base URL (lower-case scheme, no trailing slash), or :class:`InvalidInput`."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a port that is not a number
    except ValueError as exc:
        raise InvalidInput(f"store: {redact_url(url)!r} is not a valid URL ({exc})") from None
    if parts.username or parts.password:
        raise InvalidInput(f"store: {redact_url(url)!r}: a server URL carries no user or token; set the token in "
                           "SARCOMA_RISK_TOKEN or the token file ('sarcoma-risk users add' printed it)")
    if not parts.hostname:
        raise InvalidInput(f"store: {url!r} names no host; expected http://HOST:PORT or https://HOST:PORT")
    if parts.query or parts.fragment:
        raise InvalidInput(f"store: {url!r}: a server URL has no query or fragment; expected https://HOST:PORT[/PREFIX]")
    return urlunsplit((parts.scheme.lower(), parts.netloc, parts.path.rstrip("/"), "", ""))
