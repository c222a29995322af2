// mlxctl dashboard: plain JavaScript over the daemon's own API (no build step, no CDN).
// Live state comes from one EventSource (/api/admin/events); actions call the same admin
// routes as the CLI. Every text from the daemon goes in through textContent, never as HTML.
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = { status: null, slots: [], jobs: [], requests: [], last: 0, models: [],
  selectedModel: null, selectedRequest: null, source: null };
const CHART_WINDOW_S = 300;

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}
const seconds = (s) => (s === null || s === undefined ? "–" : s < 1 ? `${(s * 1000).toFixed(0)} ms` : `${s.toFixed(2)} s`);
const ms = (v) => (v === null || v === undefined ? "–" : seconds(v / 1000));
function countdown(s) {
  if (s === null || s === undefined) return "forever";
  if (s <= 0) return "now";
  const m = Math.floor(s / 60), r = Math.floor(s % 60);
  return m ? `${m}m ${String(r).padStart(2, "0")}s` : `${r}s`;
}

function flash(text, ok = false) {
  const el = $("#flash");
  el.textContent = text;
  el.className = ok ? "flash ok" : "flash";
  el.hidden = false;
  clearTimeout(flash.timer);
  flash.timer = setTimeout(() => { el.hidden = true; }, ok ? 4000 : 10000);
}

class HTTPError extends Error {
  constructor(status, body) {
    const e = body && body.error;
    super((e && (e.message || e)) + (e && e.hint ? ` (${e.hint})` : "") || `HTTP ${status}`);
    this.status = status;
  }
}

async function api(path, body, method) {
  const init = { method: method || (body === undefined ? "GET" : "POST"), credentials: "same-origin",
    headers: {} };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const r = await fetch(path, init);
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (r.status === 401) showLogin();
  if (!r.ok) throw new HTTPError(r.status, data);
  return data;
}

async function act(label, call) {
  try {
    const out = await call();
    flash(label, true);
    return out;
  } catch (e) {
    flash(`${label} failed: ${e.message}`);
    return null;
  }
}

function confirmDialog(title, body) {
  const dlg = $("#confirm");
  $("#confirm-title").textContent = title;
  $("#confirm-body").replaceChildren(...[body].flat());
  dlg.showModal();
  return new Promise((resolve) => {
    dlg.addEventListener("close", () => resolve(dlg.returnValue === "ok"), { once: true });
  });
}

// ---- login -------------------------------------------------------------------------
function showLogin() {
  if (state.source) { state.source.close(); state.source = null; }
  $("#login").hidden = false;
  document.querySelectorAll(".page").forEach((p) => { p.hidden = true; });
  $("#live").textContent = "locked";
  $("#live").classList.remove("on");
  $("#login-key").focus();
}

$("#login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  try {
    await api("/ui/login", { key: $("#login-key").value });
    $("#login-key").value = "";
    $("#login-error").textContent = "";
    $("#login").hidden = true;
    $("#logout").hidden = false;
    start();
  } catch (e) {
    $("#login-error").textContent = e.message;
  }
});
$("#logout").addEventListener("click", async () => { await api("/ui/logout", {}); location.reload(); });

// ---- pages -------------------------------------------------------------------------
function showPage() {
  const page = (location.hash || "#overview").slice(1);
  if (!$("#login").hidden) return;
  document.querySelectorAll(".page").forEach((p) => { p.hidden = p.id !== `page-${page}`; });
  document.querySelectorAll("nav a").forEach((a) => {
    if (a.dataset.page === page) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  });
  if (page === "models") loadModels();
  if (page === "playground") fillModelSelects();
  if (page === "overview") drawCharts();
}
window.addEventListener("hashchange", showPage);

// ---- live state --------------------------------------------------------------------
function connect() {
  const source = new EventSource(`/api/admin/events?after=${state.last}`);
  state.source = source;
  source.addEventListener("state", (ev) => {
    const data = JSON.parse(ev.data);
    state.status = data.status;
    state.slots = data.slots;
    state.jobs = data.jobs;
    state.last = data.last;
    if (data.requests.length) {
      state.requests.push(...data.requests);
      if (state.requests.length > 1000) state.requests.splice(0, state.requests.length - 1000);
    }
    $("#live").textContent = "live";
    $("#live").classList.add("on");
    render();
  });
  // Reconnect by hand, from the last request line seen (the browser's own retry would
  // resend the first URL, and so lines the page already has).
  source.onerror = async () => {
    source.close();
    $("#live").textContent = "reconnecting…";
    $("#live").classList.remove("on");
    try {
      await api("/api/admin/status");
    } catch (e) {
      if (e.status === 401) return;  // the login form is up
    }
    if (state.source === source) setTimeout(connect, 2000);
  };
}

function render() {
  renderOverview();
  renderJobs();
  renderSlots();
  renderRequests();
  renderModelStates();
  drawCharts();
}

function renderOverview() {
  const s = state.status;
  if (!s) return;
  $("#budget-text").textContent = `${bytes(s.used_bytes)} of ${bytes(s.budget_bytes)} · ${bytes(s.free_bytes)} free`;
  const bar = $("#budget-bar");
  const colors = ["var(--seg1)", "var(--seg2)", "var(--seg3)"];
  const loaded = s.models.filter((m) => m.state !== "queued");
  const segs = loaded.map((m, i) => h("span", {
    style: `width:${(100 * m.estimated_bytes / s.budget_bytes).toFixed(2)}%;background:${colors[i % 3]}`,
    title: `${m.model}: ${bytes(m.estimated_bytes)} (weights + KV reservation)`,
  }));
  if (s.measured_bytes) {
    segs.push(h("span", { class: "marker", title: `measured ${bytes(s.measured_bytes)}`,
      style: `left:${Math.min(100, 100 * s.measured_bytes / s.budget_bytes).toFixed(2)}%` }));
  }
  bar.replaceChildren(...segs);
  bar.setAttribute("aria-label", `memory budget: ${bytes(s.used_bytes)} used of ${bytes(s.budget_bytes)}`);
  $("#budget-legend").replaceChildren(
    ...loaded.map((m, i) => h("span", {}, h("i", { style: `background:${colors[i % 3]}` }),
      `${m.model} ${bytes(m.estimated_bytes)}${m.slot ? ` (slot ${m.slot.alias})` : ""}`)),
    h("span", {}, h("i", { style: "background:var(--fg)" }), `measured ${bytes(s.measured_bytes)}`),
    h("span", {}, h("i", { style: "background:var(--free)" }), `free ${bytes(s.free_bytes)}`),
  );
  const rows = s.models.map((m) => h("tr", {},
    h("td", {}, h("strong", {}, m.model)),
    h("td", {}, h("span", { class: `state ${m.state}` }, m.state)),
    h("td", {}, m.slot ? `slot ${m.slot.alias} :${m.slot.port}` : "on demand"),
    h("td", {}, m.in_flight), h("td", {}, m.waiting),
    h("td", {}, `${bytes(m.estimated_bytes)} / ${bytes(m.measured && m.measured.total_bytes)}`),
    h("td", { class: "mono", "data-expires": m.expires_in === null ? "" : Date.now() / 1000 + m.expires_in },
      m.pinned ? "pinned (slot)" : countdown(m.expires_in)),
    h("td", {}, m.slot ? "" : h("button", { type: "button", class: "small quiet",
      onclick: () => unloadModel(m.model) }, "Unload")),
  ));
  $("#loaded tbody").replaceChildren(...rows);
  $("#loaded-empty").hidden = rows.length > 0;
}

// Keep-alive countdowns tick between events, so the page never looks frozen.
setInterval(() => {
  document.querySelectorAll("[data-expires]").forEach((td) => {
    if (td.dataset.expires) td.textContent = countdown(Number(td.dataset.expires) - Date.now() / 1000);
  });
}, 1000);

function jobView(job) {
  const pct = job.total_bytes ? Math.round(100 * job.done_bytes / job.total_bytes) : null;
  const what = job.args.reference || job.args.model || job.args.name || "";
  let tail = "";
  if (job.state === "done" && job.result) tail = `→ ${job.result.model || job.result.name || "done"}`;
  if (job.state === "failed" && job.error) tail = job.error.message;
  return h("div", { class: "job", "data-job": job.id },
    h("div", { class: "row between" },
      h("span", {}, h("strong", {}, job.operation.replace("store.", "")), " ", what),
      h("span", { class: `state ${job.state}` }, job.state === "running" && pct !== null ? `${pct}%` : job.state)),
    h("progress", { max: 100, value: job.state === "done" ? 100 : pct ?? undefined,
      "aria-label": `${job.operation} ${what}` }),
    h("div", { class: "hint" }, `${bytes(job.done_bytes)} of ${bytes(job.total_bytes)} · ${job.items.length} file${job.items.length === 1 ? "" : "s"} ${tail}`));
}

let seenDone = new Set();
function renderJobs() {
  const views = state.jobs.slice(0, 8).map(jobView);
  $("#jobs").replaceChildren(...views);
  $("#jobs-overview").replaceChildren(...state.jobs.slice(0, 3).map(jobView));
  // A pull that finished adds a model: refresh the list once.
  for (const job of state.jobs) {
    if (job.state !== "running" && !seenDone.has(job.id)) {
      seenDone.add(job.id);
      if (state.models.length) loadModels();
    }
  }
}

// ---- models ------------------------------------------------------------------------
async function loadModels() {
  const data = await api("/api/admin/models").catch(() => null);
  if (!data) return;
  state.models = data.models;
  const formats = [...new Set(state.models.map((m) => m.format))].sort();
  const sel = $("#model-format");
  const current = sel.value;
  sel.replaceChildren(h("option", { value: "" }, "any format"), ...formats.map((f) => h("option", { value: f }, f)));
  sel.value = current;
  renderModels();
  fillModelSelects();
}

function liveState(slug) {
  const m = state.status && state.status.models.find((x) => x.model === slug);
  return m ? m.state : "";
}

function renderModels() {
  const q = $("#model-search").value.toLowerCase();
  const fmt = $("#model-format").value;
  const rows = state.models
    .filter((m) => (!fmt || m.format === fmt) && (!q || JSON.stringify([m.slug, m.repo_id, m.model_type]).toLowerCase().includes(q)))
    .map((m) => {
      const st = liveState(m.slug);
      return h("tr", { tabindex: 0, "data-model": m.slug, class: m.slug === state.selectedModel ? "selected" : "",
        onclick: () => showModel(m.slug), onkeydown: (e) => { if (e.key === "Enter") showModel(m.slug); } },
      h("td", {}, h("strong", {}, m.slug), m.repo_id ? h("div", { class: "hint" }, m.repo_id) : null),
      h("td", {}, m.format), h("td", {}, m.model_type || "–"), h("td", {}, bytes(m.size_bytes)),
      h("td", {}, m.quant_bits ? `${m.quant_bits}-bit` : "–"),
      h("td", {}, m.context_length || "–"),
      h("td", { class: "model-state" }, h("span", { class: `state ${st}` }, st || "–")),
      h("td", {}, h("div", { class: "row wrap" },
        h("button", { type: "button", class: "small", onclick: (e) => { e.stopPropagation(); loadModel(m.slug); } }, "Load"),
        h("button", { type: "button", class: "small quiet", onclick: (e) => { e.stopPropagation(); loadModel(m.slug, -1); } }, "Pin"),
        h("button", { type: "button", class: "small quiet", onclick: (e) => { e.stopPropagation(); unloadModel(m.slug); } }, "Unload"))));
    });
  $("#models tbody").replaceChildren(...rows);
}

function renderModelStates() {
  document.querySelectorAll("#models tr[data-model]").forEach((tr) => {
    const st = liveState(tr.dataset.model);
    const cell = tr.querySelector(".model-state span");
    if (cell.textContent !== (st || "–")) { cell.textContent = st || "–"; cell.className = `state ${st}`; }
  });
}

async function showModel(slug) {
  state.selectedModel = slug;
  renderModels();
  const aside = $("#model-detail");
  aside.hidden = false;
  aside.replaceChildren(h("p", { class: "hint" }, "loading…"));
  const [show, spec] = await Promise.all([
    api("/api/admin/models/show", { model: slug }).catch((e) => ({ error: e.message })),
    api("/api/admin/models/modelfile", { model: slug }).catch(() => null),
  ]);
  const fields = ["format", "model_type", "parameters", "size_bytes", "quant_bits", "quant_group_size",
    "context_length", "kv_bytes_per_token", "kv_bytes_full_context", "repo_id", "source", "cache_path"];
  const dl = h("table", { class: "table" }, fields.filter((f) => show[f] !== undefined && show[f] !== null)
    .map((f) => h("tr", {}, h("th", {}, f), h("td", { class: "mono" }, f.endsWith("bytes") || f.endsWith("_context") ? bytes(show[f]) : String(show[f])))));
  aside.replaceChildren(...[
    h("div", { class: "row between" }, h("h3", {}, slug), h("button", { type: "button", class: "small quiet", onclick: () => { aside.hidden = true; state.selectedModel = null; renderModels(); } }, "Close")),
    show.error ? h("p", { class: "error" }, show.error) : null,
    h("p", {}, "Capabilities: ", (show.capabilities || []).join(", ") || "–"),
    dl,
    h("div", { class: "row wrap" },
      h("button", { type: "button", onclick: () => loadModel(slug) }, "Load"),
      h("button", { type: "button", class: "quiet", onclick: () => loadModel(slug, -1) }, "Pin (keep loaded)"),
      h("button", { type: "button", class: "quiet", onclick: () => unloadModel(slug) }, "Unload"),
      h("button", { type: "button", class: "quiet", onclick: () => copyModel(slug) }, "Copy…"),
      h("button", { type: "button", class: "danger", onclick: () => deleteModel(slug) }, "Delete…")),
    spec && spec.modelfile ? h("details", {}, h("summary", {}, "ModelSpec"), h("pre", {}, spec.modelfile)) : null,
  ].filter(Boolean));
}

function loadModel(slug, keepAlive) {
  const body = { model: slug };
  if (keepAlive !== undefined) body.keep_alive = keepAlive;
  flash(`Loading ${slug}…`, true);
  return act(`Loaded ${slug}`, () => api("/api/admin/load", body));
}
const unloadModel = (slug) => act(`Unloaded ${slug}`, () => api("/api/admin/unload", { model: slug }));

async function copyModel(slug) {
  const input = h("input", { "aria-label": "new name", value: `${slug}-copy` });
  const row = h("label", {}, "New name ", input);
  if (!(await confirmDialog(`Copy ${slug}`, row))) return;
  await act(`Copied ${slug} to ${input.value}`, () => api("/api/admin/store/cp", { source: slug, target: input.value }));
  loadModels();
}

async function deleteModel(slug) {
  let plan;
  try { plan = await api("/api/admin/models/rm", { model: slug, dry_run: true }); } catch (e) { flash(e.message); return; }
  const body = [
    h("p", {}, `Frees ${bytes(plan.freed_bytes)}. Deletes:`),
    h("pre", {}, plan.deletes.join("\n") || "(no files: only the registry entry)"),
    plan.kept.length ? h("p", { class: "hint" }, `Kept: ${plan.kept.join(", ")}`) : null,
    plan.blocked_by.length ? h("p", { class: "error" }, `Blocked by: ${plan.blocked_by.join(", ")}`) : null,
    ...plan.notes.map((n) => h("p", { class: "hint" }, n)),
  ];
  if (!(await confirmDialog(`Delete ${slug}?`, body))) return;
  await act(`Deleted ${slug}`, () => api("/api/admin/models/rm", { model: slug, confirm: true }));
  $("#model-detail").hidden = true;
  loadModels();
}

$("#model-search").addEventListener("input", renderModels);
$("#model-format").addEventListener("change", renderModels);
$("#pull-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const args = { reference: $("#pull-ref").value.trim() };
  if ($("#pull-name").value.trim()) args.name = $("#pull-name").value.trim();
  const job = await act(`Pulling ${args.reference}`, () => api("/api/admin/jobs", { operation: "store.pull", args }));
  if (job) { state.jobs = [job, ...state.jobs.filter((j) => j.id !== job.id)]; renderJobs(); $("#pull-ref").value = ""; }
});

// ---- slots -------------------------------------------------------------------------
function renderSlots() {
  const options = () => [h("option", { value: "" }, "model…"), ...state.models.map((m) => h("option", { value: m.slug }, m.slug))];
  const rows = state.slots.map((s) => {
    const live = s.live || {};
    const select = h("select", { "aria-label": `model for slot ${s.alias}` }, options());
    const health = s.live ? (live.healthy ? "ok" : "unhealthy") : "";
    return h("tr", { "data-slot": s.alias },
      h("td", { class: "mono" }, s.port), h("td", {}, h("strong", {}, s.alias)),
      h("td", { class: "desired" }, s.desired || "–"), h("td", { class: "live-model" }, live.model || "–"),
      h("td", { class: "health" }, h("span", { class: `state ${health}` }, health || "–")),
      h("td", { class: s.drift.length ? "drift" : "" }, s.drift.join("; ") || "–"),
      h("td", {}, h("div", { class: "row wrap" }, select,
        h("button", { type: "button", class: "small", onclick: () => select.value && slotAction("load", { model: select.value, slot: s.alias }) }, "Load"),
        h("button", { type: "button", class: "small quiet", disabled: !s.desired && !s.live, onclick: () => slotAction("unload", { slot: s.alias }) }, "Unload"))));
  });
  const tbody = $("#slots tbody");
  // Redraw only on change, keeping what the user picked in each row's model list.
  const key = JSON.stringify(state.slots) + state.models.length;
  if (tbody.dataset.key === key) return;
  const picked = {};
  tbody.querySelectorAll("tr[data-slot]").forEach((tr) => { picked[tr.dataset.slot] = tr.querySelector("select").value; });
  tbody.replaceChildren(...rows);
  tbody.querySelectorAll("tr[data-slot]").forEach((tr) => { tr.querySelector("select").value = picked[tr.dataset.slot] || ""; });
  tbody.dataset.key = key;
}

async function slotAction(what, body) {
  if (what === "unload" && !(await confirmDialog(`Unload slot ${body.slot}?`, h("p", {}, "Its worker stops; the alias keeps its port.")))) return;
  await act(`Slot ${what}: ${body.slot}`, () => api(`/api/admin/slots/${what}`, body));
  refreshSlots();
}
// The event stream reads slots every few seconds; after an action the page asks at once.
async function refreshSlots() {
  const data = await api("/api/admin/slots").catch(() => null);
  if (data) { state.slots = data.slots; renderSlots(); }
}
$("#slots-reconcile").addEventListener("click", async () => {
  await act("Reconciled", () => api("/api/admin/slots/reconcile", {}));
  refreshSlots();
});
$("#slots-verify").addEventListener("click", async () => {
  const out = await act("Verified", () => api("/api/admin/slots/verify"));
  if (out) $("#slots-verify-out").textContent = out.ok ? "All slots match their settings." : out.problems.map((p) => `${p.slot}: ${p.problem}`).join("; ");
});

// ---- requests ----------------------------------------------------------------------
function renderRequests() {
  const q = $("#req-filter").value.toLowerCase();
  const modelsOnly = $("#req-models-only").checked;
  const rows = state.requests.slice().reverse()
    .filter((r) => (!modelsOnly || r.model) && (!q || JSON.stringify(r).toLowerCase().includes(q)))
    .slice(0, 200)
    .map((r) => h("tr", { tabindex: 0, class: r.seq === state.selectedRequest ? "selected" : "",
      onclick: () => showRequest(r), onkeydown: (e) => { if (e.key === "Enter") showRequest(r); } },
    h("td", { class: "mono" }, r.ts ? new Date(r.ts * 1000).toLocaleTimeString() : r.seq),
    h("td", {}, r.model || "–"), h("td", { class: "mono" }, `${r.method || ""} ${r.path}`),
    h("td", {}, h("span", { class: `state ${r.status < 400 ? "ok" : "failed"}` }, r.status)),
    h("td", {}, `${r.prompt_tokens ?? "–"} / ${r.completion_tokens ?? "–"}`),
    h("td", {}, ms(r.ttft_ms)), h("td", {}, ms(r.duration_ms)), h("td", { class: "mono" }, r.id)));
  $("#requests tbody").replaceChildren(...rows);
}

function showRequest(r) {
  state.selectedRequest = r.seq;
  const aside = $("#req-detail");
  aside.hidden = false;
  aside.replaceChildren(h("div", { class: "row between" }, h("h3", {}, `Request ${r.id}`),
    h("button", { type: "button", class: "small quiet", onclick: () => { aside.hidden = true; } }, "Close")),
  h("pre", {}, JSON.stringify(r, null, 2)));
  renderRequests();
}
$("#req-filter").addEventListener("input", renderRequests);
$("#req-models-only").addEventListener("change", renderRequests);

// ---- charts ------------------------------------------------------------------------
function drawChart(canvas, points, color) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, hgt = canvas.clientHeight || 120;
  if (!w) return;
  canvas.width = w * dpr; canvas.height = hgt * dpr;
  const ctx = canvas.getContext("2d");
  ctx.scale(dpr, dpr);
  const style = getComputedStyle(document.documentElement);
  const color_ = (name) => style.getPropertyValue(name).trim();
  ctx.strokeStyle = color_("--line"); ctx.fillStyle = color_("--muted");
  ctx.font = "11px system-ui";
  const now = Date.now() / 1000;
  const max = Math.max(1e-9, ...points.map((p) => p[1]));
  ctx.beginPath(); ctx.moveTo(30, hgt - 16); ctx.lineTo(w, hgt - 16); ctx.stroke();
  ctx.fillText(max.toPrecision(3), 0, 10); ctx.fillText("0", 0, hgt - 18); ctx.fillText("5 min ago", 30, hgt - 3);
  if (!points.length) { ctx.fillText("no requests yet", w / 2 - 40, hgt / 2); return; }
  ctx.fillStyle = color_(color);
  for (const [t, v] of points) {
    const x = 30 + (w - 34) * (1 - (now - t) / CHART_WINDOW_S);
    const y = hgt - 16 - (hgt - 28) * (v / max);
    ctx.beginPath(); ctx.arc(x, y, 3, 0, 2 * Math.PI); ctx.fill();
  }
}

function drawCharts() {
  if ($("#page-overview").hidden) return;
  const now = Date.now() / 1000;
  const recent = state.requests.filter((r) => r.model && r.ts && now - r.ts < CHART_WINDOW_S);
  // Decode speed: tokens after the first, over the time after the first.
  const tps = recent.filter((r) => r.completion_tokens && r.duration_ms > (r.ttft_ms || 0))
    .map((r) => [r.ts, (1000 * r.completion_tokens) / (r.duration_ms - (r.ttft_ms || 0))]);
  const ttft = recent.filter((r) => r.ttft_ms !== null && r.ttft_ms !== undefined).map((r) => [r.ts, r.ttft_ms / 1000]);
  drawChart($("#chart-tps"), tps, "--seg1");
  drawChart($("#chart-ttft"), ttft, "--seg2");
}

// ---- playground --------------------------------------------------------------------
function fillModelSelects() {
  for (const id of ["#chat-model", "#chat-model-b"]) {
    const sel = $(id);
    const current = sel.value;
    const first = id === "#chat-model-b" ? [h("option", { value: "" }, "(none)")] : [];
    sel.replaceChildren(...first, ...state.models.map((m) => h("option", { value: m.slug }, m.slug)));
    if (current) sel.value = current;
  }
}

const chat = { history: {}, controllers: [] };

function pane(model) {
  let el = document.querySelector(`.pane[data-model="${CSS.escape(model)}"]`);
  if (!el) {
    el = h("div", { class: "card pane", "data-model": model }, h("h3", {}, model), h("div", { class: "log" }));
    $("#panes").append(el);
  }
  return el;
}

async function streamChat(model, messages, params, out) {
  const controller = new AbortController();
  chat.controllers.push(controller);
  const started = performance.now();
  let first = null, tokens = 0, content = "", reasoning = "";
  const calls = [];
  const r = await fetch("/v1/chat/completions", {
    method: "POST", credentials: "same-origin", signal: controller.signal,
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model, messages, stream: true, stream_options: { include_usage: true }, ...params }),
  });
  if (!r.ok) {
    const body = await r.json().catch(() => null);
    if (r.status === 401) showLogin();
    throw new HTTPError(r.status, body);
  }
  const reader = r.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data: ")) continue;
        const payload = line.slice(6);
        if (payload === "[DONE]") continue;
        const chunk = JSON.parse(payload);
        if (chunk.error) throw new Error(chunk.error.message);
        if (chunk.usage) tokens = chunk.usage.completion_tokens;
        for (const choice of chunk.choices || []) {
          const d = choice.delta || {};
          if (first === null && (d.content || d.reasoning_content || d.tool_calls)) first = performance.now();
          if (d.reasoning_content) { reasoning += d.reasoning_content; out.reasoning.hidden = false; out.reasoningText.textContent = reasoning; }
          if (d.content) { content += d.content; out.text.textContent = content; }
          for (const call of d.tool_calls || []) {
            const i = call.index ?? calls.length;
            calls[i] = calls[i] || { name: "", arguments: "" };
            if (call.function && call.function.name) calls[i].name += call.function.name;
            if (call.function && call.function.arguments) calls[i].arguments += call.function.arguments;
            out.tools.replaceChildren(...calls.map((c) => h("div", { class: "tool-call mono" }, `tool call: ${c.name}(${c.arguments})`)));
          }
        }
      }
    }
    out.stats.textContent = first === null ? "waiting for the first token…" :
      `TTFT ${seconds((first - started) / 1000)} · streaming…`;
  }
  const total = (performance.now() - started) / 1000;
  // Decode speed: the tokens after the first over the time after it (too short to time: –).
  const gen = first === null ? 0 : (performance.now() - first) / 1000;
  const rate = gen > 0.05 && tokens > 1 ? ((tokens - 1) / gen).toFixed(1) : "–";
  out.stats.textContent = `TTFT ${first === null ? "–" : seconds((first - started) / 1000)} · ${tokens} tokens · ${rate} tok/s · ${seconds(total)}`;
  out.stats.dataset.done = "1";
  return { role: "assistant", content };
}

function message(role, text) {
  const reasoningText = h("div", { class: "text" });
  const reasoning = h("details", { class: "reasoning", hidden: true, open: true }, h("summary", {}, "reasoning"), reasoningText);
  const body = h("div", { class: "text answer" }, text || "");
  const tools = h("div", {});
  const stats = h("div", { class: "stats" });
  const el = h("div", { class: `msg ${role}` }, h("div", { class: "who" }, role), reasoning, body, tools, role === "assistant" ? stats : null);
  return { el, text: body, reasoning, reasoningText, tools, stats };
}

$("#chat-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const prompt = $("#chat-prompt").value.trim();
  if (!prompt) return;
  const models = [$("#chat-model").value, $("#chat-model-b").value].filter((m, i, all) => m && all.indexOf(m) === i);
  let extra = {};
  try {
    extra = $("#chat-extra").value.trim() ? JSON.parse($("#chat-extra").value) : {};
  } catch (e) {
    flash(`More parameters: not JSON (${e.message})`);
    return;
  }
  const params = { temperature: Number($("#chat-temperature").value), top_p: Number($("#chat-top-p").value),
    max_tokens: Number($("#chat-max-tokens").value), ...extra };
  const system = $("#chat-system").value.trim();
  $("#chat-prompt").value = "";
  $("#chat-send").disabled = true; $("#chat-stop").disabled = false;
  await Promise.all(models.map(async (model) => {
    const history = chat.history[model] = chat.history[model] || [];
    history.push({ role: "user", content: prompt });
    const log = pane(model).querySelector(".log");
    log.append(message("user", prompt).el);
    const out = message("assistant");
    log.append(out.el);
    const messages = system ? [{ role: "system", content: system }, ...history] : history;
    try {
      history.push(await streamChat(model, messages, params, out));
    } catch (e) {
      out.stats.textContent = "";
      out.text.append(h("span", { class: "error" }, e.name === "AbortError" ? " [stopped]" : ` ${e.message}`));
      history.pop();
    }
  }));
  chat.controllers = [];
  $("#chat-send").disabled = false; $("#chat-stop").disabled = true;
});
$("#chat-stop").addEventListener("click", () => chat.controllers.forEach((c) => c.abort()));
$("#chat-clear").addEventListener("click", () => { chat.history = {}; $("#panes").replaceChildren(); });
$("#chat-prompt").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) $("#chat-form").requestSubmit();
});

// ---- start -------------------------------------------------------------------------
async function start() {
  try {
    await api("/api/admin/status");
  } catch (e) {
    if (e.status === 401) return;  // the login form is up
    flash(e.message);
  }
  $("#login").hidden = true;
  showPage();
  await loadModels();
  const old = await api("/api/admin/requests").catch(() => null);
  if (old) { state.requests = old.requests; state.last = old.last; }
  connect();
}
start();
