"""The API test rig: a real Catalog on a SQLite file, a real LocalStore, and a small FastAPI
app with the auth dependencies, the error handlers and the file routes, called in-process
through httpx's ASGI transport."""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import unquote

import httpx
import pytest
from fastapi import Depends, FastAPI, Request
from pydantic import BaseModel
from starlette.types import Message

from liverec.api import files
from liverec.api.auth import authenticate, authorized_project
from liverec.api.context import ApiContext
from liverec.api.errors import install_error_handlers
from liverec.catalog import Catalog, Project, SecretBox, make_engine, migrate
from liverec.layout import RecordingPath, StreamRef
from liverec.media.ts import TS_TYPE
from liverec.postprocess import ClipWriter, SnapshotWriter
from liverec.storage import LocalStore

T0 = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
APP = "app1"
OTHER_APP = "app2"
CUSTOMER = "cust"
SECRET = "the-customer-secret"
OTHER_CUSTOMER = "other"
OTHER_SECRET = "the-other-secret"
HOST = "testserver"
BASE_URL = f"http://{HOST}"
URL_KEY = b"0123456789abcdef0123456789abcdef"


class FakeClock:
    """The API's clock, moved by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass(frozen=True)
class Template:
    db: Path
    box_key: str


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    """A migrated catalog with two projects and a credential for each, made once (scrypt
    is slow) and copied for each test."""
    path = tmp_path_factory.mktemp("api-template") / "catalog.db"
    box_key = SecretBox.generate_key()
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    catalog = Catalog(engine, SecretBox(box_key))
    catalog.create_project(APP)
    catalog.create_project(OTHER_APP)
    catalog.create_project("s")  # an app named like the signed-link prefix
    catalog.create_credential(CUSTOMER, SECRET, [APP, "s"])
    catalog.create_credential(OTHER_CUSTOMER, OTHER_SECRET, [OTHER_APP])
    engine.dispose()  # the last connection checkpoints the WAL into the file
    return Template(path, box_key)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def catalog(template: Template, tmp_path: Path, clock: FakeClock) -> Iterator[Catalog]:
    path = tmp_path / "catalog.db"
    shutil.copyfile(template.db, path)
    engine = make_engine(f"sqlite:///{path}")
    yield Catalog(engine, SecretBox(template.box_key), clock)
    engine.dispose()


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


def record_segments(
    catalog: Catalog, store: LocalStore, stream: StreamRef, start: datetime, count: int = 3
) -> RecordingPath:
    """A recording of `stream` from `start`: `count` stored segments of 4 s (1 byte each),
    catalogued."""
    path = stream.recording("s1", start)
    rec = catalog.create_recording(
        stream,
        session_id="s1",
        playlist_key=path.playlist,
        start_time=start,
        node_id="n",
        lease_seconds=60,
    )
    for i in range(count):
        store.put(stream.key(path.segment(i)), b"x", TS_TYPE)
        catalog.add_segment(
            rec.id,
            seq=i,
            key=path.segment(i),
            start_time=start + timedelta(seconds=4 * i),
            duration=4.0,
            size=1,
            discontinuity=False,
        )
    return path


@pytest.fixture
def ctx(catalog: Catalog, store: LocalStore, clock: FakeClock) -> ApiContext:
    return ApiContext(
        catalog=catalog,
        store=store,
        region="na",
        url_key=URL_KEY,
        clock=clock,
        make_clip=ClipWriter(catalog, store),
        make_snapshot=SnapshotWriter(catalog, store),
        hmac_skew=300.0,
        url_ttl=3600.0,
    )


class Echo(BaseModel):
    text: str


def make_app(ctx: ApiContext, extend: Callable[[FastAPI], None] | None = None) -> FastAPI:
    """The file routes plus small routes that show who authenticated."""
    app = FastAPI()
    app.state.ctx = ctx
    install_error_handlers(app)
    app.include_router(files.router)

    @app.get("/whoami")
    async def whoami(customer_id: Annotated[str, Depends(authenticate)]) -> dict[str, str]:
        return {"customer_id": customer_id}

    @app.post("/echo")
    async def echo(
        body: Echo, request: Request, customer_id: Annotated[str, Depends(authenticate)]
    ) -> dict[str, str]:
        return {"customer_id": customer_id, "text": body.text}

    @app.get("/v1/projects/{appid}/thing")
    async def thing(project: Annotated[Project, Depends(authorized_project)]) -> dict[str, Any]:
        return {"app_id": project.app_id}

    if extend is not None:
        extend(app)
    return app


def client_for(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL)


@pytest.fixture
def app(ctx: ApiContext) -> FastAPI:
    return make_app(ctx)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app) as c:
        yield c


def basic(customer_id: str, secret: str) -> dict[str, str]:
    token = base64.b64encode(f"{customer_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def assert_error(resp: httpx.Response, status: int, reason: str | None = None) -> str:
    """The answer is a JSON error with `message` first; returns the message."""
    assert resp.status_code == status, (resp.status_code, resp.text)
    body = resp.json()
    assert list(body) == ["message", "reason"], body
    if reason is not None:
        assert body["reason"] == reason, body
    if status == 401:
        assert resp.headers["www-authenticate"] == 'Basic realm="liverec"'
    message = body["message"]
    assert isinstance(message, str) and message
    return message


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def raw_request(
    app: FastAPI, raw_path: bytes, headers: dict[str, str] | None = None, method: str = "GET"
) -> RawResponse:
    """Call the app with a path exactly as given (httpx would resolve `..` segments)."""
    path = unquote(raw_path.decode("latin-1"))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": raw_path,
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", HOST.encode())]
        + [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        "server": (HOST, 80),
        "client": ("127.0.0.1", 1234),
    }
    sent: list[Message] = []
    done = False

    async def receive() -> Message:
        nonlocal done
        if not done:
            done = True
            return {"type": "http.request", "body": b"", "more_body": False}
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    hdrs = {k.decode().lower(): v.decode() for k, v in start["headers"]}
    return RawResponse(start["status"], hdrs, body)
