"""Callback settings (where a project's notices go, signed with which secret, for which
event types) and the publish-authentication webhook of a project.

A project has one callback configuration (entry point ''), and an entry point may have its
own, which replaces the project's as a whole for that entry point's streams (its own URL,
secret, event types and on/off switch; no field is inherited, so what an entry point's
receiver gets is read from one row). Secrets are sealed (catalog/secrets.py): signing needs
them back. The catalog stores event types as numbers and knows nothing of what they mean
(events/notices.py does)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Connection, RowMapping, and_, bindparam, delete, or_, select, update

from liverec.catalog._base import RepoBase, insert_ignore
from liverec.catalog.names import check_entry_point, check_secret
from liverec.catalog.schema import callback_settings, entry_points, projects, publish_webhooks
from liverec.errors import InvalidValueError, NotFoundError

MAX_URL_LEN = 2048
PROJECT_WIDE = ""  # the entry_point column of a project's own configuration


@dataclass(frozen=True, slots=True)
class CallbackSettings:
    app_id: str
    entry_point: str | None  # None: the project's own configuration
    url: str
    secret: str = field(repr=False)  # unsealed; never logged
    event_types: tuple[int, ...]  # ascending
    enabled: bool


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    enabled: bool = False
    url: str = ""
    secret: str = field(default="", repr=False)  # unsealed; "" when none was given


def check_url(url: str) -> str:
    """An http(s) URL with a host, no spaces or control characters, at most 2048 long."""
    if len(url) > MAX_URL_LEN or any(c.isspace() or not c.isprintable() for c in url):
        raise InvalidValueError(f"a URL is at most {MAX_URL_LEN} printable characters, no spaces")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise InvalidValueError(f"not a valid URL: {url[:80]!r}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise InvalidValueError(f"the URL must be http:// or https:// with a host: {url[:80]!r}")
    return url


def _check_event_types(event_types: Sequence[int]) -> tuple[int, ...]:
    types = tuple(sorted(set(event_types)))
    if not types or any(not 0 < t < 100_000 for t in types) or len(types) > 30:
        raise InvalidValueError("event types: 1-30 event numbers")
    return types


def _types(text: str) -> tuple[int, ...]:
    return tuple(int(t) for t in text.split(",") if t)


def callback_row(conn: Connection, app_id: str, entry_point: str) -> RowMapping | None:
    """The configuration that applies to an entry point's streams: its own row, else the
    project's (one statement, both candidates, the entry point's first)."""
    return (
        conn.execute(_CALLBACK_ROW, {"p_app_id": app_id, "p_entry_point": entry_point})
        .mappings()
        .first()
    )


def subscribed(row: RowMapping | None, event_type: int) -> bool:
    """Whether a callback_row sends notices of this type."""
    return row is not None and bool(row["enabled"]) and event_type in _types(row["event_types"])


# Asked at every publish (the publish webhook, and callback_row in every transaction that
# enqueues a publish's callbacks): built once (catalog/_base.py says why).
_CALLBACK_ROW = (
    select(
        projects.c.app_id,
        callback_settings.c.entry_point,
        callback_settings.c.url,
        callback_settings.c.secret_sealed,
        callback_settings.c.event_types,
        callback_settings.c.enabled,
    )
    .join(projects, projects.c.id == callback_settings.c.project_id)
    .where(
        and_(
            projects.c.app_id == bindparam("p_app_id"),
            or_(
                callback_settings.c.entry_point == bindparam("p_entry_point"),
                callback_settings.c.entry_point == PROJECT_WIDE,
            ),
        )
    )
    .order_by(callback_settings.c.entry_point.desc())  # '' sorts last
    .limit(1)
)
_PUBLISH_WEBHOOK = (
    select(publish_webhooks.c.enabled, publish_webhooks.c.url, publish_webhooks.c.secret_sealed)
    .join(projects, projects.c.id == publish_webhooks.c.project_id)
    .where(projects.c.app_id == bindparam("p_app_id"))
)


class CallbacksRepo(RepoBase):
    # -- callbacks ----------------------------------------------------------------------

    def _settings(self, row: RowMapping) -> CallbackSettings:
        return CallbackSettings(
            app_id=row["app_id"],
            entry_point=row["entry_point"] or None,
            url=row["url"],
            secret=self._box.open(row["secret_sealed"]),
            event_types=_types(row["event_types"]),
            enabled=bool(row["enabled"]),
        )

    def _project_and_entry_point(self, conn: Connection, app_id: str, entry_point: str) -> int:
        pid = self._project_id(conn, app_id)
        if entry_point != PROJECT_WIDE:
            check_entry_point(entry_point)
            found = conn.execute(
                select(entry_points.c.id).where(
                    and_(entry_points.c.project_id == pid, entry_points.c.name == entry_point)
                )
            ).first()
            if found is None:
                raise NotFoundError(f"entry point {entry_point!r} does not exist")
        return pid

    def set_callback_settings(
        self,
        app_id: str,
        entry_point: str | None = None,
        *,
        url: str,
        secret: str | None,
        event_types: Sequence[int],
        enabled: bool = True,
    ) -> CallbackSettings:
        """Replace the project's configuration (entry_point None) or an entry point's
        override. `secret` None keeps the one stored (InvalidValueError if there is none).
        NotFoundError for an unknown project or entry point."""
        ep = entry_point or PROJECT_WIDE
        check_url(url)
        types = _check_event_types(event_types)
        sealed = None if secret is None else self._box.seal(check_secret(secret))
        with self._write() as conn:
            pid = self._project_and_entry_point(conn, app_id, ep)
            key = and_(callback_settings.c.project_id == pid, callback_settings.c.entry_point == ep)
            if sealed is None:
                sealed = conn.execute(
                    select(callback_settings.c.secret_sealed).where(key)
                ).scalar_one_or_none()
                if sealed is None:
                    raise InvalidValueError("a secret is needed to sign the callbacks")
            values = {
                "url": url,
                "secret_sealed": sealed,
                "event_types": ",".join(map(str, types)),
                "enabled": enabled,
            }
            insert_ignore(conn, callback_settings, {"project_id": pid, "entry_point": ep, **values})
            conn.execute(update(callback_settings).where(key).values(**values))
            row = callback_row(conn, app_id, ep)
        assert row is not None
        return self._settings(row)

    def callback_settings(
        self, app_id: str, entry_point: str | None = None, *, inherit: bool = True
    ) -> CallbackSettings | None:
        """The configuration for an entry point's streams (its override, else with
        `inherit` the project's), or the project's own (entry_point None); None if unset."""
        ep = entry_point or PROJECT_WIDE
        with self._read() as conn:
            row = callback_row(conn, app_id, ep)
        if row is None or (not inherit and row["entry_point"] != ep):
            return None
        return self._settings(row)

    def list_callback_settings(self, app_id: str) -> list[CallbackSettings]:
        """The project's configuration first, then each entry point's override by name."""
        with self._read() as conn:
            pid = self._project_id(conn, app_id)
            eps = conn.execute(
                select(callback_settings.c.entry_point)
                .where(callback_settings.c.project_id == pid)
                .order_by(callback_settings.c.entry_point)
            ).scalars()
            rows = [callback_row(conn, app_id, ep) for ep in eps]
        return [self._settings(row) for row in rows if row is not None]

    def delete_callback_settings(self, app_id: str, entry_point: str | None = None) -> bool:
        """Remove the project's configuration or an entry point's override; False if there
        was none. Notices still queued for it are given up when their turn comes."""
        ep = entry_point or PROJECT_WIDE
        with self._write() as conn:
            pid = self._project_id(conn, app_id)
            gone = conn.execute(
                delete(callback_settings).where(
                    and_(
                        callback_settings.c.project_id == pid,
                        callback_settings.c.entry_point == ep,
                    )
                )
            ).rowcount
        return bool(gone)

    # -- the publish webhook ------------------------------------------------------------

    def publish_webhook(self, app_id: str) -> WebhookSettings:
        """The project's webhook (off, no URL, when never set)."""
        with self._read() as conn:
            row = conn.execute(_PUBLISH_WEBHOOK, {"p_app_id": app_id}).first()
        if row is None:
            return WebhookSettings()
        secret = "" if row.secret_sealed is None else self._box.open(row.secret_sealed)
        return WebhookSettings(bool(row.enabled), row.url, secret)

    def set_publish_webhook(
        self, app_id: str, *, enabled: bool, url: str | None = None, secret: str | None = None
    ) -> WebhookSettings:
        """Switch the webhook; `url` and `secret` None keep theirs ("" removes the secret).
        InvalidValueError when it would be enabled without a URL."""
        if url:
            check_url(url)
        if secret:
            check_secret(secret)
        with self._write() as conn:
            pid = self._project_id(conn, app_id)
            insert_ignore(conn, publish_webhooks, {"project_id": pid, "enabled": False, "url": ""})
            values: dict[str, Any] = {"enabled": enabled}
            if url is not None:
                values["url"] = url
            if secret is not None:
                values["secret_sealed"] = self._box.seal(secret) if secret else None
            row = conn.execute(
                update(publish_webhooks)
                .where(publish_webhooks.c.project_id == pid)
                .values(**values)
                .returning(publish_webhooks.c.url)
            ).one()
            if enabled and not row.url:
                raise InvalidValueError("the webhook needs a url to be enabled")
        return self.publish_webhook(app_id)
