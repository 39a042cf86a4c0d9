"""A small RTMP publisher for tests that need what ffmpeg will not do: timestamp jumps,
half-sent messages, hostile bytes. It speaks the same wire protocol as ffmpeg and OBS."""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Callable
from pathlib import Path

from liverec.media import amf0
from liverec.rtmp import messages as m
from liverec.rtmp.chunk import ChunkReader, ChunkWriter, Message
from support.mediagen import FlvTag, read_flv_tags


class RtmpPublisher:
    def __init__(self, host: str, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.reader = ChunkReader()
        self.writer = ChunkWriter()
        self.received: list[Message] = []

    def handshake(self) -> None:
        c1 = struct.pack(">II", 0, 0) + os.urandom(1528)
        self.sock.sendall(b"\x03" + c1)
        s = self._recv_exact(1 + 1536 * 2)
        self.sock.sendall(s[1:1537])  # C2 echoes S1

    def _recv_exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed during handshake")
            buf += chunk
        return buf

    def send(self, msg: Message, csid: int = 3) -> None:
        self.sock.sendall(self.writer.encode(msg, csid))

    def set_chunk_size(self, size: int) -> None:
        self.send(m.set_chunk_size(size), 2)
        self.writer.chunk_size = size

    def command(self, name: str, txn: float, *args: amf0.Amf0Value, stream_id: int = 0) -> None:
        self.send(m.command(name, txn, *args, stream_id=stream_id), 3)

    def wait_for(
        self, pred: Callable[[str, list[amf0.Amf0Value]], bool], timeout: float = 10.0
    ) -> tuple[str, list[amf0.Amf0Value]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for msg in self.received:
                if msg.type_id == m.COMMAND_AMF0:
                    name, _, args = m.parse_command(msg)
                    if pred(name, args):
                        return name, args
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("server closed the connection")
            self.received += self.reader.feed(data)
        raise TimeoutError("no such answer")

    def status(self, timeout: float = 10.0) -> str:
        """The code of the next onStatus the server sends."""
        _, args = self.wait_for(lambda n, a: n == "onStatus", timeout)
        info = args[1] if len(args) > 1 else {}
        assert isinstance(info, dict)
        code = info.get("code")
        assert isinstance(code, str)
        return code

    def connect_and_publish(self, app: str, stream: str, tc_url: str | None = None) -> str:
        """Run the ffmpeg command sequence; return the publish onStatus code."""
        self.handshake()
        self.set_chunk_size(4096)
        self.command(
            "connect",
            1.0,
            {"app": app, "type": "nonprivate", "tcUrl": tc_url or f"rtmp://127.0.0.1/{app}"},
        )
        self.wait_for(lambda n, a: n == "_result")
        self.command("releaseStream", 2.0, None, stream)
        self.command("FCPublish", 3.0, None, stream)
        self.command("createStream", 4.0, None)
        self.wait_for(lambda n, a: n == "_result" and len(a) > 1 and a[1] == 1.0)
        self.command("publish", 5.0, None, stream, "live", stream_id=1)
        return self.status()

    def send_tag(self, tag: FlvTag, timestamp: int | None = None) -> None:
        ts = tag.timestamp if timestamp is None else timestamp
        csid = {8: 4, 9: 6}.get(tag.type, 5)
        self.send(Message(tag.type, 1, ts & 0xFFFFFFFF, tag.payload), csid)

    def unpublish(self) -> None:
        self.command("FCUnpublish", 6.0, None, "x")
        self.command("deleteStream", 7.0, None, 1.0)

    def close(self) -> None:
        self.sock.close()


def publish_file(
    host: str,
    port: int,
    app: str,
    stream: str,
    flv: Path,
    *,
    timestamps: Callable[[int], int] = lambda t: t,
    realtime: float = 1.0,
) -> str:
    """Publish an FLV file's tags, rewriting each timestamp; paced at `realtime` x speed."""
    pub = RtmpPublisher(host, port)
    try:
        code = pub.connect_and_publish(app, stream)
        if code != "NetStream.Publish.Start":
            return code
        start = time.monotonic()
        for tag in read_flv_tags(flv):
            if realtime > 0:
                due = start + tag.timestamp / 1000 / realtime
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            pub.send_tag(tag, timestamps(tag.timestamp))
        pub.unpublish()
        time.sleep(0.2)
        return code
    finally:
        pub.close()
