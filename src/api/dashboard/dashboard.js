// neops-remote-lab dashboard: reads GET /sessions, follows GET /events.
// Everything shown comes from those two; neither keeps a session alive.
// Text from clients is only ever set as text, never parsed as HTML.
// A server with auth on answers 401: the page then asks for a token, keeps
// it in this tab's sessionStorage and sends it as a header. That is why the
// event stream is read with fetch: EventSource cannot send headers.
"use strict";

const MAX_EVENTS = 50;
// The timeline wants the whole hour: on load the server replays up to this many events.
const HISTORY = 1024;
const RECONNECT_MS = 2000;
const TOKEN_KEY = "neops-remote-lab-token";
const events = [];
let snapshot = { sessions: [], slots: [] };
let fetchedAt = performance.now();
let refreshTimer = null;
let lastEventId = null;

function authHeaders() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { Authorization: `Bearer ${token}` } : {};
}

/** Shows the token form; `refused` says the token in use was not accepted. */
function askForToken(refused) {
  setConnection("locked", "token needed");
  const form = document.getElementById("login");
  document.getElementById("login-refused").hidden = !refused;
  form.hidden = false;
  form.querySelector("input").focus();
}

document.getElementById("login").addEventListener("submit", (submitted) => {
  submitted.preventDefault();
  const input = submitted.target.querySelector("input");
  sessionStorage.setItem(TOKEN_KEY, input.value.trim());
  input.value = "";
  submitted.target.hidden = true;
  start();
});

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value !== null && value !== undefined) node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m`;
}

function precise(seconds) {
  return seconds < 10 ? `${seconds.toFixed(1)}s` : duration(seconds);
}

function who(client, owner) {
  const token = owner ? el("span", { class: "owner", title: "token" }, owner) : null;
  if (!client) return el("span", {}, token, token ? " " : null, el("span", { class: "muted" }, "unknown"));
  const parts = token ? [token, " "] : [];
  const name = [client.user, client.host].filter(Boolean).join("@");
  if (name) parts.push(el("span", {}, name));
  if (client.label) parts.push(el("span", { class: "muted" }, " ", client.label));
  if (client.ci_job_url) parts.push(" ", el("a", { href: client.ci_job_url, rel: "noopener" }, "CI job"));
  return el("span", {}, ...parts);
}

/** Seconds elapsed since the snapshot was taken, so timers tick between refreshes. */
function since() {
  return (performance.now() - fetchedAt) / 1000;
}

/** A session's lease: how long it may stay silent, and when it was last seen. */
function lease(s) {
  const seen = `seen ${duration(s.silent_seconds + since())} ago`;
  if (s.lease_seconds === null) {
    return el("span", { class: "lease muted", title: "no heartbeat announced: the waiting or active timeout applies" },
      `timeout · ${seen}`);
  }
  return el("span", {
    class: "lease",
    title: `beats every ${s.heartbeat_seconds}s; evicted after ${s.lease_seconds}s without a sign of life`,
  }, `${duration(s.lease_seconds)} lease · ${seen}`);
}

/**
 * The labs a session declared (12-hex identity prefixes), in order. One that a
 * slot runs or keeps now is marked: batching and pre-boot would use it.
 */
function declaredLabs(s) {
  const running = new Map(snapshot.slots.filter((slot) => slot.lab).map((slot) => [slot.lab.identity, slot]));
  const labs = (s.declared_labs || []).map((identity) => {
    const slot = running.get(identity);
    const title = slot ? `slot ${slot.slot} has this lab (${slot.phase.replaceAll("_", " ")})` : "declared";
    return el("span", { class: slot ? "lab mono running" : "lab mono", "data-identity": identity, title }, identity);
  });
  return el("span", { class: "labs" }, ...labs);
}

function renderQueue() {
  const body = document.querySelector("#queue tbody");
  const rows = snapshot.sessions.map((s) => {
    const waited = s.status === "waiting" ? s.waiting_seconds + since() : s.waiting_seconds;
    const holding = s.holding_seconds === null ? null : s.holding_seconds + since();
    const where = s.host ? `slot ${s.slot} on ${s.host}` : `slot ${s.slot}`;
    const status = s.status === "active" ? `active · ${where}` : `waiting · #${s.position}`;
    return el("tr", { "data-session": s.id, "data-status": s.status },
      el("td", {}, s.position),
      el("td", { class: "mono" }, s.id),
      el("td", { class: `status-${s.status}` }, status),
      el("td", { class: "who" }, who(s.client, s.owner)),
      el("td", (s.declared_labs || []).length ? { class: "declared", "data-label": "labs" } : { class: "declared none" }, declaredLabs(s)),
      el("td", { "data-label": "waited" }, duration(waited)),
      el("td", holding === null ? { class: "none" } : { "data-label": "holding" }, duration(holding)),
      el("td", { "data-label": "lease" }, lease(s)));
  });
  body.replaceChildren(...rows);
  document.getElementById("queue-count").textContent = `(${snapshot.sessions.length})`;
  document.getElementById("queue-empty").hidden = snapshot.sessions.length > 0;
}

function renderSlots() {
  const holders = new Map(snapshot.sessions.map((s) => [s.id, s]));
  const cards = snapshot.slots.map((slot) => {
    const holder = slot.holder ? holders.get(slot.holder) : null;
    const facts = el("dl", {});
    const fact = (name, value) => facts.append(el("dt", {}, name), el("dd", {}, value));
    if (holder) {
      fact("holder", el("span", {}, el("span", { class: "mono" }, holder.id), " ", who(holder.client, holder.owner)));
      fact("holding", duration((holder.holding_seconds || 0) + since()));
      fact("lease", lease(holder));
    } else {
      fact("holder", el("span", { class: "muted" }, "free"));
    }
    const card = el("article", { class: "card", "data-slot": slot.slot },
      el("h3", {}, slotName(slot), el("span", { class: "phase", "data-phase": slot.phase }, slot.phase.replaceAll("_", " "))),
      facts);
    if (slot.lab) {
      fact("topology", el("span", { class: "topology" }, slot.lab.topology));
      fact("identity", el("span", { class: "mono" }, slot.lab.identity));
      fact("ref-count", slot.lab.ref_count);
      if (slot.lab.kept_expires_in_seconds !== null && slot.lab.kept_expires_in_seconds !== undefined) {
        fact("kept", el("span", { class: "kept" }, `for the next session, torn down in ${duration(Math.max(0, slot.lab.kept_expires_in_seconds - since()))}`));
      }
      const devices = slot.lab.devices.map((d) =>
        el("li", { "data-device": d.name }, el("strong", {}, d.name), " ", el("span", { class: "mono" }, d.mgmt || "–")));
      card.append(el("ul", { class: "devices" }, ...devices));
    } else {
      fact("lab", el("span", { class: "muted" }, "none"));
    }
    return card;
  });
  document.getElementById("slots").replaceChildren(...cards);
}

// "Slot 3", or "Slot 3 · lab-b" for a lab agent's slot ("offline" while its host is).
function slotName(slot) {
  if (!slot.host) return `Slot ${slot.slot}`;
  return `Slot ${slot.slot} · ${slot.host}${slot.online ? "" : " (offline)"}`;
}

function describe(e) {
  const slot = e.slot ? `slot ${e.slot}${e.host ? ` on ${e.host}` : ""}: ` : "";
  switch (e.type) {
    case "session_joined": {
      const client = e.client ? [e.client.user, e.client.host].filter(Boolean).join("@") || e.client.label || "" : "";
      const name = [e.owner ? `token ${e.owner}` : "", client].filter(Boolean).join(", ");
      const beats = e.heartbeat_seconds ? `, beats every ${e.heartbeat_seconds}s` : "";
      return `${e.session} joined at position ${e.position}${name ? ` (${name})` : ""}${beats}`;
    }
    case "session_promoted": return `${e.session} holds slot ${e.slot} after ${precise(e.waited_seconds)} in the queue`;
    case "session_ended": return `${e.session} ${e.reason.replaceAll("_", " ")}` +
      (e.held_seconds !== null ? ` after holding ${precise(e.held_seconds)}` : ` after waiting ${precise(e.waited_seconds)}`);
    case "session_moved": return `${e.session} moved from slot ${e.from_slot} to slot ${e.to_slot}, which keeps its lab`;
    case "session_bypassed": return `${e.by} went ahead of ${e.session} to a kept lab (passed ${e.overtaken}×)`;
    case "session_hold_warning": return `${e.session} reaches the maximum hold in ${precise(e.ends_in_seconds)}`;
    case "lab_preboot_started": return `${slot}pre-booting ${e.identity}, declared by ${e.session}`;
    case "lab_starting": return `${slot}bringing up ${e.topology} (${e.identity})`;
    case "lab_up": return `${slot}lab up: ${e.devices} devices in ${precise(e.seconds)}`;
    case "lab_attached": return e.warm
      ? `${slot}warm hand-over: the kept lab went to the next session`
      : `${slot}attached to the running lab (ref-count ${e.ref_count})`;
    case "lab_failed": return `${slot}bring-up failed${e.exit_code !== null ? ` (exit code ${e.exit_code})` : ""}`;
    case "lab_released": return `${slot}released (ref-count ${e.ref_count})`;
    case "lab_idle": return `${slot}lab idle, kept for reuse`;
    case "lab_kept": return `${slot}lab kept up for the next session (at most ${precise(e.expires_in_seconds)})`;
    case "lab_expired": return `${slot}kept lab expired: nobody asked for it`;
    case "lab_resetting": return `${slot}resetting the kept lab for another session (netlab ${e.command})`;
    case "lab_tearing_down": return `${slot}tearing the lab down`;
    case "lab_down": return `${slot}lab down in ${precise(e.seconds)}`;
    case "lab_dirty": return `${slot}teardown failed`;
    case "dropped": return `${e.count} events were missed`;
    default: return e.type;
  }
}

function renderEvents() {
  const items = events.map((e) => {
    const at = e.at ? new Date(e.at) : null;
    const bad = ["lab_failed", "lab_dirty", "dropped"].includes(e.type) || ["evicted", "claim_expired", "lease_expired", "max_hold"].includes(e.reason);
    const text = el("div", {}, describe(e));
    if (e.error) text.append(el("pre", { class: "tail" }, e.error));
    return el("li", { "data-type": e.type, "data-id": e.id ?? null, class: bad ? "bad" : null },
      el("time", { datetime: e.at ?? null }, at ? at.toLocaleTimeString() : ""), text);
  });
  document.getElementById("events").replaceChildren(...items.reverse());
}

// ---- Timeline: where each slot's time went over the last hour ----
//
// Built from the event history (the replay on load) and then the live events,
// as a small state machine per slot: every event closes the slot's open
// segment on its track and may open the next one. A lane has two tracks, as a
// slot is two things at once: who holds it (top) and what its lab does
// (bottom), so a session holding a slot while its lab boots shows both.

const WINDOW_MS = 60 * 60 * 1000;
const TIMELINE_MS = 5000;  // redrawn this often; not every second, so a tooltip stays open
const MAX_WAITS = 500;     // a bound on remembered waits, whatever the history holds
const lanes = new Map();   // slot → { hold, lab (open segments or null), done: [closed segments] }
const waits = new Map();   // session → { session, from, to (null: still waiting), left (reason) }
const holders = new Map(); // session → the slot it holds (session_ended names no slot)
let clockOffset = 0;       // server clock minus this browser's, from the Date header

/** Now on the server's clock: event times are the server's. */
function serverNow() {
  return Date.now() + clockOffset;
}

function lane(slot) {
  if (!lanes.has(slot)) lanes.set(slot, { hold: null, lab: null, done: [] });
  return lanes.get(slot);
}

/** Ends the open segment on `track` at `at`; `failed` marks a bring-up that failed. */
function closeSegment(slot, track, at, failed) {
  const l = lane(slot);
  const open = l[track];
  if (!open) return;
  open.to = Math.max(at, open.from);
  if (failed) open.failed = true;
  l.done.push(open);
  l[track] = null;
}

/** Starts a segment on `track`, ending whatever was open there. */
function openSegment(slot, track, state, at, what, session) {
  closeSegment(slot, track, at);
  lane(slot)[track] = { track, state, from: at, to: null, what, session };
}

/** A session's wait, created when its join is older than the history we have. */
function waitOf(session, from) {
  if (!waits.has(session)) waits.set(session, { session, from, to: null, left: null });
  return waits.get(session);
}

/** Feeds one event into the timeline's state. */
function track(e) {
  const at = Date.parse(e.at);
  if (Number.isNaN(at)) return;  // `dropped` notices carry no time
  const slot = e.slot;
  switch (e.type) {
    case "session_joined":
      waitOf(e.session, at);
      break;
    case "session_promoted":
      // waited_seconds gives the start even when the join fell out of the history.
      waitOf(e.session, at - e.waited_seconds * 1000).to = at;
      holders.set(e.session, slot);
      openSegment(slot, "hold", "held", at, `held by ${e.session}`, e.session);
      break;
    case "session_moved":
      closeSegment(e.from_slot, "hold", at);
      holders.set(e.session, e.to_slot);
      openSegment(e.to_slot, "hold", "held", at, `held by ${e.session}`, e.session);
      break;
    case "session_ended":
      if (holders.has(e.session)) {
        closeSegment(holders.get(e.session), "hold", at);
        holders.delete(e.session);
      } else if (e.held_seconds === null) {
        // It left the line without ever holding a slot: its wait ends here.
        const wait = waitOf(e.session, at - e.waited_seconds * 1000);
        wait.to = at;
        wait.left = e.reason;
      }
      // Else it held a slot since before the history we have: which one, no event says.
      break;
    case "lab_preboot_started":
      openSegment(slot, "lab", "booting", at, `pre-boot of ${e.identity} for ${e.session}`);
      break;
    case "lab_starting": {
      // A pre-boot is followed by its lab_starting: one bring-up, one segment.
      const open = lane(slot).lab;
      if (open && open.state === "booting") open.what += ` (${e.topology})`;
      else openSegment(slot, "lab", "booting", at, `bring-up of ${e.topology} (${e.identity})`);
      break;
    }
    case "lab_resetting":
      openSegment(slot, "lab", "booting", at, `reset of the kept lab (netlab ${e.command})`);
      break;
    case "lab_up":
      openSegment(slot, "lab", "up", at, `lab up (${e.devices} devices)`);
      break;
    case "lab_failed":
      closeSegment(slot, "lab", at, true);
      break;
    case "lab_kept":
      openSegment(slot, "lab", "kept", at, "lab kept idle for the next session");
      break;
    case "lab_attached":
      if (e.warm) openSegment(slot, "lab", "up", at, "lab up (warm hand-over)");
      break;
    case "lab_expired":
      closeSegment(slot, "lab", at);
      break;
    case "lab_tearing_down":
      openSegment(slot, "lab", "tearing_down", at, "teardown");
      break;
    case "lab_down":
    case "lab_dirty":
      closeSegment(slot, "lab", at, e.type === "lab_dirty");
      break;
    default:
      break;
  }
}

/** Forgets what ended before the window: the page may stay open for days. */
function pruneTimeline(start) {
  for (const l of lanes.values()) l.done = l.done.filter((segment) => segment.to >= start);
  for (const [session, wait] of waits) {
    if (wait.to !== null && wait.to < start) waits.delete(session);
  }
  for (const session of [...waits.keys()].slice(0, Math.max(0, waits.size - MAX_WAITS))) waits.delete(session);
}

function clock(ms) {
  return new Date(ms - clockOffset).toLocaleTimeString();
}

/** Where [from, to] falls in the window, in percent of its width (clipped to it). */
function place(from, to, start) {
  const x = Math.max(0, (from - start) / WINDOW_MS * 100);
  const end = Math.min(100, (to - start) / WINDOW_MS * 100);
  return { x, w: Math.max(0, end - x) };
}

/** The tooltip: what, from when to when, how long. */
function tooltip(what, from, to, open) {
  const took = precise((to - from) / 1000);
  return `${what}\n${clock(from)} → ${open ? "now" : clock(to)} · ${took}${open ? " so far" : ""}`;
}

/**
 * One absolutely placed box. Its position is set through the style object
 * (CSSOM), which the page's CSP allows, unlike a style attribute.
 */
function box(attrs, x, w) {
  const node = el("div", attrs);
  // A short span is drawn 3px wide (CSS min-width): near "now" it starts earlier so it stays inside.
  node.style.left = `min(${x}%, 100% - 3px)`;
  node.style.width = `${w}%`;
  return node;
}

function segmentNode(slot, segment, now, start) {
  const open = segment.to === null;
  const to = open ? now : segment.to;
  const { x, w } = place(segment.from, to, start);
  const what = `slot ${slot}: ${segment.what}${segment.failed ? ", failed" : ""}`;
  return box({
    class: "seg",
    "data-state": segment.state,
    "data-session": segment.session ?? null,
    "data-open": open ? "true" : null,
    "data-failed": segment.failed ? "true" : null,
    title: tooltip(what, segment.from, to, open),
  }, x, w);
}

function laneNode(slot, now, start) {
  const l = lane(slot);
  const segments = [...l.done, l.hold, l.lab].filter((s) => s && (s.to === null || s.to >= start));
  const tracks = ["hold", "lab"].map((name) => el("div", { class: "track", "data-track": name },
    ...segments.filter((s) => s.track === name).map((s) => segmentNode(slot, s, now, start))));
  return el("div", { class: "lane", "data-slot": slot },
    el("span", { class: "lane-name" }, `Slot ${slot}`), el("div", { class: "tracks" }, ...tracks));
}

/**
 * Stacks the wait bars in as few rows as possible: a bar goes in the first row
 * where it (with room for its label) does not overlap another. `reserve` is a
 * label's width in percent of the track.
 */
function packWaits(bars, reserve) {
  const rowEnds = [];
  for (const bar of bars.sort((a, b) => a.x - b.x)) {
    // The label starts at the bar, or ends at the right edge when the bar is too far right.
    bar.labelAt = Math.min(bar.x, 100 - reserve);
    const from = Math.min(bar.x, bar.labelAt);
    let row = rowEnds.findIndex((end) => end <= from);
    if (row < 0) row = rowEnds.push(0) - 1;
    rowEnds[row] = Math.max(bar.x + bar.w, bar.labelAt + reserve);
    bar.row = row;
  }
  return rowEnds.length;
}

function waitsNode(now, start) {
  const area = document.querySelector("#timeline-waits .wait-rows");
  const width = area && area.clientWidth ? area.clientWidth : 600;
  const reserve = Math.min(50, 70 / width * 100);  // about 8 monospace characters
  const bars = [...waits.values()].filter((w) => w.to === null || w.to >= start).map((wait) => {
    const open = wait.to === null;
    const to = open ? now : wait.to;
    return { wait, open, to, ...place(wait.from, to, start) };
  });
  const rows = Array.from({ length: packWaits(bars, reserve) }, () => el("div", { class: "wait-row" }));
  for (const bar of bars) {
    const { wait, open, to } = bar;
    const what = `${wait.session} waited${wait.left ? `, then left (${wait.left.replaceAll("_", " ")})` : ""}`;
    const attrs = { "data-session": wait.session, "data-open": open ? "true" : null };
    rows[bar.row].append(
      box({ class: "wait", "data-state": "waiting", ...attrs, title: tooltip(what, wait.from, to, open) }, bar.x, bar.w),
      box({ class: "wait-label mono", ...attrs }, bar.labelAt, reserve));
    rows[bar.row].lastChild.textContent = wait.session;
  }
  return el("div", { class: "lane waits" },
    el("span", { class: "lane-name" }, "Waits"),
    el("div", { class: "wait-rows" }, ...(rows.length ? rows : [el("div", { class: "wait-row muted" })])));
}

function renderTimeline() {
  const now = serverNow();
  const start = now - WINDOW_MS;
  pruneTimeline(start);
  // Every slot the host has, and any an event named (a restart with fewer slots).
  const slots = new Set([...snapshot.slots.map((s) => s.slot), ...lanes.keys()]);
  const sorted = [...slots].filter((s) => s !== null && s !== undefined).sort((a, b) => a - b);
  document.getElementById("timeline-lanes").replaceChildren(...sorted.map((slot) => laneNode(slot, now, start)));
  document.getElementById("timeline-waits").replaceChildren(waitsNode(now, start));
}

function render() {
  renderSlots();
  renderQueue();
}

async function refresh() {
  refreshTimer = null;
  try {
    const response = await fetch("sessions", { cache: "no-store", headers: authHeaders() });
    if (response.status === 401) return;  // the event stream asks for a token
    if (!response.ok) return;
    snapshot = await response.json();
    fetchedAt = performance.now();
    const serverDate = Date.parse(response.headers.get("Date"));
    // The Date header has whole seconds: only a clearly wrong browser clock is corrected.
    if (!Number.isNaN(serverDate) && Math.abs(serverDate - Date.now()) > 5000) clockOffset = serverDate - Date.now();
    render();
    renderTimeline();
  } catch (error) {
    // The server is away; the event stream's reconnect brings us back.
  }
}

function scheduleRefresh() {
  if (refreshTimer === null) refreshTimer = setTimeout(refresh, 100);
}

function setConnection(state, text) {
  const badge = document.getElementById("connection");
  badge.dataset.state = state;
  badge.textContent = text;
}

function received(event) {
  events.push(event);
  if (events.length > MAX_EVENTS) events.splice(0, events.length - MAX_EVENTS);
  track(event);
}

/**
 * Takes the complete SSE frames off `buffer`; returns what is left. The page is
 * redrawn once per chunk, not per event: the replay brings up to HISTORY at once.
 */
function takeFrames(buffer) {
  const before = buffer;
  let end;
  while ((end = buffer.indexOf("\n\n")) >= 0) {
    const frame = buffer.slice(0, end);
    buffer = buffer.slice(end + 2);
    let data = "";
    for (const line of frame.split("\n")) {
      if (line.startsWith("id:")) lastEventId = line.slice(3).trim();
      else if (line.startsWith("data:")) data += line.slice(5).trim();
    }
    if (data) received(JSON.parse(data));
  }
  if (buffer !== before) {
    renderEvents();
    renderTimeline();
    scheduleRefresh();
  }
  return buffer;
}

/**
 * Follows /events until it ends, then reconnects with Last-Event-ID (as
 * EventSource would), so nothing is lost across a short outage; the replay
 * fills the list and the timeline on first load. A 401 stops and asks for a token.
 */
async function follow() {
  const headers = authHeaders();
  if (lastEventId !== null) headers["Last-Event-ID"] = lastEventId;
  try {
    const response = await fetch(`events?replay=${HISTORY}`, { cache: "no-store", headers });
    if (response.status === 401) {
      askForToken("Authorization" in headers);
      return;
    }
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    setConnection("live", "live");
    scheduleRefresh();
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer = takeFrames(buffer + value.replaceAll("\r\n", "\n"));
    }
  } catch (error) {
    // The server is away; try again below.
  }
  setConnection("reconnecting", "reconnecting…");
  setTimeout(follow, RECONNECT_MS);
}

function start() {
  refresh();
  follow();
}

setInterval(render, 1000);
setInterval(renderTimeline, TIMELINE_MS);
start();
