// hub3d's page: key prompt or app, health strip, model + parameter form, drop/pick/paste,
// one live card per job, recent jobs of this server.

import { api, apiKey, ApiError, idempotencyKey, takeKeyFromFragment } from "./api.js";
import { buildForm } from "./form.js";
import { JobCard, marks } from "./jobs.js";

const $ = (id) => document.getElementById(id);
const HEALTH_MS = 5000;
let models = [], readForm = () => ({ values: {}, errors: [] }), healthTimer = 0;

// The viewer library: a pinned CDN copy with SRI, or the server's local copy. The page works
// without it (progress, preview image, downloads).
function loadViewer() {
  const meta = document.querySelector('meta[name="hub3d-viewer"]');
  const src = meta && meta.content;
  if (!src || src.includes("{{")) return Promise.resolve(false);
  return new Promise((resolve) => {
    const script = document.createElement("script");
    script.type = "module";
    script.src = src;
    if (meta.dataset.integrity) script.integrity = meta.dataset.integrity;
    script.crossOrigin = "anonymous";
    script.onerror = () => resolve(false);
    customElements.whenDefined("model-viewer").then(() => {
      marks.push({ job: null, name: "viewer_defined", t: performance.now() });
      resolve(true);
    });
    setTimeout(() => resolve(false), 20000);
    document.head.append(script);
  });
}

function gb(x) { return x == null ? "?" : `${Number(x).toFixed(1)} GB`; }

function chip(label, value, state) {
  const span = document.createElement("span");
  span.className = "chip";
  if (state) span.dataset.state = state;
  const b = document.createElement("b");
  b.textContent = label;
  span.append(b, document.createTextNode(" " + value));
  return span;
}

async function refreshHealth() {
  const strip = $("strip");
  try {
    const h = await api("health");
    const q = h.queue || {};
    const gpu = h.gpu ? `${h.gpu.name} · ${gb(h.gpu.vram_free_gb)} free of ${gb(h.gpu.vram_gb)}`
      : "none (CPU)";
    strip.replaceChildren(
      chip("server", h.status, h.status),
      chip("GPU", gpu),
      chip("queue", `${q.queued ?? "?"} waiting · ${q.processing ?? "?"} running` +
        ` · max ${q.max_queue_size ?? "?"}`),
      chip("hub3d", h.version || ""));
  } catch (exc) {
    strip.replaceChildren(chip("server", exc.message, "down"));
  }
  strip.hidden = false;
}

function pickModel(name) {
  const m = models.find((x) => x.name === name) || models[0];
  if (!m) return;
  $("model").value = m.name;
  const devices = (m.devices || []).join(", ") || m.device || "";
  $("model-about").textContent = `${m.description} · ${devices || "no device"}`;
  readForm = buildForm($("params"), m.parameters || {});
}

async function refreshRecent() {
  let jobs;
  try { jobs = await api("jobs?limit=12"); } catch { return; }
  const list = $("recent");
  list.replaceChildren();
  for (const j of jobs) {
    const li = document.createElement("li");
    const when = j.timestamps && j.timestamps.created_at
      ? new Date(j.timestamps.created_at * 1000).toLocaleTimeString() : "";
    li.innerHTML = "<button type=button class=link></button> <span></span> <time></time>";
    li.querySelector("button").textContent = j.job_id.slice(0, 8);
    li.querySelector("span").textContent = `${j.model} · ${j.status}`;
    li.querySelector("span").dataset.state = j.status;
    li.querySelector("time").textContent = when;
    li.querySelector("button").addEventListener("click", () => openJob(j.job_id));
    list.append(li);
  }
  if (!jobs.length) list.innerHTML = "<li class=empty>none yet</li>";
}

const viewer = loadViewer();

function card(name, inputUrl) {
  $("empty").hidden = true;
  const c = new JobCard({ template: $("job-template"), viewer, name, inputUrl,
                          onDone: () => { refreshRecent(); refreshHealth(); },
                          formatsOf: (model) => (models.find((m) => m.name === model) || {})
                            .formats || [] });
  $("jobs").prepend(c.root);
  return c;
}

function openJob(id) {
  const existing = document.querySelector(`.job[data-job-id="${CSS.escape(id)}"]`);
  if (existing) { existing.scrollIntoView({ behavior: "smooth" }); return; }
  card(`job ${id.slice(0, 8)}`, null).open(id);
}

async function submitFiles(files) {
  files = Array.from(files || []);
  if (!files.length) return;
  const { values, errors } = readForm();
  $("form-error").textContent = errors.join("; ");
  if (errors.length) return; // nothing is sent with a value the model would refuse
  const model = $("model").value;
  for (const file of files) {
    await card(file.name || "pasted image", URL.createObjectURL(file))
      .submit(file, model, values, idempotencyKey());
  }
  refreshRecent();
}

function wireInputs() {
  const drop = $("drop");
  $("file").addEventListener("change", (e) => { submitFiles(e.target.files); e.target.value = ""; });
  for (const type of ["dragenter", "dragover"]) {
    drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    submitFiles(e.dataTransfer.files);
  });
  document.addEventListener("paste", (e) => {
    const files = Array.from(e.clipboardData.files || []).filter((f) => f.type.startsWith("image/"));
    if (files.length) submitFiles(files);
  });
  $("model").addEventListener("change", (e) => pickModel(e.target.value));
  $("recent-refresh").addEventListener("click", refreshRecent);
}

function askForKey(message) {
  $("app").hidden = true;
  $("strip").hidden = true;
  $("key-prompt").hidden = false;
  $("key-error").textContent = message || "";
  document.body.dataset.ready = "key";
  $("key-input").focus();
}

async function start() {
  try {
    models = await api("models");
  } catch (exc) {
    if (exc instanceof ApiError && exc.status === 401) {
      const had = !!apiKey.get();
      apiKey.clear();
      askForKey(had ? "The server refused that key: check the notebook's API_KEY." : "");
    } else {
      $("fatal").textContent = exc.message;
      $("fatal").hidden = false;
      document.body.dataset.ready = "error";
    }
    return;
  }
  $("key-prompt").hidden = true;
  $("app").hidden = false;
  const select = $("model");
  select.replaceChildren(...models.map((m) => new Option(m.name, m.name)));
  pickModel((models.find((m) => m.default) || models[0] || {}).name);
  refreshHealth();
  if (!healthTimer) healthTimer = setInterval(refreshHealth, HEALTH_MS);
  refreshRecent();
  window.hub3dReadyAt = performance.now();
  document.body.dataset.ready = "app";
}

$("key-form").addEventListener("submit", (e) => {
  e.preventDefault();
  apiKey.set($("key-input").value.trim());
  start();
});
window.addEventListener("hashchange", () => {
  // A #key=… link pasted into this same tab: no reload happens, so take the key here.
  if (location.hash.includes("key=")) { takeKeyFromFragment(); start(); }
});
window.hub3dMarks = marks;
takeKeyFromFragment();
wireInputs();
start();
