// cronlease status page. Every text from the server goes in with textContent (el() below), never
// as markup, so a schedule name or a job string like "<script>" shows as those characters.
"use strict";

const PAGE_SIZE = 100;
const REFRESH_MS = 5000;
const TOKEN_KEY = "cronlease-admin-token";
const state = { offset: 0, q: "", open: new Set(), actions: false, timer: null };

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function $(id) { return document.getElementById(id); }

function span(seconds) {
  if (seconds === null || seconds === undefined) return "-";
  if (seconds < 10) return seconds.toFixed(1) + "s";
  let whole = Math.floor(seconds);
  const parts = [];
  for (const [unit, size] of [["d", 86400], ["h", 3600], ["m", 60], ["s", 1]]) {
    const count = Math.floor(whole / size);
    whole -= count * size;
    if (count || parts.length) parts.push(count + unit);
  }
  return parts.slice(0, 2).filter((p) => !p.startsWith("0")).join("");
}

function tag(text, kind) { return el("span", { class: "tag " + (kind || text) }, text); }

function fill(tableId, rows, empty, columns) {
  const body = $(tableId).tBodies[0];
  body.replaceChildren();
  if (!rows.length) {
    body.append(el("tr", {}, el("td", { colspan: String(columns) }, empty)));
    return;
  }
  for (const row of rows) body.append(row);
}

function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }

function say(text, good) {
  const box = $("message");
  box.textContent = text;
  box.className = "banner " + (good ? "good" : "bad");
  box.hidden = false;
}

async function getJSON(url) {
  const reply = await fetch(url, { cache: "no-store", credentials: "omit" });
  const body = await reply.json();
  if (!reply.ok) throw new Error(body.error || reply.status + " " + reply.statusText);
  return body;
}

async function act(name, verb) {
  const secret = token();
  if (!secret) { say("Enter the admin token first.", false); return; }
  const url = "/api/schedules/" + encodeURIComponent(name) + "/" + verb;
  try {
    const reply = await fetch(url, {
      method: "POST", credentials: "omit", headers: { Authorization: "Bearer " + secret },
    });
    const body = await reply.json();
    say(reply.ok ? body.message : verb + " refused (" + reply.status + "): " + body.error, reply.ok);
  } catch (error) {
    say(verb + " failed: " + error.message, false);
  }
  refresh();
}

function renderLeader(status) {
  const facts = $("leader");
  facts.replaceChildren();
  const add = (term, value) => facts.append(el("dt", {}, term), el("dd", {}, value));
  const leader = status.leader;
  if (!leader) {
    add("leader", "none: the lease is free (epoch " + status.epoch + ")");
  } else {
    add("replica", leader.replica);
    add("fencing token", leader.token + " (epoch " + status.epoch + ")");
    add("since", leader.since ? leader.since + " (" + span(leader.for_s) + ")" : "not recorded yet");
    add("lease left", ((leader.lease_left_ms || 0) / 1000).toFixed(2) + "s");
    add("config hash", leader.config_hash || "-");
  }
  if (status.previous_leader) {
    add("previous", status.previous_leader.replica + " (token " + status.previous_leader.token + ")");
  }
  add("drift", status.config_drift.length ? status.config_drift.join(", ") : "none");
}

function renderReplicas(status) {
  fill("replicas", status.replicas.map((r) => el("tr", {},
    el("td", {}, r.id),
    el("td", {}, tag(r.role, r.role === "leader" ? "leader" : "")),
    el("td", {}, span(r.last_seen_ago_s) + " ago ", r.stale ? tag("stale") : null),
    el("td", { class: "mono" }, r.config_hash || "-"),
    el("td", {}, r.config_drift ? tag("drift") : "no"),
    el("td", {}, r.version || "-"),
    el("td", {}, r.host || "-"),
  )), "No replica has sent a heartbeat.", 7);
}

function renderQueues(status) {
  fill("queues", status.queues.map((q) => el("tr", {},
    el("td", {}, q.name),
    el("td", { class: "mono" }, q.stream === null ? q.target : "stream " + q.stream),
    el("td", { class: "num" }, q.length),
    el("td", { class: "num" }, q.pending === null ? "no group" : q.pending),
    el("td", {}, q.oldest_age_s === null ? "empty" : span(q.oldest_age_s) + " old"),
    el("td", {}, q.groups.map((g) => g.name + " (" + g.consumers + " consumers, " +
      g.pending + " pending" + (g.lag === null ? "" : ", " + g.lag + " waiting") + ")").join("; ") || "-"),
  )), "No queues yet.", 6);
}

function outcome(schedule, latest) {
  if (schedule.last_fire_ts === null) return "never fired";
  const run = latest.get(schedule.name);
  if (run && run.fire_ts === schedule.last_fire_ts) {
    const delivery = Object.entries(run.delivery).map(([g, s]) => s + " by " + g).join(", ");
    return "enqueued (" + run.trigger + ", lag " + span(run.lag_s) + ")" + (delivery ? ", " + delivery : "");
  }
  return schedule.paused ? "skipped (paused)" : "handled (not among the latest runs)";
}

function scheduleRows(status, latest) {
  const rows = [];
  for (const s of status.schedules) {
    const states = [];
    if (s.paused) states.push(tag("paused"));
    if (!s.enabled) states.push(tag("disabled"));
    if (!states.length) states.push("active");
    const buttons = state.actions ? [
      s.paused
        ? el("button", { type: "button", onclick: () => act(s.name, "resume") }, "Resume")
        : el("button", { type: "button", onclick: () => act(s.name, "pause") }, "Pause"),
      el("button", { type: "button", onclick: () => act(s.name, "trigger") }, "Trigger now"),
    ] : ["read-only"];
    const toggle = () => {
      if (state.open.has(s.name)) state.open.delete(s.name); else state.open.add(s.name);
      refresh();
    };
    rows.push(el("tr", { "data-schedule": s.name },
      el("td", {}, el("button", { type: "button", class: "link", onclick: toggle, title: "recent runs" }, s.name)),
      el("td", {}, s.kind + ": ", el("span", { class: "mono" }, s.spec)),
      el("td", { class: "mono" }, s.job),
      el("td", {}, s.queue),
      el("td", {}, s.next_fire_local ? s.next_fire_local + " " + s.timezone : "-"),
      el("td", {}, s.next_fire ? s.next_fire + " (in " + span(s.next_fire_in_s) + ")" : "no more fires"),
      el("td", {}, s.last_fire ? s.last_fire + " (" + span(s.last_fire_ago_s) + " ago)" : "never"),
      el("td", {}, outcome(s, latest)),
      el("td", {}, ...states),
      el("td", { class: "acts" }, ...buttons),
    ));
    if (state.open.has(s.name)) {
      const cell = el("td", { colspan: "10" }, "loading recent runs...");
      rows.push(el("tr", { class: "detail" }, cell));
      getJSON("/api/runs?limit=10&schedule=" + encodeURIComponent(s.name)).then((found) => {
        cell.replaceChildren(found.runs.length ? runTable(found.runs) :
          "No run of " + s.name + " in the last " + found.scanned + " entries of its queue.");
      }).catch((error) => { cell.textContent = "cannot read runs: " + error.message; });
    }
  }
  return rows;
}

function runRow(run) {
  return el("tr", {},
    el("td", { class: "mono" }, run.run_id),
    el("td", {}, run.schedule),
    el("td", {}, run.trigger),
    el("td", {}, run.fire_time),
    el("td", { class: "num" }, span(run.lag_s)),
    el("td", { class: "num" }, run.token),
    el("td", {}, run.replica),
    el("td", {}, Object.entries(run.delivery).map(([g, s]) => g + ": " + s).join(", ") || "no consumer group"),
  );
}

function runTable(runs) {
  const head = el("tr", {}, ...["run id", "schedule", "trigger", "fire time", "lag", "token",
    "replica", "delivery"].map((h) => el("th", {}, h)));
  return el("table", {}, el("thead", {}, head), el("tbody", {}, ...runs.map(runRow)));
}

function render(status, recent) {
  state.actions = status.web.actions;
  $("where").textContent = "namespace " + status.namespace + " on " + status.redis_url +
    ", served by " + status.web.replica + ", Redis time " + status.now;
  $("readonly").hidden = state.actions;
  $("tokenform").hidden = !state.actions;
  renderLeader(status);
  renderReplicas(status);
  renderQueues(status);
  const latest = new Map();
  for (const run of recent.runs) {
    if ((run.trigger === "scheduled" || run.trigger === "catchup") && !latest.has(run.schedule)) {
      latest.set(run.schedule, run);
    }
  }
  const page = status.page;
  $("count").textContent = "(" + page.matched + (page.q ? " matching, " + page.total + " in all" : "") + ")";
  $("pageinfo").textContent = page.matched ? (page.offset + 1) + "-" +
    Math.min(page.offset + page.limit, page.matched) + " of " + page.matched : "none";
  $("prev").disabled = page.offset === 0;
  $("next").disabled = page.offset + page.limit >= page.matched;
  fill("schedules", scheduleRows(status, latest), page.q ? "No schedule matches." : "No schedules.", 10);
  const unknown = $("unknown");
  unknown.replaceChildren();
  if (status.unknown_schedules.length) {
    unknown.append(el("p", { class: "muted" }, "Known to Redis, not in " + status.config.path + ": " +
      status.unknown_schedules.map((u) => u.name + (u.paused ? " (paused)" : "")).join(", ")));
  }
  fill("runs", recent.runs.slice(0, 20).map(runRow), "No runs in the queue streams.", 8);
  $("updated").textContent = "updated " + new Date().toLocaleTimeString();
}

async function refresh() {
  const query = "/api/status?limit=" + PAGE_SIZE + "&offset=" + state.offset + "&q=" + encodeURIComponent(state.q);
  try {
    // The runs are extra: a Redis that refuses their read (an ACL without XREVRANGE) must not
    // cost the page the rest of the status.
    const runs = getJSON("/api/runs?limit=200").catch(() => ({ runs: [], scanned: 0 }));
    const [status, recent] = await Promise.all([getJSON(query), runs]);
    $("error").hidden = true;
    render(status, recent);
  } catch (error) {
    $("error").textContent = "cannot read the status: " + error.message;
    $("error").hidden = false;
  }
}

function schedule() {
  clearInterval(state.timer);
  if ($("auto").checked) state.timer = setInterval(refresh, REFRESH_MS);
}

document.addEventListener("DOMContentLoaded", () => {
  $("token").value = token();
  $("token").addEventListener("input", (event) => {
    if (event.target.value) sessionStorage.setItem(TOKEN_KEY, event.target.value);
    else sessionStorage.removeItem(TOKEN_KEY);
  });
  $("tokenform").addEventListener("submit", (event) => event.preventDefault());
  $("forget").addEventListener("click", () => { sessionStorage.removeItem(TOKEN_KEY); $("token").value = ""; });
  let typing = null;
  $("filter").addEventListener("input", (event) => {
    clearTimeout(typing);
    typing = setTimeout(() => { state.q = event.target.value; state.offset = 0; refresh(); }, 250);
  });
  $("prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - PAGE_SIZE); refresh(); });
  $("next").addEventListener("click", () => { state.offset += PAGE_SIZE; refresh(); });
  $("auto").addEventListener("change", schedule);
  refresh();
  schedule();
});
