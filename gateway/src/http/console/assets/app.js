// Switchboard console: plain JavaScript, no framework. Reads /api/v1 with the session
// cookie; every text from a record is inserted as text, never as HTML.
"use strict";

const $ = (sel) => document.querySelector(sel);
let csrf = null;
let nextCursor = null;

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c ?? "")));
  return e;
}

function show(id) {
  for (const s of ["signin", "list", "call"]) $("#" + s).hidden = s !== id;
}

async function api(path) {
  const r = await fetch(path, { credentials: "same-origin" });
  if (r.status === 401) { signedOut(); throw new Error("signed out"); }
  if (!r.ok) {
    const p = await r.json().catch(() => ({}));
    throw new Error(p.detail || p.title || ("HTTP " + r.status));
  }
  return r.json();
}

function signedOut() {
  csrf = null;
  $("#who").textContent = "";
  $("#signout").hidden = true;
  show("signin");
  $("#key").focus();
}

function signedIn(who) {
  csrf = who.csrf;
  $("#who").textContent = who.tenant + " (" + who.key + ")";
  $("#signout").hidden = false;
}

const fmtTime = (s) => s ? new Date(s).toLocaleString() : "";
const fmtSecs = (ms) => (ms / 1000).toFixed(1) + " s";
const fmtUsd = (v) => v == null ? "—" : "$" + v.toFixed(4);

function filterQuery() {
  const q = new URLSearchParams();
  for (const [k, v] of new FormData($("#filters"))) {
    if (v === "") continue;
    if (k === "since") q.set(k, v + "T00:00:00Z");
    else if (k === "until") q.set(k, v + "T23:59:59.999Z");
    else q.set(k, v);
  }
  return q;
}

async function loadList(append) {
  const q = filterQuery();
  q.set("limit", "50");
  if (append && nextCursor) q.set("cursor", nextCursor);
  const page = await api("/api/v1/calls?" + q);
  const body = $("#calls tbody");
  if (!append) body.replaceChildren();
  for (const c of page.calls) {
    const link = el("a", { href: "#/call/" + encodeURIComponent(c.call_sid) }, fmtTime(c.started_at));
    body.append(el("tr", { "data-sid": c.call_sid },
      el("td", {}, link), el("td", {}, c.from || ""),
      el("td", {}, c.duration_s == null ? "" : c.duration_s + " s"),
      el("td", {}, c.outcome || "running"), el("td", {}, fmtUsd(c.cost_usd))));
  }
  nextCursor = page.next_cursor;
  $("#more").hidden = !nextCursor;
}

let lines = [];
let playing = null;

// The line being played: the last one whose span holds the audio's current time.
function highlight() {
  const t = $("#audio").currentTime * 1000;
  let current = null;
  for (const l of lines) {
    if (t >= l.start && t < Math.max(l.end, l.start + 300)) current = l;
  }
  if (current === playing) return;
  if (playing) { playing.node.classList.remove("playing"); playing.node.removeAttribute("aria-current"); }
  playing = current;
  if (current) {
    current.node.classList.add("playing");
    current.node.setAttribute("aria-current", "true");
    current.node.scrollIntoView({ block: "nearest" });
  }
}

function seek(ms) {
  const a = $("#audio");
  if (!a.getAttribute("src")) return;
  a.currentTime = ms / 1000;
  if (a.paused) a.play().catch(() => {});
  highlight();
}

// Opens a tool call's passages and moves the focus there.
function followTool(id) {
  const li = document.getElementById(id);
  if (!li) return;
  const d = li.querySelector("details");
  if (d) d.open = true;
  li.scrollIntoView({ block: "center" });
  li.focus();
}

async function loadCall(sid) {
  const c = await api("/api/v1/calls/" + encodeURIComponent(sid));
  $("#call-title").textContent = "Call " + c.call_sid;
  const facts = $("#call-facts");
  facts.replaceChildren();
  for (const [k, v] of [["From", c.from], ["To", c.to], ["Started", fmtTime(c.started_at)],
    ["Duration", c.duration_s == null ? "" : c.duration_s + " s"], ["Outcome", c.outcome],
    ["Barge-ins", c.barge_ins], ["Model", c.model]]) {
    facts.append(el("dt", {}, k), el("dd", {}, v ?? ""));
  }
  const audio = $("#audio");
  audio.pause();
  playing = null;
  if (c.recording) {
    audio.onerror = () => { $("#audio-note").textContent = "The recording could not be loaded."; };
    audio.src = c.recording.url;
    $("#audio-note").textContent = "Recording: " + fmtSecs(c.recording.duration_ms) + ". Select a line to hear it.";
  } else {
    audio.onerror = null;
    audio.removeAttribute("src");
    audio.load();
    $("#audio-note").textContent = "No recording for this call.";
  }

  // Transcript lines and tool calls, in time order; an agent line spoken after a tool
  // call links to the passages behind it.
  const items = c.transcript.map((t) => ({ at: t.start_ms, t }));
  c.tool_calls.forEach((tc, i) => items.push({ at: tc.at_ms ?? Infinity, tc, id: "tool-" + i }));
  items.sort((a, b) => a.at - b.at);
  const list = $("#transcript");
  list.replaceChildren();
  lines = [];
  let lastTool = null;
  for (const it of items) {
    if (it.t) {
      const t = it.t;
      const li = el("li", { class: t.role, tabindex: "0", role: "button",
        "aria-label": t.role + " at " + fmtSecs(t.start_ms) + ": " + t.text },
        el("span", { class: "t" }, fmtSecs(t.start_ms)), el("strong", {}, t.role + ": "), t.text);
      if (t.interrupted) {
        const heard = t.heard_ms == null ? "" : " after " + fmtSecs(t.heard_ms);
        li.classList.add("interrupted");
        li.append(el("span", { class: "mark barge", title: "the caller interrupted" + heard }, "barge-in" + heard));
      }
      if (t.role === "agent" && lastTool) {
        const target = lastTool;
        const b = el("button", { type: "button", class: "mark sources", "aria-controls": target },
          "sources");
        b.addEventListener("click", (e) => { e.stopPropagation(); followTool(target); });
        b.addEventListener("keydown", (e) => e.stopPropagation());
        li.append(b);
        lastTool = null;
      }
      li.addEventListener("click", () => seek(t.start_ms));
      li.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); seek(t.start_ms); } });
      list.append(li);
      lines.push({ start: t.start_ms, end: t.end_ms, node: li });
    } else {
      const tc = it.tc;
      const args = typeof tc.arguments === "object" ? JSON.stringify(tc.arguments) : tc.arguments;
      const li = el("li", { class: "tool", id: it.id, tabindex: "-1" },
        el("span", { class: "t" }, tc.at_ms == null ? "" : fmtSecs(tc.at_ms)),
        el("strong", {}, "tool " + tc.name), " " + args,
        el("span", { class: "mark" }, tc.latency_ms + " ms"));
      if (tc.passages.length) {
        const d = el("details", {}, el("summary", {}, tc.passages.length + " passage(s)"));
        for (const p of tc.passages) {
          d.append(el("div", { class: "passage" }, el("div", {}, el("strong", {}, p.title || p.source),
            " — score " + p.score.toFixed(3)), el("div", {}, p.text)));
        }
        li.append(d);
      }
      list.append(li);
      lastTool = it.id;
    }
  }
  audio.ontimeupdate = highlight;

  const an = $("#analysis");
  an.replaceChildren();
  const a = c.analysis;
  if (a.document == null && a.sentiment == null) an.append("Not analysed.");
  else {
    if (a.summary) an.append(el("p", { class: "summary" }, a.summary));
    an.append(el("p", {}, "Sentiment: " + (a.sentiment ?? "—") + "; success: " + (a.success ?? "—")));
    const fields = a.fields && typeof a.fields === "object" ? Object.entries(a.fields) : [];
    if (fields.length) {
      const dl = el("dl", { class: "fields" });
      for (const [k, v] of fields) dl.append(el("dt", {}, k), el("dd", {}, v == null ? "—" : String(v)));
      an.append(dl);
    }
    if (a.model) an.append(el("p", { class: "muted" }, "Analysed by " + a.model));
    const raw = el("details", {}, el("summary", {}, "Analysis document"));
    raw.append(el("pre", {}, JSON.stringify(a.document, null, 2)));
    an.append(raw);
  }
  const co = $("#cost");
  co.replaceChildren();
  if (!c.cost) co.append("No cost recorded.");
  else if (c.cost.total_usd == null) co.append("Cost unknown: " + (c.cost.detail.reason || "no price known for model " + (c.model || "?")) + ".");
  else co.append(el("p", {}, fmtUsd(c.cost.total_usd) + " (" + (c.cost.detail.source || "") + ")"),
    el("pre", {}, JSON.stringify(c.cost.detail.tokens, null, 2)));
  // The page is usable from here on (the browser test reads this mark).
  performance.mark("call-interactive");
}

async function route() {
  if (!csrf) {
    try { signedIn(await api("/console/session")); } catch (_) { return; }
  }
  const m = location.hash.match(/^#\/call\/(.+)$/);
  try {
    if (m) { show("call"); await loadCall(decodeURIComponent(m[1])); $("#call-title").focus(); }
    else { show("list"); await loadList(false); }
  } catch (e) {
    if (e.message !== "signed out") alert(e.message);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("#call-title").tabIndex = -1;
  $("#signin-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const r = await fetch("/console/session", { method: "POST", credentials: "same-origin",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ key: $("#key").value }) });
    if (!r.ok) { $("#signin-error").textContent = "That key was not accepted."; return; }
    $("#key").value = "";
    $("#signin-error").textContent = "";
    signedIn(await r.json());
    route();
  });
  $("#signout").addEventListener("click", async () => {
    await fetch("/console/session", { method: "DELETE", credentials: "same-origin", headers: { "x-csrf-token": csrf || "" } });
    signedOut();
  });
  $("#filters").addEventListener("submit", (e) => { e.preventDefault(); loadList(false); });
  $("#more").addEventListener("click", () => loadList(true));
  window.addEventListener("hashchange", route);
  route();
});
