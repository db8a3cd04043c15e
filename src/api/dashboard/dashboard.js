// neops-remote-lab dashboard: reads GET /sessions, follows GET /events.
// Everything shown comes from those two; neither keeps a session alive.
// Text from clients is only ever set as text, never parsed as HTML.
// A server with auth on answers 401: the page then asks for a token, keeps
// it in this tab's sessionStorage and sends it as a header. That is why the
// event stream is read with fetch: EventSource cannot send headers.
"use strict";

const MAX_EVENTS = 50;
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

function renderQueue() {
  const body = document.querySelector("#queue tbody");
  const rows = snapshot.sessions.map((s) => {
    const waited = s.status === "waiting" ? s.waiting_seconds + since() : s.waiting_seconds;
    const holding = s.holding_seconds === null ? null : s.holding_seconds + since();
    const status = s.status === "active" ? `active · slot ${s.slot}` : `waiting · #${s.position}`;
    return el("tr", { "data-session": s.id, "data-status": s.status },
      el("td", {}, s.position),
      el("td", { class: "mono" }, s.id),
      el("td", { class: `status-${s.status}` }, status),
      el("td", { class: "who" }, who(s.client, s.owner)),
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
      el("h3", {}, `Slot ${slot.slot}`, el("span", { class: "phase", "data-phase": slot.phase }, slot.phase.replaceAll("_", " "))),
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

function describe(e) {
  const slot = e.slot ? `slot ${e.slot}: ` : "";
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
    render();
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
  renderEvents();
  scheduleRefresh();
}

/** Takes the complete SSE frames off `buffer`; returns what is left. */
function takeFrames(buffer) {
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
  return buffer;
}

/**
 * Follows /events until it ends, then reconnects with Last-Event-ID (as
 * EventSource would), so nothing is lost across a short outage; the replay
 * fills the list on first load. A 401 stops and asks for a token.
 */
async function follow() {
  const headers = authHeaders();
  if (lastEventId !== null) headers["Last-Event-ID"] = lastEventId;
  try {
    const response = await fetch(`events?replay=${MAX_EVENTS}`, { cache: "no-store", headers });
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
start();
