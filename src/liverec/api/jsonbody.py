"""Request bodies are JSON whatever their Content-Type says.

Agora's own sample clients do not all label their JSON: the Python HMAC sample sends no
Content-Type, the Java sample Java's default `application/x-www-form-urlencoded`. FastAPI
parses a body as JSON only when it is labelled so (and what it does with other labels has
changed between versions), so this middleware relabels every request body under the API's
JSON paths before routing. A body that is not JSON is then a 400 "the request body is not
valid JSON", as for a labelled one. `multipart/*` is left alone: no API call takes it."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

JSON = b"application/json"
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class JsonBodies:
    """Pure ASGI middleware: mark the bodies of API calls under `prefix` as JSON."""

    def __init__(self, app: ASGIApp, prefix: str = "/v1/") -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] in _BODY_METHODS
            and str(scope.get("path", "")).startswith(self.prefix)
        ):
            headers = [(k, v) for k, v in scope.get("headers", ()) if k.lower() != b"content-type"]
            types = [v for k, v in scope.get("headers", ()) if k.lower() == b"content-type"]
            if not (types and types[0].lower().startswith(b"multipart/")):
                scope = {**scope, "headers": [*headers, (b"content-type", JSON)]}
        await self.app(scope, receive, send)
