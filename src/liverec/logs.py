"""How `liverec serve` logs: plain text lines (the default) or one JSON object per line
(`--log-format json`, setting `log_format`), for a log shipper to index.

A JSON line holds `time` (UTC, RFC 3339 with milliseconds), `level`, `logger` and
`message`, then whichever of these is known where the line was logged:

    app_id, stream      the publish it is about ("{entry_point}/{stream_name}")
    recording           the recording's playlist (`record/{ep}/{stream}/{session}_{date}.m3u8`)
    request_id          the HTTP request's ID (answered as X-Request-ID: api/observe.py)
    exc                 the traceback, for a line logged with one

They come from `extra=` on the call (`log.info(..., extra={"stream": ...})`), else from the
context variables below. Context variables follow the work: an asyncio task copies its
creator's context when it is created, and `asyncio.to_thread` carries it into the thread,
so binding the stream in a publish's RTMP session task tags everything logged there and in
the recorder task started from it. (A bare `run_in_executor` does not carry the context:
lines logged from there carry only what `extra=` gives.)

This module sits at the bottom of the layers, beside config and errors: any layer may bind
or log with these fields."""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "LOG_FORMATS",
    "JsonFormatter",
    "bind_recording",
    "bind_request",
    "bind_stream",
    "clip",
    "configure_logging",
    "recording_var",
    "request_id_var",
    "stream_var",
]

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# (app_id, "{entry_point}/{stream_name}") of the publish being handled.
stream_var: ContextVar[tuple[str | None, str] | None] = ContextVar("liverec_stream", default=None)
recording_var: ContextVar[str | None] = ContextVar("liverec_recording", default=None)
request_id_var: ContextVar[str | None] = ContextVar("liverec_request_id", default=None)

# LogRecord attributes of every record: anything else on a record came from `extra=`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
_FIELDS = ("app_id", "stream", "recording", "request_id")


# Control characters (a newline could forge a log line) are shown escaped.
_CONTROL = {c: f"\\x{c:02x}" for c in (*range(32), 127)}
CLIP = 64  # characters of a user-supplied string a log line shows


def clip(text: object, limit: int = CLIP) -> str:
    """`text` as a log line may show it: at most `limit` characters of it, then how many
    more there were, control characters escaped. For every string a client supplied
    (stream and app names, query strings, hosts): a 10,000-character stream name must not
    make a 10 kB log line."""
    value = str(text)
    extra = len(value) - limit
    if extra > 0:
        value = f"{value[:limit]}...(+{extra} chars)"
    return value.translate(_CONTROL)


def bind_stream(stream: str, app_id: str | None = None) -> None:
    """Tag what the current task (and the tasks it starts) logs with this publish
    (`{entry_point}/{stream_name}`; its project once known)."""
    stream_var.set((app_id, stream))


def bind_recording(playlist: str) -> None:
    """Tag what the current task logs from now on with this recording."""
    recording_var.set(playlist)


def bind_request(request_id: str) -> None:
    request_id_var.set(request_id)


class _WorkerTag(logging.Filter):
    def __init__(self, worker: str) -> None:
        super().__init__()
        self.worker = worker

    def filter(self, record: logging.LogRecord) -> bool:
        record.worker = self.worker
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines inside are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            # "+00:00" -> "Z": the form the API answers times in.
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        stream = stream_var.get()
        if stream is not None:
            if stream[0] is not None:
                line["app_id"] = stream[0]
            line["stream"] = stream[1]
        recording = recording_var.get()
        if recording is not None:
            line["recording"] = recording
        request_id = request_id_var.get()
        if request_id is not None:
            line["request_id"] = request_id
        for key, value in vars(record).items():  # extra= wins over the context
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value if key not in _FIELDS else str(value)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure_logging(level: str, log_format: str = "text", worker: str = "") -> None:
    """The root logger writes to stderr, in `log_format` ("text" or "json"). Replaces any
    handler set before, so that a second call (tests) does not log each line twice.
    `worker`: an ingest worker's tag (`w0`), on each of its lines (`liverec.x[w0]:` in
    text, a `worker` field in JSON), as its lines share the API process's stderr."""
    handler = logging.StreamHandler(sys.stderr)
    if worker:
        handler.addFilter(_WorkerTag(worker))
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    elif worker:
        handler.setFormatter(
            logging.Formatter(TEXT_FORMAT.replace("%(name)s", "%(name)s[%(worker)s]"))
        )
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
