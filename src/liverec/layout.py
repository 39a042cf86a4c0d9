"""Which stream, and where its files live: the one owner of the storage key layout.

Every name liverec writes or reads is built by `StreamRef` and `RecordingPath` and taken
apart by `parse_name`; no other module spells a path out. A store holds each project
under its own root `{region}/{app_id}/`; under that root, as FLS names its files:

    record/{ep}/{stream}/{sessionid}_{sessiondate}.m3u8                       recording playlist
    record/{ep}/{stream}/{sessionid}_{sessiondate}_{n}.ts                     its n-th segment
    record/{ep}/{stream}/{sessionid}_{sessiondate}_{sliceid}_{filedate}.mp4   an MP4 slice
    record/{ep}/{stream}/{fileName}                         a clip or snapshot made by the API
    snapshot/{ep}/{stream}/{sessionid}_{sessiondate}_{filedate}.jpg           periodic snapshot

`sessiondate` is the recording's start and the MP4's `filedate` its creation, both UTC
yyyyMMddHHmmssSSS (17 digits); a periodic snapshot's `filedate` is UTC yyyyMMddHHmmss (14),
as FLS's snapshot docs give it. A "name" is relative to the project's root (what the API
answers as fileName); a "key" is the store's (root + name).

Pure values, no I/O. Imports: media.names (the name rules) and errors only."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Literal

from liverec.errors import InvalidKeyError
from liverec.media.names import stream_name_problem

RECORD = "record"
SNAPSHOT = "snapshot"
FileKind = Literal["playlist", "segment", "mp4", "snapshot", "file"]

_ENTRY_POINT = re.compile(r"[A-Za-z0-9_-]{1,64}")
# {sessionid}_{sessiondate} then the kind's own tail; session IDs hold no "_".
_RECORDING_FILE = re.compile(
    r"(?P<session>[A-Za-z0-9-]{1,128})_(?P<date>\d{17})"
    r"(?:\.m3u8|_(?P<index>\d{1,9})\.ts|_(?P<slice>\d{1,9})_(?P<filedate>\d{17})\.mp4)"
)
_SNAPSHOT_FILE = re.compile(
    r"(?P<session>[A-Za-z0-9-]{1,128})_(?P<date>\d{17})_(?P<filedate>\d{14})\.jpg"
)


def session_date(t: datetime) -> str:
    """FLS's sessiondate (and an MP4's filedate): UTC yyyyMMddHHmmssSSS."""
    t = t.astimezone(UTC)
    return t.strftime("%Y%m%d%H%M%S") + f"{t.microsecond // 1000:03d}"


def snapshot_date(t: datetime) -> str:
    """A periodic snapshot's filedate: UTC yyyyMMddHHmmss."""
    return t.astimezone(UTC).strftime("%Y%m%d%H%M%S")


def parse_date(text: str) -> datetime:
    """A 17-digit (ms) or 14-digit (s) UTC file date back to an aware datetime."""
    if not text.isdigit() or len(text) not in (14, 17):
        raise InvalidKeyError(f"not a file date: {text!r}")
    try:
        t = datetime.strptime(text[:14], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        raise InvalidKeyError(f"not a file date: {text!r}") from None
    return t.replace(microsecond=int(text[14:] or 0) * 1000)


@dataclass(frozen=True, slots=True)
class StreamRef:
    """One stream of one project, in the region its files are stored under."""

    app_id: str
    region: str
    entry_point: str
    stream_name: str

    @property
    def root(self) -> str:
        """`{region}/{app_id}/`: the project's root in the store."""
        return project_root(self.region, self.app_id)

    @property
    def folder(self) -> str:
        """`record/{ep}/{stream}/`: recordings, MP4 slices, clips and API snapshots."""
        return f"{RECORD}/{self.entry_point}/{self.stream_name}/"

    @property
    def snapshot_folder(self) -> str:
        """`snapshot/{ep}/{stream}/`: periodic snapshots."""
        return f"{SNAPSHOT}/{self.entry_point}/{self.stream_name}/"

    def file(self, file_name: str) -> str:
        """The name of a user-named clip or snapshot in the stream folder."""
        return self.folder + file_name

    def key(self, name: str) -> str:
        """The store key of a name of this project (`record/...` or `snapshot/...`)."""
        return self.root + name

    def recording(self, session_id: str, start: datetime) -> RecordingPath:
        """The files of the recording of `session_id` that started at `start`."""
        return RecordingPath(self, session_id, start)

    def with_stream(self, stream_name: str) -> StreamRef:
        return replace(self, stream_name=stream_name)

    def __str__(self) -> str:
        return f"{self.entry_point}/{self.stream_name}"


@dataclass(frozen=True, slots=True)
class RecordingPath:
    """The files of one recording: `{sessionid}_{sessiondate}` and what hangs off it."""

    stream: StreamRef
    session_id: str
    start: datetime  # the recording's start; its millisecond is the sessiondate
    # Made once: the recorder names files of it at every segment.
    base: str = field(init=False, repr=False, compare=False)  # `{sessionid}_{sessiondate}`
    playlist: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        base = f"{self.session_id}_{session_date(self.start)}"
        object.__setattr__(self, "base", base)
        object.__setattr__(self, "playlist", f"{self.stream.folder}{base}.m3u8")

    def segment(self, index: int) -> str:
        return f"{self.stream.folder}{self.base}_{index}.ts"

    def mp4(self, slice_id: int, created: datetime) -> str:
        return f"{self.stream.folder}{self.base}_{slice_id}_{session_date(created)}.mp4"

    def snapshot(self, taken: datetime) -> str:
        return f"{self.stream.snapshot_folder}{self.base}_{snapshot_date(taken)}.jpg"


def file_part(name: str) -> str:
    """The last part of a name: how a playlist refers to a file in its own folder."""
    return name.rsplit("/", 1)[-1]


def project_root(region: str, app_id: str) -> str:
    """`{region}/{app_id}/`: each region and each project has its own root."""
    return f"{region}/{app_id}/"


@dataclass(frozen=True, slots=True)
class ParsedName:
    """What `parse_name` reads out of a name relative to a project's root."""

    top: str  # "record" or "snapshot"
    entry_point: str
    stream_name: str
    file_name: str  # the last part
    kind: FileKind  # "file": a clip, an API snapshot, or a name of no known shape
    session_id: str | None = None
    session_date: datetime | None = None
    index: int | None = None  # a segment's
    slice_id: int | None = None  # an MP4's
    file_date: datetime | None = None  # an MP4's or a periodic snapshot's

    @property
    def folder(self) -> str:
        """`{top}/{ep}/{stream}/`."""
        return f"{self.top}/{self.entry_point}/{self.stream_name}/"

    def stream(self, app_id: str, region: str) -> StreamRef:
        return StreamRef(app_id, region, self.entry_point, self.stream_name)


def parse_name(name: str) -> ParsedName:
    """Take apart `record/{ep}/{stream}/{file}` or `snapshot/{ep}/{stream}/{file}`;
    InvalidKeyError for anything else (another depth, an unsafe or invalid part)."""
    parts = name.split("/")
    if len(parts) != 4 or parts[0] not in (RECORD, SNAPSHOT):
        raise InvalidKeyError(
            f"file name must be record/{{entry_point}}/{{stream_name}}/{{file}}: {name[:300]!r}"
        )
    top, ep, stream, file_name = parts
    if not _ENTRY_POINT.fullmatch(ep):
        raise InvalidKeyError(f"invalid entry point in file name: {ep[:64]!r}")
    problem = stream_name_problem(stream)
    if problem is not None:
        raise InvalidKeyError(problem)
    if not file_name or file_name in (".", "..") or "\\" in file_name:
        raise InvalidKeyError(f"invalid file name: {file_name[:200]!r}")
    if not file_name.isprintable():
        raise InvalidKeyError(f"file name has a control character: {file_name[:200]!r}")
    found = (_RECORDING_FILE if top == RECORD else _SNAPSHOT_FILE).fullmatch(file_name)
    if found is None:
        return ParsedName(top, ep, stream, file_name, "file")
    groups = found.groupdict()
    kind: FileKind
    if top == SNAPSHOT:
        kind = "snapshot"
    elif groups.get("index") is not None:
        kind = "segment"
    elif groups.get("slice") is not None:
        kind = "mp4"
    else:
        kind = "playlist"
    try:
        return ParsedName(
            top,
            ep,
            stream,
            file_name,
            kind,
            session_id=groups["session"],
            session_date=parse_date(groups["date"]),
            index=int(groups["index"]) if groups.get("index") else None,
            slice_id=int(groups["slice"]) if groups.get("slice") else None,
            file_date=parse_date(groups["filedate"]) if groups.get("filedate") else None,
        )
    except InvalidKeyError:  # digits that are no date: some other file of that shape
        return ParsedName(top, ep, stream, file_name, "file")
