"""Signed, expiring file links: what they cover, and everything that breaks them."""

from __future__ import annotations

import dataclasses
from urllib.parse import unquote

import pytest

from api.conftest import APP, FakeClock
from liverec.api.context import ApiContext
from liverec.api.errors import ApiError
from liverec.api.signing import sign_url, stream_folder_of, verify
from liverec.errors import InvalidKeyError

NAME = "record/live/cam1/abc_20261123120000000.m3u8"


def parts(path: str) -> tuple[int, str, str, str, str]:
    """(expires, sig, app_id, region, file_name) of a signed path."""
    empty, files, s, expires, sig, app_id, region, rest = path.split("/", 7)
    assert (empty, files, s) == ("", "files", "s")
    return int(expires), sig, app_id, region, unquote(rest)


def refused(reason: str, ctx: ApiContext, *args: object) -> None:
    with pytest.raises(ApiError) as info:
        verify(ctx, *args)  # type: ignore[arg-type]
    assert (info.value.status, info.value.reason) == (401, reason)


def test_a_signed_path_names_the_file_and_verifies(ctx: ApiContext, clock: FakeClock) -> None:
    path = sign_url(ctx, APP, "na", NAME)
    assert path.startswith("/files/s/")
    expires, sig, app_id, region, file_name = parts(path)
    assert (app_id, region, file_name) == (APP, "na", NAME)
    assert expires == int(clock.now.timestamp() + ctx.url_ttl)
    assert "=" not in sig and "+" not in sig and "/" not in sig
    verify(ctx, expires, sig, app_id, region, file_name)


def test_the_signature_covers_every_file_of_the_stream_folder(ctx: ApiContext) -> None:
    expires, sig, app_id, region, _ = parts(sign_url(ctx, APP, "na", NAME))
    verify(ctx, expires, sig, app_id, region, "record/live/cam1/abc_20261123120000000_0.ts")
    verify(ctx, expires, sig, app_id, region, "record/live/cam1/snap.jpg")


@pytest.mark.parametrize(
    "change",
    [
        {"file_name": "record/live/cam2/abc_20261123120000000_0.ts"},  # another stream
        {"file_name": "record/other/cam1/abc_20261123120000000_0.ts"},  # another entry point
        {"app_id": "app2"},
        {"region": "eu"},
        {"expires": "+1"},  # a later expiry
        {"sig": "flip"},
        {"sig": ""},
        {"sig": "é"},
    ],
)
def test_any_change_breaks_the_signature(ctx: ApiContext, change: dict[str, str]) -> None:
    expires, sig, app_id, region, file_name = parts(sign_url(ctx, APP, "na", NAME))
    args: dict[str, object] = {
        "expires": expires,
        "sig": sig,
        "app_id": app_id,
        "region": region,
        "file_name": file_name,
    }
    for key, value in change.items():
        if value == "+1":
            args[key] = expires + 1
        elif value == "flip":
            args[key] = sig[:-1] + ("A" if sig[-1] != "A" else "B")
        else:
            args[key] = value
    refused("bad_signature", ctx, *args.values())


def test_another_key_does_not_verify(ctx: ApiContext) -> None:
    expires, sig, app_id, region, file_name = parts(sign_url(ctx, APP, "na", NAME))
    other = dataclasses.replace(ctx, url_key=b"another key, another node")
    refused("bad_signature", other, expires, sig, app_id, region, file_name)


def test_a_link_expires(ctx: ApiContext, clock: FakeClock) -> None:
    path = sign_url(ctx, APP, "na", NAME, ttl=60)
    clock.advance(59)
    verify(ctx, *parts(path))
    clock.advance(2)
    refused("expired", ctx, *parts(path))


def test_names_that_need_quoting_round_trip(ctx: ApiContext) -> None:
    name = "record/live/cam1/my clip #1?x=%41é.m3u8"
    path = sign_url(ctx, APP, "na", name)
    assert " " not in path and "#" not in path and "?" not in path
    assert parts(path)[4] == name
    verify(ctx, *parts(path))


@pytest.mark.parametrize(
    "name",
    [
        "record/live/cam1",
        "record/live/cam1/sub/x.ts",
        "other/live/cam1/x.ts",
        "record/live/../x.ts",
        "/record/live/cam1/x.ts",
        "record\\live\\cam1\\x.ts",
        "",
    ],
)
def test_only_files_of_a_stream_folder_are_signed(ctx: ApiContext, name: str) -> None:
    with pytest.raises(InvalidKeyError):
        sign_url(ctx, APP, "na", name)
    with pytest.raises(InvalidKeyError):
        stream_folder_of(name)


def test_ttl_must_be_positive(ctx: ApiContext) -> None:
    with pytest.raises(ValueError):
        sign_url(ctx, APP, "na", NAME, ttl=0)
