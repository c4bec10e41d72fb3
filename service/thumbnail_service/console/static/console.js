// The thumbnail console (docs/console.md): an ES module, no framework, no build step.
// It talks to the API it is served by (URLs relative to /console), sends the key the user
// entered as X-API-Key, and keeps that key in this tab's sessionStorage only. Everything the
// API returns is written with textContent, never parsed as HTML.

const KEY_STORAGE = "thumbnail-console.api-key";
const NAMES_STORAGE = "thumbnail-console.file-names"; // job id -> the uploaded file's name
const FINAL = new Set(["succeeded", "failed"]);
const POLL_INTERVAL_MS = 1000; // one GET per unfinished job on screen, per second
const POLL_LIMIT_MS = 10 * 60 * 1000; // a job still unfinished after this: stop asking
const HEALTH_INTERVAL_MS = 5000;
const UPLOAD_CONCURRENCY = 3;

const $ = (id) => document.getElementById(id);
const apiURL = (path) => new URL(path, document.baseURI).href;
const numbers = new Intl.NumberFormat();

// -- the key ------------------------------------------------------------------------------

function apiKey() {
  return sessionStorage.getItem(KEY_STORAGE) || "";
}

function keyHeaders() {
  const key = apiKey();
  return key ? { "X-API-Key": key } : {};
}

// -- small DOM helpers ----------------------------------------------------------------------

function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name === "class") element.className = value;
    else if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

let announceTimer = null;
function announce(text) {
  // Cleared first, so that the same sentence twice is announced twice.
  const region = $("announcer");
  region.textContent = "";
  clearTimeout(announceTimer);
  announceTimer = setTimeout(() => { region.textContent = text; }, 50);
}

function formatBytes(bytes) {
  return `${numbers.format(bytes)} bytes`;
}

function shortId(id) {
  return id.slice(0, 8);
}

// -- API calls ------------------------------------------------------------------------------

class ApiFailure extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }

  // What the page shows: the API's own message, verbatim, and the HTTP status.
  describe() {
    return this.status ? `HTTP ${this.status}: ${this.message}` : this.message;
  }
}

function failureFrom(status, statusText, text) {
  try {
    const body = JSON.parse(text);
    if (body && body.error && typeof body.error.message === "string") {
      return new ApiFailure(status, body.error.code || "", body.error.message);
    }
  } catch {
    // not the API's JSON: a proxy's page, say
  }
  return new ApiFailure(status, "http_error", statusText || "the API answered with an error");
}

async function request(path, options = {}) {
  let response;
  try {
    response = await fetch(apiURL(path), {
      ...options,
      headers: { ...keyHeaders(), ...(options.headers || {}) },
      cache: "no-store",
    });
  } catch (error) {
    throw new ApiFailure(0, "network", `The API did not answer (${error.message}).`);
  }
  if (!response.ok) {
    throw failureFrom(response.status, response.statusText, await response.text());
  }
  return response;
}

async function getJSON(path) {
  return (await request(path)).json();
}

// -- health header --------------------------------------------------------------------------

const DEPENDENCY_NAMES = { postgresql: "PostgreSQL", redis: "Redis", minio: "MinIO" };

function metricValues(text, name) {
  // Prometheus text format: `name{label="value"} 1.0`; returns {labelValue: number}.
  const values = {};
  for (const line of text.split("\n")) {
    if (!line.startsWith(name + "{")) continue;
    const match = line.match(/^[^{]+\{[^=]+="([^"]*)"[^}]*\}\s+(\S+)/);
    if (match) values[match[1]] = Number(match[2]);
  }
  return values;
}

function healthItem(term, value, good) {
  return h("div", { class: good === undefined ? "" : good ? "ok" : "bad" },
    h("dt", {}, term), h("dd", {}, value));
}

async function refreshHealth() {
  const summary = $("health-summary");
  const items = [];
  try {
    const response = await fetch(apiURL("healthz/detailed"), { cache: "no-store" });
    const health = await response.json();
    summary.textContent = health.status === "ok" ? "All dependencies reachable" : health.message;
    summary.className = `health-summary ${health.status === "ok" ? "ok" : "bad"}`;
    for (const [name, check] of Object.entries(health.checks)) {
      const label = DEPENDENCY_NAMES[name] || name;
      const value = check.status === "ok" ? `ok, ${check.latency_ms} ms` : check.error || "down";
      items.push(healthItem(label, value, check.status === "ok"));
    }
    const workers = health.workers;
    items.push(healthItem("Workers",
      workers.alive === null ? "unknown" : `${workers.alive} alive`, workers.status === "ok"));
    const age = workers.oldest_queued_job_age_seconds;
    items.push(healthItem("Oldest waiting job", age === null ? "none" : `${age} s`));
  } catch (error) {
    summary.textContent = `The API did not answer its health check (${error.message}).`;
    summary.className = "health-summary bad";
  }
  try {
    const response = await fetch(apiURL("metrics"), { cache: "no-store" });
    if (response.ok) {
      const depth = metricValues(await response.text(), "thumbnail_queue_depth");
      const ready = depth.ready ?? 0;
      const delayed = depth.delayed ?? 0;
      items.push(healthItem("Queue", `${ready} ready, ${delayed} delayed`));
    }
  } catch {
    // the health line above already says the API is unreachable
  }
  $("health-details").replaceChildren(...items);
  setTimeout(refreshHealth, HEALTH_INTERVAL_MS);
}

// -- file names (the API does not keep them) ------------------------------------------------

const fileNames = new Map(Object.entries(JSON.parse(sessionStorage.getItem(NAMES_STORAGE) || "{}")));

function rememberName(jobId, name) {
  fileNames.set(jobId, name);
  const recent = [...fileNames].slice(-200);
  sessionStorage.setItem(NAMES_STORAGE, JSON.stringify(Object.fromEntries(recent)));
}

function jobLabel(job) {
  return fileNames.get(job.id) || `Job ${shortId(job.id)}`;
}

// -- thumbnails as blob: URLs (the download needs the key, an <img src> cannot send it) -----

const blobURLs = new Map(); // "<job id>/<name>" -> blob: URL

async function thumbnailURL(jobId, name) {
  const cacheKey = `${jobId}/${name}`;
  if (!blobURLs.has(cacheKey)) {
    const path = `v1/jobs/${jobId}/thumbnails/${encodeURIComponent(name)}`;
    const blob = await (await request(path)).blob();
    blobURLs.set(cacheKey, URL.createObjectURL(blob));
  }
  return blobURLs.get(cacheKey);
}

function forgetThumbnails(keep = () => false) {
  for (const [cacheKey, url] of blobURLs) {
    if (!keep(cacheKey.split("/")[0])) {
      URL.revokeObjectURL(url);
      blobURLs.delete(cacheKey);
    }
  }
}

// -- the viewer -----------------------------------------------------------------------------

async function openViewer(job, thumbnail) {
  const dialog = $("viewer");
  const image = $("viewer-image");
  const url = await thumbnailURL(job.id, thumbnail.name);
  const extension = thumbnail.format === "jpeg" ? "jpg" : thumbnail.format;
  $("viewer-title").textContent = `${thumbnail.name} of ${jobLabel(job)}`;
  image.src = url;
  image.alt = `${thumbnail.name} thumbnail of ${jobLabel(job)}, ${thumbnail.width}×${thumbnail.height}`;
  $("viewer-caption").textContent =
    `${thumbnail.width}×${thumbnail.height} ${thumbnail.format.toUpperCase()}, ` +
    `${formatBytes(thumbnail.bytes)}`;
  $("viewer-open").href = url;
  $("viewer-download").href = url;
  $("viewer-download").download = `${job.id}-${thumbnail.name}.${extension}`;
  dialog.showModal();
  $("viewer-close").focus();
}

// -- jobs -------------------------------------------------------------------------------------

const list = {
  status: "",
  perPage: 10,
  cursors: [null], // cursors[i]: the cursor of page i (null: the newest)
  page: 0,
  nextCursor: null,
  jobs: new Map(), // id -> job, those on screen
};
const watched = new Map(); // job id -> deadline (ms) for polling it
let pollTimer = null;

function statusText(status) {
  return status.charAt(0).toUpperCase() + status.slice(1);
}

function jobCard(job) {
  const label = jobLabel(job);
  const titleId = `job-${job.id}-title`;
  const original = job.original;
  const created = new Date(job.created_at).toLocaleString();
  const thumbnails = job.thumbnails.map((thumbnail) => {
    const image = h("img", {
      alt: `${thumbnail.name} thumbnail of ${label}, ${thumbnail.width}×${thumbnail.height}`,
      width: thumbnail.width,
      height: thumbnail.height,
    });
    thumbnailURL(job.id, thumbnail.name).then(
      (url) => { image.src = url; },
      (error) => { image.alt = `${thumbnail.name}: ${error.describe ? error.describe() : error}`; },
    );
    return h("li", { class: "thumbnail", "data-name": thumbnail.name },
      h("figure", {},
        h("button", {
          type: "button",
          class: "thumb",
          "aria-label": `Open ${thumbnail.name} (${thumbnail.width}×${thumbnail.height} ` +
            `${thumbnail.format.toUpperCase()}, ${formatBytes(thumbnail.bytes)})`,
          onclick: () => openViewer(job, thumbnail).catch((error) => showJobError(job.id, error)),
        }, image),
        h("figcaption", {},
          h("span", { class: "thumb-name" }, thumbnail.name),
          h("span", { class: "thumb-size" },
            `${thumbnail.width}×${thumbnail.height} ${thumbnail.format.toUpperCase()}`),
          h("span", { class: "thumb-bytes" }, formatBytes(thumbnail.bytes)))));
  });
  const attempts = job.attempts === 1 ? "1 attempt" : `${job.attempts} attempts`;
  return h("li", { class: "job", "data-job-id": job.id, "data-status": job.status },
    h("article", { "aria-labelledby": titleId },
      h("div", { class: "job-head" },
        h("h3", { id: titleId }, label, " ", h("span", { class: "job-id" }, shortId(job.id))),
        h("p", { class: `status status-${job.status}` }, statusText(job.status))),
      h("p", { class: "job-meta" },
        `Original: ${original.format.toUpperCase()} ${original.width}×${original.height}, ` +
        `${formatBytes(original.bytes)} · submitted ${created} · ${attempts}`),
      job.error ? h("p", { class: "job-error" }, `Error: ${job.error}`) : null,
      h("p", { class: "job-error", "data-role": "action-error", hidden: true }),
      thumbnails.length
        ? h("ul", { class: "thumbs", "aria-label": `Thumbnails of ${label}` }, thumbnails)
        : null,
      h("div", { class: "job-actions" },
        h("button", {
          type: "button",
          class: "danger delete",
          "aria-label": `Delete ${label} (job ${shortId(job.id)})`,
          onclick: (event) => deleteJob(job, event.currentTarget),
        }, "Delete job"))));
}

function renderJob(job) {
  const jobs = $("jobs");
  const old = jobs.querySelector(`[data-job-id="${job.id}"]`);
  const card = jobCard(job);
  if (old) {
    const hadFocus = old.contains(document.activeElement);
    old.replaceWith(card);
    if (hadFocus) card.querySelector("button.delete").focus();
  } else {
    jobs.prepend(card);
  }
  list.jobs.set(job.id, job);
  updateJobsState();
}

function updateJobsState() {
  const count = $("jobs").children.length;
  $("jobs-state").textContent = count ? "" : "No jobs here.";
}

function showJobError(jobId, error) {
  const card = $("jobs").querySelector(`[data-job-id="${jobId}"]`);
  const line = card && card.querySelector('[data-role="action-error"]');
  const text = error.describe ? error.describe() : String(error);
  if (line) {
    line.textContent = text;
    line.hidden = false;
  }
  announce(text);
}

function removeJob(jobId) {
  $("jobs").querySelector(`[data-job-id="${jobId}"]`)?.remove();
  list.jobs.delete(jobId);
  watched.delete(jobId);
  forgetThumbnails((id) => id !== jobId);
  updateJobsState();
}

async function deleteJob(job, button) {
  const label = jobLabel(job);
  if (!window.confirm(`Delete ${label} (job ${shortId(job.id)}) with its original and thumbnails?`)) {
    return;
  }
  button.disabled = true;
  try {
    await request(`v1/jobs/${job.id}`, { method: "DELETE" });
  } catch (error) {
    if (!(error instanceof ApiFailure && error.status === 404)) { // 404: already gone
      button.disabled = false;
      showJobError(job.id, error);
      return;
    }
  }
  const card = $("jobs").querySelector(`[data-job-id="${job.id}"]`);
  const next = card?.nextElementSibling || card?.previousElementSibling;
  removeJob(job.id);
  announce(`Deleted ${label}.`);
  (next?.querySelector("button.delete") || $("jobs-title")).focus();
}

function watch(jobId) {
  if (!watched.has(jobId)) watched.set(jobId, Date.now() + POLL_LIMIT_MS);
  if (pollTimer === null) pollTimer = setTimeout(poll, POLL_INTERVAL_MS);
}

async function poll() {
  for (const [jobId, deadline] of [...watched]) {
    if (Date.now() > deadline) {
      watched.delete(jobId);
      continue;
    }
    try {
      const job = await getJSON(`v1/jobs/${jobId}`);
      const before = list.jobs.get(jobId);
      if (list.jobs.has(jobId) && (before.status !== job.status || before.attempts !== job.attempts)) {
        renderJob(job);
      }
      uploadFollowsJob(job);
      if (FINAL.has(job.status)) {
        watched.delete(jobId);
        announce(`${jobLabel(job)}: ${job.status}.`);
      }
    } catch (error) {
      if (error instanceof ApiFailure && (error.status === 404 || error.status === 401)) {
        watched.delete(jobId); // deleted elsewhere, or the key changed: stop asking
        if (error.status === 404) removeJob(jobId);
      } // anything else (a 503, the network): ask again next round
    }
  }
  pollTimer = watched.size ? setTimeout(poll, POLL_INTERVAL_MS) : null;
}

async function loadJobs() {
  const jobs = $("jobs");
  const params = new URLSearchParams({ limit: String(list.perPage) });
  if (list.status) params.set("status", list.status);
  const cursor = list.cursors[list.page];
  if (cursor) params.set("cursor", cursor);
  jobs.setAttribute("aria-busy", "true");
  try {
    const page = await getJSON(`v1/jobs?${params}`);
    list.jobs.clear();
    forgetThumbnails((id) => page.items.some((job) => job.id === id));
    jobs.replaceChildren();
    for (const job of [...page.items].reverse()) renderJob(job); // renderJob prepends
    for (const job of page.items) if (!FINAL.has(job.status)) watch(job.id);
    list.nextCursor = page.next_cursor;
    $("jobs-state").textContent = page.items.length ? "" : "No jobs here.";
  } catch (error) {
    jobs.replaceChildren();
    list.nextCursor = null;
    $("jobs-state").textContent = error.status === 401
      ? `Enter a valid API key to list the jobs (${error.describe()}).`
      : `Could not list the jobs: ${error.describe()}`;
  } finally {
    jobs.removeAttribute("aria-busy");
    $("page-label").textContent = `Page ${list.page + 1}`;
    $("newer").disabled = list.page === 0;
    $("older").disabled = !list.nextCursor;
  }
}

function firstPage() {
  list.cursors = [null];
  list.page = 0;
  return loadJobs();
}

// -- uploads ----------------------------------------------------------------------------------

const uploadRows = new Map(); // job id -> the upload's state element

function uploadFollowsJob(job) {
  const state = uploadRows.get(job.id);
  if (!state) return;
  const count = job.thumbnails.length;
  state.textContent = job.status === "succeeded"
    ? `Job ${shortId(job.id)} succeeded: ${count} thumbnail${count === 1 ? "" : "s"}`
    : job.status === "failed"
      ? `Job ${shortId(job.id)} failed: ${job.error}`
      : `Job ${shortId(job.id)} ${job.status}`;
  state.closest(".upload").className = `upload ${job.status === "failed" ? "rejected" : job.status === "succeeded" ? "done" : ""}`;
  if (FINAL.has(job.status)) uploadRows.delete(job.id);
}

function uploadOne(file, sizes) {
  const progress = h("progress", { max: 100, value: 0, "aria-label": `Upload of ${file.name}` });
  const state = h("span", { class: "upload-state" }, "Waiting");
  const row = h("li", { class: "upload", "data-file": file.name },
    h("span", { class: "file-name" }, file.name), progress, state);
  $("uploads").append(row);
  return () => new Promise((resolve) => {
    const form = new FormData();
    form.append("file", file, file.name);
    if (sizes) form.append("sizes", sizes);
    const xhr = new XMLHttpRequest(); // fetch() reports no upload progress
    xhr.open("POST", apiURL("v1/jobs"));
    for (const [name, value] of Object.entries(keyHeaders())) xhr.setRequestHeader(name, value);
    xhr.upload.addEventListener("progress", (event) => {
      if (!event.lengthComputable) return;
      progress.value = Math.round((event.loaded / event.total) * 100);
      state.textContent = `Uploading, ${progress.value}%`;
    });
    xhr.addEventListener("load", () => {
      if (xhr.status === 202) {
        const job = JSON.parse(xhr.responseText);
        progress.value = 100;
        rememberName(job.id, file.name);
        uploadRows.set(job.id, state);
        state.textContent = `Job ${shortId(job.id)} queued`;
        row.dataset.jobId = job.id;
        if (list.page === 0 && (!list.status || list.status === job.status)) renderJob(job);
        watch(job.id);
        announce(`${file.name} uploaded: job ${shortId(job.id)} queued.`);
      } else {
        const failure = failureFrom(xhr.status, xhr.statusText, xhr.responseText);
        row.classList.add("rejected");
        state.textContent = `Rejected: ${failure.describe()}`;
        announce(`${file.name} rejected: ${failure.message}`);
      }
      resolve();
    });
    const broken = (why) => () => {
      row.classList.add("rejected");
      state.textContent = `Upload failed: ${why}`;
      announce(`${file.name}: upload failed.`);
      resolve();
    };
    xhr.addEventListener("error", broken("the connection closed before the API answered"));
    xhr.addEventListener("timeout", broken("no answer within 10 minutes"));
    xhr.timeout = 10 * 60 * 1000;
    state.textContent = "Uploading, 0%";
    xhr.send(form);
  });
}

async function uploadAll(files) {
  const sizes = $("sizes").value.trim();
  const queue = [...files].map((file) => uploadOne(file, sizes));
  const lanes = Array.from({ length: Math.min(UPLOAD_CONCURRENCY, queue.length) }, async () => {
    while (queue.length) await queue.shift()();
  });
  await Promise.all(lanes);
}

// -- wiring -----------------------------------------------------------------------------------

function showKeyState() {
  $("key-state").textContent = apiKey()
    ? "A key is in use for this tab (session storage only: closing the tab forgets it)."
    : "No key yet. It is kept in this tab's session storage only: closing the tab forgets it.";
}

function wire() {
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("api-key");
    sessionStorage.setItem(KEY_STORAGE, input.value.trim());
    input.value = "";
    showKeyState();
    announce("Key saved for this tab.");
    firstPage();
  });
  $("forget-key").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORAGE);
    forgetThumbnails();
    showKeyState();
    announce("Key forgotten.");
    firstPage();
  });

  const input = $("files");
  input.addEventListener("change", () => {
    const files = [...input.files];
    input.value = ""; // the same file may be chosen again
    if (files.length) uploadAll(files);
  });
  const zone = $("drop-zone");
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("dragging");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    const files = [...event.dataTransfer.files];
    if (files.length) uploadAll(files);
  });

  $("status-filter").addEventListener("change", (event) => {
    list.status = event.target.value;
    firstPage();
  });
  $("per-page").addEventListener("change", (event) => {
    list.perPage = Number(event.target.value);
    firstPage();
  });
  $("refresh").addEventListener("click", () => loadJobs());
  $("older").addEventListener("click", () => {
    list.cursors[list.page + 1] = list.nextCursor;
    list.page += 1;
    loadJobs().then(() => $("jobs-title").focus());
  });
  $("newer").addEventListener("click", () => {
    list.page = Math.max(0, list.page - 1);
    loadJobs().then(() => $("jobs-title").focus());
  });

  const viewer = $("viewer");
  $("viewer-close").addEventListener("click", () => viewer.close());
  viewer.addEventListener("click", (event) => {
    if (event.target === viewer) viewer.close(); // a click on the backdrop
  });
}

wire();
showKeyState();
refreshHealth();
firstPage();
