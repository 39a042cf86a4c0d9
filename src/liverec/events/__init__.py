"""Callbacks (FLS's signed event notifications) and the publish-authentication webhook.

Owns: what each callback says (notices.py: FLS's event types and liverec's extensions),
how bodies are signed (signing.py), sending them at least once, in order per stream, with
retries and dead letters (delivery.py, over the catalog's outbox: catalog/outbox.py), one
bounded HTTP POST (http.py), the notices of files made outside the recorder (files.py),
and asking a project's webhook whether a publish may go ahead (webhook.py).

Notices are enqueued by the catalog calls that make the change they report, in the same
transaction; nothing here runs on the ingest path but building a small dict.
May import: catalog, layout, config, errors. Never api, rtmp, recorder or postprocess:
they, or service.py, hand this package what it needs through Protocols."""

from liverec.events.delivery import CallbackDelivery, RetryPolicy, send_notice, send_test
from liverec.events.files import (
    ClipNotices,
    Mp4FileNotices,
    SnapshotFileNotices,
    SnapshotNotices,
    enqueue_record_deleted,
)
from liverec.events.http import HttpAnswer, post
from liverec.events.notices import (
    EVENT_NAMES,
    EXTENSION_EVENT_TYPES,
    FLS_EVENT_TYPES,
    SUBSCRIBABLE_EVENT_TYPES,
    EventType,
    FlsNotices,
    event_name,
    guess_node_ip,
)
from liverec.events.signing import CONTENT_TYPE, notice_body, signatures, verify
from liverec.events.webhook import PublishWebhook

__all__ = [
    "CONTENT_TYPE",
    "EVENT_NAMES",
    "EXTENSION_EVENT_TYPES",
    "FLS_EVENT_TYPES",
    "SUBSCRIBABLE_EVENT_TYPES",
    "CallbackDelivery",
    "ClipNotices",
    "EventType",
    "FlsNotices",
    "HttpAnswer",
    "Mp4FileNotices",
    "PublishWebhook",
    "RetryPolicy",
    "SnapshotFileNotices",
    "SnapshotNotices",
    "enqueue_record_deleted",
    "event_name",
    "guess_node_ip",
    "notice_body",
    "post",
    "send_notice",
    "send_test",
    "signatures",
    "verify",
]
