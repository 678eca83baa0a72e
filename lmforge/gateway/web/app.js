// lmforge gateway page: streaming chat with thumbs up/down, the data review view, and status.
// Talks only to the gateway it was served from; the API key stays in localStorage.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
};

const keyInput = $("#api-key");
keyInput.value = localStorage.getItem("lmforge-api-key") || "";
keyInput.addEventListener("change", () => localStorage.setItem("lmforge-api-key", keyInput.value));

function headers() {
  const h = { "Content-Type": "application/json" };
  if (keyInput.value) h["Authorization"] = "Bearer " + keyInput.value;
  return h;
}

function status(text) { $("#status").textContent = text; }

// TGI's {"error": "..."} or, on /v1/*, OpenAI's {"error": {"message", ...}}
function errorMessage(err) { return (err && typeof err === "object") ? err.message : err; }

async function errorText(resp) {
  try { const j = await resp.json(); return `${resp.status}: ${errorMessage(j.error) || JSON.stringify(j)}`; }
  catch (_) { return `${resp.status} ${resp.statusText}`; }
}

async function postJSON(url, body) {
  const resp = await fetch(url, { method: "POST", headers: headers(), body: JSON.stringify(body) });
  if (!resp.ok) throw new Error(await errorText(resp));
  return resp.json();
}

// ---- tabs ------------------------------------------------------------------
for (const tab of document.querySelectorAll(".tab")) {
  tab.addEventListener("click", () => {
    for (const t of document.querySelectorAll(".tab")) t.classList.toggle("active", t === tab);
    for (const v of document.querySelectorAll(".view")) v.classList.add("hidden");
    $("#view-" + tab.dataset.view).classList.remove("hidden");
    if (tab.dataset.view === "review") loadDocs();
    if (tab.dataset.view === "status") loadStatus();
  });
}

fetch("/info", { headers: headers() }).then(r => r.ok ? r.json() : null).then(info => {
  if (info && info.model_version) $("#model").textContent = "model " + info.model_version;
}).catch(() => {});

// ---- chat ------------------------------------------------------------------
let history = [];

function addMessage(role, text) {
  const m = el("div", "msg " + role);
  m.append(el("div", "text", text));
  $("#messages").append(m);
  return m;
}

function addThumbs(msg, requestId) {
  const bar = el("div", "actions");
  const up = el("button", "thumb-up", "👍");
  const down = el("button", "thumb-down", "👎");
  const note = el("span", "feedback-status muted");
  up.title = "good answer"; down.title = "bad answer";
  for (const [btn, rating] of [[up, "up"], [down, "down"]]) {
    btn.type = "button";
    btn.addEventListener("click", async () => {
      try {
        await postJSON("/feedback", { request_id: requestId, rating });
        up.classList.toggle("chosen", rating === "up");
        down.classList.toggle("chosen", rating === "down");
        note.textContent = "saved " + rating;
      } catch (e) { note.textContent = "not saved: " + e.message; }
    });
  }
  bar.append(up, down, note);
  msg.dataset.requestId = requestId;
  msg.append(bar);
}

// Reads an SSE body and calls onData for each `data:` payload.
async function readSSE(resp, onData) {
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, i).trim();
      buf = buf.slice(i + 1);
      if (line.startsWith("data:")) onData(line.slice(5).trim());
    }
  }
}

async function send(prompt) {
  history.push({ role: "user", content: prompt });
  addMessage("user", prompt);
  const msg = addMessage("assistant", "");
  const text = $(".text", msg);
  $("#send").disabled = true;
  status("generating…");
  try {
    const resp = await fetch("/v1/chat/completions", {
      method: "POST", headers: headers(),
      body: JSON.stringify({ messages: history, stream: true,
                             max_tokens: parseInt($("#max-tokens").value, 10) || 64 }),
    });
    if (!resp.ok) throw new Error(await errorText(resp));
    const requestId = resp.headers.get("X-Request-Id");
    let finished = false, failed = null;
    await readSSE(resp, data => {
      if (data === "[DONE]") { finished = true; return; }
      const chunk = JSON.parse(data);
      if (chunk.error) { failed = errorMessage(chunk.error); return; }
      for (const ch of chunk.choices || []) text.textContent += (ch.delta && ch.delta.content) || "";
    });
    if (failed) throw new Error(failed);
    if (!finished) throw new Error("stream ended early");
    history.push({ role: "assistant", content: text.textContent });
    msg.classList.add("done");
    addThumbs(msg, requestId);
    status("");
  } catch (e) {
    msg.classList.replace("assistant", "error");
    text.textContent = "error: " + e.message;
    history.pop();
    status("");
  } finally {
    $("#send").disabled = false;
  }
}

$("#chat-form").addEventListener("submit", ev => {
  ev.preventDefault();
  const prompt = $("#prompt").value.trim();
  if (!prompt) return;
  $("#prompt").value = "";
  send(prompt);
});
$("#prompt").addEventListener("keydown", ev => {
  if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); $("#chat-form").requestSubmit(); }
});
$("#reset").addEventListener("click", () => { history = []; $("#messages").textContent = ""; });

// ---- data review -------------------------------------------------------------
const review = { offset: 0, limit: 10, total: 0 };

function renderDoc(doc, set) {
  const d = el("article", "doc");
  d.dataset.id = doc.id;
  const meta = el("div", "meta");
  meta.append(el("span", "id", doc.id), el("span", "source", doc.source || ""),
              el("span", "language", doc.language || ""));
  if (doc.reason) meta.append(el("span", "reason", "filtered by: " + doc.reason));
  if (doc.duplicate_of) meta.append(el("span", "dup", "duplicate of " + doc.duplicate_of));
  if (doc.url) { const a = el("a", "url", doc.url); a.href = doc.url; a.target = "_blank"; meta.append(a); }
  const label = el("span", "label " + (doc.label || ""), doc.label ? doc.label : "unlabelled");
  const keep = el("button", "keep", "Keep"), drop = el("button", "drop", "Drop");
  for (const [btn, value] of [[keep, "keep"], [drop, "drop"]]) {
    btn.type = "button";
    btn.addEventListener("click", async () => {
      try {
        await postJSON("/api/review/label", { doc_id: doc.id, label: value, set });
        label.textContent = value;
        label.className = "label " + value;
      } catch (e) { label.textContent = "not saved: " + e.message; }
    });
  }
  const actions = el("div", "row");
  actions.append(keep, drop, label);
  d.append(meta, el("pre", "text", doc.text || ""), actions);
  return d;
}

async function loadDocs() {
  const set = $("#review-set").value, reason = $("#review-reason").value;
  const q = new URLSearchParams({ set, offset: review.offset, limit: review.limit });
  if (reason) q.set("reason", reason);
  const resp = await fetch("/api/review/docs?" + q, { headers: headers() });
  const box = $("#docs");
  if (!resp.ok) { box.textContent = await errorText(resp); return; }
  const page = await resp.json();
  review.total = page.total;
  const sel = $("#review-reason");
  const known = new Set([...sel.options].map(o => o.value));
  for (const r of Object.keys(page.reasons)) {
    if (!known.has(r)) sel.append(new Option(`${r} (${page.reasons[r]})`, r));
  }
  box.textContent = "";
  for (const doc of page.docs) box.append(renderDoc(doc, set));
  const end = Math.min(review.offset + review.limit, page.total);
  $("#review-pos").textContent = page.total ? `${review.offset + 1}–${end} of ${page.total}` : "no documents";
  box.dataset.loaded = set;
}

$("#review-set").addEventListener("change", () => {
  review.offset = 0;
  $("#review-reason").length = 1;
  loadDocs();
});
$("#review-reason").addEventListener("change", () => { review.offset = 0; loadDocs(); });
$("#review-prev").addEventListener("click", () => {
  review.offset = Math.max(0, review.offset - review.limit); loadDocs();
});
$("#review-next").addEventListener("click", () => {
  if (review.offset + review.limit < review.total) { review.offset += review.limit; loadDocs(); }
});

// ---- status ------------------------------------------------------------------
// Prometheus text -> [{name, labels, value}] (comments skipped).
function parseMetrics(text) {
  const out = [];
  for (const line of text.split("\n")) {
    const m = line.match(/^([a-zA-Z_:][\w:]*)(\{([^}]*)\})?\s+(\S+)/);
    if (!m) continue;
    const labels = {};
    for (const [, k, v] of (m[3] || "").matchAll(/(\w+)="([^"]*)"/g)) labels[k] = v;
    out.push({ name: m[1], labels, value: parseFloat(m[4]) });
  }
  return out;
}

function total(samples, name, keep = () => true) {
  return samples.filter(s => s.name === name && keep(s.labels)).reduce((a, s) => a + s.value, 0);
}

async function loadStatus() {
  const rows = [];
  try {
    const health = await fetch("/health", { headers: headers() });
    rows.push(["health", health.ok ? "ok" : `${health.status}`]);
    const ready = await fetch("/ready", { headers: headers() });
    rows.push(["upstream", ready.ok ? "ready" : `down (${ready.status})`]);
    const info = await fetch("/info", { headers: headers() }).then(r => r.ok ? r.json() : {});
    rows.push(["model", `${info.model_id || "?"} (${info.model_version || "?"})`]);
    const resp = await fetch("/metrics", { headers: headers() });
    if (!resp.ok) throw new Error(await errorText(resp));
    const s = parseMetrics(await resp.text());
    const g = "lmforge_gateway_";
    const mean = base => { const n = total(s, base + "_count"); return n ? (total(s, base + "_sum") / n).toFixed(3) + " s" : "-"; };
    rows.push(
      ["requests", total(s, g + "requests_total")],
      ["errors (status >= 400)", total(s, g + "requests_total", l => +l.status >= 400)],
      ["in flight", total(s, g + "inflight_requests")],
      ["mean latency", mean(g + "request_duration_seconds")],
      ["mean time to first token", mean(g + "time_to_first_token_seconds")],
      ["tokens in / out", `${total(s, g + "tokens_total", l => l.direction === "input")} / ` +
                          `${total(s, g + "tokens_total", l => l.direction === "output")}`],
      ["blocked by safety", total(s, g + "safety_verdicts_total", l => l.verdict === "block")],
      ["feedback", total(s, g + "feedback_total")],
      ["estimated cost", total(s, g + "cost_total").toFixed(4)]);
  } catch (e) { rows.push(["error", e.message]); }
  const table = $("#status-table");
  table.replaceChildren(...rows.map(([k, v]) => {
    const tr = el("tr");
    tr.dataset.key = k;
    tr.append(el("th", "", k), el("td", "", String(v)));
    return tr;
  }));
}

setInterval(() => { if (!$("#view-status").classList.contains("hidden")) loadStatus(); }, 5000);
