// tracesynth pages: a thin layer over the JSON API (same origin; the sign-in cookie travels along).
"use strict";

async function api(method, url, body, headers) {
  const response = await fetch(url, { method, body, headers: headers || {}, credentials: "same-origin" });
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = { detail: text }; }
  if (!response.ok) {
    let detail = data && data.detail;
    if (Array.isArray(detail)) detail = detail.map(d => (d.loc || []).slice(1).join(".") + ": " + d.msg).join("; ");
    throw new Error(`${response.status}: ${detail || response.statusText}`);
  }
  return data;
}

function fmtDuration(s) {
  if (s === null || s === undefined) return "";
  if (s < 60) return `${Math.round(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${(s / 3600).toFixed(1)} h`;
}

function setupUpload() {
  const form = document.getElementById("upload-form");
  if (!form) return;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = document.getElementById("upload-file").files[0];
    const status = document.getElementById("upload-status");
    if (!file) return;
    status.textContent = "uploading and checking…";
    try {
      const upload = await api("POST", "/api/uploads?filename=" + encodeURIComponent(file.name), file,
                               { "Content-Type": "application/octet-stream" });
      window.location.href = "/uploads/" + upload.id;
    } catch (e) { status.textContent = e.message; status.className = "status error"; }
  });
}

function setupJobForm() {
  const form = document.getElementById("job-form");
  if (!form) return;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const f = new FormData(form);
    const status = document.getElementById("job-status");
    const request = { upload_id: form.dataset.upload, preset: f.get("preset"),
                      epochs: Number(f.get("epochs")), seed: Number(f.get("seed") || 0) };
    const size = Number(f.get("size_value"));
    if (f.get("size_mode") === "count") request.count = Math.round(size); else request.scale = size;
    if (f.get("dp_epsilon")) request.dp_epsilon = Number(f.get("dp_epsilon"));
    try {
      if (f.get("overrides").trim()) request.overrides = JSON.parse(f.get("overrides"));
      const job = await api("POST", "/api/jobs", JSON.stringify(request), { "Content-Type": "application/json" });
      window.location.href = "/jobs/" + job.id;
    } catch (e) { status.textContent = e.message; status.className = "status error"; }
  });
}

function describe(job) {
  const p = job.progress || {};
  if (job.status === "queued") return "queued: waiting for a free worker";
  if (job.status === "done") return "done" + (job.finished && job.started ? ` in ${fmtDuration(job.finished - job.started)}` : "");
  if (!p.step) return job.status;
  const parts = [`step ${p.step_index + 1}/${p.steps}: ${p.step}`];
  if (p.chunk !== undefined) parts.push(`chunk ${p.chunk}`);
  if (p.epoch !== undefined) parts.push(`epoch ${p.epoch}${p.info && p.info.epochs ? "/" + p.info.epochs : ""}`);
  if (p.done !== undefined && p.total) parts.push(`${Math.round(p.done)}/${Math.round(p.total)} ${p.unit || ""}`.trim());
  if (p.eta_s !== undefined && p.eta_s !== null) parts.push(`ETA ${fmtDuration(p.eta_s)}`);
  return parts.join(" · ");
}

function overallFraction(job) {
  const p = job.progress || {};
  if (job.status === "done") return 1;
  if (!p.step) return 0;
  const weights = [0.85, 0.1, 0.05], start = weights.slice(0, p.step_index).reduce((a, b) => a + b, 0);
  return start + weights[p.step_index] * (p.fraction || 0);
}

function setupJobPage() {
  const card = document.getElementById("job");
  if (!card) return;
  const id = card.dataset.job, url = "/api/jobs/" + id;
  const show = (job) => {
    const state = document.getElementById("job-state");
    state.textContent = job.status; state.className = "badge " + job.status;
    document.getElementById("bar").style.width = (100 * overallFraction(job)).toFixed(1) + "%";
    document.getElementById("progress-text").textContent = describe(job);
    const error = document.getElementById("job-error");
    error.hidden = !job.error; error.textContent = job.error || "";
    document.getElementById("results").hidden = !job.outputs.synthetic;
    document.getElementById("report").hidden = !job.outputs.report;
    document.getElementById("cancel").disabled = !["queued", "running"].includes(job.status);
    document.getElementById("resume").disabled = !job.resumable;
  };
  const poll = async () => {
    try {
      const job = await api("GET", url);
      show(job);
      if (["queued", "running"].includes(job.status)) setTimeout(poll, 1000);
    } catch (e) { document.getElementById("progress-text").textContent = e.message; }
  };
  card.querySelectorAll("button[data-action]").forEach((button) => {
    button.addEventListener("click", async () => {
      const action = button.dataset.action;
      try {
        if (action === "delete") {
          if (!window.confirm("Delete this job and its files?")) return;
          await api("DELETE", url); window.location.href = "/"; return;
        }
        show(await api("POST", `${url}/${action}`));
        poll();
      } catch (e) { document.getElementById("progress-text").textContent = e.message; }
    });
  });
  poll();
}

document.addEventListener("DOMContentLoaded", () => { setupUpload(); setupJobForm(); setupJobPage(); });
