// Helpers for driving the official, unmodified `@twilio/conversations` SDK
// against a real `rehearsal serve`: per-test servers (optionally from a seed
// written on the fly), SDK clients that record every event they emit, waits
// with explicit timeouts, REST calls, hand-minted access tokens and a TCP
// proxy (every client goes through it) that decodes the twilsock packets and
// can drop the SDK's WebSocket.
//
// Nothing here sleeps for a fixed time: every wait is for an event (or a
// state), bounded by a timeout whose error says what was awaited and what was
// seen instead. The one timed condition is the proxy's "quiet for N ms" in
// waitIdle(), which is how "the SDK has nothing in flight" is observed.

import { createHmac, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

import { REPO_ROOT, DEFAULT_SEED, startServer, withTimeout } from './helpers.mjs';

const require = createRequire(import.meta.url);
const { Client } = require('@twilio/conversations');

export { Client };

/** SDK log level for every client (`SDK_LOG_LEVEL=debug` prints the twilsock traffic). */
export const SDK_LOG_LEVEL = process.env.SDK_LOG_LEVEL || 'silent';

/** Default bound on any single wait. Generous for CI; a healthy run needs a fraction of it. */
export const WAIT_MS = 10_000;

/**
 * How long before `exp` the server sends `client_update token_about_to_expire`
 * (Rehearsal's session default). Token tests pick TTLs relative to it.
 */
export const TOKEN_WARNING_LEAD_SECS = 180;

/** The SDK waits this long after a server `close` before it reports `disconnected` (twilsock). */
export const SDK_CLOSE_TIMER_MS = 3_000;

export const CLIENT_EVENTS = [
  'connectionStateChanged',
  'connectionError',
  'stateChanged',
  'initialized',
  'initFailed',
  'tokenAboutToExpire',
  'tokenExpired',
  'conversationAdded',
  'conversationJoined',
  'conversationLeft',
  'conversationRemoved',
  'conversationUpdated',
  'messageAdded',
  'messageUpdated',
  'messageRemoved',
  'participantJoined',
  'participantLeft',
  'participantUpdated',
  'typingStarted',
  'typingEnded',
  'userUpdated',
];

export const CONVERSATION_EVENTS = [
  'messageAdded',
  'messageUpdated',
  'messageRemoved',
  'participantJoined',
  'participantLeft',
  'participantUpdated',
  'typingStarted',
  'typingEnded',
  'updated',
  'removed',
];

// ---------------------------------------------------------------------------
// Event recording and waiting
// ---------------------------------------------------------------------------

function describeArg(arg) {
  if (arg === undefined) return '';
  if (arg === null || typeof arg !== 'object') return JSON.stringify(arg);
  if (arg instanceof Error) return `${arg.name}: ${arg.message}`;
  // SDK objects: pick the fields that identify them.
  const parts = [];
  for (const key of ['identity', 'uniqueName', 'index', 'body', 'sid', 'message', 'terminal', 'errorCode']) {
    try {
      const v = arg[key];
      if (v !== undefined && typeof v !== 'function' && typeof v !== 'object') parts.push(`${key}=${JSON.stringify(v)}`);
    } catch {
      // getters may throw on half-built objects
    }
  }
  if (arg.participant) parts.push(`participant=${describeArg(arg.participant)}`);
  if (arg.conversation) parts.push(`conversation=${describeArg(arg.conversation)}`);
  if (arg.updateReasons) parts.push(`reasons=${JSON.stringify(arg.updateReasons)}`);
  return `{${parts.join(' ')}}`;
}

/**
 * Records events from emitters as they happen, so a test can start an action
 * and then wait for its effect without racing the listener registration.
 * Every entry has a sequence number; `mark()` + `waitFor(..., { since })` waits
 * only for events after a point.
 */
export class Recorder {
  constructor(label) {
    this.label = label;
    this.entries = [];
    this.waiters = new Set();
    this.detachers = [];
    this.seq = 0;
  }

  /** Record `names` emitted by `emitter`, under `prefix` + name. */
  watch(emitter, names, prefix = '') {
    for (const name of names) {
      const handler = (...args) => this.push(prefix + name, args);
      emitter.on(name, handler);
      this.detachers.push(() => emitter.removeListener(name, handler));
    }
    return this;
  }

  push(name, args) {
    const entry = { seq: ++this.seq, name, args, arg: args[0], at: Date.now() };
    this.entries.push(entry);
    for (const waiter of [...this.waiters]) {
      if (waiter.matches(entry)) {
        this.waiters.delete(waiter);
        waiter.resolve(entry);
      }
    }
  }

  /** The current sequence number: events recorded after this call have a larger one. */
  mark() {
    return this.seq;
  }

  /** Recorded entries named `name` (after `since`) matching `predicate`. */
  all(name, predicate = () => true, { since = 0 } = {}) {
    return this.entries.filter((e) => e.seq > since && e.name === name && predicate(e.arg, e));
  }

  /** A readable trail of the last events, for failure messages. */
  trail(limit = 40) {
    return this.entries
      .slice(-limit)
      .map((e) => `  #${e.seq} ${e.name} ${describeArg(e.arg)}`)
      .join('\n');
  }

  /**
   * Resolve with the first entry named `name` (after `since`) for which
   * `predicate(arg, entry)` holds, already recorded or yet to come; reject
   * after `ms` with a message listing what was recorded instead.
   */
  waitForEntry(name, predicate = () => true, { ms = WAIT_MS, since = 0, what } = {}) {
    const names = Array.isArray(name) ? name : [name];
    const matches = (e) => e.seq > since && names.includes(e.name) && predicate(e.arg, e);
    const existing = this.entries.find(matches);
    if (existing) return Promise.resolve(existing);
    const waiter = { matches };
    const promise = new Promise((resolve) => {
      waiter.resolve = resolve;
    });
    this.waiters.add(waiter);
    return withTimeout(
      promise,
      ms,
      () =>
        `[${this.label}] waiting for ${what ?? `"${name}"`}; events recorded:\n${this.trail()}${
          this.diagnostics ? `\n${this.diagnostics()}` : ''
        }`,
    ).finally(() => this.waiters.delete(waiter));
  }

  /** Like `waitForEntry`, resolving with the event's first argument. */
  async waitFor(name, predicate, opts) {
    return (await this.waitForEntry(name, predicate, opts)).arg;
  }

  detach() {
    for (const d of this.detachers.splice(0)) d();
  }
}

/** One-shot wait for `event` on `emitter` matching `predicate`, with a timeout. */
export function waitFor(emitter, event, predicate = () => true, ms = WAIT_MS, what = `"${event}"`) {
  let handler;
  const promise = new Promise((resolve) => {
    handler = (...args) => {
      if (predicate(...args)) resolve(args[0]);
    };
    emitter.on(event, handler);
  });
  return withTimeout(promise, ms, `waiting for ${what}`).finally(() => emitter.removeListener(event, handler));
}

/**
 * Exit the test process shortly after its last test, even though timers the
 * SDK created are still pending. `Client.shutdown()` leaves some behind:
 * twilio-sync's subscription re-poke check (`estimated_delivery_in_ms`, 5 s
 * here) is never cleared, and a tunnelled request still in flight when
 * shutdown() closes the socket keeps twilsock's 30 s request timer. They
 * would only delay the exit (by up to 30 s), never change the result. Call it
 * from the file's root `after` hook: `process.exitCode` (failed tests, the
 * unhandled-rejection guard) is kept, and rejections during the grace period
 * are still recorded.
 */
export function exitDespiteSdkTimers(graceMs = 500) {
  setTimeout(() => process.exit(), graceMs).unref();
}

// ---------------------------------------------------------------------------
// Access tokens
// ---------------------------------------------------------------------------

const b64url = (value) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

/**
 * Mint a Twilio access token (HS256) ourselves, so tests can pick any
 * `iat`/`exp`, including ones already in the past (the dev endpoint cannot).
 */
export function mintAccessToken({
  identity,
  iat = Math.floor(Date.now() / 1000),
  ttl = 3600,
  exp = iat + ttl,
  accountSid = DEFAULT_SEED.TWILIO_ACCOUNT_SID,
  keySid = DEFAULT_SEED.TWILIO_API_KEY,
  secret = DEFAULT_SEED.TWILIO_API_SECRET,
  serviceSid = DEFAULT_SEED.TWILIO_CONVERSATIONS_SERVICE_SID,
}) {
  const header = { alg: 'HS256', typ: 'JWT', cty: 'twilio-fpa;v=1' };
  const payload = {
    jti: `${keySid}-${iat}-${randomUUID().slice(0, 8)}`,
    grants: { identity, chat: { service_sid: serviceSid } },
    iat,
    exp,
    iss: keySid,
    sub: accountSid,
  };
  const signingInput = `${b64url(header)}.${b64url(payload)}`;
  const signature = createHmac('sha256', secret).update(signingInput).digest('base64url');
  return `${signingInput}.${signature}`;
}

/** Decode a JWT payload (no verification). */
export function jwtPayload(token) {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'));
}

// ---------------------------------------------------------------------------
// Seeds
// ---------------------------------------------------------------------------

/** The embedded default seed, parsed (a fresh copy each call). */
export function defaultSeed() {
  return JSON.parse(readFileSync(path.join(REPO_ROOT, 'fixtures', 'seeds', 'default.json'), 'utf8'));
}

// ---------------------------------------------------------------------------
// TCP proxy: lets a test drop the SDK's socket and hold its reconnection, and
// taps the twilsock packets going through (for idleness and diagnostics)
// ---------------------------------------------------------------------------

/**
 * Incremental parser of one direction of a WebSocket connection (after the
 * HTTP upgrade): calls `onMessage(Buffer)` per complete data message.
 * Rehearsal negotiates no extensions, so frames are plain (client frames masked).
 */
function webSocketMessages(onMessage) {
  let buf = Buffer.alloc(0);
  let upgraded = false;
  let fragments = [];
  return (chunk) => {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    if (!upgraded) {
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      buf = buf.subarray(end + 4);
      upgraded = true;
    }
    for (;;) {
      if (buf.length < 2) return;
      const fin = (buf[0] & 0x80) !== 0;
      const opcode = buf[0] & 0x0f;
      const masked = (buf[1] & 0x80) !== 0;
      let len = buf[1] & 0x7f;
      let off = 2;
      if (len === 126) {
        if (buf.length < 4) return;
        len = buf.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (buf.length < 10) return;
        len = Number(buf.readBigUInt64BE(2));
        off = 10;
      }
      const maskAt = off;
      if (masked) off += 4;
      if (buf.length < off + len) return;
      const payload = Buffer.from(buf.subarray(off, off + len));
      if (masked) for (let i = 0; i < payload.length; i++) payload[i] ^= buf[maskAt + (i & 3)];
      buf = buf.subarray(off + len);
      if (opcode === 0 || opcode === 1 || opcode === 2) {
        fragments.push(payload);
        if (fin) {
          onMessage(Buffer.concat(fragments));
          fragments = [];
        }
      }
    }
  };
}

/** Decode one twilsock packet: `{ header, payload }` (payload parsed when JSON), or null. */
export function decodeTwilsock(data) {
  const text = data.toString('utf8');
  const m = /^TWILSOCK V3\.0 (\d+)\r\n/.exec(text);
  if (!m) return null;
  const bytes = Buffer.from(text, 'utf8');
  const headerStart = Buffer.byteLength(m[0]);
  const headerLen = Number(m[1]);
  let header;
  try {
    header = JSON.parse(bytes.subarray(headerStart, headerStart + headerLen).toString('utf8'));
  } catch {
    return null;
  }
  const raw = bytes.subarray(headerStart + headerLen + 2, headerStart + headerLen + 2 + (header.payload_size ?? 0));
  let payload = raw.toString('utf8');
  try {
    payload = payload ? JSON.parse(payload) : undefined;
  } catch {
    // leave as text
  }
  return { header, payload };
}

/** A one-line summary of a tapped twilsock packet. */
export function describePacket({ dir, at, conn, header, payload }) {
  const http = header.http_request ? ` ${header.http_request.method} ${header.http_request.path}` : '';
  const status = header.status ? ` status=${header.status.code}` : '';
  const httpStatus = header.http_status ? ` http=${header.http_status.code}` : '';
  const extra = header.message_type
    ? ` ${header.message_type} ${JSON.stringify(payload)?.slice(0, 300)}`
    : header.client_update_type
      ? ` ${header.client_update_type}`
      : '';
  return `${new Date(at).toISOString().slice(17, 23)} #${conn} ${dir} ${header.method} ${header.id}${http}${status}${httpStatus}${extra}`;
}

const REQUEST_METHODS = new Set(['init', 'update', 'message', 'put_notification_ctx', 'delete_notification_ctx']);

/**
 * A TCP proxy in front of the server. `drop()` destroys every proxied
 * connection (both sides) and holds new connections unanswered until
 * `release()`; held connections then go through. The proxy decodes the
 * twilsock packets it forwards (`packets`, `trail()`), tracks client requests
 * still awaiting their reply, and `waitIdle()` waits for a quiet socket.
 */
export async function startProxy(targetHost, targetPort) {
  const pairs = new Set();
  const held = [];
  const heldWaiters = new Set();
  const activityWaiters = new Set();
  const packets = [];
  const pending = new Map();
  let holding = false;
  let accepted = 0;
  let lastActivity = Date.now();

  const activity = () => {
    lastActivity = Date.now();
    for (const w of [...activityWaiters]) w();
  };

  function tap(pair, dir) {
    return webSocketMessages((data) => {
      const packet = decodeTwilsock(data);
      if (!packet) return;
      const entry = { dir, at: Date.now(), conn: pair.n, ...packet };
      packets.push(entry);
      if (packets.length > 2000) packets.shift();
      const { method, id } = packet.header;
      if (dir === 'c>s' && REQUEST_METHODS.has(method)) pending.set(id, entry);
      if (dir === 's>c' && method === 'reply') pending.delete(id);
      activity();
    });
  }

  function pipe(clientSocket) {
    const upstream = net.connect({ port: targetPort, host: targetHost, noDelay: true });
    const pair = { clientSocket, upstream, n: accepted };
    pairs.add(pair);
    const teardown = () => {
      pairs.delete(pair);
      clientSocket.destroy();
      upstream.destroy();
    };
    clientSocket.on('error', teardown).on('close', teardown);
    upstream.on('error', teardown).on('close', teardown);
    const c2s = tap(pair, 'c>s');
    const s2c = tap(pair, 's>c');
    clientSocket.on('data', (chunk) => {
      c2s(chunk);
      upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      s2c(chunk);
      clientSocket.write(chunk);
    });
  }

  const server = net.createServer((clientSocket) => {
    accepted += 1;
    clientSocket.setNoDelay(true);
    if (holding) {
      held.push(clientSocket);
      clientSocket.on('error', () => {});
      for (const w of [...heldWaiters]) w();
      return;
    }
    pipe(clientSocket);
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();

  return {
    port,
    packets,
    get accepted() {
      return accepted;
    },
    get open() {
      return pairs.size;
    },
    /** Client requests sent and not yet answered. */
    get pending() {
      return [...pending.values()];
    },
    /** The last tapped twilsock packets, one per line. */
    trail(limit = 60) {
      return packets.slice(-limit).map(describePacket).join('\n');
    },
    /**
     * Resolve once no client request awaits its reply and nothing has crossed
     * the socket for `quietMs` (the SDK batches some requests behind ~100 ms
     * timers, e.g. Sync subscriptions).
     */
    waitIdle({ quietMs = 250, ms = WAIT_MS } = {}) {
      let w;
      let timer;
      const p = new Promise((resolve) => {
        w = () => {
          clearTimeout(timer);
          if (pending.size > 0) return;
          timer = setTimeout(() => {
            if (pending.size === 0 && Date.now() - lastActivity >= quietMs) resolve();
            else w();
          }, Math.max(0, quietMs - (Date.now() - lastActivity)));
        };
        activityWaiters.add(w);
        w();
      });
      return withTimeout(p, ms, () => `waiting for an idle twilsock connection; pending: ${this.pending.map(describePacket).join('; ')}`).finally(() => {
        clearTimeout(timer);
        activityWaiters.delete(w);
      });
    },
    /** Destroy every live connection and hold new ones until `release()`. Returns the requests cut off. */
    drop() {
      holding = true;
      const cut = [...pending.values()];
      pending.clear();
      for (const { clientSocket, upstream } of [...pairs]) {
        if (clientSocket.resetAndDestroy) clientSocket.resetAndDestroy();
        else clientSocket.destroy();
        upstream.destroy();
      }
      return cut;
    },
    /** Resolves once at least `n` connections are being held. */
    waitHeld(n = 1, ms = WAIT_MS) {
      if (held.length >= n) return Promise.resolve();
      let w;
      const p = new Promise((resolve) => {
        w = () => {
          if (held.length >= n) resolve();
        };
        heldWaiters.add(w);
      });
      return withTimeout(p, ms, `waiting for ${n} held reconnection(s) at the proxy`).finally(() =>
        heldWaiters.delete(w),
      );
    },
    /** Let held and future connections through. */
    release() {
      holding = false;
      for (const s of held.splice(0)) if (!s.destroyed) pipe(s);
    },
    async close() {
      holding = false;
      for (const s of held.splice(0)) s.destroy();
      for (const { clientSocket, upstream } of [...pairs]) {
        clientSocket.destroy();
        upstream.destroy();
      }
      await new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

// ---------------------------------------------------------------------------
// Per-test environment
// ---------------------------------------------------------------------------

/**
 * Start a server for one test (from `seed`, an object in the default seed's
 * format, when given) and register its teardown with `t.after`. Returns:
 *   { server, tap, wsUrl, rest(), devToken(), connect(), subscribed(), shutdown() }
 * where `tap` is the proxy every client connects through (see startProxy).
 */
export async function sdkEnv(t, { seed } = {}) {
  let seedDir;
  const extraArgs = [];
  if (seed) {
    seedDir = await mkdtemp(path.join(os.tmpdir(), 'rehearsal-sdk-seed-'));
    const seedPath = path.join(seedDir, 'seed.json');
    await writeFile(seedPath, JSON.stringify(seed));
    extraArgs.push('--seed', seedPath);
  }
  const server = await startServer({ extraArgs }).catch(async (err) => {
    if (seedDir) await rm(seedDir, { recursive: true, force: true });
    throw err;
  });
  const clients = new Set();
  const cleanups = [];
  let tap; // assigned below; close() runs even if the proxy fails to start
  t.after(() => close());

  // Every SDK client reaches the server through this transparent TCP proxy:
  // it taps the twilsock packets (failure messages show them), tells when the
  // connection is idle, and can drop the socket.
  tap = await startProxy(server.host, server.port);
  cleanups.push(() => tap.close());
  const wsUrl = `ws://127.0.0.1:${tap.port}/v3/wsconnect`;
  const directWsUrl = `ws://${server.host}:${server.port}/v3/wsconnect`;

  const basic = `Basic ${Buffer.from(`${server.creds.TWILIO_ACCOUNT_SID}:${server.creds.TWILIO_AUTH_TOKEN}`).toString('base64')}`;

  /** Conversations v1 REST call (form-encoded); resolves to the parsed JSON body (null for 204). */
  async function rest(method, pathname, params) {
    const init = { method, headers: { Authorization: basic } };
    if (params && method !== 'GET' && method !== 'DELETE') {
      init.headers['Content-Type'] = 'application/x-www-form-urlencoded';
      init.body = new URLSearchParams(params).toString();
    }
    const url = `${server.baseUrl}${pathname}${params && method === 'GET' ? `?${new URLSearchParams(params)}` : ''}`;
    const res = await withTimeout(fetch(url, init), WAIT_MS, `REST ${method} ${pathname}`);
    const text = await res.text();
    if (!res.ok) throw new Error(`REST ${method} ${pathname} -> ${res.status}: ${text}`);
    return text ? JSON.parse(text) : null;
  }

  /** A token from the server's development endpoint. */
  async function devToken(identity, ttl) {
    const q = new URLSearchParams({ identity });
    if (ttl !== undefined) q.set('ttl', String(ttl));
    const res = await fetch(`${server.baseUrl}/token?${q}`);
    if (!res.ok) throw new Error(`GET /token -> ${res.status}: ${await res.text()}`);
    return (await res.json()).token;
  }

  /**
   * Create an SDK client (a development token for `identity` unless `token` is
   * given) with a Recorder attached before any event can fire. Unless
   * `waitInit` is false, waits for `initialized` (rejecting on `initFailed`)
   * and for the first `getSubscribedConversations()` (in `handle.conversations`).
   */
  async function connect(identity, { token, ttl, uri = wsUrl, waitInit = true, options = {} } = {}) {
    const tok = token ?? (await devToken(identity, ttl));
    const client = new Client(tok, { twilsock: { uri }, logLevel: SDK_LOG_LEVEL, ...options });
    const rec = new Recorder(identity).watch(client, CLIENT_EVENTS);
    rec.diagnostics = () => `twilsock packets (all clients of this test):\n${tap.trail(40)}`;
    const handle = { identity, client, rec, token: tok, initialized: false };
    clients.add(handle);
    client.once('initialized', () => {
      handle.initialized = true;
    });
    if (waitInit) {
      const outcome = await rec.waitForEntry(['initialized', 'initFailed'], undefined, {
        what: `${identity} initialized`,
      });
      if (outcome.name === 'initFailed') {
        throw new Error(`${identity}: initFailed: ${describeArg(outcome.arg?.error ?? outcome.arg)}\n${rec.trail()}`);
      }
      handle.initialized = true;
      handle.conversations = await subscribed(handle);
    }
    return handle;
  }

  /** All subscribed conversations of a connected handle (every page). */
  async function subscribed(handle) {
    let page = await withTimeout(
      handle.client.getSubscribedConversations(),
      WAIT_MS,
      `${handle.identity}: getSubscribedConversations()`,
    );
    const items = [...page.items];
    while (page.hasNextPage) {
      page = await page.nextPage();
      items.push(...page.items);
    }
    return items;
  }

  /**
   * Shut a client down without tripping the SDK: a request still in flight
   * when shutdown() closes the socket can end in a rejection nobody handles
   * (wire-protocol §9), so wait for its list and for a quiet connection first.
   */
  async function shutdown(handle) {
    if (!clients.delete(handle)) return;
    const { client } = handle;
    if (handle.initialized && client.connectionState === 'connected') {
      await withTimeout(client.getSubscribedConversations(), WAIT_MS, 'getSubscribedConversations before shutdown').catch(
        () => {},
      );
    }
    await tap.waitIdle({ quietMs: 150 }).catch((err) => console.error(`[sdk] ${handle.identity}: ${err.message}`));
    await withTimeout(client.shutdown(), WAIT_MS, `${handle.identity}: shutdown()`).catch((err) => {
      console.error(`[sdk] ${handle.identity}: shutdown failed: ${err.message}`);
    });
    handle.rec.detach();
  }

  async function close() {
    if (process.env.SDK_TRAIL && tap) console.error(`[sdk] twilsock packets:\n${tap.trail(Infinity)}`);
    for (const handle of [...clients]) await shutdown(handle);
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
    await server.stop();
    if (seedDir) await rm(seedDir, { recursive: true, force: true });
  }

  return { server, tap, wsUrl, directWsUrl, rest, devToken, connect, subscribed, shutdown, close };
}

/** The subscribed conversation with `uniqueName`, from a handle's list (refreshed if needed). */
export function byUniqueName(handle, uniqueName) {
  const conv = (handle.conversations ?? []).find((c) => c.uniqueName === uniqueName);
  if (!conv) {
    throw new Error(
      `${handle.identity} is not subscribed to "${uniqueName}" (has: ${(handle.conversations ?? [])
        .map((c) => c.uniqueName)
        .join(', ')})`,
    );
  }
  return conv;
}
