"""The callbacks liverec sends: FLS's event types and their payloads, as the FLS events
reference documents them, and liverec's own (numbered above 1000, documented as
extensions in OpenAPI).

Every payload starts with `eventName`, as FLS's examples do. Numbers are JSON numbers, as
FLS's tables type them (its example of event 11 sends them as strings). Builders are pure:
they make `Notice`s, which the catalog enqueues in the transaction of the change they
report (catalog/outbox.py)."""

from __future__ import annotations

import ipaddress
import logging
import socket
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any

from liverec.catalog import Notice, Publish, Recording
from liverec.config import is_wildcard
from liverec.layout import StreamRef

log = logging.getLogger(__name__)


class EventType(IntEnum):
    PUBLISH_START = 1
    PUBLISH_END = 2
    PUBLISH_MEDIA_INFO = 11
    NEW_STANDARD_RECORD_FILE = 101
    NEW_STANDARD_SNAPSHOT_FILE = 102
    # liverec extensions
    CALLBACK_TEST = 1000  # `liverec callbacks test`: sent at once, never queued
    NEW_CLIP_FILE = 1001  # a clip made through the cutting call
    NEW_API_SNAPSHOT_FILE = 1002  # a snapshot made through the snapshot call
    RECORD_FILE_DELETED = 1003  # a recording deleted by retention


EVENT_NAMES = {
    EventType.PUBLISH_START: "publish_start",
    EventType.PUBLISH_END: "publish_end",
    EventType.PUBLISH_MEDIA_INFO: "publish_media_info",
    EventType.NEW_STANDARD_RECORD_FILE: "new_standard_record_file",
    EventType.NEW_STANDARD_SNAPSHOT_FILE: "new_standard_snapshot_file",
    EventType.CALLBACK_TEST: "callback_test",
    EventType.NEW_CLIP_FILE: "new_clip_file",
    EventType.NEW_API_SNAPSHOT_FILE: "new_api_snapshot_file",
    EventType.RECORD_FILE_DELETED: "record_file_deleted",
}

# What a callback configuration subscribes to when it names no event types: FLS's own.
FLS_EVENT_TYPES = (
    EventType.PUBLISH_START,
    EventType.PUBLISH_END,
    EventType.PUBLISH_MEDIA_INFO,
    EventType.NEW_STANDARD_RECORD_FILE,
    EventType.NEW_STANDARD_SNAPSHOT_FILE,
)
EXTENSION_EVENT_TYPES = (
    EventType.NEW_CLIP_FILE,
    EventType.NEW_API_SNAPSHOT_FILE,
    EventType.RECORD_FILE_DELETED,
)
SUBSCRIBABLE_EVENT_TYPES = (*FLS_EVENT_TYPES, *EXTENSION_EVENT_TYPES)


def event_name(event_type: int) -> str:
    """The eventName of an event number ("" for one liverec does not send)."""
    try:
        return EVENT_NAMES[EventType(event_type)]
    except ValueError:
        return ""


def _notice(stream: StreamRef, event_type: EventType, **fields: Any) -> Notice:
    payload = {
        "eventName": EVENT_NAMES[event_type],
        "entryPoint": stream.entry_point,
        "streamName": stream.stream_name,
        **fields,
    }
    return Notice(stream, int(event_type), payload)


def _rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def publish_notice(
    event_type: EventType, stream: StreamRef, *, domain: str, client_ip: str, node_ip: str
) -> Notice:
    """1 publish_start or 2 publish_end: `domain` is the host the publisher connected to
    (the tcUrl's), `nodeIp` the address of the node that took the publish."""
    assert event_type in (EventType.PUBLISH_START, EventType.PUBLISH_END)
    return _notice(stream, event_type, domain=domain, clientIp=client_ip, nodeIp=node_ip)


def media_info_notice(
    stream: StreamRef,
    *,
    domain: str,
    video_codec: str | None,
    audio_codec: str | None,
    fps: float | None,
    video_rate: int | None,
    width: int | None,
    height: int | None,
) -> Notice:
    """11 publish_media_info: codecs as names ("H264", "AAC"; "" when the track is
    absent), numbers as integers, 0 when not known (a publisher that sends no onMetaData
    frame rate or bitrate)."""
    return _notice(
        stream,
        EventType.PUBLISH_MEDIA_INFO,
        domain=domain,
        videoCodec=video_codec or "",
        audioCodec=audio_codec or "",
        videoFps=round(fps or 0),
        videoRate=int(video_rate or 0),
        width=int(width or 0),
        height=int(height or 0),
    )


def record_file_notice(stream: StreamRef, file_name: str) -> Notice:
    """101 new_standard_record_file: an HLS recording once closed (its playlist,
    `record/{ep}/{stream}/{sessionid}_{sessiondate}.m3u8`) or an MP4 slice once complete."""
    return _notice(stream, EventType.NEW_STANDARD_RECORD_FILE, fileName=file_name)


def snapshot_file_notice(stream: StreamRef, file_name: str) -> Notice:
    """102 new_standard_snapshot_file: a periodic snapshot, stored and catalogued."""
    return _notice(stream, EventType.NEW_STANDARD_SNAPSHOT_FILE, fileName=file_name)


def clip_file_notice(stream: StreamRef, file_name: str, start: datetime, end: datetime) -> Notice:
    """1001 (extension): a clip made through the cutting call; what it covers."""
    return _notice(
        stream,
        EventType.NEW_CLIP_FILE,
        fileName=file_name,
        startTime=_rfc3339(start),
        endTime=_rfc3339(end),
    )


def api_snapshot_notice(stream: StreamRef, file_name: str, time: datetime) -> Notice:
    """1002 (extension): a snapshot made through the snapshot call; the frame's time."""
    return _notice(stream, EventType.NEW_API_SNAPSHOT_FILE, fileName=file_name, time=_rfc3339(time))


def record_deleted_notice(stream: StreamRef, file_name: str, reason: str = "retention") -> Notice:
    """1003 (extension): a recording (its playlist name) deleted, and why."""
    return _notice(stream, EventType.RECORD_FILE_DELETED, fileName=file_name, reason=reason)


class FlsNotices:
    """The notices of this node's publishes and recordings, with its address (`nodeIp`)."""

    def __init__(self, node_ip: str, region: str) -> None:
        self.node_ip = node_ip
        self.region = region

    def publish_started(self, stream: StreamRef, *, domain: str, client_ip: str) -> Notice:
        return publish_notice(
            EventType.PUBLISH_START,
            stream,
            domain=domain,
            client_ip=client_ip,
            node_ip=self.node_ip,
        )

    def publish_ended(self, stream: StreamRef, *, domain: str, client_ip: str) -> Notice:
        return publish_notice(
            EventType.PUBLISH_END, stream, domain=domain, client_ip=client_ip, node_ip=self.node_ip
        )

    def publish_ended_of(self, publish: Publish) -> Notice:
        """publish_end of a publish its node did not end (it stopped): ended by its
        restart, or by another node's sweep (catalog end_node/orphan_publishes)."""
        stream = StreamRef(publish.app_id, self.region, publish.entry_point, publish.stream_name)
        return publish_notice(
            EventType.PUBLISH_END,
            stream,
            domain=publish.domain,
            client_ip=publish.client_ip,
            node_ip=publish.node_ip or self.node_ip,
        )

    def recording_closed(self, rec: Recording) -> Notice:
        """101 for an HLS recording, by whichever path closes it (the journal, recovery,
        another node's sweep)."""
        return record_file_notice(rec.stream, rec.playlist_key)


def guess_node_ip(listen_host: str) -> str:
    """The address callbacks report as this node's (`nodeIp`, the webhook's `cdnIp`): the
    RTMP listen address when it is one, else the address of the interface of the default
    route (a UDP connect sends nothing), else the host name's, else 127.0.0.1."""
    try:
        if not is_wildcard(listen_host):
            return str(ipaddress.ip_address(listen_host))
    except ValueError:
        pass  # a host name: its address below
    for probe in ("192.0.2.1", "2001:db8::1"):  # TEST-NET addresses, never reached
        family = socket.AF_INET6 if ":" in probe else socket.AF_INET
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as sock:
                sock.connect((probe, 9))
                return str(sock.getsockname()[0])
        except OSError:
            continue
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        log.info("no address found for this node: callbacks report 127.0.0.1")
        return "127.0.0.1"
