// One card per job: stages as they come (events, else polling), input and result side by side,
// the mesh in the 3D viewer, timings, downloads, and errors in the API's own words.

import { api, ApiError, events } from "./api.js";

const ORDER = ["queued", "processing", "loading_model", "preprocessing", "inference",
               "exporting", "completed", "failed", "canceled"];
const TERMINAL = new Set(["completed", "failed", "canceled"]);
const POLL_MS = 1000, QUIET_MS = 2500;

export const marks = (window.hub3dMarks = window.hub3dMarks || []);
function mark(job, name) { marks.push({ job, name, t: performance.now() }); }

function stepOf(view) {
  return view.status === "processing" && view.stage ? view.stage : view.status;
}

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function seconds(s) { return s < 10 ? `${s.toFixed(2)} s` : `${s.toFixed(1)} s`; }

export class JobCard {
  constructor({ template, viewer, name, inputUrl, onDone, formatsOf }) {
    this.root = template.content.firstElementChild.cloneNode(true);
    // model name → the formats /models lists for it ({name, suffix, media_type, description})
    this.formatsOf = formatsOf || (() => []);
    this.viewer = viewer; // Promise<boolean>: whether <model-viewer> is available
    this.onDone = onDone || (() => {});
    this.q = (sel) => this.root.querySelector(sel);
    this.q(".name").textContent = name;
    this.t0 = performance.now();
    this.steps = [];
    this.view = null;
    if (inputUrl) {
      const img = el("img");
      img.src = inputUrl;
      img.alt = `input ${name}`;
      img.onerror = () => img.replaceWith(el("span", "about", "(the browser cannot show it)"));
      this.q(".input .frame").append(img);
    } else {
      this.q(".input").hidden = true;
    }
    this.q(".cancel").addEventListener("click", () => this.cancel());
  }

  status(text, cls) {
    const badge = this.q(".badge");
    badge.textContent = text;
    badge.dataset.state = cls || text;
  }

  fail(message, advice, code) {
    this.root.dataset.status = "failed";
    this.status(this.id ? "failed" : "refused", "failed"); // refused: no job was made
    this.q(".error").textContent = message;
    const tip = this.q(".advice"); // what to do: another photo, retry later, report a bug
    tip.textContent = advice ? `What to do: ${advice}.` : "";
    tip.dataset.code = code || "";
    this.q(".result").hidden = true;
    this.q(".cancel").hidden = true;
  }

  // Submit the image as an async job; `idemKey` stays the same for the one retry.
  async submit(file, model, values, idemKey) {
    mark(null, "drop");
    this.status("sending");
    const body = new FormData();
    body.append("image", file, file.name || "pasted.png");
    body.append("model", model);
    for (const [k, v] of Object.entries(values)) body.append(k, v);
    const send = () => api("generate", { method: "POST", body,
                                         headers: { "Idempotency-Key": idemKey } });
    let accepted;
    try {
      try {
        accepted = await send();
      } catch (exc) {
        if (!(exc instanceof ApiError) || exc.status !== 0) throw exc;
        accepted = await send(); // network blip: the same key makes the resend safe
      }
    } catch (exc) {
      this.fail(exc.message);
      return null;
    }
    this.id = accepted.job_id;
    this.root.dataset.jobId = this.id;
    marks[marks.length - 1].job = this.id;
    this.update({ job_id: this.id, status: accepted.status, stage: null,
                  position: accepted.position, message: accepted.message, model });
    this.follow();
    return this.id;
  }

  // Show an existing job (from the recent list).
  async open(id) {
    this.id = id;
    this.root.dataset.jobId = id;
    try {
      this.update(await api(`job/${id}`));
      if (!TERMINAL.has(this.view.status)) this.follow();
    } catch (exc) { this.fail(exc.message); }
  }

  async follow() {
    let lastEvent = performance.now();
    const poll = setInterval(async () => {
      if (performance.now() - lastEvent < QUIET_MS) return; // events are flowing
      try { this.update(await api(`job/${this.id}`)); } catch { /* keep trying */ }
    }, POLL_MS);
    this.stopPolling = () => clearInterval(poll);
    try {
      for await (const view of events(`job/${this.id}/events`)) {
        lastEvent = performance.now();
        this.update(view);
        if (TERMINAL.has(view.status)) break;
      }
    } catch { /* no stream through this proxy: the poll above carries on */ }
    if (this.view && TERMINAL.has(this.view.status)) this.stopPolling();
    else lastEvent = 0;
  }

  update(view) {
    if (this.done) return;
    const step = stepOf(view);
    const last = this.steps[this.steps.length - 1];
    if (last && ORDER.indexOf(step) < ORDER.indexOf(last)) return; // an older view, late
    this.view = view;
    this.root.dataset.status = view.status;
    if (step !== last) {
      this.steps.push(step);
      if (this.steps.length === 2 || (this.steps.length === 1 && step !== "queued")) {
        mark(this.id, "first_stage");
      }
      const li = el("li", "", step.replace("_", " "));
      li.dataset.stage = step;
      li.append(el("time", "", seconds((performance.now() - this.t0) / 1000)));
      this.q(".stages").append(li);
    }
    this.q(".model").textContent = view.model || "";
    const queued = view.status === "queued";
    this.status(queued && view.position ? `queued · #${view.position}` : step, view.status);
    this.q(".message").textContent = view.status === "completed" ? "" : view.message || "";
    this.q(".cancel").hidden = TERMINAL.has(view.status);
    if (view.timings) this.timings(view);
    if (TERMINAL.has(view.status)) {
      this.done = true;
      if (this.stopPolling) this.stopPolling();
      mark(this.id, view.status);
      if (view.status === "completed") this.result(view);
      else this.fail(view.error || view.message || `job ${view.status}`, view.advice,
                     view.error_code);
      this.onDone(view);
    }
  }

  timings(view) {
    const dl = this.q(".timings");
    dl.replaceChildren();
    const rows = Object.entries(view.timings || {});
    if (view.processing_time) rows.push(["processing", view.processing_time]);
    for (const [k, v] of rows) {
      dl.append(el("dt", "", k.replace("_", " ")), el("dd", "", seconds(Number(v))));
    }
  }

  async blob(path) {
    const r = await api(path, { raw: true });
    return URL.createObjectURL(await r.blob());
  }

  download(label, href, filename) {
    const a = el("a", "button", label);
    a.href = href;
    a.download = filename;
    a.dataset.download = label;
    this.q(".downloads").append(a);
  }

  // A format made on request: fetched (and converted by the server, once) at the first click.
  lazyDownload(fmt) {
    const label = fmt.name.toUpperCase();
    const a = el("a", "button", label);
    a.href = "#";
    a.download = `${this.id}${fmt.suffix}`;
    a.title = fmt.description || "";
    a.dataset.download = label;
    a.addEventListener("click", async (e) => {
      if (a.dataset.ready) return; // its file is here: the browser saves it
      e.preventDefault();
      a.dataset.state = "converting";
      try {
        a.href = await this.blob(`job/${this.id}/download?format=${encodeURIComponent(fmt.name)}`);
        a.dataset.ready = "1";
        a.click();
      } catch (exc) { this.q(".error").textContent = exc.message; }
      delete a.dataset.state;
    });
    this.q(".downloads").append(a);
  }

  async result(view) {
    const frame = this.q(".result .frame");
    const format = (view.params && view.params.output_format) || "glb";
    const offered = this.formatsOf(view.model);
    const own = offered.find((f) => f.name === format) || { suffix: `.${format}` };
    try {
      const file = await this.blob(`job/${this.id}/download`);
      this.download(format.toUpperCase(), file, `${this.id}${own.suffix}`);
      for (const fmt of offered) if (fmt.name !== format) this.lazyDownload(fmt);
      this.download("metadata.json", await this.blob(`job/${this.id}/metadata`),
                    `${this.id}.metadata.json`);
      const hasViewer = await this.viewer;
      const glb = format === "glb" ? file : offered.some((f) => f.name === "glb")
        ? await this.blob(`job/${this.id}/download?format=glb`) : null;
      if (glb && hasViewer) {
        const mv = document.createElement("model-viewer");
        for (const [k, v] of Object.entries({
          "camera-controls": "", "touch-action": "pan-y", "interaction-prompt": "none",
          "environment-image": "neutral", "tone-mapping": "neutral", exposure: "1.1",
          "shadow-intensity": "0.7", "camera-orbit": "25deg 75deg auto",
          alt: `3D result of job ${this.id}`,
        })) mv.setAttribute(k, v);
        mv.addEventListener("load", () => {
          mark(this.id, "mesh_shown");
          this.root.dataset.viewer = "loaded";
        }, { once: true });
        mv.addEventListener("error", () => {
          this.q(".message").textContent = "the viewer could not show this GLB: download it below";
        });
        mv.src = glb;
        frame.replaceChildren(mv);
      } else {
        await this.preview(frame, hasViewer ? "PLY files show as a preview image" :
          "3D viewer unavailable (its library could not be loaded): preview image shown");
      }
    } catch (exc) {
      this.q(".error").textContent = exc.message;
    }
  }

  async preview(frame, note) {
    const img = el("img");
    img.alt = `preview of job ${this.id}`;
    try {
      img.src = await this.blob(`job/${this.id}/preview`);
      frame.replaceChildren(img);
    } catch { frame.replaceChildren(); }
    this.q(".result figcaption").textContent = note;
  }

  async cancel() {
    try { this.update(await api(`job/${this.id}`, { method: "DELETE" })); }
    catch (exc) { this.q(".error").textContent = exc.message; }
  }
}
