// The Rehearsal inspector: plain JavaScript, no build, no dependencies. Everything it shows
// comes from the control API (/_rehearsal/v1) and every button calls that same API, with the
// control token as `Authorization: Bearer` (the token arrives in the URL fragment, which never
// leaves the browser, and is kept in sessionStorage for this tab only).
'use strict';

const API = '/_rehearsal/v1';
const TOKEN_KEY = 'rehearsal-control-token';
const MAX_JOURNAL_ROWS = 1000;
const POLL_MS = 1000;

// ---- sign-in: the fragment's token moves to sessionStorage and out of the address bar.
function takeTokenFromFragment() {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (!m) return false;
  sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
  history.replaceState(null, '', location.pathname + location.search);
  return true;
}
takeTokenFromFragment();
// Opening the signed-in URL from a page of the inspector changes only the fragment.
window.addEventListener('hashchange', () => {
  if (takeTokenFromFragment()) start();
});

const state = {
  tenant: null,
  tenants: [],
  tab: 'sessions',
  sessions: [],
  clock: null,
  conversation: null,
  journal: null,
  frames: null,
  sessionWatch: null,
};

function $(sel) {
  return document.querySelector(sel);
}

/** An element with attributes and children (strings become text nodes: never HTML). */
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'className') e.className = v;
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function say(text, bad = true) {
  const s = $('#status');
  s.textContent = text;
  s.style.color = bad ? '' : 'var(--ok)';
}

class Unauthorized extends Error {}

function authHeaders() {
  const t = sessionStorage.getItem(TOKEN_KEY);
  return t ? { Authorization: `Bearer ${t}` } : {};
}

/** Calls the control API; resolves with the parsed JSON (or null), rejects with its message. */
async function api(method, path, body, { raw = false } = {}) {
  const headers = authHeaders();
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(API + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: 'no-store',
  });
  if (res.status === 401) {
    showSignIn();
    throw new Unauthorized('the control token is needed');
  }
  if (raw) return res;
  const text = await res.text();
  const json = text ? JSON.parse(text) : null;
  if (!res.ok) {
    const msg = (json && (json.message || json.code)) || `${res.status}`;
    throw new Error(`${method} ${path}: ${msg}`);
  }
  return json;
}

/** Runs an action, reporting success or failure in the status line. */
async function act(label, fn) {
  try {
    await fn();
    say(`${label}: done`, false);
  } catch (e) {
    if (!(e instanceof Unauthorized)) say(`${label}: ${e.message}`);
  }
}

function showSignIn() {
  $('#signin').hidden = false;
}

$('#signin-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $('#token-input').value.trim());
  $('#signin').hidden = true;
  start();
});

// ---- formatting

function time(ms) {
  if (ms === undefined || ms === null) return '';
  const d = new Date(Number(ms));
  return Number.isNaN(d.getTime()) ? String(ms) : d.toISOString().replace('T', ' ').replace('Z', '');
}

function wallTime(us) {
  return time(Math.floor(Number(us) / 1000)).slice(11);
}

function seconds(ms) {
  const s = Math.round(ms / 1000);
  if (Math.abs(s) < 120) return `${s} s`;
  if (Math.abs(s) < 7200) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

function t() {
  return encodeURIComponent(state.tenant);
}

// ---- tabs

for (const b of document.querySelectorAll('#tabs button')) {
  b.addEventListener('click', () => showTab(b.dataset.tab));
}

function showTab(name) {
  state.tab = name;
  for (const b of document.querySelectorAll('#tabs button')) b.classList.toggle('active', b.dataset.tab === name);
  for (const s of document.querySelectorAll('section.tab')) s.hidden = s.id !== `tab-${name}`;
  refreshTab().catch(() => {});
}

async function refreshTab() {
  if (!state.tenant) return;
  switch (state.tab) {
    case 'conversations':
      if (!$('#conversations').childElementCount) await loadConversations();
      break;
    case 'journal':
      if (!state.journal) startJournal();
      break;
    case 'frames':
      fillFrameSessions();
      break;
    case 'media':
      await loadMedia();
      break;
    case 'webhooks':
      await loadWebhooks();
      break;
    case 'faults':
      await loadFaults();
      break;
    case 'tenant':
      renderTenants();
      break;
    default:
      break;
  }
}

// ---- tenants and clock

async function loadTenants() {
  const { tenants } = await api('GET', '/tenants');
  state.tenants = tenants;
  const sel = $('#tenant');
  const keep = state.tenant;
  sel.replaceChildren(...tenants.map((x) => el('option', { value: x.account_sid }, x.account_sid)));
  state.tenant = tenants.some((x) => x.account_sid === keep) ? keep : tenants[0]?.account_sid ?? null;
  if (state.tenant) sel.value = state.tenant;
}

$('#tenant').addEventListener('change', (ev) => {
  state.tenant = ev.target.value;
  resetViews();
  refreshTab().catch(() => {});
});

function resetViews() {
  state.conversation = null;
  $('#conversations').replaceChildren();
  $('#conversation-detail').hidden = true;
  stopFollower(state.journal);
  state.journal = null;
  $('#journal-body').replaceChildren();
  stopFollower(state.frames);
  state.frames = null;
  $('#frames').replaceChildren();
  stopFollower(state.sessionWatch);
  state.sessionWatch = null;
}

async function loadClock() {
  state.clock = await api('GET', `/tenants/${t()}/clock`);
  $('#clock-now').textContent = state.clock.iso;
  const mode = $('#clock-mode');
  mode.textContent = state.clock.mode;
  mode.className = `badge ${state.clock.mode}`;
}

for (const b of document.querySelectorAll('[data-clock]')) {
  b.addEventListener('click', () =>
    act(`clock ${b.dataset.clock}`, async () => {
      const action = b.dataset.clock;
      const body = { action };
      if (action === 'advance') body.by_ms = Math.round(Number($('#advance-by').value || 0) * 1000);
      state.clock = await api('POST', `/tenants/${t()}/clock`, body);
      await loadClock();
    }),
  );
}

// ---- sessions

async function loadSessions() {
  const { connections } = await api('GET', `/tenants/${t()}/connections`);
  state.sessions = connections;
  renderSessions();
}

// The sessions view is pushed, not polled: the journal stream of the tenant's connection events
// (accepted, established, updated, closed), commands applied (fault) and Sync pushes (queue
// depth) triggers a reload of the list; a burst of events costs one reload in flight and one
// after it. Queue depth also moves without events (the writer drains it), hence the slow
// refresh in `tick` besides.
const SESSION_EVENTS = 'connection,fault,sync_push,control';
let sessionsLoading = null;
let sessionsDirty = false;

function sessionsChanged() {
  if (sessionsLoading) {
    sessionsDirty = true;
    return;
  }
  sessionsLoading = (async () => {
    do {
      sessionsDirty = false;
      await loadSessions().catch((e) => {
        if (!(e instanceof Unauthorized)) say(e.message);
      });
    } while (sessionsDirty);
    sessionsLoading = null;
  })();
}

function watchSessions() {
  stopFollower(state.sessionWatch);
  state.sessionWatch = follow({ kind: SESSION_EVENTS }, () => sessionsChanged(), { backlog: 1 });
}

function expiresIn(s) {
  if (!state.clock) return '';
  const expMs = s.token_expires_at < 1e11 ? s.token_expires_at * 1000 : s.token_expires_at;
  const left = expMs - state.clock.now;
  return left <= 0 ? `expired ${seconds(-left)} ago` : `in ${seconds(left)}`;
}

function sessionAction(target, action, extra = {}) {
  return act(`${action}`, () =>
    api('POST', `/tenants/${t()}/connections/actions`, { target, action, ...extra }).then(() => loadSessions()),
  );
}

function renderSessions() {
  const body = $('#sessions-body');
  $('#sessions-empty').hidden = state.sessions.length > 0;
  body.replaceChildren(
    ...state.sessions.map((s) => {
      const target = { session: s.id };
      const button = (label, action, extra) =>
        el('button', { className: 'small', 'data-action': action, onclick: () => sessionAction(target, action, extra) }, label);
      const close = el('button', {
        className: 'small',
        'data-action': 'close',
        onclick: () => {
          const code = Number(prompt('twilsock close code (308 reconnects; 401, 406, 410, 417 are terminal)', '308'));
          if (code) sessionAction(target, 'close', { code });
        },
      }, 'close…');
      return el(
        'tr',
        { 'data-session-id': s.id, 'data-identity': s.identity },
        el('td', {}, String(s.id)),
        el('td', {}, s.identity),
        el('td', {}, el('span', { className: 'badge ok' }, s.state)),
        el('td', {}, time(s.since).slice(11)),
        el('td', { className: 'expiry' }, expiresIn(s)),
        el('td', {}, String(s.token_updates)),
        el('td', {}, `${s.queue_depth} frames, ${s.queue_bytes} B`),
        el('td', { title: s.subscriptions.join('\n') }, String(s.subscriptions.length)),
        el(
          'td',
          { className: 'actions' },
          button('drop', 'drop'),
          close,
          button('warn expiry', 'warn_token_expiry'),
          button('expire token', 'expire_token'),
          button('hold', 'hold_notifications'),
          button('release', 'release_notifications'),
          button('stall', 'stall'),
          button('unstall', 'unstall'),
          el('button', { className: 'small', onclick: () => showFrames(s.id) }, 'frames'),
        ),
      );
    }),
  );
}

$('#identity-action').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const f = ev.target.elements;
  const action = f.action.value;
  const extra = action === 'close' ? { code: Number(f.code.value) } : {};
  sessionAction({ identity: f.identity.value.trim() }, action, extra);
});

$('#refuse').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const ms = Math.round(Number(ev.target.elements.seconds.value || 0) * 1000);
  act('refuse connections', () => api('POST', `/tenants/${t()}/connections/refuse`, { for_ms: ms }));
});

// ---- conversations (read through the tenant's own REST API, without journaling)

/** The REST view path of a Twilio URL (`next_page_url`), or null. */
function restPath(url) {
  if (!url) return null;
  const u = new URL(url, location.origin);
  return `/tenants/${t()}/rest${u.pathname}${u.search}`;
}

let conversationsNext = null;

async function loadConversations(path = `/tenants/${t()}/rest/v1/Conversations?PageSize=50`) {
  const page = await api('GET', path);
  const list = $('#conversations');
  for (const c of page.conversations) {
    list.append(
      el(
        'li',
        { 'data-sid': c.sid, onclick: (ev) => openConversation(c, ev.currentTarget) },
        el('strong', {}, c.friendly_name || c.unique_name || c.sid),
        el('br'),
        el('span', { className: 'muted mono' }, c.sid),
      ),
    );
  }
  conversationsNext = restPath(page.meta.next_page_url);
  $('#conversations-more').hidden = !conversationsNext;
}

$('#conversations-more').addEventListener('click', () => loadConversations(conversationsNext).catch((e) => say(e.message)));

let messagesNext = null;

async function openConversation(c, li) {
  for (const x of document.querySelectorAll('#conversations li')) x.classList.toggle('active', x === li);
  state.conversation = c;
  $('#conversation-title').textContent = `${c.friendly_name || c.unique_name || c.sid} (${c.sid})`;
  $('#conversation-detail').hidden = false;
  const base = `/tenants/${t()}/rest/v1/Conversations/${encodeURIComponent(c.sid)}`;
  const parts = await api('GET', `${base}/Participants?PageSize=100`);
  $('#participants').replaceChildren(
    ...parts.participants.map((p) => el('li', { title: p.sid }, p.identity || p.messaging_binding?.address || p.sid)),
  );
  $('#messages').replaceChildren();
  await loadMessages(`${base}/Messages?PageSize=30&Order=desc`);
  const hooks = await api('GET', `${base}/Webhooks?PageSize=5`).catch((e) => ({ error: e.message }));
  $('#conversation-webhooks').textContent = hooks.error ?? (hooks.webhooks.length ? JSON.stringify(hooks.webhooks, null, 2) : 'none');
}

async function loadMessages(path) {
  const page = await api('GET', path);
  const body = $('#messages');
  for (const m of page.messages) {
    body.append(
      el(
        'tr',
        { 'data-index': m.index },
        el('td', {}, String(m.index)),
        el('td', {}, m.author ?? ''),
        el('td', {}, m.body ?? ''),
        el('td', {}, (m.media || []).map((x) => `${x.filename || x.sid} (${x.content_type}, ${x.size} B)`).join(', ')),
        el('td', {}, m.date_created ?? ''),
      ),
    );
  }
  messagesNext = restPath(page.meta.next_page_url);
  $('#messages-older').hidden = !messagesNext;
}

$('#messages-older').addEventListener('click', () => loadMessages(messagesNext).catch((e) => say(e.message)));

$('#post-message').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const f = ev.target.elements;
  const c = state.conversation;
  act('post', async () => {
    await api('POST', `/tenants/${t()}/actors`, { as: f.as.value.trim(), action: 'post', conversation: c.sid, body: f.body.value });
    f.body.value = '';
    $('#messages').replaceChildren();
    await loadMessages(`/tenants/${t()}/rest/v1/Conversations/${encodeURIComponent(c.sid)}/Messages?PageSize=30&Order=desc`);
  });
});

// ---- the journal, followed live (the NDJSON stream with the API's own filters)

function stopFollower(f) {
  if (f) f.abort.abort();
}

/** Reads an NDJSON stream of the control API until it ends (or `signal` aborts it). */
async function readNdjson(url, signal, onLine) {
  const res = await fetch(url, { headers: authHeaders(), signal, cache: 'no-store' });
  if (res.status === 401) {
    showSignIn();
    throw new Unauthorized('the control token is needed');
  }
  if (!res.ok) throw new Error(`${url.replace(API, '')}: ${res.status}`);
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += decoder.decode(value, { stream: true });
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.trim()) onLine(JSON.parse(line));
    }
  }
}

/**
 * Shows the newest matching entries, then follows the stream from there. `onEntry` gets each
 * entry once, in order.
 */
function follow(query, onEntry, { live = true, backlog = 200, onEnd } = {}) {
  const f = { abort: new AbortController() };
  (async () => {
    const q = new URLSearchParams(query);
    q.set('limit', String(backlog));
    const page = await api('GET', `/tenants/${t()}/journal?${q}`);
    for (const e of page.entries) onEntry(e);
    if (!live || f.abort.signal.aborted) return;
    const s = new URLSearchParams(query);
    s.set('after', String(page.entries.length ? page.entries[page.entries.length - 1].seq : page.last_seq));
    await readNdjson(`${API}/tenants/${t()}/journal/stream?${s}`, f.abort.signal, (e) => {
      if (e.lagged !== undefined) say(`journal: ${e.lagged} entries were missed (the page fell behind)`);
      else onEntry(e);
    });
    if (!f.abort.signal.aborted && onEnd) onEnd();
  })()
    .catch((e) => {
      if (e.name !== 'AbortError' && !(e instanceof Unauthorized)) say(e.message);
    })
    .finally(() => {
      f.done = true;
    });
  return f;
}

function journalQuery() {
  const f = $('#journal-filter').elements;
  const q = {};
  for (const k of ['kind', 'identity', 'session', 'contains']) {
    const v = f[k].value.trim();
    if (v) q[k] = v;
  }
  return q;
}

function startJournal() {
  stopFollower(state.journal);
  const body = $('#journal-body');
  body.replaceChildren();
  const live = $('#journal-filter').elements.follow.checked;
  state.journal = follow(journalQuery(), (e) => {
    const row = el(
      'tr',
      { 'data-seq': e.seq, 'data-kind': e.kind, onclick: () => toggleDetail(row, e) },
      el('td', {}, String(e.seq)),
      el('td', { title: time(e.at) }, wallTime(e.wall_us)),
      el('td', {}, e.kind),
      el('td', {}, e.session ?? ''),
      el('td', {}, e.identity ?? ''),
      el('td', {}, e.summary),
    );
    body.prepend(row);
    while (body.childElementCount > MAX_JOURNAL_ROWS) body.lastElementChild.remove();
  }, { live, onEnd: () => say('the journal stream ended (the server stopped?); Apply follows it again') });
}

function toggleDetail(row, e) {
  const next = row.nextElementSibling;
  if (next && next.classList.contains('detail')) {
    next.remove();
    return;
  }
  row.after(el('tr', { className: 'detail' }, el('td', { colspan: 6 }, el('pre', {}, JSON.stringify(e, null, 2)))));
}

$('#journal-filter').addEventListener('submit', (ev) => {
  ev.preventDefault();
  startJournal();
});

// ---- frames of one session

function fillFrameSessions(selected) {
  const sel = $('#frames-session');
  const keep = selected ?? sel.value;
  sel.replaceChildren(...state.sessions.map((s) => el('option', { value: s.id }, `${s.id} — ${s.identity}`)));
  if (keep && !state.sessions.some((s) => String(s.id) === String(keep))) {
    sel.append(el('option', { value: keep }, `${keep} (ended)`));
  }
  if (keep) sel.value = String(keep);
}

function showFrames(id) {
  showTab('frames');
  fillFrameSessions(id);
  startFrames(id);
}

const MAX_FRAME_ROWS = 1000;

/** Turns the session's frame tap on and follows its frames (kept since the tap went on). */
function startFrames(id) {
  stopFollower(state.frames);
  const box = $('#frames');
  box.replaceChildren();
  if (!id) return;
  const f = { abort: new AbortController() };
  state.frames = f;
  const base = `${API}/tenants/${t()}/connections/${encodeURIComponent(id)}`;
  (async () => {
    // The session may have ended since (its frames stay readable while tapped): only a live one
    // can be tapped anew.
    await api('PUT', `/tenants/${t()}/connections/${encodeURIComponent(id)}/tap`).catch((e) => {
      if (e instanceof Unauthorized) throw e;
    });
    $('#frames-state').textContent = `tapping session ${id}`;
    await readNdjson(`${base}/frames/stream`, f.abort.signal, (fr) => {
      if (fr.lagged !== undefined) {
        box.append(el('div', { className: 'frame lagged' }, `${fr.lagged} frame(s) dropped before the page read them`));
        return;
      }
      box.append(frameRow(fr));
      while (box.childElementCount > MAX_FRAME_ROWS) box.firstElementChild.remove();
    });
    if (!f.abort.signal.aborted) $('#frames-state').textContent = `the tap of session ${id} is off`;
  })().catch((e) => {
    if (e.name !== 'AbortError' && !(e instanceof Unauthorized)) say(e.message);
  });
}

/** One frame: time, direction, method and summary; a click shows its header and payload. */
function frameRow(fr) {
  const dir = fr.direction === 'in' ? ['in', '→'] : ['out', '←'];
  const row = el(
    'div',
    { className: `frame ${dir[0]}`, 'data-direction': fr.direction, 'data-method': fr.method ?? '', 'data-id': fr.id ?? '', 'data-seq': fr.seq },
    el('span', { className: 'muted mono' }, time(fr.at).slice(11)),
    el('span', { className: 'dir', title: fr.direction === 'in' ? 'from the client' : 'to the client' }, dir[1]),
    el('strong', { className: 'mono' }, fr.method ?? '?'),
    el('span', { className: 'mono' }, fr.summary),
    el('span', { className: 'muted' }, `${fr.size} B`),
    fr.clipped ? el('span', { className: 'badge clipped' }, `clipped: ${fr.clipped} B not kept`) : '',
  );
  row.addEventListener('click', () => {
    const next = row.nextElementSibling;
    if (next && next.classList.contains('frame-detail')) {
      next.remove();
      return;
    }
    let body = '';
    if (fr.payload !== undefined) body = JSON.stringify(fr.payload, null, 2);
    else if (fr.text !== undefined) body = fr.text;
    row.after(
      el(
        'div',
        { className: 'frame-detail' },
        el('h4', {}, 'header'),
        el('pre', {}, fr.header ? JSON.stringify(fr.header, null, 2) : '(not a twilsock header)'),
        el('h4', {}, 'payload'),
        el('pre', { className: 'payload' }, body || '(empty)', fr.clipped ? `\n… [clipped: ${fr.clipped} more bytes]` : ''),
      ),
    );
  });
  return row;
}

$('#frames-stop').addEventListener('click', () => {
  const id = $('#frames-session').value;
  if (!id) return;
  act('tap off', () => api('DELETE', `/tenants/${t()}/connections/${encodeURIComponent(id)}/tap`));
});

$('#frames-filter').addEventListener('submit', (ev) => {
  ev.preventDefault();
  startFrames($('#frames-session').value);
});

// ---- near-misses

async function loadNearMisses() {
  const v = await api('GET', `/tenants/${t()}/near_misses`);
  const total = v.groups.reduce((n, g) => n + g.count, 0);
  $('#near-miss-count').textContent = total ? String(total) : '';
  $('#near-misses-empty').hidden = v.groups.length > 0;
  $('#near-misses-overflow').textContent = v.overflow ? `${v.overflow} more requests in groups not kept (at most ${v.max_groups} groups)` : '';
  $('#near-misses-body').replaceChildren(
    ...v.groups.map((g) =>
      el(
        'tr',
        { 'data-path': g.path, 'data-method': g.method },
        el('td', {}, String(g.count)),
        el('td', {}, g.transport),
        el('td', {}, g.method),
        el('td', { className: 'mono' }, g.path),
        el('td', {}, `${g.status} ${g.reason === 'no_route' ? 'no such route' : 'method not allowed'}`),
        el('td', { className: 'mono' }, g.example),
        el('td', {}, time(g.last_at).slice(11)),
      ),
    ),
  );
}

$('#near-misses-clear').addEventListener('click', () => act('clear near-misses', () => api('DELETE', '/near_misses').then(loadNearMisses)));

// ---- media

/** Image types previewed (as the server serves them inline), the most previews per reload, and their largest size. */
const PREVIEW_TYPES = ['image/png', 'image/jpeg', 'image/gif', 'image/webp'];
const MAX_PREVIEWS = 50;
const MAX_PREVIEW_BYTES = 5 * 1024 * 1024;
let previewUrls = [];

/** An <img> of a media record's bytes, read through the control API with the token. */
function mediaPreview(m) {
  const img = el('img', { className: 'media-preview', alt: m.filename || m.sid, 'data-media': m.sid });
  api('GET', `/tenants/${t()}/media/${encodeURIComponent(m.sid)}/content`, undefined, { raw: true })
    .then(async (res) => {
      if (!res.ok) throw new Error(`media ${m.sid}: ${res.status}`);
      const url = URL.createObjectURL(await res.blob());
      previewUrls.push(url);
      img.src = url;
    })
    .catch((e) => {
      if (!(e instanceof Unauthorized)) say(e.message);
    });
  return img;
}

async function loadMedia() {
  const v = await api('GET', `/tenants/${t()}/media?limit=200`);
  for (const u of previewUrls) URL.revokeObjectURL(u);
  previewUrls = [];
  let previews = 0;
  $('#media-total').textContent = `${v.total} media record(s)${v.total > v.media.length ? `, newest ${v.media.length} shown` : ''}`;
  $('#media-body').replaceChildren(
    ...v.media.map((m) => {
      const previewable = PREVIEW_TYPES.includes(String(m.content_type).toLowerCase()) && m.size <= MAX_PREVIEW_BYTES && previews < MAX_PREVIEWS;
      if (previewable) previews += 1;
      return el(
        'tr',
        { 'data-sid': m.sid },
        el('td', {}, previewable ? mediaPreview(m) : ''),
        el('td', { className: 'mono' }, m.sid),
        el('td', {}, m.content_type),
        el('td', {}, m.filename ?? ''),
        el('td', {}, `${m.size} B`),
        el('td', {}, m.author ?? ''),
        el('td', { className: 'mono' }, m.conversation_sid ?? ''),
        el('td', { className: 'mono' }, m.message_sid ?? ''),
        el('td', {}, time(m.date_created)),
      );
    }),
  );
}

// ---- webhooks

async function loadWebhooks() {
  const tenant = state.tenants.find((x) => x.account_sid === state.tenant);
  const account = await api('GET', `/tenants/${t()}/rest/v1/Configuration/Webhooks`).catch((e) => ({ error: e.message }));
  $('#webhooks-account').textContent = JSON.stringify(account, null, 2);
  const service = tenant
    ? await api('GET', `/tenants/${t()}/rest/v1/Services/${encodeURIComponent(tenant.service_sid)}/Configuration/Webhooks`).catch(
        (e) => ({ error: e.message }),
      )
    : {};
  $('#webhooks-service').textContent = JSON.stringify(service, null, 2);
  const page = await api('GET', `/tenants/${t()}/journal?kind=webhook&limit=200`);
  $('#deliveries').replaceChildren(
    ...page.entries.reverse().map((e) => {
      const row = el(
        'tr',
        { onclick: () => toggleDetail(row, e) },
        el('td', {}, String(e.seq)),
        el('td', {}, wallTime(e.wall_us)),
        el('td', { className: 'mono' }, e.summary),
      );
      return row;
    }),
  );
}

// ---- faults

async function loadFaults() {
  const v = await api('GET', `/tenants/${t()}/faults`);
  const rows = [];
  for (const r of v.http) {
    const what = r.fault.kind === 'fail' ? `fail ${r.fault.status}/${r.fault.code}` : `delay ${r.fault.by} ms`;
    rows.push([r.id, `HTTP ${r.method || 'any'} ${r.path}: ${what}`, r.count]);
  }
  for (const d of v.inits) rows.push([d.id, `init denied ${d.status}/${d.error_code}${d.identity ? ` for ${d.identity}` : ''}`, d.count]);
  for (const r of v.refusals) rows.push([null, `connections refused until ${time(r.until)}`, '']);
  $('#faults-body').replaceChildren(
    ...rows.map(([id, what, left]) =>
      el(
        'tr',
        {},
        el('td', {}, id ?? ''),
        el('td', {}, what),
        el('td', {}, String(left)),
        el(
          'td',
          {},
          id === null
            ? ''
            : el('button', { className: 'small', onclick: () => act('disarm', () => api('DELETE', `/faults/${id}`).then(loadFaults)) }, 'disarm'),
        ),
      ),
    ),
  );
}

$('#arm-fault').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const f = ev.target.elements;
  const fault =
    f.kind.value === 'fail'
      ? { kind: 'fail', status: Number(f.status.value), code: Number(f.code.value) }
      : { kind: 'delay', by: Number(f.delay.value) };
  const rule = { path: f.path.value.trim(), count: Number(f.count.value), fault };
  if (f.method.value.trim()) rule.method = f.method.value.trim().toUpperCase();
  act('arm fault', () => api('POST', `/tenants/${t()}/faults/http`, rule).then(loadFaults));
});

$('#faults-clear').addEventListener('click', () => act('disarm all', () => api('DELETE', `/tenants/${t()}/faults`).then(loadFaults)));

// ---- tenants: credentials, reset, export

function renderTenants() {
  $('#tenants-body').replaceChildren(
    ...state.tenants.map((x) =>
      el(
        'tr',
        {},
        el('td', { className: 'mono' }, x.account_sid),
        el('td', { className: 'mono' }, x.auth_token),
        el('td', { className: 'mono' }, x.api_key),
        el('td', { className: 'mono' }, x.api_secret),
        el('td', { className: 'mono' }, x.service_sid),
      ),
    ),
  );
}

$('#reset').addEventListener('click', () => {
  if (!confirm(`Reset ${state.tenant} to its seed? Its content is rebuilt and its sessions dropped.`)) return;
  act('reset', async () => {
    await api('POST', `/tenants/${t()}/reset`);
    resetViews();
  });
});

$('#export').addEventListener('click', () =>
  act('export', async () => {
    const res = await api('GET', `/tenants/${t()}/state`, undefined, { raw: true });
    if (!res.ok) throw new Error(`export: ${res.status}`);
    const blob = await res.blob();
    const a = $('#export-link');
    a.href = URL.createObjectURL(blob);
    a.download = `rehearsal-${state.tenant}.json`;
    a.click();
  }),
);

// ---- scenario progress (`rehearsal serve --scenario ID`)

async function loadScenario() {
  const { scenario } = await api('GET', '/scenario');
  const banner = $('#scenario-banner');
  if (!scenario) {
    banner.hidden = true;
    return;
  }
  const last = scenario.outcomes?.[scenario.outcomes.length - 1];
  banner.hidden = false;
  banner.replaceChildren(
    el('strong', {}, `Scenario ${scenario.id}`),
    ` — ${scenario.title}: play ${scenario.round}, ${scenario.state}`,
    el('span', { className: 'steps', 'data-steps-done': scenario.steps_done ?? 0 }, stepProgress(scenario)),
    last ? el('span', {}, ' · last verdict ', el('span', { className: `verdict ${last.verdict}` }, last.verdict)) : '',
  );
  const box = $('#scenario');
  box.replaceChildren(
    el('p', {}, el('strong', {}, scenario.id), ` — ${scenario.title}`),
    el('p', {}, `Play ${scenario.round}: ${scenario.state}. Connect as: ${(scenario.identities || []).join(', ')}`),
    el(
      'ol',
      { className: 'scenario-steps' },
      ...(scenario.steps || []).map((d, i) =>
        el('li', { className: i < (scenario.steps_done ?? 0) ? 'done' : i === (scenario.steps_done ?? 0) ? 'current' : '' }, d),
      ),
    ),
    ...(scenario.outcomes || [])
      .slice()
      .reverse()
      .map((o) =>
        el(
          'div',
          { className: 'outcome' },
          el('h3', {}, `Play ${o.round}: `, el('span', { className: `verdict ${o.verdict}` }, o.verdict), ` after ${(o.duration_ms / 1000).toFixed(1)} s`),
          o.reason ? el('p', {}, o.reason) : '',
          el(
            'ol',
            { className: 'outcome-steps' },
            ...(o.steps || []).map((st) => el('li', { className: st.ok ? 'ok' : 'failed' }, `${st.ok ? 'ok' : 'FAILED'} ${st.description}${st.detail ? ` (${st.detail})` : ''}`)),
          ),
          el(
            'table',
            { className: 'grid' },
            el('thead', {}, el('tr', {}, el('th', {}, ''), el('th', {}, 'expectation'), el('th', {}, 'grade'), el('th', {}, 'expected / actual'))),
            el(
              'tbody',
              {},
              ...(o.expectations || []).map((x) =>
                el(
                  'tr',
                  {},
                  el('td', {}, x.passed ? 'ok' : 'FAIL'),
                  el('td', {}, x.label),
                  el('td', {}, x.grade),
                  el('td', {}, x.passed ? '' : `expected ${x.expected}; ${x.actual}`),
                ),
              ),
            ),
          ),
        ),
      ),
  );
}

/** ` · step 2 of 5 done: server drop alice (ok) · next: wait 2s` */
function stepProgress(scenario) {
  if (scenario.steps_total === undefined) return '';
  const done = scenario.steps_done ?? 0;
  let text = ` · steps done: ${done} of ${scenario.steps_total}`;
  const l = scenario.last_step;
  if (l) text += ` · last: ${l.description} (${l.ok ? 'ok' : 'failed'}${l.detail ? `, ${l.detail}` : ''})`;
  if (scenario.next_step) text += ` · now: ${scenario.next_step}`;
  return text;
}

// ---- polling loop

let started = false;

/** Every `SESSIONS_REFRESH_TICKS` ticks the session list is read even without an event. */
const SESSIONS_REFRESH_TICKS = 5;
let ticks = 0;

async function tick() {
  if (!state.tenant) return;
  await loadClock();
  // (Re)starts the push of session changes: at start, after a tenant change, after the stream
  // ended (the server restarted).
  if (!state.sessionWatch || state.sessionWatch.done) watchSessions();
  if (ticks++ % SESSIONS_REFRESH_TICKS === 0) sessionsChanged();
  else if (state.clock) renderSessions();
  await loadNearMisses();
  if (state.tab === 'frames') fillFrameSessions();
}

let scenarioTicks = 0;

async function loop() {
  for (;;) {
    try {
      await tick();
      if (scenarioTicks++ % 2 === 0) await loadScenario();
    } catch (e) {
      if (e instanceof Unauthorized) {
        started = false;
        return;
      }
      say(e.message);
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

async function start() {
  try {
    await loadTenants();
    $('#signin').hidden = true;
    if (!started) {
      started = true;
      loop();
    }
    await refreshTab();
  } catch (e) {
    if (!(e instanceof Unauthorized)) say(e.message);
  }
}

start();
