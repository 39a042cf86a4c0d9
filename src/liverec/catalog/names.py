"""Validation of the names the catalog stores (they become storage keys and URL parts)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from liverec.errors import InvalidValueError
from liverec.media.names import file_name_problem, stream_name_problem

_APP_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_ENTRY_POINT = re.compile(r"[A-Za-z0-9_-]{1,64}")
_CUSTOMER_ID = re.compile(r"[A-Za-z0-9_.-]{1,128}")
_NODE_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_DOMAIN = re.compile(r"[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?")
_REGION = re.compile(r"[a-z]{1,8}")
MAX_SECRET_LEN = 256


def check_app_id(value: str) -> str:
    if not _APP_ID.fullmatch(value):
        raise InvalidValueError(f"app ID must be 1-64 characters of [A-Za-z0-9_-], not {value!r}")
    return value


def check_entry_point(value: str) -> str:
    if not _ENTRY_POINT.fullmatch(value):
        raise InvalidValueError(
            f"entry point name must be 1-64 characters of [A-Za-z0-9_-], not {value!r}"
        )
    return value


def check_stream_name(value: str) -> str:
    problem = stream_name_problem(value)
    if problem is not None:
        raise InvalidValueError(problem)
    return value


def check_customer_id(value: str) -> str:
    if not _CUSTOMER_ID.fullmatch(value):
        raise InvalidValueError(
            f"customer ID must be 1-128 characters of [A-Za-z0-9_.-], not {value!r}"
        )
    return value


def check_secret(value: str) -> str:
    if not 1 <= len(value) <= MAX_SECRET_LEN or not value.isprintable():
        raise InvalidValueError(f"a secret must be 1-{MAX_SECRET_LEN} printable characters")
    return value


def check_node_id(value: str) -> str:
    if not _NODE_ID.fullmatch(value):
        raise InvalidValueError(
            f"node ID must be 1-64 characters of [A-Za-z0-9_.:-], not {value!r}"
        )
    return value


def check_region(value: str) -> str:
    if not _REGION.fullmatch(value):
        raise InvalidValueError(f"region must be 1-8 lowercase letters, not {value!r}")
    return value


def normalise_host(host: str) -> str:
    """`Example.COM:1935` -> `example.com` (no port, lowercase, no trailing dot)."""
    host = host.strip().lower()
    if host.startswith("["):  # IPv6 literal
        return host[1:].partition("]")[0]
    if host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")


def check_domain(value: str) -> str:
    domain = normalise_host(value)
    if not _DOMAIN.fullmatch(domain) or ".." in domain:
        raise InvalidValueError(f"not a domain name: {value!r}")
    return domain


def check_file_name(value: str, extensions: Sequence[str]) -> str:
    """A clip or snapshot file name in a stream folder (the one rule, media.names)."""
    problem = file_name_problem(value, extensions)
    if problem is not None:
        raise InvalidValueError(problem)
    return value
