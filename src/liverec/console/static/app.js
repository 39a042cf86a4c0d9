/* liverec console: plain JavaScript, no build step. Every call is the public API (or the
   time-shift playlist /play) with the session cookie; changes carry the CSRF token. */
"use strict";

const ROOT = location.pathname.replace(/\/console\/.*$/, "");
const $ = (sel, el = document) => el.querySelector(sel);
const state = { session: null, app: null, eps: [], timers: [], hls: null, page: null };

/* ---------- small helpers ---------- */

function h(tag, attrs = {}, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "style") el.style.cssText = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

const pad = (n, w = 2) => String(n).padStart(w, "0");
const baseName = (name) => name.slice(name.lastIndexOf("/") + 1);
const iso = (d) => new Date(d).toISOString();
function clock(d, secs = true) {
  d = new Date(d);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}` + (secs ? `:${pad(d.getSeconds())}` : "");
}
function stamp(d) {
  d = new Date(d);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${clock(d)}`;
}
function dur(seconds) {
  seconds = Math.max(0, Math.round(seconds));
  const hh = Math.floor(seconds / 3600), mm = Math.floor((seconds % 3600) / 60), ss = seconds % 60;
  return hh ? `${hh}:${pad(mm)}:${pad(ss)}` : `${mm}:${pad(ss)}`;
}
function rate(bps) {
  if (bps === null || bps === undefined) return "–";
  return bps >= 1e6 ? `${(bps / 1e6).toFixed(2)} Mbit/s` : `${Math.round(bps / 1e3)} kbit/s`;
}
function dayStart(d) { d = new Date(d); d.setHours(0, 0, 0, 0); return d.getTime(); }
function fileStamp(d) {
  d = new Date(d);
  return `${d.getUTCFullYear()}${pad(d.getUTCMonth() + 1)}${pad(d.getUTCDate())}-` +
    `${pad(d.getUTCHours())}${pad(d.getUTCMinutes())}${pad(d.getUTCSeconds())}-` +
    Math.random().toString(36).slice(2, 6);
}

function notice(text, kind = "error") {
  const el = $("#notice");
  el.textContent = text;
  el.className = `notice ${kind === "info" ? "info" : ""}`;
  el.hidden = !text;
  if (kind === "info" && text) setTimeout(() => { if (el.textContent === text) el.hidden = true; }, 4000);
}

async function copyText(text) {
  try { await navigator.clipboard.writeText(text); notice("Copied to the clipboard", "info"); }
  catch { window.prompt("Copy:", text); }
}

class ApiFail extends Error {
  constructor(status, message, reason) { super(message); this.status = status; this.reason = reason; }
}

/* The one way the page talks to the server. */
async function api(method, path, { query, body, headers } = {}) {
  if (state.session && Date.now() > Date.parse(state.session.expires) - 60e3) {
    // Never call the API without the session: its 401 would ask for Basic credentials,
    // and the browser would answer with its own password dialog.
    signedOut("Your session has expired: sign in again.");
    throw new ApiFail(401, "Your session has expired: sign in again.", "session_expired");
  }
  const url = new URL(ROOT + path, location.origin);
  for (const [k, v] of Object.entries(query || {})) if (v !== undefined && v !== null) url.searchParams.set(k, v);
  const hdrs = { Accept: "application/json", ...(headers || {}) };
  if (body !== undefined) hdrs["Content-Type"] = "application/json";
  if (method !== "GET" && state.session) hdrs["X-CSRF-Token"] = state.session.csrfToken;
  let resp;
  try {
    resp = await fetch(url, { method, headers: hdrs, body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin", cache: "no-store" });
  } catch (e) {
    throw new ApiFail(0, `The server cannot be reached (${e.message})`, "network");
  }
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!resp.ok) {
    const message = (data && data.message) || `${resp.status} ${resp.statusText}`;
    if (resp.status === 401 && path !== "/console/session") signedOut("Your session has ended: sign in again.");
    throw new ApiFail(resp.status, message, data && data.reason);
  }
  return data;
}

const projectPath = () => `/v1/projects/${encodeURIComponent(state.app)}/fls`;
const epPath = (ep) => `${projectPath()}/entry_points/${encodeURIComponent(ep)}`;
const recPath = (ep) => `${epPath(ep)}/admin/record/standard/regions/${state.session.region}`;
const shotPath = (ep) => `${epPath(ep)}/admin/snapshot/standard/regions/${state.session.region}`;

/* The time-shift playlist: VOD over [start, end], or an EVENT playlist from start to the live edge. */
function playUrl(ep, stream, start, end) {
  const q = new URLSearchParams({ start: iso(start) });
  if (end) q.set("end", iso(end));
  return `${ROOT}/play/${encodeURIComponent(state.app)}/${state.session.region}/` +
    `${encodeURIComponent(ep)}/${encodeURIComponent(stream)}.m3u8?${q}`;
}

function every(ms, fn) { const id = setInterval(fn, ms); state.timers.push(id); return id; }
function stopPage() {
  state.timers.forEach(clearInterval);
  state.timers = [];
  if (state.hls) { state.hls.destroy(); state.hls = null; }
  window.consolePlayer = null;
}

/* What this browser made (clips, snapshots), with the exact ranges the cutting call
   answered; the API's listings add what was made elsewhere (madeBy). */
function results(key) { try { return JSON.parse(localStorage.getItem(key) || "[]"); } catch { return []; } }
/* The clips and snapshots the API made of a stream (last 7 days), as result items. */
async function madeBy(ep, stream) {
  const s = encodeURIComponent(stream);
  const [clips, shots] = await Promise.all([
    api("GET", `${recPath(ep)}/cutting/${s}`), api("GET", `${recPath(ep)}/snapshot/${s}`)]);
  return [
    ...clips.list.map((c) => ({ kind: "clip", stream, ep, fileName: c.fileName, url: c.url,
      startTime: c.startTime || c.createdTime, endTime: c.endTime || c.createdTime, createdTime: c.createdTime })),
    ...shots.list.map((x) => ({ kind: "snapshot", stream, ep, fileName: x.fileName, url: x.url,
      time: x.createdTime, createdTime: x.createdTime })),
  ].sort((a, b) => Date.parse(b.createdTime) - Date.parse(a.createdTime));
}
function merged(local, made) {
  const known = new Set(local.map((it) => baseName(it.fileName)));
  return [...local, ...made.filter((it) => !known.has(baseName(it.fileName)))];
}
function keepResult(key, item) {
  const list = [item, ...results(key)].slice(0, 100);
  localStorage.setItem(key, JSON.stringify(list));
  const all = [item, ...results("liverec.results")].slice(0, 300);
  localStorage.setItem("liverec.results", JSON.stringify(all));
}

/* ---------- session ---------- */

function signedOut(message) {
  stopPage();
  state.session = null;
  $("#top").hidden = true;
  const view = $("#view");
  view.replaceChildren($("#sign-in") || signInForm());
  const form = $("#sign-in");
  form.hidden = false;
  $("#sign-in-error").textContent = message || "";
  form.elements.customerId.focus();
}

function signInForm() { return document.querySelector("#sign-in"); }

async function signIn(ev) {
  ev.preventDefault();
  const form = ev.target, btn = form.querySelector("button");
  btn.disabled = true;
  $("#sign-in-error").textContent = "";
  try {
    const session = await api("POST", "/console/session", {
      body: { customerId: form.elements.customerId.value, secret: form.elements.secret.value },
      headers: { "X-Liverec-Console": "1" },
    });
    form.elements.secret.value = "";
    await started(session);
  } catch (e) {
    $("#sign-in-error").textContent = e.message;
  } finally { btn.disabled = false; }
}

async function started(session) {
  state.session = session;
  const saved = localStorage.getItem("liverec.app");
  state.app = session.appIds.includes(saved) ? saved : session.appIds[0] || null;
  const sel = $("#project");
  sel.replaceChildren(...session.appIds.map((a) => h("option", { value: a, selected: a === state.app }, a)));
  $("#customer").textContent = session.customerId;
  $("#top").hidden = false;
  $("#sign-in").hidden = true;
  document.body.append($("#sign-in"));  // kept for the next sign-in
  if (!state.app) { $("#view").replaceChildren(h("p", {}, "This credential has no project.")); return; }
  await loadEntryPoints();
  route();
}

async function loadEntryPoints() {
  const data = await api("GET", `${projectPath()}/entry_points`);
  state.eps = data.entryPointList;
}

async function signOutNow() {
  try { await api("DELETE", "/console/session"); } catch (e) { notice(e.message); }
  localStorage.removeItem("liverec.results");
  signedOut("Signed out.");
}

/* ---------- router ---------- */

const PAGES = { "streams": pageStreams, "s": pageStream, "entry-points": pageEntryPoints,
  "media": pageMedia, "callbacks": pageCallbacks };

function route() {
  if (!state.session) return;
  stopPage();
  notice("");
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const name = PAGES[parts[0]] ? parts[0] : "streams";
  state.page = name;
  document.querySelectorAll(".top nav a").forEach((a) => {
    if (a.dataset.page === (name === "s" ? "streams" : name)) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  });
  const main = $("#view");
  main.replaceChildren(h("p", { class: "muted" }, "Loading…"));
  delete main.dataset.ready;
  // A page still loading when the user moves on must not draw over the next one: each
  // route gets a view whose changes count only while it is the current route.
  const gen = state.routeGen = (state.routeGen || 0) + 1;
  const current = () => state.routeGen === gen;
  const view = new Proxy(main, { get(target, prop) {
    if (prop === "replaceChildren" || prop === "append") return (...nodes) => { if (current()) target[prop](...nodes); };
    const value = target[prop];
    return typeof value === "function" ? value.bind(target) : value;
  } });
  PAGES[name](view, ...parts.slice(1))
    .catch((e) => { view.replaceChildren(h("p", { class: "error" }, e.message)); })
    .finally(() => { if (current()) main.dataset.ready = name; });
}

/* ---------- Streams ---------- */

/* A live stream's thumbnail: its live edge (the thumbnail call), else its newest periodic
   snapshot. */
async function thumbnail(ep, name) {
  const now = Date.now();
  const edge = `${ROOT}${epPath(ep)}/reports/online_streams/${encodeURIComponent(name)}/thumbnail.jpg` +
    `?width=240&t=${Math.floor(now / 5000)}`;
  const loaded = await new Promise((resolve) => {
    const img = new Image();
    img.onload = () => resolve(true);
    img.onerror = () => resolve(false);
    img.src = edge;
  });
  if (loaded) return h("img", { class: "thumb", src: edge, alt: `${name}, live` });
  try {
    const data = await api("GET", `${shotPath(ep)}/list`, {
      query: { stream_name: name, start_time: iso(now - 5 * 60e3), end_time: iso(now + 60e3) } });
    const last = data.list[data.list.length - 1];
    if (last) return h("img", { class: "thumb", src: last.url, alt: `${name} at ${clock(last.time)}` });
  } catch { /* no periodic snapshots: no thumbnail */ }
  return h("div", { class: "thumb none" }, "no thumbnail");
}

async function pageStreams(view) {
  const filter = h("input", { type: "search", placeholder: "Filter by name", "aria-label": "Filter streams by name",
    value: sessionStorage.getItem("liverec.filter") || "" });
  const liveBody = h("tbody"), endedBody = h("tbody");
  const status = h("span", { class: "muted", "aria-live": "polite" });
  view.replaceChildren(
    h("h1", {}, "Streams"),
    h("div", { class: "toolbar" }, filter, status),
    h("h2", {}, "Live"),
    h("div", { class: "table-wrap" }, h("table", { id: "live-streams" },
      h("thead", {}, h("tr", {}, h("th", {}, ""), h("th", {}, "Stream"), h("th", {}, "Video"),
        h("th", {}, "Bitrate"), h("th", { class: "wide" }, "Client IP"), h("th", {}, "Live for"))), liveBody)),
    h("h2", {}, "Recently ended"),
    h("div", { class: "table-wrap" }, h("table", { id: "ended-streams" },
      h("thead", {}, h("tr", {}, h("th", {}, "Stream"), h("th", {}, "Started"), h("th", {}, "Ended"),
        h("th", {}, "Duration"))), endedBody)),
  );
  const thumbs = new Map();
  const match = (name) => name.toLowerCase().includes(filter.value.trim().toLowerCase());
  let live = [], ended = [];
  function draw() {
    const rows = live.filter((s) => match(s.name));
    liveBody.replaceChildren(...rows.map((s) => {
      const key = `${s.ep}/${s.name}`;
      if (!thumbs.has(key)) thumbs.set(key, h("div", { class: "thumb none" }, "…"));
      const fps = s.frameRate ? Number(s.frameRate.toFixed(2)) : "?";
      const video = s.videoCodec ? `${s.videoCodec} ${s.width}×${s.height} ${fps} fps` : "no video";
      return h("tr", { "data-stream": s.name },
        h("td", {}, thumbs.get(key)),
        h("td", {}, h("a", { href: `#/s/${encodeURIComponent(s.ep)}/${encodeURIComponent(s.name)}` }, s.name),
          " ", h("span", { class: "badge live" }, "LIVE"), h("div", { class: "muted" }, s.ep)),
        h("td", {}, video, s.audioCodec ? h("div", { class: "muted" }, s.audioCodec) : null),
        h("td", { class: "num" }, rate(s.bitrate)),
        h("td", { class: "wide num" }, s.clientIp),
        h("td", { class: "num" }, dur((Date.now() - Date.parse(s.startTime)) / 1000)));
    }));
    if (!rows.length) liveBody.replaceChildren(h("tr", {}, h("td", { colspan: 6, class: "muted" },
      live.length ? "No live stream matches the filter." : "No stream is live. Push one: see Entry points.")));
    const liveNames = new Set(live.map((s) => `${s.ep}/${s.name}`));
    const done = ended.filter((r) => match(r.name) && !(liveNames.has(`${r.ep}/${r.name}`) && !r.endTime));
    endedBody.replaceChildren(...done.slice(0, 30).map((r) => h("tr", {},
      h("td", {}, h("a", { href: `#/s/${encodeURIComponent(r.ep)}/${encodeURIComponent(r.name)}` }, r.name),
        h("div", { class: "muted" }, r.ep)),
      h("td", { class: "num" }, stamp(r.startTime)), h("td", { class: "num" }, r.endTime ? stamp(r.endTime) : "–"),
      h("td", { class: "num" }, dur(r.duration)))));
    if (!done.length) endedBody.replaceChildren(h("tr", {}, h("td", { colspan: 4, class: "muted" }, "None in the last 24 hours.")));
  }
  async function refresh() {
    try {
      const now = Date.now();
      const lists = await Promise.all(state.eps.map(async (ep) => {
        const [on, hist] = await Promise.all([
          api("GET", `${epPath(ep.name)}/reports/online_streams`),
          api("GET", `${epPath(ep.name)}/reports/publish_history`, { query: { start_time: iso(now - 864e5), end_time: iso(now) } }),
        ]);
        return { ep: ep.name, on: on.streamList, hist: hist.publishHistory };
      }));
      live = lists.flatMap((l) => l.on.map((s) => ({ ...s, ep: l.ep }))).sort((a, b) => a.name.localeCompare(b.name));
      ended = lists.flatMap((l) => l.hist.filter((r) => r.endTime).map((r) => ({ ...r, ep: l.ep })))
        .sort((a, b) => Date.parse(b.endTime) - Date.parse(a.endTime));
      for (const s of live) {
        const key = `${s.ep}/${s.name}`;
        thumbnail(s.ep, s.name).then((img) => { const old = thumbs.get(key); thumbs.set(key, img); old?.replaceWith(img); });
      }
      status.textContent = `Updated ${clock(now)}`;
      draw();
    } catch (e) { notice(e.message); }
  }
  filter.addEventListener("input", () => { sessionStorage.setItem("liverec.filter", filter.value); draw(); });
  await refresh();
  every(5000, refresh);
  every(1000, () => { if (live.length) draw(); });
}

/* ---------- A stream ---------- */

async function pageStream(view, ep, stream) {
  if (!ep || !stream) { location.hash = "#/streams"; return; }
  const resultsKey = `liverec.results.${state.app}.${ep}.${stream}`;
  const video = h("video", { id: "player", controls: true, muted: true, playsinline: true, "aria-label": `Player of ${stream}` });
  const headTime = h("span", { class: "playhead-time", id: "playhead-time" }, "–");
  const liveBadge = h("span", { class: "badge", id: "live-badge" }, "offline");
  const track = h("div", { class: "track", id: "track", tabindex: 0, role: "group",
    "aria-label": "Timeline. Left and right move the cursor, Enter plays from it, Shift with arrows selects." });
  const rangeLabel = h("span", { class: "muted", id: "view-range" });
  const dayInput = h("input", { type: "date", "aria-label": "Day", value: new Date().toLocaleDateString("en-CA") });
  const selLabel = h("span", { id: "selection" }, "No range selected: drag on the timeline.");
  const precise = h("input", { type: "checkbox", id: "precise" });
  const clipBtn = h("button", { type: "button", id: "clip", disabled: true }, "Clip");
  const playSelBtn = h("button", { type: "button", class: "secondary", id: "play-selection", disabled: true }, "Play range");
  const snapBtn = h("button", { type: "button", id: "snapshot" }, "Snapshot at playhead");
  const liveBtn = h("button", { type: "button", class: "secondary", id: "go-live" }, "Go live");
  const progress = h("span", { class: "progress", "aria-live": "polite" });
  const list = h("ul", { class: "results", id: "results" });

  view.replaceChildren(
    h("div", { class: "stream-head" }, h("a", { href: "#/streams" }, "← Streams"),
      h("h1", {}, stream), liveBadge, h("span", { class: "muted" }, `entry point ${ep}`)),
    h("div", { class: "stream-layout" },
      h("section", { "aria-label": "Player and timeline" },
        h("div", { class: "player-wrap" }, video),
        h("div", { class: "toolbar" }, "Playhead ", headTime, liveBtn),
        h("div", { class: "timeline" },
          h("div", { class: "toolbar" },
            h("label", {}, "Day ", dayInput),
            h("button", { type: "button", class: "secondary", id: "zoom-in", "aria-label": "Zoom in", onclick: () => zoom(0.5) }, "+"),
            h("button", { type: "button", class: "secondary", id: "zoom-out", "aria-label": "Zoom out", onclick: () => zoom(2) }, "−"),
            h("button", { type: "button", class: "secondary", onclick: () => fit("day") }, "Day"),
            h("button", { type: "button", class: "secondary", onclick: () => fit("rec") }, "Recordings"),
            rangeLabel),
          track,
          h("div", { class: "legend" }, h("span", {}, h("i", { style: "background:var(--rec)" }), "recording"),
            h("span", {}, h("i", { style: "background:var(--gap)" }), "gap"),
            h("span", {}, h("i", { style: "background:var(--live)" }), "live edge"),
            h("span", {}, h("i", { style: "background:#f0a30a" }), "playhead"))),
        h("div", { class: "actions" }, selLabel),
        h("div", { class: "actions" }, playSelBtn, clipBtn, h("label", {}, precise, " precise (frame-accurate ends)"),
          snapBtn, progress)),
      h("section", { "aria-label": "Clips and snapshots" }, h("h2", {}, "Clips and snapshots"), list)),
  );

  /* the view window, in ms since the epoch */
  let v0 = dayStart(Date.now()), v1 = v0 + 864e5;
  let recs = [], shots = [], isLive = false, sel = null, cursor = null, liveEdge = null;

  const x2t = (x) => v0 + (x / track.clientWidth) * (v1 - v0);
  const t2pct = (t) => ((t - v0) / (v1 - v0)) * 100;

  function ticks() {
    const span = v1 - v0, w = track.clientWidth || 800;
    const steps = [1e3, 5e3, 10e3, 30e3, 60e3, 300e3, 600e3, 1800e3, 3600e3, 3 * 3600e3, 6 * 3600e3];
    const step = steps.find((s) => (s / span) * w >= 70) || 12 * 3600e3;
    const out = [];
    for (let t = Math.ceil(v0 / step) * step; t < v1 - (v1 - v0) * 0.04; t += step) {
      out.push(h("div", { class: "tick", style: `left:${t2pct(t)}%` }, clock(t, step < 60e3)));
    }
    return h("div", { class: "ticks" }, out);
  }

  function draw() {
    const kids = [];
    for (const r of recs) {
      const a = Date.parse(r.startTime), b = r.open ? (liveEdge || Date.now()) : Date.parse(r.endTime);
      if (b < v0 || a > v1) continue;
      kids.push(h("div", { class: `bar${r.open ? " open" : ""}`, title: `${stamp(a)} – ${stamp(b)}`,
        style: `left:${t2pct(a)}%;width:${Math.max(0, t2pct(b) - t2pct(a))}%` }));
    }
    const visible = shots.filter((s) => { const t = Date.parse(s.time); return t >= v0 && t <= v1; });
    const room = Math.max(1, Math.floor(track.clientWidth / 70));
    const stride = Math.max(1, Math.ceil(visible.length / room));
    visible.forEach((s, i) => { if (i % stride === 0) kids.push(h("img", { class: "shot", src: s.url, alt: "", style: `left:${t2pct(Date.parse(s.time))}%` })); });
    if (sel) kids.push(h("div", { class: "sel", style: `left:${t2pct(sel[0])}%;width:${t2pct(sel[1]) - t2pct(sel[0])}%` }));
    if (isLive && liveEdge) kids.push(h("div", { class: "edge", style: `left:${t2pct(liveEdge)}%` }));
    if (cursor !== null) kids.push(h("div", { class: "cursor", style: `left:${t2pct(cursor)}%` }));
    const ph = player.date();
    if (ph) kids.push(h("div", { class: "head", style: `left:${t2pct(ph.getTime())}%` }));
    kids.push(ticks());
    track.replaceChildren(...kids);
    rangeLabel.textContent = `${stamp(v0)} – ${clock(v1)} (${dur((v1 - v0) / 1000)})`;
    track.dataset.v0 = v0; track.dataset.v1 = v1;  // the view, for tests and tools
  }

  function zoom(f, at) {
    const span = Math.min(7 * 864e5, Math.max(5e3, (v1 - v0) * f));
    const c = at ?? (player.date()?.getTime() ?? (v0 + v1) / 2);
    const r = (c - v0) / (v1 - v0);
    v0 = c - r * span; v1 = v0 + span;
    draw();
  }
  function fit(what) {
    if (what === "rec" && recs.length) {
      const a = Date.parse(recs[0].startTime), b = Math.max(...recs.map((r) => r.open ? (liveEdge || Date.now()) : Date.parse(r.endTime)));
      const m = Math.max(2e3, (b - a) * 0.05);
      v0 = a - m; v1 = b + (recs.at(-1).open ? Math.max(m, 30e3) : m);
    } else { v0 = dayStart(dayInput.valueAsDate ? Date.parse(dayInput.value + "T00:00:00") : Date.now()); v1 = v0 + 864e5; }
    draw();
  }

  async function loadTimeline() {
    const d0 = dayStart(Date.parse(dayInput.value + "T00:00:00")), d1 = d0 + 864e5;
    const q = { stream_name: stream, start_time: iso(d0), end_time: iso(d1) };
    const [prev, online] = await Promise.all([
      api("GET", `${recPath(ep)}/preview_list`, { query: q }),
      api("GET", `${epPath(ep)}/reports/online_streams/${encodeURIComponent(stream)}`).catch(() => null),
    ]);
    isLive = !!online;
    recs = prev.list.map((r, i, all) => ({ ...r, open: isLive && i === all.length - 1 }));
    const before = liveEdge;
    liveEdge = recs.length ? Date.parse(recs.at(-1).endTime) : null;
    if (isLive && before && liveEdge && before <= v1 && liveEdge > v1 - (v1 - v0) * 0.03) {
      const shift = liveEdge + (v1 - v0) * 0.05 - v1;  // follow the live edge
      v0 += shift; v1 += shift;
    }
    liveBadge.textContent = isLive ? "LIVE" : "offline";
    liveBadge.className = `badge${isLive ? " live" : ""}`;
    liveBtn.disabled = !isLive;
    try { shots = (await api("GET", `${shotPath(ep)}/list`, { query: q })).list; } catch { shots = []; }
    draw();
  }

  /* the player: hls.js on /play, or on a clip's own URL */
  const player = {
    wallAtZero: null,
    date() {
      if (state.hls && state.hls.playingDate) return state.hls.playingDate;
      return null;
    },
    load(url, seekTo) {
      if (state.hls) state.hls.destroy();
      if (!window.Hls || !Hls.isSupported()) {
        video.src = url; video.play().catch(() => {}); return;
      }
      // Live: 12 s behind the edge, whatever target duration the playlist declares.
      const hls = new Hls({ startPosition: seekTo ? 0 : -1, liveDurationInfinity: true, maxBufferLength: 20,
        liveSyncDuration: 12, liveMaxLatencyDuration: 60 });
      state.hls = hls;
      let pending = null;
      hls.on(Hls.Events.LEVEL_LOADED, (_e, data) => {
        if (pending !== null || !seekTo) return;
        const first = data.details.fragments[0];
        pending = first && first.programDateTime ? Math.max(0, first.start + (seekTo - first.programDateTime) / 1000) : 0;
        if (video.readyState >= 1) video.currentTime = pending;
      });
      video.addEventListener("loadedmetadata", () => { if (pending) video.currentTime = pending; }, { once: true });
      hls.on(Hls.Events.ERROR, (_e, data) => {
        if (!data.fatal) return;
        const status = data.response && data.response.code;
        notice(`Playback failed: ${data.details}${status ? ` (HTTP ${status})` : ""}`);
        if (status && data.url) {  // the API's own words for it
          fetch(data.url, { credentials: "same-origin" }).then((r) => r.json())
            .then((j) => { if (j && j.message) notice(`Playback failed: ${j.message}`); }).catch(() => {});
        }
        if (data.type === Hls.ErrorTypes.MEDIA_ERROR) hls.recoverMediaError();
      });
      hls.loadSource(url);
      hls.attachMedia(video);
      video.play().catch(() => {});
    },
  };
  window.consolePlayer = player;  // for tests and the curious: player.date()


  function playFrom(t) {
    cursor = t;
    const end = isLive ? null : Math.max(t + 1000, liveEdge || t + 1000);
    player.load(playUrl(ep, stream, t, end), t);
    draw();
  }
  function goLive() {
    const start = recs.length ? Date.parse(recs.at(-1).startTime) : Date.now() - 60e3;
    cursor = null;
    player.load(playUrl(ep, stream, start, null), null);
  }

  function setSel(a, b) {
    sel = a === null ? null : [Math.min(a, b), Math.max(a, b)];
    clipBtn.disabled = playSelBtn.disabled = !sel;
    selLabel.textContent = sel ? `Range ${stamp(sel[0])} – ${clock(sel[1])} (${dur((sel[1] - sel[0]) / 1000)})`
      : "No range selected: drag on the timeline.";
    draw();
  }

  /* mouse and touch: a click plays from that instant, a drag selects */
  let down = null;
  track.addEventListener("pointerdown", (e) => {
    track.setPointerCapture(e.pointerId);
    const r = track.getBoundingClientRect();
    down = { x: e.clientX - r.left, t: x2t(e.clientX - r.left), moved: false };
  });
  track.addEventListener("pointermove", (e) => {
    if (!down) return;
    const x = e.clientX - track.getBoundingClientRect().left;
    if (Math.abs(x - down.x) > 4) down.moved = true;
    if (down.moved) setSel(down.t, x2t(x));
  });
  track.addEventListener("pointerup", (e) => {
    if (!down) return;
    const x = e.clientX - track.getBoundingClientRect().left;
    if (down.moved) setSel(down.t, x2t(x)); else playFrom(x2t(x));
    down = null;
  });
  track.addEventListener("wheel", (e) => {
    e.preventDefault();
    zoom(e.deltaY > 0 ? 1.5 : 1 / 1.5, x2t(e.clientX - track.getBoundingClientRect().left));
  }, { passive: false });
  track.addEventListener("keydown", (e) => {
    const step = (v1 - v0) / 50;
    if (cursor === null) cursor = player.date()?.getTime() ?? (v0 + v1) / 2;
    if (e.key === "ArrowLeft" || e.key === "ArrowRight") {
      const next = cursor + (e.key === "ArrowLeft" ? -step : step);
      if (e.shiftKey) setSel(sel ? (cursor === sel[1] ? sel[0] : sel[1]) : cursor, next);
      cursor = next;
    } else if (e.key === "Enter" || e.key === " ") playFrom(cursor);
    else if (e.key === "+" || e.key === "=") zoom(0.5, cursor);
    else if (e.key === "-") zoom(2, cursor);
    else if (e.key === "Escape") setSel(null);
    else return;
    e.preventDefault();
    if (cursor < v0 || cursor > v1) { const span = v1 - v0; v0 = cursor - span / 2; v1 = v0 + span; }
    draw();
  });

  /* results */
  let made = [];
  async function loadMade() {
    try { made = await madeBy(ep, stream); } catch (e) { notice(e.message); }
    drawResults();
  }
  function drawResults() {
    const items = merged(results(resultsKey), made);
    list.replaceChildren(...items.map((it) => h("li", { "data-kind": it.kind },
      h("span", { class: "badge" }, it.kind), h("span", { class: "name", title: it.fileName }, baseName(it.fileName)),
      h("span", { class: "muted" }, it.kind === "clip" ? `${clock(it.startTime)} – ${clock(it.endTime)}` : clock(it.time)),
      h("button", { type: "button", class: "link", onclick: () => openResult(it) }, it.kind === "clip" ? "Play" : "View"),
      h("a", { href: it.url, download: it.fileName }, "Download"),
      h("button", { type: "button", class: "link", onclick: () => copyText(it.url) }, "Copy URL"))));
    if (!items.length) list.replaceChildren(h("li", { class: "muted" }, "Clips and snapshots you make appear here."));
  }
  function openResult(it) {
    if (it.kind === "clip") { cursor = null; player.load(it.url, null); }
    else window.open(it.url, "_blank", "noopener");
  }
  async function busy(label, fn) {
    const bar = h("progress", { "aria-label": label });
    progress.replaceChildren(bar, label);
    try { return await fn(); } catch (e) { notice(e.message); return null; } finally { progress.replaceChildren(); }
  }

  clipBtn.addEventListener("click", () => busy(precise.checked ? "Cutting a precise clip…" : "Cutting…", async () => {
    clipBtn.disabled = true;
    try {
      const fileName = `clip-${fileStamp(sel[0])}.m3u8`;
      const r = await api("POST", `${recPath(ep)}/cutting/${encodeURIComponent(stream)}`, {
        body: { startTime: iso(sel[0]), endTime: iso(sel[1]), fileName, precise: precise.checked } });
      keepResult(resultsKey, { kind: "clip", stream, ep, fileName: r.fileName, url: r.url, startTime: r.startTime, endTime: r.endTime });
      drawResults();
      notice(`Clip made: ${clock(r.startTime)} – ${clock(r.endTime)} (${dur(r.duration)}` +
        `${precise.checked ? "" : ", whole segments"})`, "info");
    } finally { clipBtn.disabled = !sel; }
  }));
  playSelBtn.addEventListener("click", () => { cursor = sel[0]; player.load(playUrl(ep, stream, sel[0], sel[1]), sel[0]); });
  snapBtn.addEventListener("click", () => busy("Taking a snapshot…", async () => {
    const at = player.date();
    if (!at) throw new Error("Nothing is playing: play the stream first, then take the snapshot.");
    const r = await api("POST", `${recPath(ep)}/snapshot/${encodeURIComponent(stream)}`, {
      body: { time: at.toISOString(), fileName: `snap-${fileStamp(at)}.jpg` } });
    keepResult(resultsKey, { kind: "snapshot", stream, ep, fileName: r.fileName, url: r.url, time: r.time });
    drawResults();
    notice(`Snapshot ${r.fileName} taken (${r.width}×${r.height})`, "info");
  }));
  liveBtn.addEventListener("click", goLive);
  dayInput.addEventListener("change", () => { fit("day"); loadTimeline().catch((e) => notice(e.message)); });
  video.addEventListener("timeupdate", () => {
    const d = player.date();
    headTime.textContent = d ? stamp(d) : "–";
  });

  drawResults();
  loadMade();
  await loadTimeline();
  if (recs.length) fit("rec");
  if (isLive) goLive();
  else if (recs.length) playFrom(Date.parse(recs.at(-1).startTime));
  every(4000, () => loadTimeline().catch(() => {}));
  every(500, draw);
}

/* ---------- Entry points ---------- */

async function pageEntryPoints(view) {
  await loadEntryPoints();
  const region = state.session.region;
  const cards = await Promise.all(state.eps.map(async (ep) => {
    const base = `${epPath(ep.name)}/settings`;
    const [rec, snap, keep] = await Promise.all([
      api("GET", `${base}/record/standard/regions/${region}`).catch(() => null),
      api("GET", `${base}/snapshot/standard/regions/${region}`).catch(() => null),
      api("GET", `${base}/retention`).catch(() => null),
    ]);
    const status = h("span", { class: "muted", "aria-live": "polite" });
    async function change(label, fn) {
      status.textContent = `${label}…`;
      try { await fn(); status.textContent = `${label}: saved`; } catch (e) { status.textContent = ""; notice(e.message); }
    }
    const toggle = (id, text, checked, onchange) => h("label", { class: "row" },
      h("input", { type: "checkbox", id, checked, onchange: (e) => onchange(e.target.checked, e.target) }), text);
    const interval = h("input", { type: "number", min: 5, max: 300, value: snap?.snapshotInterval ?? 10, style: "width:5em",
      "aria-label": "Snapshot interval in seconds" });
    const retention = h("input", { value: keep?.retention ?? "", placeholder: "e.g. 7d, 12h, 0", style: "width:8em",
      "aria-label": "Retention" });
    const streamName = h("input", { value: "cam1", "aria-label": "Stream name", style: "width:9em" });
    const authKey = h("input", { type: "password", placeholder: "push auth key", "aria-label": "Push auth key", style: "width:11em" });
    const server = `${state.session.rtmpUrl}/${ep.name}`;
    function obs() {
      let key = streamName.value.trim();
      if (!key) { notice("Give a stream name first."); return; }
      if (ep.pushAuth) {
        if (!authKey.value) { notice("This entry point needs signed pushes: give its push auth key."); return; }
        const ts = String(Math.floor(Date.now() / 1000) + 24 * 3600);
        key += `?ts=${ts}&sign=${window.md5hex(authKey.value + `/${ep.name}/${streamName.value.trim()}` + ts)}`;
      }
      copyText(`Server: ${server}\nStream key: ${key}`);
    }
    return h("section", { class: "card", "data-ep": ep.name },
      h("h2", {}, ep.name, " ", ep.recordEnabled ? h("span", { class: "badge on" }, "recording") : h("span", { class: "badge" }, "not recording")),
      toggle(`rec-${ep.name}`, "Standard recording", ep.recordEnabled, (on) => change("Recording", () =>
        api("PATCH", `${base}/record/standard/auto`, { body: { enabled: on } }))),
      rec && toggle(`hls-${ep.name}`, "HLS", rec.hlsConfig.enabled, (on) => change("HLS", () =>
        api("PATCH", `${base}/record/standard/regions/${region}`, { body: { hlsConfig: { enabled: on } } }))),
      rec && toggle(`mp4-${ep.name}`, "MP4 record files", rec.mp4Config.enabled, (on) => change("MP4", () =>
        api("PATCH", `${base}/record/standard/regions/${region}`, { body: { mp4Config: { enabled: on } } }))),
      snap && h("div", { class: "row" }, toggle(`snap-${ep.name}`, "Periodic snapshots every", snap.enabled, (on) => change("Snapshots", () =>
        api("PATCH", `${base}/snapshot/standard/regions/${region}`, { body: { enabled: on, snapshotInterval: Number(interval.value) } }))),
        interval, "s"),
      keep && h("div", { class: "row" }, h("span", {}, "Keep media for"), retention,
        h("button", { type: "button", class: "secondary", onclick: () => change("Retention", () =>
          api("PATCH", `${base}/retention`, { body: { retention: retention.value.trim() || 0 } })) }, "Save")),
      h("div", { class: "row push-auth" }, "Push authentication: ", ep.pushAuth ? h("strong", {}, "on (signed push URLs)") : "off",
        authKey,
        h("button", { type: "button", class: "secondary", onclick: () => {
          if (!authKey.value) { notice("Type the key pushes must be signed with first."); return; }
          change("Push auth", async () => { await api("PATCH", `${base}/push_auth`, { body: { authKey: authKey.value } }); route(); });
        } }, ep.pushAuth ? "Change key" : "Require signed pushes"),
        ep.pushAuth ? h("button", { type: "button", class: "secondary", onclick: () => change("Push auth", async () => {
          await api("PATCH", `${base}/push_auth`, { body: { authKey: null } }); route(); }) }, "Turn off") : null),
      h("div", { class: "field" }, h("span", {}, "Server ", h("code", { class: "copy" }, server)),
        h("div", { class: "row" }, "Stream ", streamName,
          h("button", { type: "button", onclick: obs }, "Copy for OBS"))),
      status);
  }));
  view.replaceChildren(h("h1", {}, "Entry points"),
    h("p", { class: "muted" }, `Push with rtmp: ${state.session.rtmpUrl}/ENTRY_POINT/STREAM. Settings of region ${region}.`),
    h("div", { class: "grid" }, cards));
}

/* ---------- Clips and snapshots ---------- */

async function pageMedia(view) {
  const local = results("liverec.results");
  const epSel = h("select", { "aria-label": "Entry point" }, state.eps.map((e) => h("option", {}, e.name)));
  const name = h("input", { placeholder: "stream name", "aria-label": "Stream name", value: local[0]?.stream || "" });
  const day = h("input", { type: "date", "aria-label": "Day", value: new Date().toLocaleDateString("en-CA") });
  const grid = h("div", { class: "shots" });
  async function listShots() {
    const d0 = Date.parse(day.value + "T00:00:00");
    try {
      const r = await api("GET", `${shotPath(epSel.value)}/list`, { query: { stream_name: name.value.trim(),
        start_time: iso(d0), end_time: iso(d0 + 864e5) } });
      grid.replaceChildren(...r.list.slice(-120).reverse().map((s) => h("figure", {},
        h("a", { href: s.url, target: "_blank", rel: "noopener" }, h("img", { src: s.url, alt: `${s.fileName}`, loading: "lazy" })),
        h("figcaption", {}, stamp(s.time)))));
      if (!r.list.length) grid.replaceChildren(h("p", { class: "muted" }, "No periodic snapshots that day (turn them on under Entry points)."));
    } catch (e) { notice(e.message); }
  }
  const made = h("tbody", { id: "made" });
  function drawMade(items) {
    made.replaceChildren(...(items.length ? items.map((it) => h("tr", { "data-kind": it.kind },
        h("td", {}, it.kind), h("td", {}, h("a", { href: `#/s/${encodeURIComponent(it.ep)}/${encodeURIComponent(it.stream)}` }, it.stream)),
        h("td", { class: "name", title: it.fileName }, baseName(it.fileName)),
        h("td", { class: "num" }, it.kind === "clip" ? `${stamp(it.startTime)} – ${clock(it.endTime)}` : stamp(it.time)),
        h("td", {}, h("a", { href: it.url, download: it.fileName }, "Download"), " ",
          h("button", { type: "button", class: "link", onclick: () => copyText(it.url) }, "Copy URL"))))
        : [h("tr", {}, h("td", { colspan: 5, class: "muted" }, "Nothing yet: select a range on a stream's timeline and press Clip."))]));
  }
  async function show() {
    const stream = name.value.trim();
    if (!stream) { drawMade(local); return; }
    const mine = local.filter((it) => it.ep === epSel.value && it.stream === stream);
    try { drawMade(merged(mine, await madeBy(epSel.value, stream))); } catch (e) { notice(e.message); drawMade(mine); }
    await listShots();
  }
  if (local[0]) epSel.value = local[0].ep;
  view.replaceChildren(h("h1", {}, "Clips and snapshots"),
    h("div", { class: "toolbar" }, epSel, name, day, h("button", { type: "button", onclick: show }, "Show")),
    h("h2", {}, "Clips and snapshots made through the API"),
    h("div", { class: "table-wrap" }, h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Kind"), h("th", {}, "Stream"),
      h("th", {}, "File"), h("th", {}, "Time"), h("th", {}, ""))), made)),
    h("h2", {}, "Periodic snapshots"),
    grid);
  await show();
}

/* ---------- Callbacks ---------- */

async function pageCallbacks(view) {
  const body = h("tbody");
  async function load() {
    const r = await api("GET", `${projectPath()}/settings/callback/failed`, { query: { limit: 50 } });
    body.replaceChildren(...r.failedList.map((f) => h("tr", {},
      h("td", { class: "num" }, stamp(f.failedTime)), h("td", {}, `${f.eventName} (${f.eventType})`),
      h("td", {}, `${f.entryPoint}/${f.streamName}`), h("td", { class: "num" }, f.attempts),
      h("td", { class: "wide" }, f.lastError),
      h("td", {}, h("button", { type: "button", class: "secondary", onclick: async (e) => {
        e.target.disabled = true;
        try { await api("POST", `${projectPath()}/settings/callback/failed/redeliver`, { query: { id: f.id } });
          notice("Queued for delivery again", "info"); await load(); }
        catch (err) { notice(err.message); e.target.disabled = false; }
      } }, "Send again")))));
    if (!r.failedList.length) body.replaceChildren(h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No failed deliveries.")));
    const d = await api("GET", `${projectPath()}/settings/callback/delivered`, { query: { limit: 50 } });
    sent.replaceChildren(...d.deliveredList.map((x) => h("tr", {},
      h("td", { class: "num" }, stamp(x.deliveredTime)), h("td", {}, `${x.eventName} (${x.eventType})`),
      h("td", {}, `${x.entryPoint}/${x.streamName}`), h("td", { class: "num" }, x.attempts),
      h("td", { class: "num" }, `${((Date.parse(x.deliveredTime) - Date.parse(x.createdTime)) / 1000).toFixed(1)} s`))));
    if (!d.deliveredList.length) sent.replaceChildren(h("tr", {}, h("td", { colspan: 5, class: "muted" }, "Nothing delivered yet.")));
  }
  const sent = h("tbody", { id: "delivered" });
  let config = null;
  try { config = await api("GET", `${projectPath()}/settings/callback`); } catch (e) { if (e.status !== 404) notice(e.message); }
  view.replaceChildren(h("h1", {}, "Callbacks"),
    h("p", {}, config && config.url ? ["Sent to ", h("code", { class: "copy" }, config.url), config.enabled ? "" : " (off)"]
      : h("span", { class: "muted" }, "No callback URL is set (liverec callbacks set --url …).")),
    h("h2", {}, "Recent failures"),
    h("div", { class: "table-wrap" }, h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Given up"), h("th", {}, "Event"),
      h("th", {}, "Stream"), h("th", {}, "Attempts"), h("th", { class: "wide" }, "Last error"), h("th", {}, ""))), body)),
    h("h2", {}, "Recent deliveries"),
    h("div", { class: "table-wrap" }, h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Delivered"), h("th", {}, "Event"),
      h("th", {}, "Stream"), h("th", {}, "Attempts"), h("th", {}, "After the event"))), sent)));
  await load();
}

/* ---------- start ---------- */

document.addEventListener("DOMContentLoaded", async () => {
  $("#sign-in").addEventListener("submit", signIn);
  $("#sign-out").addEventListener("click", signOutNow);
  $("#project").addEventListener("change", async (e) => {
    state.app = e.target.value;
    localStorage.setItem("liverec.app", state.app);
    try { await loadEntryPoints(); route(); } catch (err) { notice(err.message); }
  });
  window.addEventListener("hashchange", route);
  try { await started(await api("GET", "/console/session")); }
  catch { signedOut(""); }
});
