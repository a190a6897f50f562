// Isengard's web UI: plain modern JavaScript, no build step. Pages are chosen by the
// URL's hash (#/studies, #/study/ID, #/upload, #/jobs, #/system); every call goes to the
// REST API of the same origin, so the browser's login to the API is the UI's.

const API = "..";  // The UI lives at <prefix>/ui/: the API is one level up.
const PAGE_SIZE = 25;
const UPLOADS_AT_ONCE = 3;

const main = document.getElementById("main");
let leavePage = () => {};  // Closes what the current page keeps open (event streams).

// -- small helpers ---------------------------------------------------------------------

/** An element with attributes (on* are listeners) and children (strings become text). */
function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(element.dataset, value);
    else element.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

/** An error the server answered: its message is Orthanc's Details, else its Message. */
class ApiError extends Error {
  constructor(status, body, path) {
    const text = body && (body.Details || body.Message);
    super(text ? `${text} (HTTP ${status})` : `HTTP ${status} on ${path}`);
    this.status = status;
  }
}

/** Calls the REST API; JSON bodies are sent as JSON, and answers parsed when JSON. */
async function api(method, path, body) {
  const init = { method, headers: {} };
  if (body instanceof Blob || body instanceof ArrayBuffer) init.body = body;
  else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  let response;
  try {
    response = await fetch(API + path, init);
  } catch (error) {
    throw new Error(`The server cannot be reached (${error.message})`);
  }
  const text = await response.text();
  let parsed = text;
  if ((response.headers.get("Content-Type") || "").includes("json") && text) {
    try { parsed = JSON.parse(text); } catch { parsed = text; }
  }
  if (!response.ok) throw new ApiError(response.status, typeof parsed === "object" ? parsed : null, path);
  return parsed;
}

function showError(error) {
  document.getElementById("error-text").textContent = error.message || String(error);
  document.getElementById("error").hidden = false;
}

function clearError() {
  document.getElementById("error").hidden = true;
}

/** Runs an action of the person's, showing what fails instead of swallowing it. */
async function attempt(action) {
  try {
    clearError();
    return await action();
  } catch (error) {
    showError(error);
    return undefined;
  }
}

function formatDate(value) {
  return /^\d{8}$/.test(value || "") ? `${value.slice(0, 4)}-${value.slice(4, 6)}-${value.slice(6)}` : (value || "");
}

function formatBytes(count) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = Number(count) || 0, unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return `${value.toFixed(unit ? 1 : 0)} ${units[unit]}`;
}

function table(headers, rows) {
  return h("div", { class: "table-wrap" },
    h("table", {}, h("thead", {}, h("tr", {}, headers.map((text) => h("th", { scope: "col" }, text)))),
      h("tbody", {}, rows)));
}

/** The events of ``/jobs/events``: each carries the job's ID, State, Progress and Type. */
const JOB_EVENTS = ["submitted", "running", "progress", "paused", "resumed", "retry", "canceled",
  "resubmitted", "success", "failure"];

/** Follows one job through ``/jobs/events?job=ID`` (no polling) until it ends. */
function followJob(jobId, onUpdate) {
  return new Promise((resolve, reject) => {
    const source = new EventSource(`${API}/jobs/events?job=${encodeURIComponent(jobId)}`);
    let ended = false;
    const update = (job) => {
      // The first read may answer after the job's last event: its older state is not shown.
      if (ended) return;
      onUpdate(job);
      if (["Success", "Failure"].includes(job.State)) {
        ended = true;
        source.close();
        if (job.State === "Success") resolve(job);
        else reject(new Error(job.ErrorDescription || "The job failed"));
      }
    };
    // Once subscribed, read the job once: it may have ended before the stream opened.
    source.addEventListener("open", () => api("GET", `/jobs/${jobId}`).then(update, (error) => {
      source.close();
      reject(error);
    }));
    for (const name of JOB_EVENTS) {
      source.addEventListener(name, (event) => update(JSON.parse(event.data)));
    }
  });
}

// -- studies ---------------------------------------------------------------------------

const studyFilters = { PatientName: "", PatientID: "", AccessionNumber: "", StudyDescription: "",
  ModalitiesInStudy: "", from: "", to: "", Labels: "", sort: { column: "StudyDate", direction: "DESC" }, page: 0 };

/** The labels typed in a field: separated by commas or spaces. */
function labelList(text) {
  return text.split(/[\s,]+/).filter(Boolean);
}
let extendedFind = null;  // Whether /tools/find sorts and /tools/count-resources counts.
let labels = false;  // Whether resources have labels (Orthanc 1.12).

/** /system tells what the server has: labels (Orthanc 1.12), the extended find (1.12.5: OrderBy, counts). */
async function hasExtendedFind() {
  if (extendedFind === null) {
    const system = await api("GET", "/system");
    extendedFind = Boolean(system.Capabilities && system.Capabilities.HasExtendedFind);
    labels = Boolean(system.HasLabels);
  }
  return extendedFind;
}

/** The study list's sortable columns: header, the main tags it sorts on, the way it first sorts. */
const SORTABLE = {
  PatientName: { header: "Patient", keys: ["PatientName"], first: "ASC" },
  PatientID: { header: "Patient ID", keys: ["PatientID"], first: "ASC" },
  StudyDate: { header: "Date", keys: ["StudyDate", "StudyTime"], first: "DESC" },
  StudyDescription: { header: "Description", keys: ["StudyDescription"], first: "ASC" },
  AccessionNumber: { header: "Accession", keys: ["AccessionNumber"], first: "ASC" },
};

/** ``OrderBy`` of ``/tools/find`` (Orthanc 1.12.5) for the column the list is sorted on. */
function orderBy() {
  const { column, direction } = studyFilters.sort;
  return SORTABLE[column].keys.map((Key) => ({ Type: "DicomTag", Key, Direction: direction }));
}

function studyQuery() {
  const query = {};
  for (const key of ["PatientName", "PatientID", "AccessionNumber", "StudyDescription"]) {
    const value = studyFilters[key].trim();
    if (value) query[key] = value.includes("*") || value.includes("?") ? value : `*${value}*`;
  }
  if (studyFilters.ModalitiesInStudy) query.ModalitiesInStudy = studyFilters.ModalitiesInStudy;
  const from = studyFilters.from.replaceAll("-", ""), to = studyFilters.to.replaceAll("-", "");
  if (from || to) query.StudyDate = from === to ? from : `${from}-${to}`;
  return query;
}

/** One page of studies, plus the total when the server counts (``/tools/count-resources``). */
async function findStudies() {
  const request = { Level: "Study", Expand: true, CaseSensitive: false, Query: studyQuery(),
    Since: studyFilters.page * PAGE_SIZE, Limit: PAGE_SIZE + 1 };
  const wanted = labelList(studyFilters.Labels);
  if (labels && wanted.length) Object.assign(request, { Labels: wanted, LabelsConstraint: "All" });
  if (await hasExtendedFind()) {
    try {
      const [studies, total] = await Promise.all([
        api("POST", "/tools/find", { ...request, OrderBy: orderBy() }),
        // Some filters cannot be counted in the index (the server says so): then no total.
        api("POST", "/tools/count-resources", { ...request, Expand: undefined, Since: undefined, Limit: undefined,
          CaseSensitive: undefined }).then((c) => c.Count, () => null),
      ]);
      return { studies, total };
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 400) throw error;
      extendedFind = false;  // It said so but refuses OrderBy: no sorting, same paging.
    }
  }
  return { studies: await api("POST", "/tools/find", request), total: null };
}

function filterField(label, key, type = "search") {
  return h("label", {}, label, h("input", { type, name: key, value: studyFilters[key] }));
}

async function studiesPage() {
  await attempt(hasExtendedFind);
  const modalities = ["", "CT", "MR", "CR", "DX", "US", "NM", "PT", "XA", "MG", "OT", "SR", "SEG", "RTSTRUCT"];
  const form = h("form", { class: "filters", role: "search", "aria-label": "Find studies" },
    filterField("Patient name", "PatientName"),
    filterField("Patient ID", "PatientID"),
    filterField("Accession number", "AccessionNumber"),
    filterField("Description", "StudyDescription"),
    h("label", {}, "Modality", h("select", { name: "ModalitiesInStudy" },
      modalities.map((m) => h("option", { value: m, selected: m === studyFilters.ModalitiesInStudy }, m || "Any")))),
    filterField("From date", "from", "date"),
    filterField("To date", "to", "date"),
    labels ? filterField("Labels (all of)", "Labels") : null,
    h("div", { class: "row" }, h("button", { type: "submit" }, "Search"),
      h("button", { type: "reset", class: "secondary" }, "Clear")));
  const results = h("div", { id: "study-results", "aria-live": "polite" }, h("p", { class: "muted" }, "Loading…"));
  const read = () => {
    for (const [key, value] of new FormData(form)) studyFilters[key] = value;
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    read();
    studyFilters.page = 0;
    showStudies(results);
  });
  form.addEventListener("reset", () => setTimeout(() => {
    for (const key of ["PatientName", "PatientID", "AccessionNumber", "StudyDescription", "ModalitiesInStudy", "from", "to",
      "Labels"]) {
      studyFilters[key] = "";
    }
    for (const input of form.querySelectorAll("input")) input.value = "";
    studyFilters.page = 0;
    showStudies(results);
  }));
  main.replaceChildren(h("h1", {}, "Studies"), h("section", {}, form), results);
  await showStudies(results);
}

async function showStudies(results) {
  const found = await attempt(findStudies);
  if (!found) {
    results.replaceChildren(h("p", {}, "The studies could not be listed."));
    return;
  }
  const more = found.studies.length > PAGE_SIZE;
  const studies = found.studies.slice(0, PAGE_SIZE);
  const open = (study) => { location.hash = `#/study/${study.ID}`; };
  const rows = studies.map((study) => {
    const tags = study.MainDicomTags || {}, patient = study.PatientMainDicomTags || {};
    return h("tr", { class: "clickable", dataset: { id: study.ID }, onclick: () => open(study) },
      h("td", {}, h("a", { href: `#/study/${study.ID}` }, patient.PatientName || "(no name)"),
        (study.Labels || []).map((label) => [" ", h("span", { class: "label" }, label)])),
      h("td", {}, patient.PatientID || ""),
      h("td", {}, formatDate(tags.StudyDate)),
      h("td", {}, tags.StudyDescription || ""),
      h("td", { class: "hide-narrow" }, tags.AccessionNumber || ""),
      h("td", { class: "hide-narrow" }, (study.Series || []).length));
  });
  const first = studyFilters.page * PAGE_SIZE;
  const summary = studies.length === 0 ? "No study matches."
    : `Studies ${first + 1}–${first + studies.length}${found.total === null ? "" : ` of ${found.total}`}`;
  const turn = (delta) => { studyFilters.page += delta; showStudies(results); };
  results.replaceChildren(
    h("p", { class: "muted", id: "study-summary" }, summary),
    studies.length ? h("div", { class: "table-wrap" }, h("table", { id: "studies" },
      h("thead", {}, h("tr", {}, Object.keys(SORTABLE).map((column) => sortHeader(column, results)),
        h("th", { scope: "col", class: "hide-narrow" }, "Series"))),
      h("tbody", {}, rows))) : "",
    h("div", { class: "row" },
      h("button", { type: "button", class: "secondary previous", disabled: studyFilters.page === 0, onclick: () => turn(-1) }, "Previous page"),
      h("button", { type: "button", class: "secondary next", disabled: !more, onclick: () => turn(1) }, "Next page")));
  const sorted = results.querySelector(`th[data-column="${focusSort}"] button`);
  if (sorted) sorted.focus();  // The keyboard stays on the header just pressed.
  focusSort = null;
}

let focusSort = null;  // The column whose header was just pressed: focused again once redrawn.

/** A column's header: a button sorting the list on it when the server sorts (``OrderBy``),
 * pressed again the other way; ``aria-sort`` and an arrow say how the list is sorted. */
function sortHeader(column, results) {
  const { header } = SORTABLE[column];
  const narrow = column === "AccessionNumber" ? "hide-narrow" : null;
  if (!extendedFind) return h("th", { scope: "col", class: narrow }, header);
  const { sort } = studyFilters;
  const current = sort.column === column;
  const arrow = current ? (sort.direction === "ASC" ? "▲" : "▼") : "↕";
  const next = current ? (sort.direction === "ASC" ? "DESC" : "ASC") : SORTABLE[column].first;
  const button = h("button", { type: "button", class: "sort", title: `Sort by ${header}, ${next === "ASC" ? "ascending" : "descending"}` },
    header, " ", h("span", { class: "arrow", "aria-hidden": "true" }, arrow));
  button.addEventListener("click", () => {
    studyFilters.sort = { column, direction: next };
    studyFilters.page = 0;
    focusSort = column;
    showStudies(results);
  });
  return h("th", { scope: "col", class: narrow, dataset: { column },
    "aria-sort": current ? (sort.direction === "ASC" ? "ascending" : "descending") : null }, button);
}

// -- one study ---------------------------------------------------------------------------

async function studyPage(studyId) {
  await attempt(hasExtendedFind);
  const study = await attempt(() => api("GET", `/studies/${studyId}`));
  if (!study) {
    main.replaceChildren(h("h1", {}, "Study"), h("p", {}, "This study could not be read."));
    return;
  }
  const series = (await attempt(() => api("GET", `/studies/${studyId}/series`))) || [];
  const tags = study.MainDicomTags || {}, patient = study.PatientMainDicomTags || {};
  const progress = h("progress", { max: 100, value: 0, hidden: true, "aria-label": "Archive progress" });
  const downloadStatus = h("span", { id: "download-status", "aria-live": "polite" });
  const downloadButton = (kind, label, id) => {
    const button = h("button", { type: "button", id }, label);
    button.addEventListener("click", () => attempt(async () => {
      button.disabled = true;
      try {
        progress.hidden = false;
        progress.value = 0;
        downloadStatus.textContent = "Preparing the archive…";
        const job = await api("POST", `/studies/${studyId}/${kind}`, { Asynchronous: true });
        await followJob(job.ID, (state) => { progress.value = state.Progress || 0; });
        progress.value = 100;
        const name = `${studyId}${kind === "media" ? "-DICOMDIR" : ""}.zip`;
        const link = h("a", { class: "button", href: `${API}/jobs/${job.ID}/archive`, download: name, id: `${kind}-link` },
          `Save ${kind === "media" ? "the DICOMDIR ZIP" : "the ZIP"}`);
        downloadStatus.replaceChildren("Archive ready: ", link);
        link.focus();  // One Enter saves it (browsers block downloads nobody clicked).
      } catch (error) {
        downloadStatus.textContent = "";
        throw error;
      } finally {
        button.disabled = false;
      }
    }));
    return button;
  };
  const deleteButton = h("button", { type: "button", class: "danger", id: "delete-study" }, "Delete study");
  deleteButton.addEventListener("click", () => attempt(async () => {
    if (!confirm(`Delete the study of ${patient.PatientName || "this patient"} and all its images?`)) return;
    await api("DELETE", `/studies/${studyId}`);
    location.hash = "#/studies";
  }));
  const instancesArea = h("div", { id: "instances" });
  const cards = series.map((one) => {
    const stags = one.MainDicomTags || {};
    const first = (one.Instances || [])[0];
    const card = h("button", { type: "button", class: "series", "aria-pressed": "false", dataset: { id: one.ID } },
      first ? h("img", { src: `${API}/instances/${first}/preview`, alt: `Preview of series ${stags.SeriesNumber || ""}`, loading: "lazy" })
        : h("span", { class: "muted" }, "No image"),
      h("strong", {}, `${stags.Modality || "?"} ${stags.SeriesNumber ? `#${stags.SeriesNumber}` : ""}`),
      h("span", {}, stags.SeriesDescription || "(no description)"),
      h("span", { class: "muted" }, `${(one.Instances || []).length} instance(s)`));
    card.addEventListener("click", () => {
      for (const other of main.querySelectorAll(".series")) other.setAttribute("aria-pressed", "false");
      card.setAttribute("aria-pressed", "true");
      showInstances(one, instancesArea);
    });
    const img = card.querySelector("img");
    if (img) img.addEventListener("error", () => img.replaceWith(h("span", { class: "muted" }, "No preview")));
    return card;
  });
  main.replaceChildren(
    h("p", {}, h("a", { href: "#/studies" }, "← All studies")),
    h("h1", {}, `${patient.PatientName || "(no name)"} — ${tags.StudyDescription || "study"}`),
    h("section", {}, h("dl", { class: "facts" },
      h("dt", {}, "Patient ID"), h("dd", {}, patient.PatientID || ""),
      h("dt", {}, "Date"), h("dd", {}, formatDate(tags.StudyDate)),
      h("dt", {}, "Accession"), h("dd", {}, tags.AccessionNumber || ""),
      h("dt", {}, "Study UID"), h("dd", {}, tags.StudyInstanceUID || "")),
    h("div", { class: "row", style: "margin-top:.8rem" }, downloadButton("archive", "Download ZIP", "download-zip"),
      downloadButton("media", "Download DICOMDIR", "download-media"), deleteButton),
    h("div", {}, progress, " ", downloadStatus),
    await sendForm(studyId),
    labels ? labelEditor(studyId, study.Labels || []) : "",
    changeForm(study)),
    h("h2", {}, "Series"),
    h("div", { class: "series-grid" }, cards),
    instancesArea);
}

/** "Send to": a store job of the study to a DICOM modality or an Orthanc peer, followed live. */
async function sendForm(studyId) {
  const [modalities, peers] = await Promise.all([attempt(() => api("GET", "/modalities")),
    attempt(() => api("GET", "/peers"))]);
  if (!(modalities || []).length && !(peers || []).length) return "";
  const target = h("select", { id: "send-target", name: "target" },
    (modalities || []).length ? h("optgroup", { label: "DICOM modalities" },
      modalities.map((name) => h("option", { value: `modalities/${name}` }, name))) : null,
    (peers || []).length ? h("optgroup", { label: "Orthanc peers" },
      peers.map((name) => h("option", { value: `peers/${name}` }, name))) : null);
  const progress = h("progress", { max: 100, value: 0, hidden: true, "aria-label": "Sending progress" });
  const status = h("span", { id: "send-status", "aria-live": "polite" });
  const button = h("button", { type: "submit", id: "send-button" }, "Send");
  const form = h("form", { class: "row", style: "margin-top:.8rem" },
    h("label", {}, "Send the study to", target), button, progress, status);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    attempt(async () => {
      const [kind, name] = target.value.split("/");
      button.disabled = true;
      status.textContent = `Sending to ${name}…`;
      status.className = "";
      progress.hidden = false;
      try {
        const job = await api("POST", `/${kind}/${encodeURIComponent(name)}/store`,
          { Resources: [studyId], Asynchronous: true });
        await followJob(job.ID, (state) => {
          progress.value = state.Progress || 0;
          if (state.State === "Retry") status.textContent = `${name} does not answer yet: retrying…`;
        });
        status.textContent = `Sent to ${name}.`;
        status.className = "status-Success";
      } catch (error) {
        status.textContent = `Not sent: ${error.message}`;
        status.className = "status-Error";
      } finally {
        button.disabled = false;
      }
    });
  });
  return form;
}

/** The study's labels: each removable, and a field to add one. */
function labelEditor(studyId, initial) {
  const list = h("span", { id: "study-labels", class: "row" });
  const show = (names) => list.replaceChildren(names.length ? "" : h("span", { class: "muted" }, "No label"),
    ...names.map((name) => h("span", { class: "label" }, name,
      h("button", { type: "button", class: "remove", "aria-label": `Remove the label ${name}`, dataset: { label: name },
        onclick: () => attempt(async () => {
          await api("DELETE", `/studies/${studyId}/labels/${encodeURIComponent(name)}`);
          show(await api("GET", `/studies/${studyId}/labels`));
        }) }, "×"))));
  show(initial);
  const input = h("input", { type: "text", name: "label", id: "new-label", "aria-label": "New label" });
  const form = h("form", { class: "row", style: "margin-top:.8rem" }, h("strong", {}, "Labels:"), list, input,
    h("button", { type: "submit", class: "secondary" }, "Add label"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    attempt(async () => {
      for (const name of labelList(input.value)) {
        await api("PUT", `/studies/${studyId}/labels/${encodeURIComponent(name)}`, new Blob([]));
      }
      input.value = "";
      show(await api("GET", `/studies/${studyId}/labels`));
    });
  });
  return form;
}

const CHANGEABLE = [["PatientName", "Patient name"], ["PatientID", "Patient ID"], ["StudyDescription", "Description"],
  ["AccessionNumber", "Accession number"], ["StudyDate", "Date (YYYYMMDD)"]];

/** Modify or anonymize the study (a job; the copy opens once done). Only changed fields are sent. */
function changeForm(study) {
  const current = { ...(study.PatientMainDicomTags || {}), ...(study.MainDicomTags || {}) };
  const inputs = CHANGEABLE.map(([tag, label]) =>
    h("label", {}, label, h("input", { type: "text", name: tag, value: current[tag] || "" })));
  const mode = h("select", { name: "mode", id: "change-mode" },
    h("option", { value: "modify" }, "Modify (the fields above)"),
    h("option", { value: "anonymize" }, "Anonymize (new identities, then the fields above)"));
  const keep = h("input", { type: "checkbox", name: "keep", checked: true });
  const status = h("span", { id: "change-status", "aria-live": "polite" });
  const button = h("button", { type: "submit", id: "change-button" }, "Apply");
  const form = h("form", { class: "filters" }, inputs, h("label", {}, "Change", mode),
    h("label", { class: "row" }, keep, "Keep the original study"), h("div", { class: "row" }, button, status));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    attempt(async () => {
      const replace = {};
      for (const [tag] of CHANGEABLE) {
        const value = form.elements[tag].value.trim();
        // Anonymizing: what is left as it was (or emptied) gets the anonymization's new value.
        const anonymizing = mode.value === "anonymize";
        if (value !== (current[tag] || "") && (value || !anonymizing)) replace[tag] = value;
      }
      if (mode.value === "modify" && !Object.keys(replace).length) throw new Error("Change a field first.");
      button.disabled = true;
      status.textContent = "Working…";
      try {
        const job = await api("POST", `/studies/${study.ID}/${mode.value}`,
          { Replace: replace, KeepSource: keep.checked, Force: true, Asynchronous: true });
        await followJob(job.ID, () => {});
        const done = await api("GET", `/jobs/${job.ID}`);
        status.replaceChildren("Done: ", h("a", { href: `#/study/${done.Content.ID}`, id: "changed-study" }, "open the new study"));
      } catch (error) {
        status.textContent = "";
        throw error;
      } finally {
        button.disabled = false;
      }
    });
  });
  return h("details", { style: "margin-top:.8rem" }, h("summary", {}, "Modify or anonymize"), form);
}

async function showInstances(series, area) {
  const instances = await attempt(() => api("GET", `/series/${series.ID}/instances`));
  if (!instances) return;
  instances.sort((a, b) => Number(a.IndexInSeries || 0) - Number(b.IndexInSeries || 0));
  const tagsArea = h("div", { id: "instance-tags" });
  const rows = instances.map((instance) => {
    const number = (instance.MainDicomTags || {}).InstanceNumber || "";
    const button = h("button", { type: "button", class: "secondary", dataset: { id: instance.ID } }, `Instance ${number}`);
    button.addEventListener("click", () => showTags(instance, tagsArea));
    return h("tr", {}, h("td", {}, button), h("td", { class: "muted" }, instance.ID));
  });
  area.replaceChildren(h("h2", {}, `Instances of ${(series.MainDicomTags || {}).SeriesDescription || "the series"}`),
    table(["Instance", "ID"], rows), tagsArea);
}

async function showTags(instance, area) {
  const tags = await attempt(() => api("GET", `/instances/${instance.ID}/tags?simplify`));
  if (!tags) return;
  const rows = Object.entries(tags).sort(([a], [b]) => a.localeCompare(b)).map(([name, value]) =>
    h("tr", {}, h("td", {}, name), h("td", {}, typeof value === "string" ? value : JSON.stringify(value))));
  const img = h("img", { class: "preview preview-large", src: `${API}/instances/${instance.ID}/preview`, alt: "Preview of the instance" });
  img.addEventListener("error", () => img.replaceWith(h("p", { class: "muted" }, "No preview for this instance.")));
  area.replaceChildren(h("h2", {}, "Tags"), img, h("div", { class: "tags" }, table(["Tag", "Value"], rows)));
}

// -- upload ----------------------------------------------------------------------------

function uploadPage() {
  const input = h("input", { type: "file", multiple: true, id: "upload-files", "aria-label": "DICOM or ZIP files to upload" });
  const drop = h("div", { class: "drop", id: "drop-zone" }, h("p", {}, "Drop DICOM or ZIP files here, or choose them:"), input);
  const overall = h("progress", { max: 1, value: 0, hidden: true, "aria-label": "Files uploaded" });
  const summary = h("p", { id: "upload-summary", "aria-live": "polite" });
  const body = h("tbody", {});
  const results = h("div", { class: "table-wrap" }, h("table", { id: "upload-results" },
    h("thead", {}, h("tr", {}, ["File", "Sent", "Result"].map((text) => h("th", { scope: "col" }, text)))), body));
  input.addEventListener("change", () => { uploadFiles([...input.files], overall, summary, body); input.value = ""; });
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    attempt(async () => uploadFiles(await droppedFiles(event.dataTransfer), overall, summary, body));
  });
  main.replaceChildren(h("h1", {}, "Upload"), h("section", {}, drop, overall, summary), results);
}

/** The files dropped, those of dropped folders included (at any depth). */
async function droppedFiles(transfer) {
  const entries = [...transfer.items].map((item) => (item.webkitGetAsEntry ? item.webkitGetAsEntry() : null));
  if (entries.some((entry) => entry === null)) return [...transfer.files];  // No entries API: files only.
  const files = [];
  const visit = async (entry) => {
    if (entry.isFile) {
      files.push(await new Promise((resolve, reject) => entry.file(resolve, reject)));
      return;
    }
    const reader = entry.createReader();
    for (;;) {  // readEntries answers in batches until an empty one.
      const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
      if (!batch.length) break;
      for (const child of batch) await visit(child);
    }
  };
  for (const entry of entries) await visit(entry);
  return files;
}

/** What the server said of one upload (a ZIP gets one answer per file it held). */
function describeUpload(answer) {
  const answers = Array.isArray(answer) ? answer : [answer];
  const statuses = answers.map((one) => one.Status || "Success");
  const counts = {};
  for (const status of statuses) counts[status] = (counts[status] || 0) + 1;
  const status = statuses.every((s) => s === statuses[0]) ? statuses[0] || "Success" : "Success";
  const text = answers.length === 1 ? statuses[0] : Object.entries(counts).map(([s, n]) => `${n} ${s}`).join(", ");
  return { status, text };
}

/** POSTs one file to ``/instances`` by XMLHttpRequest, whose upload events tell the bytes
 * sent (fetch tells none over HTTP/1.1); answers the parsed JSON, or throws the server's error. */
function uploadFile(file, onProgress) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", `${API}/instances`);
    request.upload.addEventListener("progress", (event) => onProgress(event.loaded));
    request.addEventListener("error", () => reject(new Error("The server cannot be reached")));
    request.addEventListener("load", () => {
      onProgress(file.size);  // The server answered: every byte went, whatever the events said.
      let parsed = null;
      try { parsed = JSON.parse(request.responseText); } catch { parsed = null; }
      if (request.status >= 200 && request.status < 300) resolve(parsed);
      else reject(new ApiError(request.status, parsed, "/instances"));
    });
    request.send(file);
  });
}

/** A file's own progress: a bar of its bytes and the bytes sent, in words. */
function byteProgress(file) {
  const bar = h("progress", { max: file.size || 1, value: 0, "aria-label": `Bytes of ${file.name} sent` });
  const text = h("span", { class: "bytes muted" }, ` 0 of ${formatBytes(file.size)}`);
  const show = (sent) => {
    bar.value = Math.min(sent, file.size || 1);
    text.textContent = ` ${formatBytes(sent)} of ${formatBytes(file.size)}`;
  };
  return { cell: h("td", { class: "sent" }, bar, text), show };
}

async function uploadFiles(files, overall, summary, body) {
  if (!files.length) return;
  overall.hidden = false;
  overall.max = files.length;
  overall.value = 0;
  const tally = { stored: 0, already: 0, refused: 0 };
  const queue = files.map((file) => {
    const result = h("td", { class: "result" }, "Waiting…");
    const progress = byteProgress(file);
    body.append(h("tr", {}, h("td", {}, file.name), progress.cell, result));
    return { file, result, progress };
  });
  const report = () => {
    summary.textContent = `${overall.value} of ${files.length} files: ${tally.stored} stored, ` +
      `${tally.already} already stored, ${tally.refused} refused`;
  };
  report();
  const worker = async () => {
    for (let item = queue.shift(); item; item = queue.shift()) {
      item.result.textContent = "Uploading…";
      try {
        const { status, text } = describeUpload(await uploadFile(item.file, item.progress.show));
        item.result.textContent = text;
        item.result.className = `result status-${status}`;
        if (status === "AlreadyStored") tally.already += 1; else tally.stored += 1;
      } catch (error) {
        item.result.textContent = `Refused: ${error.message}`;
        item.result.className = "result status-Error";
        tally.refused += 1;
      }
      overall.value += 1;
      report();
    }
  };
  await Promise.all(Array.from({ length: UPLOADS_AT_ONCE }, worker));
}

// -- query/retrieve ---------------------------------------------------------------------

const QUERY_FIELDS = { Patient: ["PatientName", "PatientID", "PatientBirthDate"],
  Study: ["PatientName", "PatientID", "StudyDate", "AccessionNumber", "StudyDescription", "ModalitiesInStudy"] };
/** The answers' columns in words; those marked narrow give way on a phone. */
const QUERY_COLUMNS = { PatientName: ["Patient"], PatientID: ["Patient ID"], PatientBirthDate: ["Birth date"],
  StudyDate: ["Date"], AccessionNumber: ["Accession", "hide-narrow"], StudyDescription: ["Description"],
  ModalitiesInStudy: ["Modalities", "hide-narrow"] };

async function queryPage() {
  const modalities = (await attempt(() => api("GET", "/modalities?expand"))) || {};
  const system = (await attempt(() => api("GET", "/system"))) || {};
  const names = Object.keys(modalities);
  if (!names.length) {
    main.replaceChildren(h("h1", {}, "Query/retrieve"), h("p", {}, "No DICOM modality is configured."));
    return;
  }
  const modality = h("select", { name: "modality", id: "query-modality" }, names.map((m) => h("option", { value: m }, m)));
  const level = h("select", { name: "level", id: "query-level" },
    Object.keys(QUERY_FIELDS).map((l) => h("option", { value: l, selected: l === "Study" }, l)));
  const name = h("input", { type: "search", name: "PatientName", id: "query-name" });
  const patientId = h("input", { type: "search", name: "PatientID", id: "query-id" });
  const answers = h("div", { id: "query-answers", "aria-live": "polite" });
  const form = h("form", { class: "filters", role: "search", "aria-label": "Query a modality" },
    h("label", {}, "Modality", modality), h("label", {}, "Level", level),
    h("label", {}, "Patient name", name), h("label", {}, "Patient ID", patientId),
    h("div", { class: "row" }, h("button", { type: "submit", id: "query-button" }, "Query")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    attempt(async () => {
      answers.replaceChildren(h("p", { class: "muted" }, "Querying…"));
      const query = Object.fromEntries(QUERY_FIELDS[level.value].map((tag) => [tag, ""]));
      if (name.value.trim()) query.PatientName = name.value.trim();
      if (patientId.value.trim()) query.PatientID = patientId.value.trim();
      try {
        const queried = modality.value;
        const sent = await api("POST", `/modalities/${encodeURIComponent(queried)}/query`,
          { Level: level.value, Query: query });
        const options = retrieveOptions(queried, modalities, system);
        await showAnswers(sent.ID, QUERY_FIELDS[level.value], options, answers);
      } catch (error) {
        answers.replaceChildren();
        throw error;
      }
    });
  });
  main.replaceChildren(h("h1", {}, "Query/retrieve"), h("section", {}, form), answers);
}

/** How answers of ``queried`` are retrieved: C-MOVE to Isengard or another modality (its AET
 * as ``TargetAet``), or C-GET (to Isengard, over the query's own association). The method
 * shown first is the modality's ``RetrieveMethod`` (``SystemDefault``: the server's). */
function retrieveOptions(queried, modalities, system) {
  const own = system.DicomAet || "ORTHANC";
  const configured = modalities[queried].RetrieveMethod || "SystemDefault";
  const usual = configured === "SystemDefault" ? (system.DicomDefaultRetrieveMethod || "C-MOVE") : configured;
  const method = h("select", { id: "retrieve-method", name: "method" },
    ["C-MOVE", "C-GET"].map((m) => h("option", { value: m, selected: m === usual },
      m === usual ? `${m} (as ${queried} is set up)` : m)));
  const target = h("select", { id: "retrieve-target", name: "target" },
    h("option", { value: own }, `Isengard itself (${own})`),
    Object.entries(modalities).map(([n, m]) => h("option", { value: m.AET, dataset: { modality: n } }, `${n} (${m.AET})`)));
  const note = h("span", { class: "muted", id: "retrieve-note" });
  const follow = () => {
    const getting = method.value === "C-GET";
    target.disabled = getting;  // C-GET brings the images over the association: here only.
    if (getting) target.value = own;
    note.textContent = getting ? "C-GET brings the images to Isengard." : "";
  };
  method.addEventListener("change", follow);
  follow();
  const form = h("div", { class: "filters", role: "group", "aria-label": "How to retrieve" },
    h("label", {}, "Retrieve with", method), h("label", {}, "Retrieve to", target), note);
  return {
    form,
    /** The body of ``/queries/{id}/answers/{n}/retrieve``, and where the images go, in words. */
    request: () => {
      const body = { TargetAet: target.value, Asynchronous: true };
      if (method.value !== usual) body.RetrieveMethod = method.value;
      const where = target.selectedOptions[0].dataset.modality || "Isengard";
      return { body, where: method.value === "C-GET" ? "Isengard (C-GET)" : where };
    },
  };
}

async function showAnswers(queryId, fields, options, area) {
  const found = await api("GET", `/queries/${queryId}/answers?expand&simplify`);
  const rows = found.map((answer, index) => {
    const status = h("span", { "aria-live": "polite" });
    const button = h("button", { type: "button", class: "secondary", dataset: { answer: index } }, "Retrieve");
    const progress = h("progress", { max: 100, value: 0, hidden: true, "aria-label": "Retrieve progress" });
    button.addEventListener("click", () => attempt(async () => {
      button.disabled = true;
      progress.hidden = false;
      status.textContent = "";
      status.className = "";
      const { body, where } = options.request();
      try {
        const job = await api("POST", `/queries/${queryId}/answers/${index}/retrieve`, body);
        await followJob(job.ID, (state) => { progress.value = state.Progress || 0; });
        status.textContent = `Retrieved to ${where}`;
        status.className = "status-Success";
      } catch (error) {
        status.textContent = `Failed: ${error.message}`;
        status.className = "status-Error";
      } finally {
        button.disabled = false;
      }
    }));
    return h("tr", {}, fields.map((tag) => h("td", { class: QUERY_COLUMNS[tag][1] },
      tag.endsWith("Date") ? formatDate(answer[tag]) : (answer[tag] || ""))),
      h("td", {}, h("div", { class: "row" }, button, progress, status)));
  });
  area.replaceChildren(h("p", { class: "muted", id: "query-summary" }, `${found.length} answer(s)`),
    found.length ? h("section", {}, options.form) : "",
    found.length ? h("div", { class: "table-wrap" }, h("table", {}, h("thead", {}, h("tr", {},
      fields.map((tag) => h("th", { scope: "col", class: QUERY_COLUMNS[tag][1] }, QUERY_COLUMNS[tag][0])),
      h("th", { scope: "col" }, "Retrieve"))), h("tbody", {}, rows))) : "");
}

// -- jobs --------------------------------------------------------------------------------

const JOB_ACTIONS = {
  Pending: ["pause", "cancel"], Running: ["pause", "cancel"], Retry: ["pause", "cancel"],
  Paused: ["resume", "cancel"], Failure: ["resubmit", "delete"], Success: ["delete"],
};

async function jobsPage() {
  const body = h("tbody", {});
  const status = h("p", { class: "muted", id: "jobs-status", "aria-live": "polite" }, "Loading…");
  main.replaceChildren(h("h1", {}, "Jobs"), status, h("div", { class: "table-wrap" },
    h("table", { id: "jobs" }, h("thead", {}, h("tr", {},
      ["Type", "State", "Progress", "Created", "Actions"].map((t) =>
        h("th", { scope: "col", class: t === "Created" ? "hide-narrow" : null }, t)))), body)));
  const rows = new Map();

  const started = new Map();  // Job ID -> [when, progress] it was first seen running here.
  /** The time left, from the progress made since the page first saw the job run. */
  const timeLeft = (job) => {
    if (job.State !== "Running") {
      started.delete(job.ID);
      return "";
    }
    if (!started.has(job.ID)) started.set(job.ID, [Date.now(), job.Progress || 0]);
    const [since, from] = started.get(job.ID);
    const made = (job.Progress || 0) - from;
    if (made <= 0) return "";
    const seconds = Math.ceil((Date.now() - since) / made * (100 - job.Progress) / 1000);
    return seconds < 90 ? `about ${seconds} s left` : `about ${Math.round(seconds / 60)} min left`;
  };

  /** A row per job; progress alone updates in place, so a focused button stays focused. */
  const render = (job) => {
    let row = rows.get(job.ID);
    if (!row) {
      row = h("tr", { dataset: { id: job.ID } });
      rows.set(job.ID, row);
      body.prepend(row);
      status.textContent = "Live: updates arrive as the jobs change.";
    }
    const percent = job.Progress || 0;
    if (row.dataset.state === job.State) {
      row.querySelector("progress").value = percent;
      row.querySelector(".percent").textContent = ` ${percent}%`;
      row.querySelector(".eta").textContent = timeLeft(job);
      return;
    }
    row.dataset.state = job.State;
    const actions = (JOB_ACTIONS[job.State] || []).map((action) => {
      const button = h("button", { type: "button", class: action === "delete" || action === "cancel" ? "danger" : "secondary",
        dataset: { action }, "aria-label": `${action} job ${job.Type}` }, action[0].toUpperCase() + action.slice(1));
      button.addEventListener("click", () => attempt(async () => {
        if (action === "delete") {
          await api("DELETE", `/jobs/${job.ID}`);
          row.remove();
          rows.delete(job.ID);
          return;
        }
        await api("POST", `/jobs/${job.ID}/${action}`, {});
        render(await api("GET", `/jobs/${job.ID}`));
      }));
      return button;
    });
    const outputs = job.State === "Success" && ["Archive", "Media"].includes(job.Type)
      ? h("a", { href: `${API}/jobs/${job.ID}/archive`, download: "archive.zip" }, "Download") : null;
    const failed = job.State === "Failure" && job.ErrorDescription ? h("div", { class: "muted" }, job.ErrorDescription) : null;
    row.replaceChildren(
      h("td", {}, job.Type || "?"),
      h("td", { class: `state-${job.State}` }, job.State, failed),
      h("td", {}, h("progress", { max: 100, value: percent, "aria-label": "Progress" }), h("span", { class: "percent" }, ` ${percent}%`),
        h("div", { class: "eta muted" }, timeLeft(job))),
      h("td", { class: "hide-narrow" }, (job.CreationTime || "").replace("T", " ").slice(0, 15)),
      h("td", {}, h("div", { class: "row" }, actions, outputs)));
  };

  // Subscribe first, then list: no job falls between the list and the stream.
  const source = new EventSource(`${API}/jobs/events`);
  leavePage = () => source.close();
  const known = new Map();
  const onEvent = (event) => {
    const data = JSON.parse(event.data);
    const seen = known.get(data.ID);
    if (seen) {
      render({ ...seen, ...data });
      known.set(data.ID, { ...seen, ...data });
    } else {
      // A job deleted meanwhile has nothing to show: that answer is no error for the person.
      api("GET", `/jobs/${data.ID}`).then((job) => { known.set(job.ID, job); render(job); }, () => {});
    }
  };
  for (const name of JOB_EVENTS) {
    source.addEventListener(name, onEvent);
  }
  source.addEventListener("open", async () => {
    const jobs = await attempt(() => api("GET", "/jobs?expand"));
    if (!jobs) return;
    jobs.sort((a, b) => (a.CreationTime || "").localeCompare(b.CreationTime || ""));
    for (const job of jobs) { known.set(job.ID, job); render(job); }
    if (!rows.size) status.textContent = "No job yet. Live: new jobs appear here.";
  });
  source.addEventListener("error", () => {
    status.textContent = "The live connection was lost; the browser retries.";
  });
}

// -- system ----------------------------------------------------------------------------

const METRICS_EVERY_MS = 10000;

/** Prometheus' text exposition (``name value [timestamp]`` lines) as a name -> number map. */
function parsePrometheus(text) {
  const values = new Map();
  for (const line of String(text).split("\n")) {
    const match = /^([A-Za-z_:][\w:]*)(?:\{[^}]*\})?\s+(\S+)/.exec(line.trim());
    if (match && !line.startsWith("#")) values.set(match[1], Number(match[2]));
  }
  return values;
}

function formatDuration(seconds) {
  const s = Math.floor(Number(seconds) || 0);
  const [days, hours, minutes] = [Math.floor(s / 86400), Math.floor(s / 3600) % 24, Math.floor(s / 60) % 60];
  if (days) return `${days} d ${hours} h`;
  if (hours) return `${hours} h ${minutes} min`;
  return minutes ? `${minutes} min ${s % 60} s` : `${s} s`;
}

/** The metrics a person running the server watches: Prometheus name, words, how shown. */
const KEY_METRICS = [
  ["orthanc_up_time_s", "Up time", formatDuration],
  ["orthanc_rest_api_active_requests", "REST requests in progress"],
  ["orthanc_jobs_pending", "Jobs waiting"],
  ["orthanc_jobs_running", "Jobs running"],
  ["orthanc_jobs_total_success", "Jobs succeeded since start"],
  ["orthanc_jobs_total_failed", "Jobs failed since start"],
  ["orthanc_disk_size_mb", "Disk use", (mb) => formatBytes(mb * 1024 * 1024)],
  ["orthanc_uncompressed_size_mb", "Disk use uncompressed", (mb) => formatBytes(mb * 1024 * 1024)],
  ["orthanc_logged_errors_count", "Errors logged"],
  ["orthanc_logged_warnings_count", "Warnings logged"],
];

/** The "Key metrics" section, read from ``/tools/metrics-prometheus`` now and every
 * ``METRICS_EVERY_MS`` while the page is shown (and on demand); answers its stop function. */
function metricsSection(area) {
  const list = h("dl", { class: "facts", id: "metrics" });
  const updated = h("span", { class: "muted", id: "metrics-updated", "aria-live": "polite" });
  const button = h("button", { type: "button", class: "secondary", id: "metrics-refresh" }, "Refresh the metrics");
  const refresh = async () => {
    const text = await attempt(() => api("GET", "/tools/metrics-prometheus"));
    if (text === undefined) return;
    const values = parsePrometheus(text);
    if (!values.size) {
      list.replaceChildren(h("dt", {}, "Metrics"), h("dd", {}, "None kept: the server's MetricsEnabled option is false."));
    } else {
      list.replaceChildren(...KEY_METRICS.filter(([name]) => values.has(name)).map(([name, label, show]) =>
        [h("dt", {}, label), h("dd", { dataset: { metric: name } }, show ? show(values.get(name)) : values.get(name))]).flat());
    }
    updated.textContent = `Updated at ${new Date().toLocaleTimeString()}, every ${METRICS_EVERY_MS / 1000} s.`;
  };
  button.addEventListener("click", refresh);
  area.replaceChildren(h("h2", {}, "Key metrics"), list, h("div", { class: "row", style: "margin-top:.6rem" }, button, updated));
  refresh();
  const timer = setInterval(() => {
    if (!area.isConnected) clearInterval(timer);  // Left while the page was still loading.
    else if (!document.hidden) refresh();
  }, METRICS_EVERY_MS);
  return () => clearInterval(timer);
}

async function systemPage() {
  const [system, stats] = await Promise.all([attempt(() => api("GET", "/system")), attempt(() => api("GET", "/statistics"))]);
  const modalities = (await attempt(() => api("GET", "/modalities?expand"))) || {};
  const peers = (await attempt(() => api("GET", "/peers?expand"))) || {};
  const facts = (pairs) => h("dl", { class: "facts" }, pairs.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v ?? "")]));
  const echoRow = (kind, name, detail, path, method) => {
    const result = h("span", { "aria-live": "polite" });
    const button = h("button", { type: "button", class: "secondary", dataset: { echo: name } }, `Test ${name}`);
    button.addEventListener("click", async () => {
      result.textContent = "…";
      result.className = "";
      try {
        await api(method, path, method === "POST" ? {} : undefined);
        result.textContent = "Reachable";
        result.className = "status-Success";
      } catch (error) {
        result.textContent = `Failed: ${error.message}`;
        result.className = "status-Error";
      }
    });
    return h("tr", {}, h("td", {}, name), h("td", {}, detail), h("td", {}, button, " ", result));
  };
  const modalityRows = Object.entries(modalities).map(([name, m]) =>
    echoRow("modality", name, `${m.AET}@${m.Host}:${m.Port}`, `/modalities/${encodeURIComponent(name)}/echo`, "POST"));
  const peerRows = Object.entries(peers).map(([name, p]) =>
    echoRow("peer", name, p.Url || "", `/peers/${encodeURIComponent(name)}/system`, "GET"));
  const metricsArea = h("section", {});
  leavePage = metricsSection(metricsArea);
  main.replaceChildren(
    h("h1", {}, "System"),
    system ? h("section", {}, h("h2", {}, "Server"), facts([
      ["Name", system.Name], ["Version", system.Version], ["API version", system.ApiVersion],
      ["DICOM AET", system.DicomAet], ["DICOM port", system.DicomPort], ["HTTP port", system.HttpPort]])) : "",
    stats ? h("section", { id: "statistics" }, h("h2", {}, "Content"), facts([
      ["Patients", stats.CountPatients], ["Studies", stats.CountStudies], ["Series", stats.CountSeries],
      ["Instances", stats.CountInstances], ["Disk use", formatBytes(stats.TotalDiskSize)],
      ["Uncompressed", formatBytes(stats.TotalUncompressedSize)]])) : "",
    metricsArea,
    h("section", {}, h("h2", {}, "DICOM modalities"), modalityRows.length
      ? table(["Name", "Address", "Echo"], modalityRows) : h("p", { class: "muted" }, "No modality is configured.")),
    h("section", {}, h("h2", {}, "Orthanc peers"), peerRows.length
      ? table(["Name", "URL", "Check"], peerRows) : h("p", { class: "muted" }, "No peer is configured.")));
}

// -- routing -----------------------------------------------------------------------------

async function route() {
  leavePage();
  leavePage = () => {};
  const [, page = "studies", id] = location.hash.split("/");
  for (const link of document.querySelectorAll("nav a")) {
    if (link.dataset.page === (page === "study" ? "studies" : page)) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  clearError();
  main.replaceChildren(h("p", { class: "muted" }, "Loading…"));
  const pages = { studies: studiesPage, study: () => studyPage(id), upload: uploadPage, query: queryPage,
    jobs: jobsPage, system: systemPage };
  await (pages[page] || studiesPage)();
  document.body.dataset.page = page;
}

document.getElementById("error-close").addEventListener("click", clearError);
window.addEventListener("hashchange", async () => {
  await route();
  main.focus();  // Keyboard and screen-reader users continue in the new page, not the old link.
});
route();
