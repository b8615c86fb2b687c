"""What the values of a ``health = { ... }`` table may be: one checker per key that is particular to
health checks.  Each takes the raw TOML value, the key's path for messages and the :class:`Checker`,
and returns the converted value or None after recording the problem.  Which keys go with which kind
of check, and the rules between keys, are in :mod:`.config_keys`, next to the other tables.
"""
from __future__ import annotations

import ipaddress
import re
from typing import Any

from .config_checker import Checker, describe
from .config_model import StatusExpectation, decode_escapes

__all__ = ["CHECK_KINDS", "http_path", "health_host", "http_scheme", "http_headers", "expect_status", "wire_text"]

# The keys that say what kind of check a table is; exactly one must be given.
CHECK_KINDS = ("http", "tcp", "exec")

_STATUS_CLASS = re.compile(r"[1-5]xx")
_HOST_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?"
_HOST_NAME = re.compile(rf"{_HOST_LABEL}(?:\.{_HOST_LABEL})*\.?")
# RFC 9110 token characters: what a header name may be made of.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# The check sends one request per connection and reads the answer to its end: these are its own.
_OWN_HEADERS = ("connection", "content-length", "transfer-encoding")
_STATUS_HINT = 'an HTTP status code such as 200, or a class such as "2xx"'


def http_path(value: Any, at: str, c: Checker) -> str | None:
    if not isinstance(value, str):
        c.add(at, f'must be a URL path string such as "/healthz", got {describe(value)}')
        return None
    if not value.startswith("/"):
        c.add(at, f'must be a URL path starting with "/", got {value!r}')
        return None
    if any(ch.isspace() for ch in value):
        c.add(at, f"must not contain whitespace, got {value!r}")
        return None
    return value


def health_host(value: Any, at: str, c: Checker) -> str | None:
    text = c.string(at, value)
    if text is None:
        return None
    # An IPv6 address may be written as in a URL, "[::1]".
    host = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if len(host) <= 253 and _HOST_NAME.fullmatch(host):
        return host
    c.add(at, f'must be a host name or an IP address such as "127.0.0.1" (no scheme, port or path), got {text!r}')
    return None


def http_scheme(value: Any, at: str, c: Checker) -> str | None:
    if value in ("http", "https"):
        return value
    c.add(at, f'must be "http" or "https", got {describe(value)}')
    return None


def http_headers(value: Any, at: str, c: Checker) -> tuple[tuple[str, str], ...] | None:
    """Extra request headers, in the order given; a Host header here replaces the default one."""
    if not isinstance(value, dict):
        c.add(at, f'must be a table of strings such as {{ Authorization = "Bearer ..." }}, got {describe(value)}')
        return None
    ok = True
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    for name, text in value.items():
        key = f"{at}.{name}"
        problem = None
        if not _HEADER_NAME.fullmatch(name):
            problem = "not a valid HTTP header name"
        elif name.lower() in _OWN_HEADERS:
            problem = "is set by the check itself (one request per connection)"
        elif name.lower() in seen:
            problem = "is given twice (header names ignore case)"
        elif not isinstance(text, str):
            problem = f"must be a string, got {describe(text)}"
        elif any(ch in text for ch in "\r\n\0"):
            problem = "must not contain a line break or NUL"
        if problem is not None:
            c.add(key, problem)
            ok = False
            continue
        seen.add(name.lower())
        pairs.append((name, text))
    return tuple(pairs) if ok else None


def expect_status(value: Any, at: str, c: Checker) -> StatusExpectation | None:
    """A code, a class such as "2xx", or a non-empty array of either."""
    if not isinstance(value, list):
        return _one_status(value, at, c)
    if not value:
        c.add(at, f"must list at least one status: {_STATUS_HINT}")
        return None
    statuses = [_one_status(item, f"{at}[{i}]", c) for i, item in enumerate(value)]
    if any(status is None for status in statuses):
        return None
    return tuple(status for status in statuses if status is not None)


def _one_status(value: Any, at: str, c: Checker) -> int | str | None:
    if isinstance(value, str):
        if _STATUS_CLASS.fullmatch(value.strip().lower()):
            return value.strip().lower()
        c.add(at, f"must be {_STATUS_HINT}, got {describe(value)}")
        return None
    return c.integer(at, value, 100, 599, _STATUS_HINT)


def wire_text(value: Any, at: str, c: Checker) -> str | None:
    """Text a tcp check sends or expects, kept as written; its escapes must decode."""
    text = c.string(at, value, nonempty=False)
    if text is None:
        return None
    if text == "":
        c.add(at, "must not be empty")
        return None
    try:
        decode_escapes(text)
    except ValueError as exc:
        c.add(at, str(exc))
        return None
    return text
