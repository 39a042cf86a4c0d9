"""Callback settings per project and entry point, and the publish webhook's, on SQLite and
PostgreSQL: secrets sealed, an entry point's settings replacing the project's as a whole."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from liverec.catalog import Catalog
from liverec.catalog.schema import callback_settings, publish_webhooks
from liverec.errors import InvalidValueError, NotFoundError


@pytest.fixture
def cat(catalog: Catalog) -> Catalog:
    catalog.create_project("app")
    catalog.create_entry_point("app", "live")
    catalog.create_entry_point("app", "vip")
    return catalog


def test_project_settings_and_an_entry_point_override(cat: Catalog) -> None:
    assert cat.callback_settings("app") is None and cat.callback_settings("app", "live") is None
    made = cat.set_callback_settings(
        "app", url="https://hooks.example/fls", secret="s1", event_types=[2, 1, 1]
    )
    assert (made.entry_point, made.url, made.secret, made.event_types, made.enabled) == (
        None,
        "https://hooks.example/fls",
        "s1",
        (1, 2),
        True,
    )
    # Every entry point inherits the project's, until it has its own.
    assert cat.callback_settings("app", "vip") == made
    assert cat.callback_settings("app", "vip", inherit=False) is None
    vip = cat.set_callback_settings(
        "app", "vip", url="http://vip.example/", secret="s2", event_types=[101], enabled=False
    )
    assert cat.callback_settings("app", "vip") == vip and vip.entry_point == "vip"
    assert cat.callback_settings("app", "live") == made
    assert [c.entry_point for c in cat.list_callback_settings("app")] == [None, "vip"]
    # Replacing without a secret keeps the stored one.
    again = cat.set_callback_settings(
        "app", url="https://other.example/", secret=None, event_types=[1]
    )
    assert again.secret == "s1" and again.url == "https://other.example/"
    assert "s1" not in repr(again)
    assert cat.delete_callback_settings("app", "vip")
    assert not cat.delete_callback_settings("app", "vip")
    assert cat.callback_settings("app", "vip") == again


def test_secrets_are_sealed_in_the_database(cat: Catalog) -> None:
    cat.set_callback_settings("app", url="http://h.example/", secret="topsecret", event_types=[1])
    cat.set_publish_webhook("app", enabled=True, url="http://w.example/", secret="hooksecret")
    with cat.engine.connect() as conn:
        rows = [
            *conn.execute(sa.select(callback_settings.c.secret_sealed)).scalars(),
            *conn.execute(sa.select(publish_webhooks.c.secret_sealed)).scalars(),
        ]
    assert len(rows) == 2
    assert not any("secret" in row for row in rows)


def test_bad_callback_settings_are_refused(cat: Catalog) -> None:
    for url in ("ftp://h.example/", "http://", "not a url", "http://h.example/" + "x" * 2100):
        with pytest.raises(InvalidValueError):
            cat.set_callback_settings("app", url=url, secret="s", event_types=[1])
    with pytest.raises(InvalidValueError, match="secret"):
        cat.set_callback_settings("app", url="http://h.example/", secret=None, event_types=[1])
    with pytest.raises(InvalidValueError):
        cat.set_callback_settings("app", url="http://h.example/", secret="s", event_types=[])
    with pytest.raises(NotFoundError):
        cat.set_callback_settings(
            "app", "nope", url="http://h.example/", secret="s", event_types=[1]
        )
    with pytest.raises(NotFoundError):
        cat.set_callback_settings("other", url="http://h.example/", secret="s", event_types=[1])
    assert cat.list_callback_settings("app") == []


def test_publish_webhook_settings(cat: Catalog) -> None:
    off = cat.publish_webhook("app")
    assert (off.enabled, off.url, off.secret) == (False, "", "")
    with pytest.raises(InvalidValueError, match="url"):
        cat.set_publish_webhook("app", enabled=True)
    assert cat.publish_webhook("app").enabled is False  # nothing changed
    on = cat.set_publish_webhook("app", enabled=True, url="http://auth.example/ok", secret="k")
    assert (on.enabled, on.url, on.secret) == (True, "http://auth.example/ok", "k")
    # Left out: kept; "" removes the secret.
    assert cat.set_publish_webhook("app", enabled=False) == on.__class__(False, on.url, "k")
    assert cat.set_publish_webhook("app", enabled=True, secret="").secret == ""
    with pytest.raises(InvalidValueError):
        cat.set_publish_webhook("app", enabled=True, url="gopher://x")
