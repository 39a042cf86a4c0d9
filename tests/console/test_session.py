"""The console's session tokens and CSRF rule (console/session.py), without a server."""

from __future__ import annotations

import pytest

from liverec.api import session as s

KEY = s.session_key(b"k" * 32)
NOW = 1_800_000_000.0


def test_a_session_opens_until_it_expires() -> None:
    made = s.issue(KEY, "cust", NOW, lifetime=60)
    opened = s.open_session(KEY, made.token, NOW + 59)
    assert opened is not None and opened.customer_id == "cust"
    assert s.open_session(KEY, made.token, NOW + 60) is None


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # the MAC
        lambda t: "x" + t,  # the payload
        lambda t: t.partition(".")[0],  # no MAC
        lambda t: "",
        lambda t: t + "." * 2000,  # too long
    ],
)
def test_a_forged_token_is_refused(mangle: object) -> None:
    token = s.issue(KEY, "cust", NOW).token
    assert callable(mangle)
    assert s.open_session(KEY, mangle(token), NOW) is None


def test_another_key_does_not_open_it() -> None:
    token = s.issue(KEY, "cust", NOW).token
    assert s.open_session(s.session_key(b"other"), token, NOW) is None


def test_csrf_is_needed_for_changes_only() -> None:
    token = s.issue(KEY, "cust", NOW).token
    csrf = s.csrf_token(KEY, token)
    assert s.authorize(KEY, token, "GET", None, NOW) == "cust"
    assert s.authorize(KEY, token, "POST", csrf, NOW) == "cust"
    for method, sent in (("POST", None), ("PATCH", "wrong"), ("DELETE", s.csrf_token(KEY, "x"))):
        with pytest.raises(s.SessionRefused) as refused:
            s.authorize(KEY, token, method, sent, NOW)
        assert refused.value.status == 403 and refused.value.reason == "csrf_refused"


def test_no_cookie_is_no_session_and_a_bad_one_is_401() -> None:
    assert s.authorize(KEY, None, "GET", None, NOW) is None
    with pytest.raises(s.SessionRefused) as refused:
        s.authorize(KEY, "nonsense", "GET", None, NOW)
    assert refused.value.status == 401


def test_other_origins_are_refused() -> None:
    token = s.issue(KEY, "cust", NOW).token
    for site in ("same-origin", "none", None):
        assert s.authorize(KEY, token, "GET", None, NOW, site) == "cust"
    for site in ("same-site", "cross-site"):
        with pytest.raises(s.SessionRefused) as refused:
            s.authorize(KEY, token, "GET", None, NOW, site)
        assert refused.value.status == 403


def test_signing_out_ends_the_session() -> None:
    made = s.issue(KEY, "cust", NOW)
    s.sign_out(made, NOW)
    assert s.open_session(KEY, made.token, NOW + 1) is None
    other = s.issue(KEY, "cust", NOW)
    assert s.open_session(KEY, other.token, NOW + 1) is not None
