"""End to end: the web console in a real headless Chromium (Debian's package, driven by
Playwright for Python, no browser download) on a real `liverec serve` with a real ffmpeg
push of frames that show their own numbers.

Signed in, the push appears as live; the player plays it (currentTime advances, and the
frame on screen, read back through a canvas the way mediagen.read_frame_number reads a
decoded frame, is the frame the stream held at the player's wall-clock position); a click
on the timeline plays from an earlier instant; a drag selects a range that is cut into a
clip, which plays the right frames; a snapshot at the playhead is the frame on screen;
signing out ends the session. A wrong secret and a change without the CSRF token are
refused. Screenshots of every page, at 1280x720 and at phone width, go to the test's tmp
folder and to /tmp/console-shots/."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import av
import httpx
import pytest

from support.api import base_path, client
from support.mediagen import make_media, read_frame_number
from support.server import APP_ID, CUSTOMER_ID, CUSTOMER_SECRET, LiverecProcess, start_push

pytestmark = pytest.mark.slow

playwright_sync = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
FPS = 25
SHOTS = Path("/tmp/console-shots")
DESKTOP = {"width": 1280, "height": 720}
PHONE = {"width": 390, "height": 844}

# The frame number drawn by mediagen, read from the video element through a canvas: the
# same block layout and threshold as mediagen.read_frame_number.
READ_FRAME = """() => {
  const v = document.querySelector('#player');
  const c = document.createElement('canvas');
  c.width = v.videoWidth; c.height = v.videoHeight;
  const g = c.getContext('2d', { willReadFrequently: true });
  g.drawImage(v, 0, 0);
  const cols = c.width >= 256 ? 16 : 8, rows = 16 / cols;
  const b = Math.min(Math.floor(c.width / cols), Math.floor(c.height / (rows * 3)));
  const m = Math.floor(b / 4);
  let n = 0;
  for (let bit = 0; bit < 16; bit++) {
    const row = Math.floor(bit / cols), col = bit % cols;
    const d = g.getImageData(col * b + m, row * b + m, b - 2 * m, b - 2 * m).data;
    let sum = 0;
    for (let i = 0; i < d.length; i += 4) sum += 0.299 * d[i] + 0.587 * d[i + 1] + 0.114 * d[i + 2];
    n = (n << 1) | (sum / (d.length / 4) >= 128 ? 1 : 0);
  }
  const date = window.consolePlayer && window.consolePlayer.date();
  return { n, date: date ? date.getTime() : null, t: v.currentTime };
}"""


# Start playing; not awaiting play()'s promise, which may wait for data indefinitely.
PLAY = "() => { document.querySelector('#player').play().catch(() => {}); }"


def wait_for(pred: Callable[[], Any], timeout: float = 30.0, every: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(every)


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiverecProcess]:
    proc = LiverecProcess(tmp_path_factory.mktemp("data")).start()
    yield proc
    proc.terminate()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        pytest.skip("no /usr/bin/chromium: scripts/install installs it")
    with playwright_sync.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=DESKTOP)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    yield pg
    context.close()
    assert not errors, errors  # no uncaught script error on any page


def console_url(srv: LiverecProcess) -> str:
    return f"http://127.0.0.1:{srv.http_port}/console/"


def shoot(pg: Any, tmp_path: Path, name: str) -> None:
    pg.screenshot(path=str(tmp_path / f"{name}.png"))
    SHOTS.mkdir(exist_ok=True)
    shutil.copy(tmp_path / f"{name}.png", SHOTS / f"{name}.png")


def sign_in(pg: Any, srv: LiverecProcess, secret: str = CUSTOMER_SECRET) -> None:
    pg.goto(console_url(srv))
    pg.fill("input[name=customerId]", CUSTOMER_ID)
    pg.fill("input[name=secret]", secret)
    pg.click("#sign-in button[type=submit]")


def frame(pg: Any) -> dict[str, Any]:
    """The frame on screen, paused so that it holds still while it is read."""
    pg.evaluate("() => document.querySelector('#player').pause()")
    time.sleep(0.5)
    shown: dict[str, Any] = pg.evaluate(READ_FRAME)
    return shown


def playing(pg: Any, timeout: float = 30.0) -> None:
    """Wait until the video plays: currentTime advances."""
    pg.evaluate(PLAY)
    first = wait_for(
        lambda: pg.evaluate("() => document.querySelector('#player').currentTime"), timeout
    )
    wait_for(
        lambda: pg.evaluate("() => document.querySelector('#player').currentTime") > first + 0.5,
        timeout,
    )


def x_of(pg: Any, when: float) -> tuple[float, float]:
    """The page coordinates of the instant `when` (unix ms) on the timeline."""
    box = pg.locator("#track").bounding_box()
    v0, v1 = (float(pg.get_attribute("#track", name)) for name in ("data-v0", "data-v1"))
    assert v0 < when < v1, (v0, when, v1)
    return box["x"] + (when - v0) / (v1 - v0) * box["width"], box["y"] + 25


def ms(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000


def expected_frame(shown: dict[str, Any], rec_start: float) -> float:
    """The number of the frame the stream showed at the player's wall-clock position: the
    recording's startTime is the wall time of its first media, frame 0."""
    assert shown["date"] is not None, shown
    return float(shown["date"] - rec_start) / 1000 * FPS


def test_console_end_to_end(srv: LiverecProcess, page: Any, tmp_path: Path) -> None:
    media = make_media(tmp_path / "push.flv", 60, fps=FPS, gop=FPS)
    with client(srv) as http:  # periodic snapshots: thumbnails on the pages
        shots = f"/v1/projects/{APP_ID}/fls/entry_points/live/settings/snapshot/standard/regions/na"
        http.patch(shots, json={"enabled": True, "snapshotInterval": 5}).raise_for_status()
    pusher = start_push(srv.url(stream="cam1"), media)
    try:
        _journey(srv, page, tmp_path)
    finally:
        pusher.kill()
        pusher.wait(10)


def _journey(srv: LiverecProcess, pg: Any, tmp_path: Path) -> None:
    pg.goto(console_url(srv))
    pg.wait_for_selector("#sign-in input[name=customerId]")
    shoot(pg, tmp_path, "0-sign-in")
    sign_in(pg, srv)

    # Streams: the push appears as live, with its media, without a reload.
    row = pg.locator("#live-streams tr[data-stream=cam1]")
    row.wait_for(timeout=30_000)
    wait_for(lambda: "320\u00d7240" in row.inner_text(), 20)  # 320x240
    text = row.inner_text()
    assert "H264" in text and "127.0.0.1" in text and "LIVE" in text, text
    shoot(pg, tmp_path, "1-streams")

    with client(srv) as http:
        # Wait for 20 s of recording, so there is an earlier instant to go back to.
        def recording() -> dict[str, Any] | None:
            now = datetime.now(UTC).isoformat()
            got = http.get(
                base_path() + "/preview_list",
                params={
                    "stream_name": "cam1",
                    "start_time": "2000-01-01T00:00:00Z",
                    "end_time": now,
                },
            ).json()["list"]
            return (
                got[0] if got and ms(got[0]["endTime"]) - ms(got[0]["startTime"]) > 20_000 else None
            )

        rec = wait_for(recording, 40)
    rec_start = ms(rec["startTime"])

    # A stream: the player plays the live stream and shows the frames that were pushed.
    row.locator("a", has_text="cam1").click()
    pg.wait_for_selector("#track")
    playing(pg)
    shown = frame(pg)
    assert abs(shown["n"] - expected_frame(shown, rec_start)) <= 3, (shown, rec_start)
    live_number = shown["n"]
    pg.evaluate(PLAY)
    shoot(pg, tmp_path, "2-stream")

    # The periodic snapshots along the timeline.
    pg.locator("#track img.shot").first.wait_for(timeout=20_000)

    # Scrub: a click on the timeline plays from that earlier instant.
    earlier = rec_start + 5_000
    pg.mouse.click(*x_of(pg, earlier))
    playing(pg)
    shown = frame(pg)
    assert earlier - 100 <= shown["date"] < earlier + 2_500, (shown, earlier)
    assert shown["n"] < live_number, (shown, live_number)
    assert abs(shown["n"] - expected_frame(shown, rec_start)) <= 3, (shown, rec_start)
    scrubbed = shown

    # Snapshot at the playhead: the frame on screen.
    pg.click("#snapshot")
    pg.locator("#results li[data-kind=snapshot]").wait_for(timeout=30_000)
    snap = _results(pg, "snapshot")[0]
    jpeg = httpx.get(snap["url"], timeout=30)
    assert jpeg.status_code == 200 and jpeg.content[:2] == b"\xff\xd8"
    shot_file = tmp_path / "snap.jpg"
    shot_file.write_bytes(jpeg.content)
    with av.open(str(shot_file)) as c:
        snapped = read_frame_number(next(c.decode(video=0)))
    assert abs(snapped - scrubbed["n"]) <= 1, (snapped, scrubbed)

    # Select a range by dragging, cut a clip, play it.
    t1, t2 = rec_start + 2_000, rec_start + 9_000
    x1, y = x_of(pg, t1)
    x2, _ = x_of(pg, t2)
    pg.mouse.move(x1, y)
    pg.mouse.down()
    pg.mouse.move((x1 + x2) / 2, y, steps=5)
    pg.mouse.move(x2, y, steps=5)
    pg.mouse.up()
    assert "Range" in pg.inner_text("#selection")
    assert pg.is_enabled("#clip")
    pg.click("#clip")
    pg.locator("#results li[data-kind=clip]").wait_for(timeout=30_000)
    clip = _results(pg, "clip")[0]
    assert ms(clip["startTime"]) <= t1 + 1_000 and ms(clip["endTime"]) >= t2 - 1_000, clip
    # A precise clip of the same range: frame-accurate ends, so shorter than whole segments.
    pg.check("#precise")
    pg.click("#clip")
    wait_for(lambda: len(_results(pg, "clip")) == 2, 60)
    exact = _results(pg, "clip")[0]
    span = (ms(exact["endTime"]) - ms(exact["startTime"])) / 1000
    assert abs(span - 7) < 0.5 and span < (ms(clip["endTime"]) - ms(clip["startTime"])) / 1000
    assert abs(ms(exact["startTime"]) - t1) < 500, (exact, t1)
    pg.uncheck("#precise")
    shoot(pg, tmp_path, "3-stream-clip")
    pg.locator("#results li[data-kind=clip] button", has_text="Play").last.click()
    playing(pg)
    shown = frame(pg)
    assert ms(clip["startTime"]) - 100 <= shown["date"] <= ms(clip["endTime"]) + 100, (shown, clip)
    assert abs(shown["n"] - expected_frame(shown, rec_start)) <= 3, (shown, rec_start)

    # Keyboard: the timeline takes the focus; Enter plays from the cursor.
    pg.focus("#track")
    pg.keyboard.press("ArrowLeft")
    pg.keyboard.press("Enter")
    playing(pg)

    # The other pages, and phone width.
    for name, hash_ in (
        ("4-entry-points", "entry-points"),
        ("5-media", "media"),
        ("6-callbacks", "callbacks"),
    ):
        pg.goto(console_url(srv) + "#/" + hash_)
        pg.wait_for_selector(f"main[data-ready='{hash_}']")
        assert pg.locator("main > p.error").count() == 0 and pg.is_hidden("#notice")
        shoot(pg, tmp_path, name)
        if hash_ == "callbacks":  # none configured here: both tables say so
            assert "Nothing delivered yet." in pg.inner_text("#delivered")
        if hash_ == "media":
            # The clips and snapshot made above, as the API lists them: from another
            # browser too (this one forgets what it made).
            pg.evaluate("() => localStorage.clear()")
            pg.reload()
            pg.wait_for_selector("main[data-ready='media']")
            pg.fill("input[aria-label='Stream name']", "cam1")
            pg.click("button:text('Show')")
            pg.locator("#made tr[data-kind=snapshot]").wait_for(timeout=10_000)
            assert pg.locator("#made tr[data-kind=clip]").count() == 2
            assert "snap-" in pg.inner_text("#made tr[data-kind=snapshot]")
            shoot(pg, tmp_path, "5-media-listed")
        if hash_ == "entry-points":
            # "Copy for OBS": the server URL and the stream key (push auth is off here).
            pg.context.grant_permissions(["clipboard-read", "clipboard-write"])
            pg.locator("[data-ep=live] button", has_text="Copy for OBS").click()
            copied = pg.evaluate("() => navigator.clipboard.readText()")
            assert copied == f"Server: rtmp://127.0.0.1:{srv.rtmp_port}/live\nStream key: cam1"
            # Push authentication on, through the API: OBS gets a signed stream key.
            card = pg.locator("[data-ep=live]")
            card.locator("input[aria-label='Push auth key']").fill("k3y")
            card.locator("button", has_text="Require signed pushes").click()
            pg.locator("[data-ep=live] strong", has_text="on (signed push URLs)").wait_for()
            card = pg.locator("[data-ep=live]")
            card.locator("input[aria-label='Push auth key']").fill("k3y")
            card.locator("button", has_text="Copy for OBS").click()
            key = pg.evaluate("() => navigator.clipboard.readText()").split("Stream key: ")[1]
            ts = key.split("ts=")[1].split("&")[0]
            sign = hashlib.md5(f"k3y/live/cam1{ts}".encode()).hexdigest()
            assert key == f"cam1?ts={ts}&sign={sign}", key
            shoot(pg, tmp_path, "4-entry-points-push-auth")
            card.locator("button", has_text="Turn off").click()
            # The page drawn anew with push auth off (only then is the button there).
            pg.locator("[data-ep=live] button", has_text="Require signed pushes").wait_for()
            assert pg.locator("[data-ep=live] .push-auth strong").count() == 0
    pg.set_viewport_size(PHONE)
    pg.goto(console_url(srv) + "#/streams")
    row.locator("img.thumb").wait_for(timeout=20_000)
    # The live edge's thumbnail, decoded: the picture of the push, 240 px wide.
    shown = pg.evaluate(
        "() => { const i = document.querySelector('#live-streams tr[data-stream=cam1] img.thumb');"
        " return { src: i.src, w: i.naturalWidth }; }"
    )
    assert "/reports/online_streams/cam1/thumbnail.jpg" in shown["src"] and shown["w"] == 240, shown
    shoot(pg, tmp_path, "7-phone-streams")
    pg.goto(console_url(srv) + "#/s/live/cam1")
    playing(pg)
    shoot(pg, tmp_path, "8-phone-stream")
    width = pg.evaluate("() => document.documentElement.scrollWidth")
    assert width <= PHONE["width"] + 1, width  # nothing wider than the screen
    pg.set_viewport_size(DESKTOP)

    # Sign out: the page asks for credentials, the cookie is gone, and a copy of it made
    # before no longer works.
    (cookie,) = pg.context.cookies()
    pg.click("#sign-out")
    pg.wait_for_selector("#sign-in input[name=customerId]")
    assert pg.is_hidden("#top")
    assert not pg.context.cookies()
    base = f"http://127.0.0.1:{srv.http_port}"
    with httpx.Client(base_url=base, cookies={cookie["name"]: cookie["value"]}) as http:
        old = http.get(f"/v1/projects/{APP_ID}/fls/entry_points")
        assert old.status_code == 401, old.text
        assert old.json()["reason"] == "session_expired"


def _results(pg: Any, kind: str) -> list[dict[str, Any]]:
    items = json.loads(
        pg.evaluate(f"() => localStorage.getItem('liverec.results.{APP_ID}.live.cam1') || '[]'")
    )
    return [it for it in items if it["kind"] == kind]


def test_wrong_secret_refused(srv: LiverecProcess, page: Any) -> None:
    sign_in(page, srv, secret="not-the-secret")
    page.wait_for_function("() => document.querySelector('#sign-in-error').textContent !== ''")
    assert "wrong customer ID or secret" in page.inner_text("#sign-in-error")
    assert not page.context.cookies()
    assert page.is_hidden("#top")


def test_session_cookie_and_csrf(srv: LiverecProcess, page: Any) -> None:
    sign_in(page, srv)
    page.wait_for_selector("#live-streams")
    (cookie,) = page.context.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["expires"] > time.time()
    assert page.evaluate("() => document.cookie") == ""  # not readable by scripts
    auto = f"/v1/projects/{APP_ID}/fls/entry_points/live/settings/record/standard/auto"

    # In the page: a change without the CSRF token is refused, with it accepted.
    refused = page.evaluate(
        """async (path) => {
      const r = await fetch(path, { method: 'PATCH',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ enabled: true }) });
      return { status: r.status, body: await r.json() };
    }""",
        auto,
    )
    assert refused["status"] == 403 and refused["body"]["reason"] == "csrf_refused", refused
    accepted = page.evaluate(
        """async (path) => {
      const s = await (await fetch('/console/session')).json();
      const r = await fetch(path, { method: 'PATCH', headers: { 'Content-Type': 'application/json',
        'X-CSRF-Token': s.csrfToken }, body: JSON.stringify({ enabled: true }) });
      return r.status;
    }""",
        auto,
    )
    assert accepted == 200

    # A script with the cookie: reads work, a change needs the token, a wrong one fails.
    base = f"http://127.0.0.1:{srv.http_port}"
    jar = {cookie["name"]: cookie["value"]}
    with httpx.Client(base_url=base, cookies=jar, timeout=30) as http:
        assert http.get(f"/v1/projects/{APP_ID}/fls/entry_points").status_code == 200
        assert http.patch(auto, json={"enabled": True}).status_code == 403
        assert (
            http.patch(auto, json={"enabled": True}, headers={"X-CSRF-Token": "x"}).status_code
            == 403
        )
        token = http.get("/console/session").json()["csrfToken"]
        ok = http.patch(auto, json={"enabled": True}, headers={"X-CSRF-Token": token})
        assert ok.status_code == 200
        # Not from another origin's page, even a sibling site's, even with the token.
        for site in ("cross-site", "same-site"):
            cross = http.patch(
                auto,
                json={"enabled": True},
                headers={"X-CSRF-Token": token, "Sec-Fetch-Site": site},
            )
            assert cross.status_code == 403, cross.text
            assert http.get("/console/session", headers={"Sec-Fetch-Site": site}).status_code == 403
        # Sign out needs the token too.
        assert http.delete("/console/session").status_code == 403
    with httpx.Client(base_url=base, timeout=30) as anon:
        # A forged cookie, and a sign-in a cross-site form could send (no console header).
        anon.cookies.set(cookie["name"], "x.y")
        forged = anon.get(f"/v1/projects/{APP_ID}/fls/entry_points")
        anon.cookies.clear()
        assert forged.status_code == 401 and "Basic" not in forged.headers["www-authenticate"]
        form = anon.post(
            "/console/session", json={"customerId": CUSTOMER_ID, "secret": CUSTOMER_SECRET}
        )
        assert form.status_code == 403 and "set-cookie" not in form.headers


def test_console_assets_are_local(srv: LiverecProcess) -> None:
    """Everything the page loads comes from the package: no CDN, a pinned hls.js."""
    base = f"http://127.0.0.1:{srv.http_port}"
    page = httpx.get(base + "/console/", timeout=30)
    assert page.status_code == 200
    assert "http://" not in page.text and "https://" not in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    hls = httpx.get(base + "/console/static/vendor/hls.js/hls.min.js", timeout=30)
    assert hls.status_code == 200 and len(hls.content) > 100_000
    assert httpx.get(base + "/console", timeout=30, follow_redirects=True).status_code == 200


def test_api_docs_render_offline_and_authorize(srv: LiverecProcess, page: Any) -> None:
    """/docs in the browser, with every request to another host blocked (no internet):
    Swagger UI renders the operations from the package's own assets, and its Authorize
    dialog offers the Basic and HMAC schemes."""
    outside: list[str] = []
    local = f"http://127.0.0.1:{srv.http_port}/"

    def only_local(route: Any) -> None:
        if route.request.url.startswith(local):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    page.goto(local + "docs")
    page.wait_for_selector(".opblock", timeout=30_000)
    assert page.locator(".opblock").count() > 20
    page.click("button.authorize")
    dialog = page.locator(".dialog-ux")
    dialog.wait_for(timeout=10_000)
    text = dialog.inner_text()
    assert "basic" in text.lower() and "hmac" in text.lower(), text
    assert not outside, outside
