"""A bound on request bodies, before anything reads them.

HMAC authentication hashes the whole body and FastAPI parses any JSON body, so without a
bound a client could make the server buffer gigabytes. The API's bodies are small JSON
objects: 64 KiB is plenty.

A Content-Length above the limit is refused at once, without reading a byte of the body.
A body without a Content-Length (chunked) is read here, counting, up to the limit, then
handed to the app from memory; one byte more and it is refused. Either way the answer is
413 with the JSON error body every error has."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from liverec.api.errors import error_response

MAX_BODY_BYTES = 64 * 1024
REASON = "body_too_large"


class BodyLimit:
    """Pure ASGI middleware: refuse HTTP request bodies larger than `max_bytes`."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        lengths = [v for k, v in scope.get("headers", ()) if k.lower() == b"content-length"]
        if lengths:
            # Servers (h11, httptools) already refuse malformed or conflicting lengths;
            # anything odd that still gets here is refused too.
            text = lengths[0].strip()
            if len(set(lengths)) > 1 or not text.isdigit():
                await error_response(400, "invalid_parameter", "bad Content-Length")(
                    scope, receive, send
                )
                return
            if int(text) > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            # The server delivers no more than Content-Length bytes.
            await self.app(scope, receive, send)
            return
        body = await self._read_counted(receive)
        if body is None:
            await self._refuse(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read_counted(self, receive: Receive) -> list[Message] | None:
        """The request's body messages, or None once they exceed max_bytes."""
        messages: list[Message] = []
        total = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                return messages  # the client went away: the app will see it
            total += len(message.get("body", b""))
            if total > self.max_bytes:
                return None
            if not message.get("more_body", False):
                return messages

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = f"the request body is larger than {self.max_bytes} bytes"
        await error_response(413, REASON, message)(scope, receive, send)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A receive that hands out `messages` first, then whatever the server sends next
    (a disconnect)."""
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed
