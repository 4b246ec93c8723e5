#!/usr/bin/env node
// Rehearsal driver-protocol v1 adapter around the official, unmodified
// `@twilio/conversations` JavaScript SDK (harness/PROTOCOL.md): by default the
// 3.0.1 of this folder's package.json, with `--sdk VERSION` any 2.x/3.x release
// installed by `install-sdk.sh VERSION` in sdk/VERSION/.
//
// JSON lines: commands on stdin, answers and events on stdout. Nothing else
// is ever written to stdout: the SDK's logger and every `console.*` call are
// routed to stderr before the SDK is loaded.
//
//   node adapter.mjs                      speak the protocol
//   node adapter.mjs --observed           observed mode (REHEARSAL_OBSERVED=1)
//   node adapter.mjs --mutant NAME        plant one known bug (REHEARSAL_MUTANT=NAME)
//   node adapter.mjs --list-mutants       print the mutant names and exit
//   node adapter.mjs --sdk 2.6.0          load sdk/2.6.0/node_modules/@twilio/conversations
//
// Environment: REHEARSAL_ADAPTER_LOG=debug (or trace/info/warn/error) raises
// the SDK log level (default: silent) and enables the adapter's own debug
// lines; REHEARSAL_ADAPTER_CONNECT_TIMEOUT_MS bounds `connect` (default 30 s).

import { Console } from 'node:console';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

// ---------------------------------------------------------------------------
// stdout discipline: stdout belongs to the protocol. Route every console
// method to stderr *before* the SDK (and its `loglevel` logger, which binds
// console methods when it is configured) is loaded.
// ---------------------------------------------------------------------------
const stderrConsole = new Console({ stdout: process.stderr, stderr: process.stderr });
for (const method of ['log', 'info', 'debug', 'trace', 'warn', 'error', 'dir', 'dirxml', 'table', 'group', 'groupCollapsed', 'groupEnd', 'time', 'timeEnd', 'timeLog', 'count', 'countReset', 'assert']) {
  if (typeof stderrConsole[method] === 'function') console[method] = stderrConsole[method].bind(stderrConsole);
}

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'silent'];
const requestedLog = (process.env.REHEARSAL_ADAPTER_LOG || '').toLowerCase();
const SDK_LOG_LEVEL = LOG_LEVELS.includes(requestedLog) ? requestedLog : 'silent';
const DEBUG = requestedLog === 'debug' || requestedLog === 'trace';
const CONNECT_TIMEOUT_MS = Number(process.env.REHEARSAL_ADAPTER_CONNECT_TIMEOUT_MS) || 30_000;
/** Bound on each client's graceful shutdown (SDK shutdown() can wait forever on a never-initialised client). */
const SHUTDOWN_TIMEOUT_MS = 5_000;
/** The same bound for a client already `disconnected` or `denied` (see Session.shutdown). */
const ENDED_SHUTDOWN_TIMEOUT_MS = 300;

function log(...args) {
  process.stderr.write(`[adapter] ${args.map((a) => (typeof a === 'string' ? a : a instanceof Error ? a.stack ?? a.message : JSON.stringify(a))).join(' ')}\n`);
}
function debug(...args) {
  if (DEBUG) log(...args);
}

// Never crash the adapter: the SDK rejects promises nobody awaits when the
// backend fails some of its background reads (wire-protocol §9).
const brief = (err) => (err instanceof Error ? (DEBUG ? err.stack ?? err.message : (err.stack ?? err.message).split('\n').slice(0, 2).join(' |')) : String(err));
process.on('unhandledRejection', (reason) => {
  log('unhandledRejection (ignored):', brief(reason));
});
process.on('uncaughtException', (err) => {
  log('uncaughtException (ignored):', err?.stack ?? String(err));
});

// ---------------------------------------------------------------------------
// Mutants: each plants exactly one realistic application bug, so the harness
// can prove that its scenarios catch it. Every mutant is one small code path
// below, marked `// MUTANT <name>`.
// ---------------------------------------------------------------------------
const MUTANTS = {
  'ignore-expiry-warning': 'does not refresh the token on tokenAboutToExpire',
  'refresh-with-old-token': 'on a refresh, calls updateToken with the token it already had (the SDK silently ignores it)',
  'no-reconnect-after-drop': 'when the connection drops after having been connected, shuts the client down (the app gives up)',
  'tight-reconnect-loop': 'on a drop, immediately creates 20 new clients in a loop (bounded to 40 per client)',
  'skip-page': 'page_messages skips every second page it walks',
  'duplicate-message': 'reports every message_added twice',
  'out-of-order': 'buffers message_added and reports each pair swapped',
  'miss-conversation-left': 'never reports conversation_left',
  'wrong-media-content-type': 'uploads media as application/octet-stream whatever content type it was given',
  'no-refresh-on-expired': 'refreshes on tokenAboutToExpire but not after tokenExpired',
  'stale-unread-count': 'set_read_horizon returns the unread count from before the update',
  'late-listeners': 'attaches conversation/message listeners only after loading the conversation list, missing the startup events',
  'drop-while-busy': 'drops a message_added that arrives while the previous one is still being processed (100 ms)',
  'fatal-update-token-error': 'treats any updateToken rejection (incl. the SDK TypeError quirk) as fatal and shuts the client down',
};

function parseArgs(argv) {
  const opts = { observed: false, mutant: null, listMutants: false, sdk: null };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--observed') opts.observed = true;
    else if (arg === '--list-mutants') opts.listMutants = true;
    else if (arg === '--mutant') opts.mutant = argv[++i] ?? '';
    else if (arg.startsWith('--mutant=')) opts.mutant = arg.slice('--mutant='.length);
    else if (arg === '--sdk') opts.sdk = argv[++i] ?? '';
    else if (arg.startsWith('--sdk=')) opts.sdk = arg.slice('--sdk='.length);
    else log(`ignoring unknown argument ${JSON.stringify(arg)}`);
  }
  if (!opts.observed && /^(1|true|yes)$/i.test(process.env.REHEARSAL_OBSERVED ?? '')) opts.observed = true;
  if (opts.mutant === null && process.env.REHEARSAL_MUTANT) opts.mutant = process.env.REHEARSAL_MUTANT;
  return opts;
}

const ADAPTER_DIR = path.dirname(fileURLToPath(import.meta.url));
const OPTIONS = parseArgs(process.argv.slice(2));
if (OPTIONS.listMutants) {
  for (const [name, what] of Object.entries(MUTANTS)) process.stdout.write(`${name}\t${what}\n`);
  process.exit(0);
}
if (OPTIONS.mutant !== null && !Object.hasOwn(MUTANTS, OPTIONS.mutant)) {
  log(`unknown mutant ${JSON.stringify(OPTIONS.mutant)}; known: ${Object.keys(MUTANTS).join(', ')}`);
  process.exit(2);
}

/**
 * The SDK release to drive: this folder's own dependency (3.0.1), or with
 * `--sdk VERSION` the one `install-sdk.sh VERSION` put in sdk/VERSION/.
 * Exits 2 with the install command when that release is not installed.
 * Only its package.json is read here; the SDK itself is loaded by
 * `sdkClient()`, once, at startup (below).
 */
function locateSdk(version) {
  let requireSdk = createRequire(import.meta.url);
  if (version !== null) {
    // An exact version, never a path: it names a folder under sdk/.
    if (!/^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$/.test(version)) {
      log(`--sdk ${JSON.stringify(version)} is not an exact version such as 2.6.0`);
      process.exit(2);
    }
    const root = path.join(ADAPTER_DIR, 'sdk', version);
    if (!existsSync(path.join(root, 'node_modules', '@twilio', 'conversations', 'package.json'))) {
      log(`@twilio/conversations ${version} is not installed; install it with: bash ${path.relative(process.cwd(), path.join(ADAPTER_DIR, 'install-sdk.sh')) || 'install-sdk.sh'} ${version}`);
      process.exit(2);
    }
    requireSdk = createRequire(path.join(root, 'package.json'));
  }
  let installed;
  try {
    // The real release, from the package that will be loaded (no release has an "exports" map).
    installed = requireSdk('@twilio/conversations/package.json').version;
  } catch (err) {
    const fix = version === null ? `npm ci in ${path.relative(process.cwd(), ADAPTER_DIR) || '.'}` : `bash install-sdk.sh ${version}`;
    log(`cannot find @twilio/conversations (${err.message.split('\n')[0]}); install it with: ${fix}`);
    process.exit(2);
  }
  if (version !== null && installed !== version) {
    log(`sdk/${version} holds @twilio/conversations ${installed}, not ${version}; reinstall it with install-sdk.sh ${version}`);
    process.exit(2);
  }
  return { requireSdk, version: installed };
}

const SDK = locateSdk(OPTIONS.sdk);
const SDK_VERSION = SDK.version;
let loadedClient = null;

/** The SDK's `Client` class. */
function sdkClient() {
  if (loadedClient === null) {
    try {
      loadedClient = SDK.requireSdk('@twilio/conversations').Client;
    } catch (err) {
      log(`cannot load @twilio/conversations ${SDK_VERSION}: ${err.message.split('\n')[0]}`);
      process.exit(2);
    }
  }
  return loadedClient;
}
// Loaded now, before `hello` is answered: loading takes seconds on a busy machine, and the
// harness bounds `connect` more tightly than `hello`.
sdkClient();

/**
 * How this release reports the end of initialisation, found by feature
 * detection: later 2.x releases (2.6.0 and 2.7.0 among them) and 3.x declare the static event
 * names `Client.initialized` / `Client.initFailed` and emit `initialized` and
 * `initFailed({error})`; 2.0.0 has only `stateChanged` with "initialized" or
 * "failed" (@twilio/conversations 2.0.0 dist/lib.js, Client constructor and
 * `_initialize`). Later releases emit both, so the newer events are preferred.
 */
function initEvents() {
  const Client = sdkClient();
  return typeof Client.initialized === 'string' && typeof Client.initFailed === 'string' ? 'events' : 'stateChanged';
}

const ADAPTER_NAME = 'twilio-conversations-js';
const PROTOCOL_VERSION = 1;
const MUTANT = OPTIONS.mutant;
const mutant = (name) => MUTANT === name;
if (MUTANT) log(`mutant "${MUTANT}" planted: ${MUTANTS[MUTANT]}`);

// ---------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------
let stdoutBroken = false;
process.stdout.on('error', (err) => {
  // The harness went away (EPIPE): nothing left to talk to.
  stdoutBroken = true;
  log('stdout error, exiting:', err.message);
  process.exit(0);
});

/** Write one protocol message: exactly one write of one JSON line. */
function writeMessage(message) {
  if (OPTIONS.observed) {
    // Observed mode does not speak the protocol; keep a trace on stderr.
    log(JSON.stringify(message));
    return;
  }
  if (stdoutBroken) return;
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

function emitEvent(name, client, fields = {}) {
  writeMessage({ event: name, at: Date.now(), client, ...fields });
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------
const num = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/** `{message, code?, status?}` from whatever the SDK rejected with. */
function errorInfo(err, fallback = {}) {
  if (err === null || err === undefined) return { message: fallback.message ?? 'unknown error', code: fallback.code, status: fallback.status };
  if (typeof err !== 'object') return { message: String(err), code: fallback.code, status: fallback.status };
  const body = err.body && typeof err.body === 'object' ? err.body : {};
  const message = (typeof err.message === 'string' && err.message) || (typeof body.message === 'string' && body.message) || err.description || fallback.message || String(err);
  const code = num(err.code) ?? num(err.errorCode) ?? num(body.code) ?? fallback.code;
  const status = num(err.status) ?? num(err.httpStatusCode) ?? num(body.status) ?? fallback.status;
  const info = { message };
  if (code !== undefined) info.code = code;
  if (status !== undefined) info.status = status;
  return info;
}

class CommandError extends Error {
  constructor(kind, message, extra = {}) {
    super(message);
    this.kind = kind;
    Object.assign(this, extra);
  }
}
const failed = (message, extra) => new CommandError('failed', message, extra);

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

function withIdentity(tokenUrl, identity) {
  const url = new URL(tokenUrl);
  if (!url.searchParams.has('identity')) url.searchParams.set('identity', identity);
  return url.toString();
}

/** Fetch a token from a development token endpoint: JSON `{token}` or a bare token. */
async function fetchToken(tokenUrl, identity) {
  const url = withIdentity(tokenUrl, identity);
  const res = await fetch(url);
  const text = await res.text();
  if (!res.ok) throw failed(`token endpoint answered ${res.status}: ${text.slice(0, 200)}`, { status: res.status });
  let token = text.trim();
  try {
    const parsed = JSON.parse(text);
    if (parsed && typeof parsed.token === 'string') token = parsed.token;
  } catch {
    // not JSON: the body is the token
  }
  if (!token) throw failed('token endpoint returned an empty token');
  return token;
}

const conversationFields = (c) => ({ conversation: c.sid, unique_name: c.uniqueName ?? null, friendly_name: c.friendlyName ?? null });

/** The SDK hands attributes over parsed; the protocol carries them as a JSON string. */
const attributesString = (value) => JSON.stringify(value === undefined ? {} : value);

function messageFields(m) {
  let media = [];
  try {
    media = (m.attachedMedia ?? []).map((x) => ({ sid: x.sid, content_type: x.contentType, size: x.size, filename: x.filename ?? null }));
  } catch (err) {
    debug('attachedMedia threw:', err);
  }
  return {
    conversation: m.conversation?.sid,
    index: m.index,
    sid: m.sid,
    author: m.author ?? null,
    body: m.body ?? null,
    type: m.type,
    attributes: attributesString(m.attributes),
    media,
  };
}

const participantFields = (p) => ({ conversation: p.conversation?.sid, identity: p.identity ?? null, participant: p.sid });

// ---------------------------------------------------------------------------
// One named SDK client
// ---------------------------------------------------------------------------
class Session {
  constructor(name, { identity, tokenUrl, twilsockUrl }) {
    this.name = name;
    this.identity = identity;
    this.tokenUrl = tokenUrl;
    this.twilsockUrl = twilsockUrl;
    this.client = null;
    this.token = null;
    this.initialized = false;
    this.everConnected = false;
    this.closing = false;
    this.refreshing = null;
    this.lastConnectionError = null;
    this.settleConnect = null;
    this.failTimer = null;
    this.conversations = new Map(); // sid -> Conversation (from conversationAdded)
    this.detachers = [];
    this.strays = []; // MUTANT tight-reconnect-loop
    this.reorderPending = null; // MUTANT out-of-order
    this.busyUntil = 0; // MUTANT drop-while-busy
  }

  event(name, fields) {
    emitEvent(name, this.name, fields);
  }

  clientOptions() {
    return { twilsock: { uri: this.twilsockUrl }, logLevel: SDK_LOG_LEVEL };
  }

  /** Fetch a token, create the client, resolve `{}` on initialized or throw the failure. */
  async connect() {
    try {
      this.token = await fetchToken(this.tokenUrl, this.identity);
    } catch (err) {
      if (err instanceof CommandError) throw err;
      throw failed(`could not fetch a token from ${this.tokenUrl}: ${err.message}`);
    }
    let client;
    try {
      client = new (sdkClient())(this.token, this.clientOptions());
    } catch (err) {
      throw failed(errorInfo(err).message, errorInfo(err));
    }
    this.client = client;
    const outcome = new Promise((resolve) => {
      this.settleConnect = (result) => {
        this.settleConnect = null;
        clearTimeout(this.failTimer);
        this.failTimer = null;
        resolve(result);
      };
    });
    this.attach(client);
    let timer;
    const timeout = new Promise((resolve) => {
      timer = setTimeout(() => resolve({ ok: false, error: { message: `client not initialised within ${CONNECT_TIMEOUT_MS} ms (state ${client.connectionState})` } }), CONNECT_TIMEOUT_MS);
    });
    const result = await Promise.race([outcome, timeout]).finally(() => clearTimeout(timer));
    this.settleConnect = null;
    if (!result.ok) throw failed(result.error.message, result.error);
    await this.loadConversations();
    return {};
  }

  /**
   * What an app does once initialised: load the subscribed conversations and
   * their participants. Only a messages list the SDK has opened turns later
   * additions into messageAdded: without this, a message sent right after
   * `connect` is answered can land in the snapshot the SDK is still fetching
   * and never be reported. `getParticipants()` waits for the conversation's
   * Sync objects (messages list and roster) to be open without reading any
   * message: reading messages here (the quickstart's `getMessages(1)`) would
   * leave a partial page in twilio-sync's cache, and twilio-sync 4.0.1 then
   * answers the next larger `getMessages(n)` with n-1 items (its cache fill
   * asks the server for one item too few). Failures are logged, not fatal.
   */
  async loadConversations() {
    const client = this.client;
    try {
      let page = await withTimeout(client.getSubscribedConversations(), 10_000, 'getSubscribedConversations');
      const items = [...page.items];
      while (page.hasNextPage) {
        page = await withTimeout(page.nextPage(), 10_000, 'getSubscribedConversations next page');
        items.push(...page.items);
      }
      await Promise.all(
        items.map((c) =>
          withTimeout(c.getParticipants(), 10_000, `getParticipants() of ${c.sid}`).catch((err) => log(`[${this.name}] loading ${c.sid}:`, err.message)),
        ),
      );
    } catch (err) {
      log(`[${this.name}] loading the conversation list after initialisation failed:`, err.message);
    }
  }

  on(emitter, name, handler) {
    const wrapped = (...args) => {
      try {
        handler(...args);
      } catch (err) {
        log(`[${this.name}] ${name} handler threw:`, err);
      }
    };
    emitter.on(name, wrapped);
    this.detachers.push(() => emitter.removeListener(name, wrapped));
  }

  attach(client) {
    // Connection lifecycle listeners: always attached at once.
    this.on(client, 'connectionStateChanged', (state) => this.onConnectionState(state));
    this.on(client, 'connectionError', (data) => {
      this.lastConnectionError = data;
      const fields = { terminal: Boolean(data?.terminal) };
      if (num(data?.errorCode) !== undefined) fields.code = data.errorCode;
      if (num(data?.httpStatusCode) !== undefined) fields.status = data.httpStatusCode;
      if (typeof data?.message === 'string') fields.message = data.message;
      this.event('connection_error', fields);
      if (this.settleConnect && (data?.terminal || client.connectionState === 'denied')) {
        this.settleConnect({ ok: false, error: this.failureInfo(undefined, 'connection failed') });
      }
    });
    if (initEvents() === 'events') {
      this.on(client, 'initialized', () => this.onInitialized(client));
      this.on(client, 'initFailed', (data) => this.onInitFailed(client, data?.error));
    } else {
      // 2.0.0: `stateChanged` carries "initialized" or "failed" (no error object).
      this.on(client, 'stateChanged', (state) => {
        if (state === 'initialized') this.onInitialized(client);
        else if (state === 'failed') this.onInitFailed(client, undefined);
      });
    }
    this.on(client, 'tokenAboutToExpire', () => {
      this.event('token_about_to_expire');
      // MUTANT ignore-expiry-warning: the warning is reported but not acted on.
      if (mutant('ignore-expiry-warning')) return;
      this.refreshToken('tokenAboutToExpire');
    });
    this.on(client, 'tokenExpired', () => {
      this.event('token_expired');
      // MUTANT no-refresh-on-expired: only the warning triggers a refresh.
      if (mutant('no-refresh-on-expired')) return;
      this.refreshToken('tokenExpired');
    });
    this.on(client, 'conversationAdded', (c) => {
      this.conversations.set(c.sid, c);
    });
    this.on(client, 'conversationRemoved', (c) => {
      this.conversations.delete(c.sid);
    });
    if (!mutant('late-listeners')) this.attachContent(client);
  }

  /** The client finished initialising (`initialized`, or 2.0.0's `stateChanged` "initialized"). */
  onInitialized(client) {
    this.initialized = true;
    this.event('initialized');
    this.settleConnect?.({ ok: true });
    // MUTANT late-listeners: like an app that subscribes to events only after
    // it has loaded its conversation list, so the conversationJoined events
    // fired while the list loads are never seen.
    // (twilio/twilio-conversations-demo-react#26, "conversationAdded event never hit?")
    if (mutant('late-listeners')) {
      client
        .getSubscribedConversations()
        .catch((err) => log(`[${this.name}] getSubscribedConversations failed:`, err))
        .finally(() => this.attachContent(client));
    }
  }

  /** Initialisation failed (`initFailed`, or 2.0.0's `stateChanged` "failed"). */
  onInitFailed(client, error) {
    this.event('init_failed', { error: errorInfo(error, { message: 'client initialisation failed' }) });
    // On a denial the SDK emits initFailed ("Twilsock has disconnected.")
    // before the connectionError that carries the Twilio error code, which
    // then settles `connect`; other initialisation failures settle it now.
    if (client.connectionState === 'denied') this.failConnectSoon(error);
    else this.settleConnect?.({ ok: false, error: this.failureInfo(error, 'client initialisation failed') });
  }

  /** Conversation, message, participant and typing events. */
  attachContent(client) {
    if (this.closing) return;
    this.on(client, 'conversationJoined', (c) => this.event('conversation_joined', conversationFields(c)));
    this.on(client, 'conversationLeft', (c) => {
      // MUTANT miss-conversation-left: the app never hears that it left.
      if (mutant('miss-conversation-left')) return;
      this.event('conversation_left', conversationFields(c));
    });
    this.on(client, 'conversationUpdated', ({ conversation, updateReasons }) =>
      this.event('conversation_updated', { ...conversationFields(conversation), update_reasons: updateReasons ?? [] }),
    );
    this.on(client, 'messageAdded', (m) => this.onMessageAdded(messageFields(m)));
    this.on(client, 'messageUpdated', ({ message, updateReasons }) =>
      this.event('message_updated', { ...messageFields(message), update_reasons: updateReasons ?? [] }),
    );
    this.on(client, 'messageRemoved', (m) => this.event('message_removed', messageFields(m)));
    this.on(client, 'participantJoined', (p) => this.event('participant_joined', participantFields(p)));
    this.on(client, 'participantLeft', (p) => this.event('participant_left', participantFields(p)));
    this.on(client, 'participantUpdated', ({ participant, updateReasons }) =>
      this.event('participant_updated', { ...participantFields(participant), update_reasons: updateReasons ?? [] }),
    );
    this.on(client, 'typingStarted', (p) => this.event('typing_started', participantFields(p)));
    this.on(client, 'typingEnded', (p) => this.event('typing_ended', participantFields(p)));
  }

  onMessageAdded(fields) {
    // MUTANT duplicate-message: every message is handed to the app twice.
    if (mutant('duplicate-message')) {
      this.event('message_added', fields);
      this.event('message_added', fields);
      return;
    }
    // MUTANT out-of-order: messages are buffered and each pair is released
    // swapped; a lone message is released after 250 ms.
    if (mutant('out-of-order')) {
      const pending = this.reorderPending;
      if (!pending) {
        const timer = setTimeout(() => {
          if (this.reorderPending?.fields === fields) {
            this.reorderPending = null;
            this.event('message_added', fields);
          }
        }, 250);
        this.reorderPending = { fields, timer };
      } else {
        clearTimeout(pending.timer);
        this.reorderPending = null;
        this.event('message_added', fields);
        this.event('message_added', pending.fields);
      }
      return;
    }
    // MUTANT drop-while-busy: the handler ignores messages that arrive while
    // it is still "rendering" the previous one, so bursts lose messages.
    // (twilio/twilio-conversations-demo-react#160, "When multiple user send
    // messages few of them do not received on chat window")
    if (mutant('drop-while-busy')) {
      const now = Date.now();
      if (now < this.busyUntil) {
        debug(`[${this.name}] [mutant] dropped message_added #${fields.index} (busy)`);
        return;
      }
      this.busyUntil = now + 100;
    }
    this.event('message_added', fields);
  }

  onConnectionState(state) {
    this.event('connection_state', { state });
    if (state === 'denied') this.failConnectSoon(undefined);
    const dropped = (state === 'connecting' || state === 'retrying') && this.everConnected;
    if (state === 'connected') this.everConnected = true;
    if (!dropped || this.closing) return;

    // MUTANT no-reconnect-after-drop: the app treats a drop as the end and
    // shuts its client down instead of letting the SDK reconnect.
    if (mutant('no-reconnect-after-drop')) {
      log(`[${this.name}] [mutant] connection dropped: giving up (client.shutdown())`);
      this.closing = true;
      this.client?.shutdown().catch((err) => log(`[${this.name}] shutdown after drop failed:`, err));
      return;
    }

    // MUTANT tight-reconnect-loop: on a drop, the app "reconnects" by creating
    // fresh clients in a tight loop without waiting for any of them, like the
    // SDK that opened >10,000 websockets while updating its token offline
    // (twilio/conversations-ios#19). Bounded: 20 per drop, 40 per client.
    if (mutant('tight-reconnect-loop')) {
      const burst = Math.min(20, 40 - this.strays.length);
      if (burst > 0) log(`[${this.name}] [mutant] connection dropped: creating ${burst} new clients`);
      for (let i = 0; i < burst; i++) {
        try {
          this.strays.push(new (sdkClient())(this.token, this.clientOptions()));
        } catch (err) {
          log(`[${this.name}] [mutant] new Client() threw:`, err);
        }
      }
    }
  }

  /**
   * A denial fails `connect` when its connectionError arrives (it carries the
   * Twilio error code); should none come, fail it after 1 s all the same.
   */
  failConnectSoon(err) {
    if (!this.settleConnect || this.failTimer) return;
    this.failTimer = setTimeout(() => {
      this.failTimer = null;
      this.settleConnect?.({ ok: false, error: this.failureInfo(err, 'connection denied') });
    }, 1_000);
  }

  /** Why the client could not connect: the last connectionError (it has the Twilio code), else the SDK error. */
  failureInfo(err, fallbackMessage) {
    const ce = this.lastConnectionError;
    if (!ce) return errorInfo(err, { message: fallbackMessage });
    const info = { message: (typeof ce.message === 'string' && ce.message) || errorInfo(err, { message: fallbackMessage }).message };
    if (num(ce.errorCode) !== undefined) info.code = ce.errorCode;
    if (num(ce.httpStatusCode) !== undefined) info.status = ce.httpStatusCode;
    return info;
  }

  /**
   * Token policy of the Conversations JavaScript quickstart: fetch a fresh
   * token and give it to the SDK with updateToken. Concurrent triggers share
   * one refresh.
   */
  refreshToken(reason) {
    if (this.closing || !this.client) return Promise.resolve();
    if (this.refreshing) return this.refreshing;
    this.refreshing = this.doRefresh(reason).finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  async doRefresh(reason) {
    const client = this.client;
    // Fetch the token only once the SDK can take it (see applyToken): after
    // a 410 close, tokenExpired comes 3 s before the client is disconnected.
    await this.settledConnectionState(client, 15_000);
    if (this.closing || client !== this.client) return;
    let token;
    // MUTANT refresh-with-old-token: "refreshes" with the token it already
    // holds (a stale cache); the SDK ignores an identical token, so nothing
    // reaches the server and the session still expires.
    if (mutant('refresh-with-old-token')) {
      token = this.token;
    } else {
      try {
        token = await fetchToken(this.tokenUrl, this.identity);
      } catch (err) {
        log(`[${this.name}] token refresh after ${reason}: fetch failed:`, err.message);
        return;
      }
    }
    if (this.closing || client !== this.client) return;
    if (token === this.token && !mutant('refresh-with-old-token')) {
      // Development token endpoints (and the helper libraries' AccessToken,
      // whose jti is `${keySid}-${iat}`) mint the same token twice within one
      // second; the SDK ignores an identical token. Nothing new to apply: the
      // next trigger (the expiry at the latest) fetches again.
      log(`[${this.name}] token refresh after ${reason}: the endpoint returned the token already in use; nothing to apply`);
      return;
    }
    try {
      await this.applyToken(client, token);
    } catch (err) {
      // MUTANT fatal-update-token-error: any rejection is treated as fatal and
      // the client is shut down, although the SDK goes on reconnecting with the
      // new token (twilio/twilio-conversations-demo-react#152, "TypeError:
      // Cannot read properties of undefined (reading 'updateToken')").
      if (mutant('fatal-update-token-error')) {
        log(`[${this.name}] [mutant] updateToken rejected (${err?.message}): giving up`);
        this.closing = true;
        client.shutdown().catch(() => {});
        return;
      }
      if (err instanceof TypeError) {
        // SDK quirk (wire-protocol §3): after a denied start, updateToken
        // rejects with a TypeError (it touches the never-built MCS client)
        // while the reconnect with the new token goes ahead in the background.
        debug(`[${this.name}] updateToken TypeError quirk after ${reason} (ignored): ${err.message}`);
      } else {
        log(`[${this.name}] updateToken after ${reason} failed:`, errorInfo(err).message);
        return;
      }
    }
    this.token = token;
    this.event('token_refreshed', { reason });
  }

  /**
   * client.updateToken(token), at a moment the SDK can take it. SDK quirk:
   * twilsock 1.0.2's state machine accepts a token update only while
   * connected, connecting/retrying, disconnected or denied; in the transient
   * states (disconnecting -- where tokenExpired is emitted after a 410 close --,
   * initialising, updating) the call is dropped with "FSM: unexpected
   * transition" and its promise never settles. So wait (bounded) for a settled
   * public state first, and bound the update itself.
   */
  async applyToken(client, token) {
    await this.settledConnectionState(client, 15_000);
    await withTimeout(client.updateToken(token), 20_000, 'updateToken');
  }

  settledConnectionState(client, ms) {
    const settled = (state) => state === 'connected' || state === 'disconnected' || state === 'denied';
    if (settled(client.connectionState)) return Promise.resolve(client.connectionState);
    return new Promise((resolve) => {
      const done = (state) => {
        clearTimeout(timer);
        client.removeListener('connectionStateChanged', onState);
        resolve(state);
      };
      const onState = (state) => {
        if (settled(state)) done(state);
      };
      const timer = setTimeout(() => done(client.connectionState), ms);
      client.on('connectionStateChanged', onState);
    });
  }

  async conversation(ref) {
    if (typeof ref !== 'string' || ref === '') throw failed('missing "conversation" (a SID or a unique name)');
    for (const c of this.conversations.values()) {
      if (c.sid === ref || c.uniqueName === ref) return c;
    }
    const client = this.requireClient();
    try {
      return /^CH[0-9a-fA-F]{32}$/.test(ref) ? await client.getConversationBySid(ref) : await client.getConversationByUniqueName(ref);
    } catch (err) {
      throw failed(errorInfo(err).message, errorInfo(err));
    }
  }

  requireClient() {
    if (!this.client) throw failed(`client "${this.name}" is not connected`);
    return this.client;
  }

  async messageAt(conversation, index) {
    if (!Number.isInteger(index)) throw failed('"index" must be an integer');
    const page = await conversation.getMessages(1, index, 'forward');
    const message = page.items.find((m) => m.index === index);
    if (!message) throw failed(`no message with index ${index} in ${conversation.sid}`);
    return message;
  }

  /** Shut the client (and any stray clients) down; never hangs. */
  async shutdown() {
    this.closing = true;
    const client = this.client;
    if (this.reorderPending) {
      clearTimeout(this.reorderPending.timer);
      this.event('message_added', this.reorderPending.fields);
      this.reorderPending = null;
    }
    if (client) {
      // SDK hazard (wire-protocol §9): shutting down while the startup
      // conversation-list fetch is in flight rejects a promise nobody awaits.
      if (this.initialized && client.connectionState === 'connected') {
        await withTimeout(client.getSubscribedConversations(), 3_000, 'getSubscribedConversations before shutdown').catch(() => {});
      }
      // A client whose twilsock has ended for good (`disconnected` after a terminal close,
      // `denied`) has nothing to disconnect: its shutdown() never settles (twilsock's
      // disconnect() waits for a state change that does not come), so do not wait for it long.
      const ended = client.connectionState === 'disconnected' || client.connectionState === 'denied';
      const bound = ended ? ENDED_SHUTDOWN_TIMEOUT_MS : SHUTDOWN_TIMEOUT_MS;
      await withTimeout(client.shutdown(), bound, `${this.name}: shutdown()`).catch((err) => {
        // shutdown() waits for initialisation, which a denied or unreachable
        // client never reaches: close its twilsock directly.
        debug(`[${this.name}] ${err.message}; closing the transport directly`);
        try {
          client._services?.twilsockClient?.disconnect?.()?.catch?.(() => {});
        } catch {
          // best effort
        }
      });
    }
    await Promise.all(
      this.strays.splice(0).map((stray) =>
        withTimeout(stray.shutdown(), 2_000, 'stray shutdown').catch(() => {
          try {
            stray._services?.twilsockClient?.disconnect?.()?.catch?.(() => {});
          } catch {
            // best effort
          }
        }),
      ),
    );
    for (const detach of this.detachers.splice(0)) detach();
  }
}

// ---------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------
const sessions = new Map();

function session(cmd) {
  const name = cmd.client;
  if (typeof name !== 'string' || name === '') throw failed('missing "client"');
  const s = sessions.get(name);
  if (!s) throw failed(`no client named "${name}" (connect it first)`);
  return s;
}

async function sdk(promise) {
  try {
    return await promise;
  } catch (err) {
    if (err instanceof CommandError) throw err;
    const info = errorInfo(err);
    throw failed(info.message, info);
  }
}

function parseAttributes(attributes) {
  if (attributes === undefined || attributes === null) return undefined;
  if (typeof attributes !== 'string') return attributes; // tolerate an object
  try {
    return JSON.parse(attributes);
  } catch (err) {
    throw failed(`"attributes" is not a JSON string: ${err.message}`);
  }
}

const SDK_DIRECTION = { backwards: 'backwards', backward: 'backwards', forwards: 'forward', forward: 'forward' };

const COMMANDS = {
  async hello() {
    return {
      name: ADAPTER_NAME,
      version: SDK_VERSION,
      protocol: PROTOCOL_VERSION,
      capabilities: Object.keys(COMMANDS),
      sdk: '@twilio/conversations',
      mutant: MUTANT,
    };
  },

  async connect(cmd) {
    const name = cmd.client;
    if (typeof name !== 'string' || name === '') throw failed('missing "client"');
    if (sessions.has(name)) throw failed(`client "${name}" already exists`);
    const tokenUrl = cmd.token_url ?? process.env.REHEARSAL_TOKEN_URL;
    const twilsockUrl = cmd.twilsock_url ?? process.env.REHEARSAL_TWILSOCK_URL;
    if (!tokenUrl) throw failed('missing "token_url" (and no REHEARSAL_TOKEN_URL)');
    if (!twilsockUrl) throw failed('missing "twilsock_url" (and no REHEARSAL_TWILSOCK_URL)');
    const s = new Session(name, { identity: cmd.identity ?? name, tokenUrl, twilsockUrl });
    sessions.set(name, s);
    try {
      return await s.connect();
    } catch (err) {
      // A client that exists stays registered (its events go on, update_token
      // may recover it); one that could not even be created is forgotten.
      if (!s.client) sessions.delete(name);
      throw err;
    }
  },

  async update_token(cmd) {
    const s = session(cmd);
    const client = s.requireClient();
    if (typeof cmd.token !== 'string' || cmd.token === '') throw failed('missing "token"');
    try {
      await s.applyToken(client, cmd.token);
    } catch (err) {
      if (!(err instanceof TypeError)) throw failed(errorInfo(err).message, errorInfo(err));
      // SDK quirk: see Session.doRefresh. The new token is in use regardless.
      s.token = cmd.token;
      return { warning: `SDK updateToken rejected with TypeError (known quirk after a denied start): ${err.message}` };
    }
    s.token = cmd.token;
    return {};
  },

  async list_conversations(cmd) {
    const client = session(cmd).requireClient();
    let page = await sdk(client.getSubscribedConversations());
    const items = [...page.items];
    while (page.hasNextPage) {
      page = await sdk(page.nextPage());
      items.push(...page.items);
    }
    return {
      conversations: items.map((c) => ({ sid: c.sid, unique_name: c.uniqueName ?? null, friendly_name: c.friendlyName ?? null })),
    };
  },

  async join(cmd) {
    const s = session(cmd);
    const conversation = await s.conversation(cmd.conversation);
    await sdk(conversation.join());
    return {};
  },

  async leave(cmd) {
    const s = session(cmd);
    const conversation = await s.conversation(cmd.conversation);
    await sdk(conversation.leave());
    return {};
  },

  async create(cmd) {
    const client = session(cmd).requireClient();
    const options = {};
    if (cmd.unique_name !== undefined) options.uniqueName = cmd.unique_name;
    if (cmd.friendly_name !== undefined) options.friendlyName = cmd.friendly_name;
    if (cmd.attributes !== undefined) options.attributes = parseAttributes(cmd.attributes);
    const conversation = await sdk(client.createConversation(options));
    return { sid: conversation.sid };
  },

  async send(cmd) {
    const s = session(cmd);
    const conversation = await s.conversation(cmd.conversation);
    const attributes = parseAttributes(cmd.attributes);
    let index;
    if (cmd.media) {
      const { content_type: contentType, filename, base64 } = cmd.media;
      if (typeof base64 !== 'string') throw failed('"media.base64" is required');
      const media = {
        // MUTANT wrong-media-content-type: the upload ignores the given type.
        contentType: mutant('wrong-media-content-type') ? 'application/octet-stream' : contentType ?? 'application/octet-stream',
        media: Buffer.from(base64, 'base64'),
      };
      if (filename !== undefined) media.filename = filename;
      let builder = conversation.prepareMessage();
      if (typeof cmd.text === 'string') builder = builder.setBody(cmd.text);
      if (attributes !== undefined) builder = builder.setAttributes(attributes);
      index = await sdk(builder.addMedia(media).build().send());
    } else {
      index = await sdk(conversation.sendMessage(cmd.text ?? '', attributes));
    }
    return { index: index ?? null };
  },

  async page_messages(cmd) {
    const s = session(cmd);
    const conversation = await s.conversation(cmd.conversation);
    const direction = SDK_DIRECTION[cmd.direction ?? 'backwards'];
    if (!direction) throw failed(`"direction" must be "backwards" or "forwards", not ${JSON.stringify(cmd.direction)}`);
    const pageSize = cmd.page_size ?? 30;
    const wanted = cmd.pages ?? 1;
    if (!Number.isInteger(pageSize) || pageSize < 1) throw failed('"page_size" must be a positive integer');
    if (!Number.isInteger(wanted) || wanted < 1) throw failed('"pages" must be a positive integer');
    const anchor = cmd.anchor ?? undefined;
    const backwards = direction === 'backwards';
    const more = (page) => (backwards ? page.hasPrevPage : page.hasNextPage);
    const advance = (page) => (backwards ? page.prevPage() : page.nextPage());

    let page = await sdk(conversation.getMessages(pageSize, anchor, direction));
    const pages = [];
    let walked = 1;
    for (;;) {
      // MUTANT skip-page: every second page walked is dropped (like a
      // double-fired "load more" handler that advances the pager twice).
      if (!(mutant('skip-page') && walked % 2 === 0)) pages.push(page.items.map((m) => m.index));
      if (pages.length >= wanted || !more(page)) break;
      page = await sdk(advance(page));
      walked++;
    }
    return { pages, has_more: Boolean(more(page)) };
  },

  async edit(cmd) {
    const s = session(cmd);
    const conversation = await s.conversation(cmd.conversation);
    if (typeof cmd.text !== 'string') throw failed('missing "text"');
    const message = await sdk(s.messageAt(conversation, cmd.index));
    await sdk(message.updateBody(cmd.text));
    return {};
  },

  async remove(cmd) {
    const s = session(cmd);
    const conversation = await s.conversation(cmd.conversation);
    const message = await sdk(s.messageAt(conversation, cmd.index));
    await sdk(message.remove());
    return {};
  },

  async typing(cmd) {
    const s = session(cmd);
    const conversation = await s.conversation(cmd.conversation);
    await sdk(conversation.typing());
    return {};
  },

  async set_read_horizon(cmd) {
    const s = session(cmd);
    const conversation = await s.conversation(cmd.conversation);
    if (!('index' in cmd)) throw failed('missing "index" (a number, null or "all")');
    const { index } = cmd;
    const update = () => {
      if (index === 'all') return conversation.setAllMessagesRead();
      if (index === null) return conversation.setAllMessagesUnread();
      if (Number.isInteger(index)) return conversation.updateLastReadMessageIndex(index);
      throw failed(`"index" must be a number, null or "all", not ${JSON.stringify(index)}`);
    };
    // MUTANT stale-unread-count: reads the count, then updates, and returns
    // the count it read before the update.
    if (mutant('stale-unread-count')) {
      const before = await sdk(conversation.getUnreadMessagesCount());
      await sdk(update());
      return { unread: before ?? null };
    }
    const unread = await sdk(update());
    return { unread: unread ?? null };
  },

  async get_media(cmd) {
    const s = session(cmd);
    const conversation = await s.conversation(cmd.conversation);
    const message = await sdk(s.messageAt(conversation, cmd.index));
    const media = message.attachedMedia ?? [];
    const which = cmd.media_index ?? 0;
    if (media.length === 0) throw failed(`message ${cmd.index} has no media`);
    if (!media[which]) throw failed(`message ${cmd.index} has ${media.length} media, no index ${which}`);
    const url = await sdk(media[which].getContentTemporaryUrl());
    if (!url) throw failed('the SDK returned no temporary URL');
    const res = await fetch(url);
    if (!res.ok) throw failed(`media download answered ${res.status}`, { status: res.status });
    const bytes = Buffer.from(await res.arrayBuffer());
    const header = res.headers.get('content-type');
    return {
      content_type: header ? header.split(';')[0].trim() : media[which].contentType,
      size: bytes.length,
      sha256: createHash('sha256').update(bytes).digest('hex'),
      sid: media[which].sid,
      filename: media[which].filename ?? null,
      media_content_type: media[which].contentType,
    };
  },

  async shutdown(cmd) {
    if (cmd.client === undefined || cmd.client === null) {
      await shutdownAll();
      return {};
    }
    const s = session(cmd);
    sessions.delete(s.name);
    await s.shutdown();
    return {};
  },
};

let exiting = false;

async function shutdownAll() {
  const all = [...sessions.values()];
  sessions.clear();
  await Promise.all(all.map((s) => s.shutdown().catch((err) => log(`[${s.name}] shutdown failed:`, err))));
}

/** Shut everything down and exit 0, after the last protocol line has been written. */
async function exitCleanly(reason) {
  if (exiting) return;
  exiting = true;
  debug(`exiting: ${reason}`);
  await withTimeout(shutdownAll(), SHUTDOWN_TIMEOUT_MS + 2_000, 'shutting down all clients').catch((err) => log(err.message));
  if (process.stdout.writableLength > 0 && !stdoutBroken) process.stdout.write('', () => process.exit(0));
  else process.exit(0);
}

async function handleCommand(cmd) {
  const { id } = cmd;
  let answer;
  try {
    const handler = typeof cmd.cmd === 'string' && Object.hasOwn(COMMANDS, cmd.cmd) ? COMMANDS[cmd.cmd] : null;
    if (!handler) {
      answer = { id, ok: false, error: { kind: 'unsupported', message: `command ${JSON.stringify(cmd.cmd)} is not implemented by ${ADAPTER_NAME}` } };
    } else {
      const result = await handler(cmd);
      answer = { id, ok: true, result: result ?? {} };
    }
  } catch (err) {
    const kind = err instanceof CommandError ? err.kind : 'failed';
    const info = errorInfo(err);
    answer = { id, ok: false, error: { kind, ...info } };
  }
  writeMessage(answer);
  if (cmd.cmd === 'shutdown' && (cmd.client === undefined || cmd.client === null)) await exitCleanly('shutdown command');
}

// ---------------------------------------------------------------------------
// Modes
// ---------------------------------------------------------------------------
function runProtocol() {
  const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  const inFlight = new Set();
  lines.on('line', (line) => {
    if (line.trim() === '') return;
    let cmd;
    try {
      cmd = JSON.parse(line);
    } catch (err) {
      log(`ignoring a line that is not JSON (${err.message}): ${line.slice(0, 200)}`);
      return;
    }
    if (!cmd || typeof cmd !== 'object' || Array.isArray(cmd)) {
      log(`ignoring a line that is not a JSON object: ${line.slice(0, 200)}`);
      return;
    }
    if (!('id' in cmd)) {
      log(`ignoring a command without "id": ${line.slice(0, 200)}`);
      return;
    }
    if (exiting) {
      // Still answered exactly once, though nothing runs any more.
      writeMessage({ id: cmd.id, ok: false, error: { kind: 'failed', message: 'the adapter is shutting down' } });
      return;
    }
    const p = handleCommand(cmd).catch((err) => log('command handler failed:', err));
    inFlight.add(p);
    p.finally(() => inFlight.delete(p));
  });
  lines.on('close', async () => {
    // stdin EOF: let the answers in flight be written, then shut down and exit 0.
    await withTimeout(Promise.allSettled([...inFlight]), 10_000, 'commands in flight at EOF').catch(() => {});
    await exitCleanly('stdin closed');
  });
}

async function runObserved() {
  const identity = process.env.REHEARSAL_IDENTITY;
  const tokenUrl = process.env.REHEARSAL_TOKEN_URL;
  const twilsockUrl = process.env.REHEARSAL_TWILSOCK_URL;
  const missing = Object.entries({ REHEARSAL_IDENTITY: identity, REHEARSAL_TOKEN_URL: tokenUrl, REHEARSAL_TWILSOCK_URL: twilsockUrl })
    .filter(([, v]) => !v)
    .map(([k]) => k);
  if (missing.length > 0) {
    log(`observed mode needs ${missing.join(', ')}`);
    process.exit(2);
  }
  log(`observed mode: connecting as ${identity}`);
  const s = new Session(identity, { identity, tokenUrl, twilsockUrl });
  sessions.set(identity, s);
  try {
    await s.connect();
  } catch (err) {
    // Keep running: the token policy may still recover the client.
    log(`observed mode: connect failed: ${err.message}`);
    return;
  }
  // Load the conversation list and the newest page of each conversation, as an app would.
  try {
    const { conversations } = await COMMANDS.list_conversations({ client: identity });
    log(`observed mode: ${conversations.length} conversation(s): ${conversations.map((c) => c.unique_name ?? c.sid).join(', ')}`);
    for (const c of conversations) {
      await COMMANDS.page_messages({ client: identity, conversation: c.sid, page_size: 30, direction: 'backwards', pages: 1 }).catch((err) =>
        log(`observed mode: loading ${c.sid} failed: ${err.message}`),
      );
    }
  } catch (err) {
    log(`observed mode: loading conversations failed: ${err.message}`);
  }
}

for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => exitCleanly(signal));

if (OPTIONS.observed) {
  // Runs until killed: the SDK's socket keeps the event loop alive; this
  // interval makes sure of it even while the client is down.
  setInterval(() => {}, 1 << 30);
  runObserved();
} else {
  runProtocol();
}
