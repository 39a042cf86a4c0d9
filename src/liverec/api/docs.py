"""`/docs`: Swagger UI on the API's OpenAPI schema, served wholly from the package.

FastAPI's own /docs page loads Swagger UI's JavaScript and CSS from a CDN: on a machine that
cannot reach it the page is blank. Here they are files of the package (api/static/swagger-ui/:
swagger-ui-dist, unmodified, with its licence and version note), under /docs/static/.

`declare_security` names the two ways the API authenticates in the schema, so that Swagger
UI's Authorize button works: `basic` (customer ID and secret) and `hmac` (Agora's scheme,
an Authorization value computed per request; documented, for clients that generate code
from the schema). Operations that take no credentials (signed links, health, metrics) say
so with an empty `security`."""

from __future__ import annotations

from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

DOCS = "/docs"
STATIC = "/docs/static"
_ASSETS = resources.files("liverec.api") / "static" / "swagger-ui"
# Paths whose operations take no credentials (a signed link, or nothing at all).
_OPEN_PREFIXES = ("/files/s/", "/play/s/", "/healthz", "/readyz", "/metrics")
SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "basic": {
        "type": "http",
        "scheme": "basic",
        "description": "The customer ID and customer secret (FLS's HTTP Basic).",
    },
    "hmac": {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": 'Agora\'s HMAC-SHA256 scheme: `hmac username="{customer_id}", '
        'algorithm="hmac-sha256", headers="host date request-line digest", '
        'signature="{base64}"` over those headers, with `Date` within the clock-skew window '
        "and `Digest: SHA-256={base64(sha256(body))}`. Computed per request: the signature "
        "of a change (any method but GET, HEAD, OPTIONS) already accepted is refused (401) "
        "while its Date is in the window, so two identical changes need two Dates (a second "
        "apart); reads are not checked (a replayed read changes nothing, and clients sign "
        "with a Date to the second). The replay cache is per node, in memory "
        "(sharing it through the catalog would add a database write to every signed "
        "request): behind a load balancer a captured request could be replayed once per "
        "node within the window.",
    },
}


def declare_security(schema: dict[str, Any]) -> None:
    """Add the security schemes, require one of them by default, and none on the
    operations that take no credentials. Edits `schema` in place."""
    schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
    schema["security"] = [{"basic": []}, {"hmac": []}]
    for path, operations in schema.get("paths", {}).items():
        if path.startswith(_OPEN_PREFIXES):
            for operation in operations.values():
                operation["security"] = []


def install(app: FastAPI) -> None:
    """Add GET /docs (the page) and /docs/static/ (its assets) to `app`."""

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - API docs",
            swagger_js_url=f"{root}{STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{root}{STATIC}/favicon-32x32.png",
            # No call to swagger.io's validator; the Authorize values kept across reloads.
            swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": True},
        )

    app.add_api_route(DOCS, swagger_ui, methods=["GET"], include_in_schema=False)
    with resources.as_file(_ASSETS) as folder:
        app.mount(STATIC, StaticFiles(directory=folder), name="docs-static")
