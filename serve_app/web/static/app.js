// reelserve's page: submit a video as a job, follow its event stream, then watch the result.
// Plain DOM, no build step. URLs are relative so the page works under a route prefix.
"use strict";

const KEY_STORAGE = "reelserve.apiKey"; // sessionStorage: this tab only; never put in a URL
const $ = (id) => document.getElementById(id);

// -- the API, with the key in a header --------------------------------------------------
class ApiError extends Error {
  constructor(status, problem) {
    super(`${problem.title || "HTTP " + status}: ${problem.detail || ""}`);
    this.status = status;
    this.problem = problem;
  }
}

let keyPrompt = null; // one dialog at a time, whoever asked first

function askForKey(reason) {
  if (keyPrompt) return keyPrompt;
  const dialog = $("key-dialog");
  $("key-reason").textContent = reason || "This server needs an API key.";
  $("key-input").value = "";
  keyPrompt = new Promise((resolve, reject) => {
    const done = (ok) => {
      dialog.removeEventListener("close", onClose);
      keyPrompt = null;
      ok ? resolve() : reject(new Error("an API key is needed"));
    };
    const onClose = () => {
      const key = $("key-input").value.trim();
      if (dialog.returnValue === "save" && key) {
        sessionStorage.setItem(KEY_STORAGE, key);
        done(true);
      } else {
        done(false);
      }
    };
    dialog.addEventListener("close", onClose);
    dialog.returnValue = "";
    dialog.showModal();
    $("key-input").focus();
  });
  return keyPrompt;
}

async function api(path, options = {}) {
  for (;;) {
    const headers = new Headers(options.headers || {});
    const key = sessionStorage.getItem(KEY_STORAGE);
    if (key) headers.set("Authorization", `Bearer ${key}`);
    const response = await fetch(path, { ...options, headers });
    if (response.status !== 401) return response;
    const problem = await problemOf(response);
    sessionStorage.removeItem(KEY_STORAGE);
    await askForKey(key ? `The key was refused: ${problem.detail || ""}` : "This server needs an API key.");
  }
}

async function problemOf(response) {
  try {
    return await response.json();
  } catch {
    return { title: `HTTP ${response.status}`, detail: response.statusText };
  }
}

async function apiJson(path, options) {
  const response = await api(path, options);
  if (!response.ok) throw new ApiError(response.status, await problemOf(response));
  return response.json();
}

// -- formatting -------------------------------------------------------------------------
function clock(seconds) {
  const whole = Math.floor(Math.max(0, seconds));
  const h = Math.floor(whole / 3600), m = Math.floor((whole % 3600) / 60), s = whole % 60;
  const mm = String(m).padStart(2, "0"), ss = String(s).padStart(2, "0");
  return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child); // text is text: model output is never markup
  return node;
}

function timeSpan(seconds) {
  return el("span", { class: "time" }, clock(seconds));
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// -- Server-Sent Events over fetch (EventSource cannot send the key as a header) -------------
// Parses the event-stream format (event, data, id, retry; comments), and reconnects with
// Last-Event-ID whenever a stream ends without `result`/`end` (its window closed).
async function followEvents(jobId, onEvent) {
  let lastId = null;
  let retryMs = 1000;
  for (;;) {
    const headers = lastId ? { "Last-Event-ID": lastId } : {};
    const response = await api(`v1/jobs/${jobId}/events`, { headers });
    if (!response.ok) throw new ApiError(response.status, await problemOf(response));
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let event = { type: "message", data: [], id: null };
    let finished = false;
    const dispatch = () => {
      if (event.id !== null && event.type === "chunk") lastId = event.id;
      if (event.data.length) {
        const data = JSON.parse(event.data.join("\n"));
        onEvent(event.type, data);
        if (event.type === "result" || event.type === "end") finished = true;
      }
      event = { type: "message", data: [], id: null };
    };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      const lines = buffer.split(/\r\n|\n|\r/);
      buffer = lines.pop(); // an incomplete line waits for the rest
      for (const line of lines) {
        if (line === "") dispatch();
        else if (line.startsWith(":")) continue; // a comment (keep-alive)
        else {
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          let value = colon < 0 ? "" : line.slice(colon + 1);
          if (value.startsWith(" ")) value = value.slice(1);
          if (field === "event") event.type = value;
          else if (field === "data") event.data.push(value);
          else if (field === "id") event.id = value;
          else if (field === "retry" && /^\d+$/.test(value)) retryMs = Number(value);
        }
      }
      if (finished) {
        reader.cancel();
        return;
      }
    }
    await sleep(retryMs);
  }
}

// -- submitting -----------------------------------------------------------------------------
async function submit(event) {
  event.preventDefault();
  const status = $("submit-status");
  const file = $("file").files[0];
  const url = $("video-url").value.trim();
  if (!file && !url) {
    status.textContent = "Choose a video file or give a URL.";
    $("file").focus();
    return;
  }
  const fields = { mode: $("mode").value, audio: $("audio").checked ? "auto" : "off" };
  const prompt = $("prompt").value.trim();
  if (prompt) fields.prompt = prompt;
  let options;
  if (file) {
    const form = new FormData();
    for (const [name, value] of Object.entries(fields)) form.append(name, value);
    form.append("file", file, file.name);
    options = { method: "POST", body: form };
  } else {
    options = {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ video_url: url, ...fields }),
    };
  }
  $("submit-button").disabled = true;
  status.textContent = file ? `Uploading ${file.name}…` : "Fetching the video…";
  try {
    const job = await apiJson("v1/jobs", options);
    status.textContent = `Job ${job.id} queued.`;
    refreshJobs();
    openJob(job);
  } catch (error) {
    status.textContent = `Not submitted: ${error.message}`;
  } finally {
    $("submit-button").disabled = false;
  }
}

// -- following a job ------------------------------------------------------------------------
let following = null; // the job whose events are shown

function showProgress(job) {
  const p = job.progress;
  const label = $("progress-label");
  const bar = $("progress-bar");
  if (p.chunks_total) {
    bar.max = p.chunks_total;
    bar.value = p.chunks_done;
    const failed = p.chunks_failed ? `, ${p.chunks_failed} failed` : "";
    const eta = p.eta_s != null && job.status === "running" ? `, about ${Math.ceil(p.eta_s)} s left` : "";
    label.textContent = `${job.status}: ${p.chunks_done} of ${p.chunks_total} chunks${failed}${eta}`;
  } else {
    label.textContent = `${job.status}…`;
  }
}

function chunkHeadline(chunk) {
  if (chunk.error) return `failed: ${chunk.error}`;
  const out = chunk.output || {};
  for (const key of ["activity", "scene", "context", "summary", "description"]) {
    if (typeof out[key] === "string" && out[key].trim()) return out[key];
  }
  return chunk.text || JSON.stringify(out).slice(0, 160);
}

async function openJob(job) {
  following = job.id;
  $("result").hidden = true;
  $("progress").hidden = false;
  $("chunk-list").replaceChildren();
  showProgress(job);
  $("progress").scrollIntoView({ block: "start" });
  try {
    await followEvents(job.id, (type, data) => {
      if (following !== job.id) return;
      if (type === "chunk") {
        const item = el("li", data.error ? { class: "failed" } : {}, timeSpan(data.start_s), chunkHeadline(data));
        $("chunk-list").append(item);
      } else if (type === "progress") {
        showProgress(data);
      } else if (type === "result") {
        $("progress-label").textContent = "succeeded";
        showResult(job.id, data).catch((error) => {
          $("progress-label").textContent = `Could not show the result: ${error.message}`;
        });
      } else if (type === "end") {
        showProgress({ ...data, progress: {} });
        $("progress-label").textContent = `${data.status}${data.error ? ": " + data.error : ""}`;
      }
    });
  } catch (error) {
    $("progress-label").textContent = `Lost the job's events: ${error.message}`;
  }
  refreshJobs();
}

// -- the result view ------------------------------------------------------------------------
let renewTimer = null;

async function startPlayback(jobId) {
  // A short-lived cookie for this job's video and images (serve_app/http/media_token.py): <video> and
  // <img> load by URL and cannot send the key, which must never go in a URL.
  const playback = await apiJson(`v1/jobs/${jobId}/playback`, { method: "POST" });
  clearTimeout(renewTimer);
  if (playback.expires_in_s) {
    renewTimer = setTimeout(() => following === jobId && startPlayback(jobId), (playback.expires_in_s * 1000) / 2);
  }
}

function seek(seconds) {
  $("player").currentTime = seconds; // focus stays on the list: a keyboard user goes on from there
}

async function showResult(jobId, analysis) {
  await startPlayback(jobId);
  const result = $("result");
  result.hidden = false;
  result.dataset.job = jobId;
  $("result-title").textContent = analysis.summary?.title || `Result of job ${jobId}`;

  const player = $("player");
  const note = $("player-note");
  note.hidden = true;
  player.onerror = () => {
    note.hidden = false;
    note.textContent = "This browser cannot play this video (or it is no longer kept); chapters and frames still work.";
  };
  player.src = `v1/jobs/${jobId}/media`;

  const [chapters, thumbs] = await Promise.all([
    apiJson(`v1/jobs/${jobId}/chapters.json`),
    apiJson(`v1/jobs/${jobId}/thumbnails`),
  ]);
  $("chapters").replaceChildren(
    ...chapters.map((c) =>
      el("li", {}, el("button", { type: "button", "data-start": c.start_s, onclick: () => seek(c.start_s) },
        timeSpan(c.start_s), c.title)),
    ),
  );
  if (!chapters.length) $("chapters").append(el("li", { class: "note" }, "No chapters (the timeline is empty)."));

  $("thumbs").replaceChildren(
    ...thumbs.map((t) =>
      el("li", {}, el("button", { type: "button", "data-time": t.time_s, onclick: () => seek(t.time_s),
        "aria-label": `Frame at ${clock(t.time_s)}` },
        el("img", { src: t.url.replace(/^\//, ""), alt: "", decoding: "async" }), timeSpan(t.time_s))),
    ),
  );

  const segments = analysis.transcript?.segments || [];
  $("transcript").replaceChildren(
    ...segments.map((s) =>
      el("li", { "data-start": s.start_s, "data-end": s.end_s },
        el("button", { type: "button", onclick: () => seek(s.start_s) }, timeSpan(s.start_s), s.text)),
    ),
  );
  if (!segments.length) {
    const why = analysis.transcript_error || (analysis.video.has_audio ? "no speech was found" : "the video has no audio");
    $("transcript").append(el("li", { class: "note" }, `No transcript: ${why}.`));
  }

  const summary = $("summary");
  if (analysis.summary) {
    summary.replaceChildren(el("p", {}, analysis.summary.summary),
      el("ul", {}, ...analysis.summary.key_points.map((point) => el("li", {}, point))));
  } else {
    summary.replaceChildren(el("p", { class: "note" }, analysis.summary_error ? `No summary: ${analysis.summary_error}` : "No summary was asked for."));
  }
  result.scrollIntoView({ block: "start" });
  $("result-title").setAttribute("tabindex", "-1");
  $("result-title").focus();
}

let highlighted = null; // the transcript line marked current

function highlight() {
  const t = $("player").currentTime;
  const list = $("transcript");
  let current = null;
  for (const item of list.children) {
    const on = item.dataset.start !== undefined && t >= Number(item.dataset.start) && t < Number(item.dataset.end);
    item.classList.toggle("current", on);
    if (on) {
      item.setAttribute("aria-current", "true");
      current = current || item;
    } else {
      item.removeAttribute("aria-current");
    }
  }
  if (current && current !== highlighted) {
    // Scroll the transcript box only, not the page: the viewer may be watching the player.
    list.scrollTop = current.offsetTop - list.offsetTop - list.clientHeight / 3;
  }
  highlighted = current;
  const frames = [...$("thumbs").querySelectorAll("button")];
  const shown = frames.filter((b) => Number(b.dataset.time) <= t + 1e-3).pop();
  for (const b of frames) b.classList.toggle("current", b === shown);
}

async function download(event) {
  const button = event.target.closest("button[data-download]");
  if (!button) return;
  const jobId = $("result").dataset.job;
  const status = $("download-status");
  try {
    // fetch → Blob: these are small, and the key stays in a header.
    const response = await api(`v1/jobs/${jobId}/${button.dataset.download}`);
    if (!response.ok) throw new ApiError(response.status, await problemOf(response));
    const link = el("a", { href: URL.createObjectURL(await response.blob()), download: `${jobId}-${button.dataset.name}` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
    status.textContent = `Downloaded ${button.dataset.name}.`;
  } catch (error) {
    status.textContent = `${button.dataset.name}: ${error.message}`;
  }
}

// -- the jobs list ----------------------------------------------------------------------------
async function refreshJobs() {
  const status = $("jobs-status");
  try {
    const { jobs } = await apiJson("v1/jobs?limit=20");
    $("jobs-body").replaceChildren(
      ...jobs.map((job) => {
        const p = job.progress;
        const when = new Date(job.created_at * 1000).toLocaleString();
        const action = el("button", { type: "button", onclick: () => openJob(job), "aria-label": `Open job ${job.source}` },
          job.status === "succeeded" ? "View" : "Follow");
        return el("tr", { "data-job": job.id },
          el("td", {}, job.source), el("td", {}, job.request.mode),
          el("td", { class: `status-${job.status}` }, job.status),
          el("td", {}, p.chunks_total ? `${p.chunks_done}/${p.chunks_total}` : "–"),
          el("td", {}, when), el("td", {}, action));
      }),
    );
    status.textContent = jobs.length ? "" : "No jobs yet.";
  } catch (error) {
    status.textContent = `Could not list jobs: ${error.message}`;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("submit-form").addEventListener("submit", submit);
  $("jobs-refresh").addEventListener("click", refreshJobs);
  $("downloads").addEventListener("click", download);
  $("player").addEventListener("timeupdate", highlight);
  $("player").addEventListener("seeked", highlight);
  $("key-button").addEventListener("click", () => askForKey("Enter an API key for this server.").then(refreshJobs, () => {}));
  $("key-cancel").addEventListener("click", () => $("key-dialog").close());
  refreshJobs();
});
