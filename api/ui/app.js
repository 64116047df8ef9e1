// scuttled dashboard: polls /v1/members and /v1/debug/stats, follows /v1/watch (SSE) for
// the key browser. Same-origin requests only; no external resources.
"use strict";

const POLL_MS = 1000;
const PLOT_POINTS = 120;
const MAX_KEYS_SHOWN = 5000;

const $ = (id) => document.getElementById(id);
const heartbeatSeen = new Map();  // name -> {heartbeat, at (ms)}
const entries = new Map();        // "owner\u0000key" -> {node, key, value, version}
const series = {rounds: [], bytes: [], drops: []};
let lastStats = null;
let selfName = "";
let watch = null;

function text(s) { return document.createTextNode(s); }

function cell(tr, value, cls) {
  const td = document.createElement("td");
  if (cls) td.className = cls;
  td.appendChild(text(String(value)));
  tr.appendChild(td);
}

function display(e, field) {
  if (e[field] !== undefined) return e[field];
  if (e[field + "_base64"] !== undefined) return "base64:" + e[field + "_base64"];
  return "";
}

async function getJson(path) {
  const r = await fetch(path, {cache: "no-store"});
  if (!r.ok) throw new Error(path + ": HTTP " + r.status);
  return r.json();
}

function age(ms) {
  if (ms < 1000) return ms.toFixed(0) + " ms";
  if (ms < 120000) return (ms / 1000).toFixed(1) + " s";
  return (ms / 60000).toFixed(1) + " min";
}

async function pollMembers() {
  const js = await getJson("/v1/members");
  const now = Date.now();
  const tbody = $("members").tBodies[0];
  tbody.replaceChildren();
  const owners = [];
  for (const m of js.members) {
    const seen = heartbeatSeen.get(m.name);
    if (!seen || seen.heartbeat !== m.heartbeat) {
      heartbeatSeen.set(m.name, {heartbeat: m.heartbeat, at: now});
    }
    const tr = document.createElement("tr");
    tr.className = m.state + (m.self ? " self" : "");
    tr.dataset.name = m.name;
    cell(tr, m.name);
    cell(tr, m.state, "state");
    cell(tr, m.generation, "num");
    cell(tr, m.heartbeat, "num");
    cell(tr, m.self ? "-" : age(now - heartbeatSeen.get(m.name).at), "num");
    cell(tr, m.phi.toFixed(2), "num");
    cell(tr, m.keys, "num");
    cell(tr, m.gossip_addr);
    tbody.appendChild(tr);
    owners.push(m.name);
    if (m.self) selfName = m.name;
  }
  const sel = $("owner");
  const current = sel.value || selfName;
  if ([...sel.options].map((o) => o.value).join() !== owners.join()) {
    sel.replaceChildren(...owners.map((n) => new Option(n, n, false, n === current)));
  }
}

function sum(obj) {
  let s = 0;
  for (const v of Object.values(obj || {})) s += typeof v === "number" ? v : 0;
  return s;
}

async function pollStats() {
  const st = await getJson("/v1/debug/stats");
  const t = Date.now();
  const drops = sum(st.transport.drops) + sum(st.engine.decode_drops) +
                sum(st.engine.engine_drops);
  const cur = {t, rounds: st.engine.rounds, bytes: st.transport.rx_bytes + st.transport.tx_bytes,
               drops};
  if (lastStats) {
    const dt = (t - lastStats.t) / 1000;
    if (dt > 0) {
      for (const k of ["rounds", "bytes", "drops"]) {
        series[k].push(Math.max(0, (cur[k] - lastStats[k]) / dt));
        if (series[k].length > PLOT_POINTS) series[k].shift();
        plot($("plot-" + k), series[k]);
      }
    }
  }
  lastStats = cur;
}

function plot(svg, values) {
  const w = 240, h = 60, top = Math.max(1e-9, ...values);
  const pts = values.map((v, i) =>
    ((i * w) / Math.max(1, values.length - 1)).toFixed(1) + "," + (h - 2 - (v / top) * (h - 12)).toFixed(1));
  const ns = "http://www.w3.org/2000/svg";
  const line = document.createElementNS(ns, "polyline");
  line.setAttribute("points", pts.join(" "));
  const label = document.createElementNS(ns, "text");
  label.setAttribute("x", "2");
  label.setAttribute("y", "9");
  const last = values.length ? values[values.length - 1] : 0;
  label.textContent = "now " + last.toFixed(1) + "  max " + top.toFixed(1);
  svg.replaceChildren(line, label);
}

function renderKeys() {
  const owner = $("owner").value || selfName;
  const rows = [...entries.values()].filter((e) => e.node === owner)
      .sort((a, b) => (display(a, "key") < display(b, "key") ? -1 : 1));
  const tbody = $("keys").tBodies[0];
  tbody.replaceChildren();
  for (const e of rows.slice(0, MAX_KEYS_SHOWN)) {
    const tr = document.createElement("tr");
    tr.dataset.key = display(e, "key");
    cell(tr, display(e, "key"));
    cell(tr, display(e, "value"));
    cell(tr, e.version, "num");
    tbody.appendChild(tr);
  }
}

function entryId(e) { return e.node + "\u0000" + display(e, "key"); }

function startWatch() {
  if (watch) watch.close();
  entries.clear();
  // snapshot=1: every entry first, then live changes; on overflow or reset, start again.
  watch = new EventSource("/v1/watch?snapshot=1");
  const onEntry = (ev) => {
    const e = JSON.parse(ev.data);
    entries.set(entryId(e), e);
    renderKeys();
  };
  const onGone = (ev) => {
    const e = JSON.parse(ev.data);
    entries.delete(entryId(e));
    renderKeys();
  };
  watch.addEventListener("snapshot", onEntry);
  watch.addEventListener("set", onEntry);
  watch.addEventListener("deleted", onGone);
  watch.addEventListener("expired", onGone);
  watch.addEventListener("snapshot_end", () => { $("watch-state").textContent = "live"; });
  for (const ev of ["overflow", "reset", "forgotten", "restarted"]) {
    watch.addEventListener(ev, () => setTimeout(startWatch, 0));
  }
  watch.onerror = () => { $("watch-state").textContent = "reconnecting"; };
}

async function tick() {
  try {
    await pollMembers();
    await pollStats();
    $("status").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (err) {
    $("status").textContent = String(err);
  }
}

async function main() {
  try {
    const h = await getJson("/healthz");
    $("node").textContent = h.node + " (" + h.transport + ")";
  } catch (err) {
    $("status").textContent = String(err);
  }
  $("owner").addEventListener("change", renderKeys);
  await tick();
  renderKeys();
  startWatch();
  setInterval(tick, POLL_MS);
}

main();
