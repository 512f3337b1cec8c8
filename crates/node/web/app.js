// Ocellus web page. Talks only to this node's /v1 API (same origin).
// The API key, when the node wants one, lives in sessionStorage only and is
// sent as a Bearer token on every call, the event streams included: they are
// read with fetch() and a small Server-Sent Events parser, since EventSource
// cannot send headers.
'use strict';

const $ = (id) => document.getElementById(id);
const KEY = 'ocellus.key';

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    // Through the CSSOM: the page's CSP (style-src 'self') refuses style
    // attributes, not properties set from its own script.
    else if (k === 'style') for (const [p, x] of Object.entries(v)) e.style.setProperty(p, x);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const k of kids) if (k != null) e.append(k);
  return e;
}

const fmtS = (s) => {
  if (s == null || !isFinite(s)) return '?';
  if (s < 1) return Math.round(s * 1000) + ' ms';
  if (s < 10) return s.toFixed(1) + ' s';
  if (s < 120) return Math.round(s) + ' s';
  if (s < 7200) return Math.round(s / 60) + ' min';
  if (s < 172800) return (s / 3600).toFixed(1) + ' h';
  return (s / 86400).toFixed(1) + ' d';
};
const fmtBytes = (n) => n < 1024 ? n + ' B' : n < 1048576 ? (n / 1024).toFixed(1) + ' KB' : (n / 1048576).toFixed(1) + ' MB';

// ------------------------------------------------------------------ API

class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code);
    this.status = status;
    this.code = code;
  }
}

let keyPrompt = null; // one prompt shared by concurrent 401s

function askKey(message) {
  if (keyPrompt) return keyPrompt;
  const dlg = $('key-dialog');
  $('key-message').textContent = message;
  $('key-input').value = '';
  keyPrompt = new Promise((resolve) => {
    const done = () => {
      dlg.removeEventListener('close', done);
      keyPrompt = null;
      const k = dlg.returnValue === 'ok' ? $('key-input').value.trim() : '';
      if (k) sessionStorage.setItem(KEY, k);
      resolve(!!k);
    };
    dlg.addEventListener('close', done);
  });
  dlg.returnValue = '';
  dlg.showModal();
  $('key-input').focus();
  return keyPrompt;
}

// fetch() with the key, asking for one on 401 and retrying. Returns the
// Response when it is ok; throws ApiError otherwise.
async function api(path, opts = {}) {
  for (;;) {
    const headers = new Headers(opts.headers || {});
    const key = sessionStorage.getItem(KEY);
    if (key) headers.set('Authorization', 'Bearer ' + key);
    let resp;
    try {
      resp = await fetch(path, { ...opts, headers });
    } catch (e) {
      if (e.name === 'AbortError') throw e;
      throw new ApiError(0, 'network', 'cannot reach the node: ' + e.message);
    }
    if (resp.ok) return resp;
    let code = 'http_' + resp.status, message = resp.statusText || ('HTTP ' + resp.status);
    try {
      const j = await resp.json();
      if (j && j.error) { code = j.error.code || code; message = j.error.message || message; }
    } catch (_) { /* not JSON */ }
    if (resp.status === 401) {
      const msg = key ? 'The node refused this key (' + message + '). Enter another.' : 'This node needs an API key.';
      if (await askKey(msg)) continue;
      throw new ApiError(401, code, 'no API key: ' + message);
    }
    if (resp.status === 403) message = 'this key may not do that (' + message + ')';
    throw new ApiError(resp.status, code, message);
  }
}

const apiJson = async (path, opts) => (await api(path, opts)).json();

// Reads a text/event-stream response; calls onEvent(name, data) per event
// (data parsed as JSON when it is JSON).
async function readSse(resp, onEvent) {
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '', name = '', data = [];
  const dispatch = () => {
    if (data.length) {
      const raw = data.join('\n');
      let v = raw;
      try { v = JSON.parse(raw); } catch (_) { /* keep the text */ }
      onEvent(name || 'message', v);
    }
    name = ''; data = [];
  };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      let line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (line.endsWith('\r')) line = line.slice(0, -1);
      if (line === '') { dispatch(); continue; }
      if (line[0] === ':') continue;
      const c = line.indexOf(':');
      const field = c < 0 ? line : line.slice(0, c);
      let val = c < 0 ? '' : line.slice(c + 1);
      if (val[0] === ' ') val = val.slice(1);
      if (field === 'event') name = val;
      else if (field === 'data') data.push(val);
    }
  }
  dispatch();
}

// Runs an asynchronous job: POSTs it, follows its events, and resolves with
// the `result` event's data (rejects on `error`). ui.onEvent(name, data) sees
// every event; ui.signal aborts.
async function runJob(path, body, ui) {
  const accepted = await apiJson(path, { method: 'POST', body, signal: ui.signal });
  ui.onCreated && ui.onCreated(accepted);
  const events = accepted.events || ('/v1/jobs/' + accepted.id + '/events');
  let outcome = null;
  for (let attempt = 0; attempt < 3 && !outcome; attempt++) {
    // The stream replays what happened so far, so reopening it is safe.
    const resp = await api(events, { headers: { Accept: 'text/event-stream' }, signal: ui.signal });
    await readSse(resp, (name, data) => {
      ui.onEvent(name, data);
      if (name === 'result') outcome = { ok: true, data };
      else if (name === 'error') outcome = { ok: false, data };
    });
  }
  if (!outcome) throw new ApiError(0, 'stream', 'the event stream ended without a result');
  if (!outcome.ok) {
    const e = (outcome.data && outcome.data.error) || {};
    throw new ApiError(0, e.code || 'error', e.message || 'the job failed');
  }
  return { accepted, result: outcome.data };
}

// The queue text for an event of a job, or null.
function queueText(name, d, job) {
  const j = d && d.job != null ? d.job : job;
  const jj = j != null ? '#' + j : 'yours';
  if (name === 'accepted') {
    return 'Queued as ' + jj + (d.position != null ? ' (position ' + d.position + ' of ' + d.queue_length + ')' : '');
  }
  if (name === 'position') {
    const p = d.processing && d.processing.length ? '#' + d.processing[0] : 'nothing';
    const eta = d.eta_s != null ? ' (about ' + fmtEta(d.eta_s) + ')' : '';
    return 'Now processing ' + p + '; yours is ' + jj + eta;
  }
  if (name === 'started') return 'Running ' + jj + '…';
  return null;
}
const fmtEta = (s) => Math.max(1, Math.round(s)) + ' s';

function trackEvents(statusEl, liveEl) {
  let job = null;
  const seen = [];
  return (name, d) => {
    seen.push(name);
    statusEl.dataset.events = seen.join(' ');
    if (d && d.job != null) job = d.job;
    const t = queueText(name, d || {}, job);
    if (t) {
      statusEl.textContent = t;
      statusEl.dataset.state = name === 'started' ? 'running' : 'queued';
      if (liveEl) liveEl.textContent = t;
    }
  };
}

function formWith(files) {
  const fd = new FormData();
  for (const f of files) fd.append('image', f, f.name);
  return fd;
}

// ------------------------------------------------------------------ tabs

const TABS = ['filters', 'faces', 'status'];
const onShow = {};

function selectTab(name, focus) {
  for (const t of TABS) {
    const on = t === name;
    const tab = $('tab-' + t);
    tab.setAttribute('aria-selected', on);
    tab.tabIndex = on ? 0 : -1;
    $('panel-' + t).hidden = !on;
    if (on && focus) tab.focus();
  }
  if (location.hash !== '#' + name) history.replaceState(null, '', '#' + name);
  onShow[name] && onShow[name]();
}

function initTabs() {
  for (const t of TABS) {
    const tab = $('tab-' + t);
    tab.addEventListener('click', () => selectTab(t));
    tab.addEventListener('keydown', (e) => {
      const i = TABS.indexOf(t);
      const to = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: TABS.length - 1 }[e.key];
      if (to == null) return;
      e.preventDefault();
      selectTab(TABS[(to + TABS.length) % TABS.length], true);
    });
  }
  const fromHash = () => {
    const h = location.hash.slice(1);
    selectTab(TABS.includes(h) ? h : 'filters');
  };
  window.addEventListener('hashchange', fromHash);
  fromHash();
}

// ------------------------------------------------------------------ filters

const DEFAULTS = {
  blur: '2', box: '2', median: '2', sharpen: '1:1', brightness: '20', contrast: '1.2',
  resize: '800x', rotate: '90', flip: 'h', crop: '256x256+0+0',
};
let ops = [];          // [{name, syntax}]
let steps = [];        // [{name, param}]
let chosen = [];       // File[]
let running = [];      // [{ctrl, id}]

const opOf = (name) => ops.find((o) => o.name === name);
const takesParam = (o) => o && o.syntax.includes('=');
const syntaxHint = (o) => o ? o.syntax.replace(/^[^=]*=?/, '') : '';

async function loadOps() {
  try {
    ops = (await apiJson('/v1/ops')).operations || [];
  } catch (e) {
    $('f-error').textContent = 'Could not load the operations: ' + e.message;
    return;
  }
  const sel = $('f-op');
  sel.replaceChildren(...ops.map((o) => el('option', { value: o.name, text: o.name })));
  sel.dispatchEvent(new Event('change'));
}

function pipeline() {
  return steps.map((s) => takesParam(opOf(s.name)) ? s.name + '=' + s.param.trim() : s.name).join(',');
}

function renderSteps(focusIndex) {
  const list = $('f-steps');
  list.replaceChildren(...steps.map((s, i) => {
    const o = opOf(s.name);
    const id = 'f-step-' + i;
    const param = takesParam(o)
      ? el('input', {
        id: id + '-param', class: 'step-param', type: 'text', value: s.param, spellcheck: 'false',
        'aria-label': s.name + ' parameters (' + syntaxHint(o) + ')', title: syntaxHint(o),
        oninput: (e) => { s.param = e.target.value; $('f-pipeline').textContent = pipeline() || '(empty)'; },
      })
      : el('span', { class: 'muted small', text: 'no parameters' });
    return el('li', { id, class: 'step' },
      el('span', { class: 'step-name', text: s.name }), param,
      el('button', { type: 'button', class: 'icon', 'aria-label': 'Move ' + s.name + ' up', disabled: i === 0, text: '↑',
        onclick: () => { [steps[i - 1], steps[i]] = [steps[i], steps[i - 1]]; renderSteps(); } }),
      el('button', { type: 'button', class: 'icon', 'aria-label': 'Remove ' + s.name, text: '✕',
        onclick: () => { steps.splice(i, 1); renderSteps(); $('f-op').focus(); } }));
  }));
  $('f-pipeline').textContent = pipeline() || '(empty)';
  if (focusIndex != null) { const p = $('f-step-' + focusIndex + '-param'); p && p.focus(); }
}

function chooseFiles(files) {
  chosen = [...files].filter((f) => !f.type || f.type.startsWith('image/'));
  const list = $('f-inputs');
  for (const img of list.querySelectorAll('img')) URL.revokeObjectURL(img.src);
  list.replaceChildren(...chosen.map((f) => el('li', {},
    el('img', { src: URL.createObjectURL(f), alt: '' }),
    el('span', { class: 'small', text: f.name + ' · ' + fmtBytes(f.size) }))));
  $('f-error').textContent = chosen.length || !files.length ? '' : 'Those are not images.';
}

function extOf(type) {
  return { 'image/png': 'png', 'image/jpeg': 'jpg', 'image/webp': 'webp' }[type] || 'img';
}

async function runFilters() {
  $('f-error').textContent = '';
  if (!chosen.length) { $('f-error').textContent = 'Choose an image first.'; $('f-file').focus(); return; }
  const spec = pipeline();
  if (!spec) { $('f-error').textContent = 'Add at least one step to the pipeline.'; $('f-op').focus(); return; }
  const q = new URLSearchParams({ ops: spec });
  if ($('f-format').value) q.set('format', $('f-format').value);
  if ($('f-format').value === 'jpeg' || !$('f-format').value) q.set('quality', $('f-quality').value || '90');
  const jobs = $('f-jobs');
  for (const img of jobs.querySelectorAll('img')) URL.revokeObjectURL(img.src);
  jobs.replaceChildren();
  $('f-run').disabled = true;
  $('f-cancel').disabled = false;
  running = [];
  await Promise.all(chosen.map((file, n) => runOneFilter(file, n, q, spec)));
  running = [];
  $('f-run').disabled = false;
  $('f-cancel').disabled = true;
}

async function runOneFilter(file, n, q, spec) {
  const status = el('p', { id: 'f-status-' + n, class: 'job-status', 'data-state': 'queued', 'data-events': '', text: 'Sending…' });
  const result = el('img', { id: 'f-result-' + n, alt: 'Result of ' + spec + ' on ' + file.name, hidden: true });
  const dl = el('a', { id: 'f-download-' + n, class: 'button primary', hidden: true, text: 'Download' });
  const meta = el('p', { class: 'muted small' });
  const card = el('article', { id: 'f-job-' + n, class: 'card job' },
    el('h3', { text: file.name }),
    status,
    el('div', { class: 'compare' },
      el('figure', {}, el('img', { id: 'f-original-' + n, src: URL.createObjectURL(file), alt: 'Original: ' + file.name }),
        el('figcaption', { text: 'Original' })),
      el('figure', {}, result, el('figcaption', { text: spec }))),
    meta, dl);
  $('f-jobs').append(card);
  const ctrl = new AbortController();
  const entry = { ctrl, id: null };
  running.push(entry);
  const live = $('f-progress');
  const track = trackEvents(status, live);
  try {
    const { accepted, result: r } = await runJob('/v1/jobs/filter?' + q, formWith([file]), {
      signal: ctrl.signal, onEvent: track, onCreated: (a) => { entry.id = a.id; },
    });
    status.textContent = 'Fetching the result…';
    const resp = await api(accepted.result || ('/v1/jobs/' + accepted.id + '/result'), { signal: ctrl.signal });
    const blob = await resp.blob();
    const url = URL.createObjectURL(blob);
    result.src = url;
    result.hidden = false;
    const type = blob.type || r.content_type;
    dl.href = url;
    dl.download = file.name.replace(/\.[^.]*$/, '') + '-ocellus.' + extOf(type);
    dl.textContent = 'Download ' + dl.download;
    dl.hidden = false;
    const done = 'Done' + (r.width ? ': ' + r.width + '×' + r.height : '') + ', ' + fmtBytes(blob.size) +
      (r.run_ms != null ? ', ran in ' + r.run_ms + ' ms' : '') + (r.queue_ms != null ? ' after ' + r.queue_ms + ' ms in the queue' : '');
    status.textContent = done;
    status.dataset.state = 'done';
    live.textContent = file.name + ': ' + done;
    meta.textContent = [type, r.node_id ? 'node ' + r.node_id : ''].filter(Boolean).join(' · ');
  } catch (e) {
    const cancelled = e.name === 'AbortError' || e.code === 'cancelled';
    status.textContent = cancelled ? 'Cancelled.' : 'Failed: ' + e.message;
    status.dataset.state = cancelled ? 'cancelled' : 'failed';
    status.classList.toggle('error', !cancelled);
    live.textContent = file.name + ': ' + status.textContent;
  }
}

function cancelFilters() {
  for (const j of running) {
    if (j.id != null) api('/v1/jobs/' + encodeURIComponent(j.id), { method: 'DELETE' }).catch(() => {});
    j.ctrl.abort();
  }
}

function initFilters() {
  const sel = $('f-op'), param = $('f-param');
  sel.addEventListener('change', () => {
    const o = opOf(sel.value);
    const has = takesParam(o);
    param.disabled = !has;
    param.value = has ? (DEFAULTS[sel.value] || '') : '';
    param.placeholder = has ? syntaxHint(o) : 'none';
    $('f-syntax').textContent = o ? o.syntax : '';
  });
  const add = () => {
    if (!opOf(sel.value)) return;
    steps.push({ name: sel.value, param: param.value });
    renderSteps();
    param.focus();
  };
  $('f-add').addEventListener('click', add);
  param.addEventListener('keydown', (e) => { if (e.key === 'Enter') { e.preventDefault(); add(); } });
  $('f-file').addEventListener('change', (e) => chooseFiles(e.target.files));
  const drop = $('f-drop');
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    chooseFiles(e.dataTransfer.files);
  });
  $('f-run').addEventListener('click', runFilters);
  $('f-cancel').addEventListener('click', cancelFilters);
  renderSteps();
  loadOps();
}

// ------------------------------------------------------------------ faces

async function loadPeople() {
  try {
    const { people } = await apiJson('/v1/people');
    people.sort((a, b) => a.name.localeCompare(b.name));
    $('p-list').replaceChildren(...people.map((p) => el('tr', { 'data-name': p.name },
      el('td', { text: p.name }), el('td', { text: String(p.faces) }),
      el('td', {}, el('button', {
        type: 'button', class: 'p-remove secondary small', 'data-name': p.name, 'aria-label': 'Remove ' + p.name,
        text: 'Remove', onclick: () => removePerson(p.name),
      })))));
    $('p-empty').hidden = people.length > 0;
  } catch (e) {
    $('p-empty').hidden = false;
    $('p-empty').textContent = 'Could not list people: ' + e.message;
  }
}

async function removePerson(name) {
  if (!confirm('Remove ' + name + ' and all their faces?')) return;
  try {
    const r = await apiJson('/v1/people/' + encodeURIComponent(name), { method: 'DELETE' });
    $('e-progress').textContent = 'Removed ' + r.name + ' (' + r.removed_faces + ' faces).';
  } catch (e) {
    $('e-progress').textContent = 'Could not remove ' + name + ': ' + e.message;
  }
  loadPeople();
}

async function enroll(ev) {
  ev.preventDefault();
  const name = $('e-name').value.trim();
  const files = [...$('e-file').files];
  const prog = $('e-progress'), out = $('e-outcomes');
  if (!name) { prog.textContent = 'Give the person a name.'; $('e-name').focus(); return; }
  if (!files.length) { prog.textContent = 'Choose one or more photos.'; $('e-file').focus(); return; }
  for (const img of out.querySelectorAll('img')) URL.revokeObjectURL(img.src);
  out.replaceChildren();
  $('e-run').disabled = true;
  try {
    const { result: r } = await runJob('/v1/jobs/enroll?name=' + encodeURIComponent(name), formWith(files),
      { onEvent: trackEvents(prog, null) });
    const imgs = r.images || [];
    out.replaceChildren(...files.map((f, i) => {
      const o = imgs[i] || {};
      const ok = !!o.accepted;
      const why = o.error ? (o.error.message || o.error.code || String(o.error)) :
        (o.message || (typeof o.rejection === 'string' ? o.rejection : o.rejection ? JSON.stringify(o.rejection) : ''));
      return el('li', { class: ok ? 'accepted' : 'rejected', 'data-accepted': String(ok) },
        el('img', { src: URL.createObjectURL(f), alt: '' }),
        el('span', {}, el('strong', { text: ok ? '✓ accepted' : '✗ rejected' }), ' ' + f.name,
          why ? el('span', { class: 'muted small block', text: why }) : null));
    }));
    const nOk = imgs.filter((o) => o.accepted).length;
    prog.textContent = 'Enrolled ' + (r.name || name) + ': ' + nOk + ' of ' + files.length +
      ' photos accepted; ' + (r.faces != null ? r.faces : '?') + ' faces on file.';
  } catch (e) {
    prog.textContent = 'Enrolling failed: ' + e.message;
  } finally {
    $('e-run').disabled = false;
  }
  loadPeople();
}

async function recognize(ev, detectOnly) {
  ev && ev.preventDefault();
  const f = $('r-file').files[0];
  const prog = $('r-progress'), list = $('r-results'), boxes = $('r-boxes');
  if (!f) { prog.textContent = 'Choose a photo.'; $('r-file').focus(); return; }
  list.replaceChildren();
  boxes.replaceChildren();
  const photo = $('r-photo');
  if (photo.src) URL.revokeObjectURL(photo.src);
  const loaded = new Promise((ok) => { photo.onload = ok; photo.onerror = ok; });
  photo.src = URL.createObjectURL(f);
  $('r-stage').hidden = false;
  $('r-run').disabled = $('r-detect').disabled = true;
  try {
    const { result: r } = await runJob(detectOnly ? '/v1/jobs/detect' : '/v1/jobs/recognize', formWith([f]),
      { onEvent: trackEvents(prog, null) });
    await loaded;
    const res = (r.results || [])[0] || {};
    // A per-photo failure: `error` is its code, `message` says what.
    if (res.error) throw new ApiError(0, String(res.error.code || res.error), res.message || String(res.error));
    const W = res.width || photo.naturalWidth, H = res.height || photo.naturalHeight;
    // RECOGNIZE's faces carry the box and the identity side by side
    // (`algorithm` marks an identity; `name` is null when not identified);
    // DETECT's are boxes only.
    const faces = (res.faces || []).map((x) => ({ face: x, identity: 'algorithm' in x ? x : null }));
    faces.forEach((x, i) => {
      const b = x.face, id = x.identity;
      const named = id && id.name;
      const label = detectOnly ? 'face ' + (i + 1) : named ? id.name : 'not identified';
      const dist = id && id.distance != null ? id.distance.toFixed(2) : null;
      boxes.append(el('div', {
        class: 'box' + (detectOnly ? '' : named ? ' named' : ' unknown'),
        style: { left: 100 * b.x / W + '%', top: 100 * b.y / H + '%', width: 100 * b.width / W + '%', height: 100 * b.height / H + '%' },
      }, el('span', { class: 'box-label', text: (i + 1) + '. ' + label + (dist ? ' ' + dist : '') })));
      const more = [];
      if (dist) more.push('distance ' + dist);
      if (id && id.runner_up) more.push('runner-up ' + id.runner_up + (id.runner_up_distance != null ? ' ' + id.runner_up_distance.toFixed(2) : ''));
      if (id && id.algorithm) more.push(id.algorithm + (id.model_version != null ? ' v' + id.model_version : ''));
      more.push(b.width + '×' + b.height + ' at ' + b.x + ',' + b.y);
      list.append(el('li', { 'data-name': named ? id.name : '', class: named ? 'named' : 'unknown' },
        el('strong', { text: label }), el('span', { class: 'muted small block', text: more.join(' · ') })));
    });
    prog.textContent = faces.length
      ? (detectOnly ? 'Found ' : 'Recognized ') + faces.length + ' face' + (faces.length > 1 ? 's' : '') + '.'
      : 'No face found.' + (res.message ? ' (' + res.message + ')' : '');
  } catch (e) {
    prog.textContent = (detectOnly ? 'Detection' : 'Recognition') + ' failed: ' + e.message;
  } finally {
    $('r-run').disabled = $('r-detect').disabled = false;
  }
}

function initFaces() {
  $('e-form').addEventListener('submit', enroll);
  $('p-refresh').addEventListener('click', loadPeople);
  $('r-form').addEventListener('submit', (e) => recognize(e, false));
  $('r-detect').addEventListener('click', () => recognize(null, true));
  onShow.faces = loadPeople;
}

// ------------------------------------------------------------------ status

let statusTimer = null;

function meter(used, total) {
  const pct = total ? Math.min(100, Math.round(100 * used / total)) : 0;
  return el('span', { class: 'meter' }, el('span', { style: { width: pct + '%' } }));
}

function peerState(p) {
  if (p.state) return p.state;
  if (p.leaving) return 'leaving';
  if (p.alive === false) return 'dead';
  return 'alive';
}

async function loadStatus() {
  clearTimeout(statusTimer);
  try {
    const s = await apiJson('/v1/status');
    $('s-error').textContent = '';
    $('s-node-id').textContent = s.node_id;
    $('s-version').textContent = s.version || '?';
    $('s-roles').textContent = (s.roles || []).join(', ') || 'none';
    $('s-uptime').textContent = fmtS(s.uptime_s);
    $('s-workers').replaceChildren(s.busy + ' of ' + s.workers + ' ', meter(s.busy, s.workers));
    $('s-queue').replaceChildren(s.queue_length + ' waiting, room for ' + s.queue_capacity + ' ', meter(s.queue_length, s.queue_capacity));
    $('s-jobs').textContent = s.jobs_done + ' / ' + s.jobs_failed;
    $('s-mean').textContent = s.mean_job_s ? fmtS(s.mean_job_s) : '—';
    $('s-forwarded').textContent = String(s.jobs_forwarded || 0);
    const sec = [s.keys_required ? 'API keys required' : 'no API keys', s.tls ? 'TLS' : 'no TLS'];
    if (s.people != null) sec.push(s.people + ' people, ' + (s.faces || 0) + ' faces');
    $('s-security').textContent = sec.join(' · ');
    const peers = s.peers || [];
    $('s-peers').replaceChildren(...peers.map((p) => {
      const st = peerState(p);
      return el('tr', { 'data-node': p.node_id, class: 'peer-' + st },
        el('td', { class: 'mono', text: p.node_id }), el('td', { class: 'mono', text: p.addr }),
        el('td', {}, el('span', { class: 'pill ' + st, text: st })),
        el('td', { text: (p.roles || []).join(', ') }),
        el('td', {}, (p.busy || 0) + '/' + (p.workers || 0) + ' ', meter(p.busy, p.workers)),
        el('td', { text: String(p.queue_length || 0) }),
        el('td', { text: p.mean_job_s ? fmtS(p.mean_job_s) : '—' }));
    }));
    $('s-no-peers').hidden = peers.length > 0;
    $('s-updated').textContent = 'updated ' + new Date().toLocaleTimeString();
  } catch (e) {
    $('s-error').textContent = 'Could not read the status: ' + e.message;
  }
  if ($('s-auto').checked && !$('panel-status').hidden && !document.hidden) {
    statusTimer = setTimeout(loadStatus, 2000);
  }
}

function initStatus() {
  $('s-refresh').addEventListener('click', loadStatus);
  $('s-auto').addEventListener('change', loadStatus);
  document.addEventListener('visibilitychange', () => { if (!$('panel-status').hidden) loadStatus(); });
  onShow.status = loadStatus;
}

// ------------------------------------------------------------------ start

function initKey() {
  $('key-forget').addEventListener('click', () => {
    sessionStorage.removeItem(KEY);
    $('key-input').value = '';
    $('key-message').textContent = 'Key forgotten. Enter a key to go on.';
    $('key-input').focus();
  });
}

initKey();
initFilters();
initFaces();
initStatus();
initTabs();
