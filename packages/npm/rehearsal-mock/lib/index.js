// Rehearsal for JavaScript tests: start the `rehearsal` binary on a free loopback port, and drive
// it through its control plane (`/_rehearsal/v1`, the JSON API that README's "Control plane"
// documents) with typed calls. Every wait is bounded by a timeout; nothing sleeps.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import readline from 'node:readline';

import { binaryPath } from './binary.js';

export { binaryPath, PLATFORM_PACKAGES } from './binary.js';

const LISTENING_RE = /listening on (http:\/\/\S+)/;
const CONTROL_PREFIX = '/_rehearsal/v1';
const DEFAULT_STARTUP_TIMEOUT_MS = 30_000;
const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;
/** Lines of the server's output kept for error messages. */
const LOG_LINES = 200;

/** A server still running when the test process exits is killed rather than left behind. */
const live = new Set();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

/** A control-plane error answer: `{code, message, status}` (+ `twilio_code` for refused actions). */
export class ControlError extends Error {
  constructor(request, status, body) {
    super(`${request}: ${status} ${body?.code ?? ''} ${body?.message ?? JSON.stringify(body)}`.replace(/\s+/g, ' '));
    this.name = 'ControlError';
    this.status = status;
    this.code = body?.code;
    this.twilioCode = body?.twilio_code ?? (typeof body?.code === 'number' ? body.code : undefined);
    this.body = body;
  }
}

function bounded(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${typeof what === 'function' ? what() : what} (timed out after ${ms} ms)`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** `undefined` → every session of the account; `'alice'` → alice's; `{session: 3}` → that one. */
function targetOf(target) {
  if (target === undefined || target === null) return undefined;
  if (typeof target === 'string') return { identity: target };
  const { identity, session } = target;
  return { ...(identity !== undefined && { identity }), ...(session !== undefined && { session }) };
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params ?? {})) {
    if (v === undefined || v === null) continue;
    q.set(k, Array.isArray(v) ? v.join(',') : String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

/**
 * One account of a running server (the default seed's, or a tenant) and the control calls that
 * act on it. Every call goes through the control plane under `/_rehearsal/v1/tenants/{AC}`.
 */
export class Account {
  /** @param {Rehearsal} server @param {object} credentials a tenant as the control plane shows it */
  constructor(server, credentials) {
    this.server = server;
    this.credentials = Object.freeze({ ...credentials });
    const base = `/tenants/${encodeURIComponent(credentials.account_sid)}`;
    this.path = base;
    this.clock = Object.freeze({
      now: () => this.#call('GET', `${base}/clock`),
      freeze: (atMs) => this.#call('POST', `${base}/clock`, { action: 'freeze', ...(atMs !== undefined && { at: atMs }) }),
      advance: (ms) => this.#call('POST', `${base}/clock`, { action: 'advance', by_ms: ms }),
      resume: () => this.#call('POST', `${base}/clock`, { action: 'resume' }),
    });
    this.faults = Object.freeze({
      http: async (rule) => {
        const { id } = await this.#call('POST', `${base}/faults/http`, rule);
        return { id, remove: () => this.#call('DELETE', `/faults/${id}`) };
      },
      list: () => this.#call('GET', `${base}/faults`),
      clear: () => this.#call('DELETE', `${base}/faults`),
    });
    const journal = (filter) => this.#call('GET', `${base}/journal${query(filter)}`);
    journal.waitFor = (filter, options) => this.#waitForEntry(filter, options);
    this.journal = journal;
  }

  get accountSid() {
    return this.credentials.account_sid;
  }

  /** The variables `rehearsal env` prints, for this account. */
  get env() {
    const c = this.credentials;
    const url = this.server.url;
    const tokenUrl = this.server.defaultAccountSid === c.account_sid
      ? `${url}/token`
      : `${url}/token?account=${encodeURIComponent(c.account_sid)}&key=${encodeURIComponent(c.token_key)}`;
    return {
      TWILIO_ACCOUNT_SID: c.account_sid,
      TWILIO_AUTH_TOKEN: c.auth_token,
      TWILIO_API_KEY: c.api_key,
      TWILIO_API_SECRET: c.api_secret,
      TWILIO_CONVERSATIONS_SERVICE_SID: c.service_sid,
      REHEARSAL_URL: url,
      REHEARSAL_TWILSOCK_URL: this.server.twilsockUrl,
      REHEARSAL_TOKEN_URL: tokenUrl,
      REHEARSAL_CONTROL_URL: this.server.controlUrl,
      REHEARSAL_CONTROL_TOKEN: this.server.controlToken,
    };
  }

  /** An access token for `identity` on this account, from the server's token endpoint. */
  async token(identity, { ttl } = {}) {
    const c = this.credentials;
    const url = `${this.server.url}/token${query({ identity, ttl, account: c.account_sid, key: c.token_key })}`;
    const res = await fetch(url, { signal: AbortSignal.timeout(this.server.requestTimeoutMs) });
    const body = await res.json().catch(() => undefined);
    if (!res.ok || typeof body?.token !== 'string') throw new ControlError(`GET /token for ${identity}`, res.status, body);
    return body.token;
  }

  /** Live sessions (of one identity if given). */
  async connections(identity) {
    const { connections } = await this.#call('GET', `${this.path}/connections${query({ identity })}`);
    return connections;
  }

  /** Sends one connection action to the target sessions; answered once they applied it. */
  action(target, action, fields = {}) {
    const t = targetOf(target);
    return this.#call('POST', `${this.path}/connections/actions`, { ...(t && { target: t }), action, ...fields });
  }

  /** Drops the socket without a close handshake, like a network failure. */
  drop(target) {
    return this.action(target, 'drop');
  }

  /** Sends a twilsock `close` with `code` (308 reconnects; 401, 406, 410, 417 are terminal). */
  close(target, code, { backoffMs, description, errorCode } = {}) {
    return this.action(target, 'close', {
      code,
      ...(backoffMs !== undefined && { backoff_ms: backoffMs }),
      ...(description !== undefined && { description }),
      ...(errorCode !== undefined && { error_code: errorCode }),
    });
  }

  /** Acts as if the token expired now: `close` 410 (20104). */
  expireToken(target) {
    return this.action(target, 'expire_token');
  }

  /** Sends `token_about_to_expire` now. */
  warnTokenExpiry(target) {
    return this.action(target, 'warn_token_expiry');
  }

  latency(target, ms) {
    return this.action(target, 'latency', { ms });
  }

  holdNotifications(target) {
    return this.action(target, 'hold_notifications');
  }

  releaseNotifications(target) {
    return this.action(target, 'release_notifications');
  }

  stall(target) {
    return this.action(target, 'stall');
  }

  unstall(target) {
    return this.action(target, 'unstall');
  }

  /** Refuses new connections (503) for `ms` of this account's clock. */
  refuseConnections(ms) {
    return this.#call('POST', `${this.path}/connections/refuse`, { for_ms: ms });
  }

  /** Answers the next `count` inits (of `identity` if given) with `status` and `errorCode`. */
  denyInits({ identity, count = 1, status, errorCode, description, backoffMs }) {
    return this.#call('POST', `${this.path}/inits/deny`, {
      count,
      status,
      ...(identity !== undefined && { identity }),
      ...(errorCode !== undefined && { error_code: errorCode }),
      ...(description !== undefined && { description }),
      ...(backoffMs !== undefined && { backoff_ms: backoffMs }),
    });
  }

  /** Acts as `as` (an identity, or `null` for the REST API): `{as, action, ...fields}`. */
  act({ as = null, action, ...fields }) {
    return this.#call('POST', `${this.path}/actors`, { as, action, ...fields });
  }

  /** Posts a message as `as` in `conversation` (SID or unique name). */
  post({ as = null, conversation, body, attributes }) {
    const attrs = attributes === undefined || typeof attributes === 'string' ? attributes : JSON.stringify(attributes);
    return this.act({ as, action: 'post', conversation, ...(body !== undefined && { body }), ...(attrs !== undefined && { attributes: attrs }) });
  }

  #call(method, path, body) {
    return this.server.request(method, path, body);
  }

  /** The first journal entry of this account matching `filter` recorded after `filter.after`. */
  async #waitForEntry(filter = {}, { timeoutMs = 10_000 } = {}) {
    const controller = new AbortController();
    const url = `${this.server.controlUrl}${this.path}/journal/stream${query({ ...filter, limit: 1 })}`;
    const read = (async () => {
      const res = await fetch(url, { headers: this.server.headers(), signal: controller.signal });
      if (!res.ok) throw new ControlError(`GET ${this.path}/journal/stream`, res.status, await res.json().catch(() => undefined));
      const text = await res.text();
      const line = text.split('\n').find((l) => l.trim());
      if (!line) throw new Error('the journal stream ended without an entry (server stopping?)');
      return JSON.parse(line);
    })();
    try {
      return await bounded(read, timeoutMs, `waiting for a journal entry matching ${JSON.stringify(filter)}`);
    } finally {
      controller.abort();
    }
  }
}

/** A tenant: an isolated account with its own credentials, deleted by `delete()`. */
export class Tenant extends Account {
  #deleted = false;

  /** Deletes the tenant (its credentials stop working); a second call does nothing. */
  async delete() {
    if (this.#deleted) return;
    this.#deleted = true;
    this.server.forget(this);
    if (this.server.running) await this.server.request('DELETE', this.path);
  }

  /** Back to its seed, with the same credentials. */
  reset() {
    return this.server.request('POST', `${this.path}/reset`);
  }

  async [Symbol.asyncDispose ?? Symbol.for('Symbol.asyncDispose')]() {
    await this.delete();
  }
}

/** A running `rehearsal serve`; as an `Account`, its control calls act on the seed's first account. */
export class Rehearsal extends Account {
  #child;
  #exited;
  #logs;
  #stopping;
  #tenants = new Set();

  constructor({ child, exited, logs, url, controlToken, requestTimeoutMs, defaultAccount }) {
    const server = { url }; // replaced below: Account needs `this.server` before `this` exists
    super(server, defaultAccount ?? {});
    this.server = this;
    this.#child = child;
    this.#exited = exited;
    this.#logs = logs;
    this.url = url;
    this.twilsockUrl = `${url.replace(/^http/, 'ws')}/v3/wsconnect`;
    this.controlUrl = `${url}${CONTROL_PREFIX}`;
    this.controlToken = controlToken;
    this.requestTimeoutMs = requestTimeoutMs;
    this.defaultAccountSid = defaultAccount?.account_sid;
  }

  get pid() {
    return this.#child.pid;
  }

  get running() {
    return this.#child.exitCode === null && this.#child.signalCode === null;
  }

  /** The server's last output lines (stdout and stderr). */
  logs() {
    return this.#logs.join('\n');
  }

  headers() {
    return { authorization: `Bearer ${this.controlToken}`, 'content-type': 'application/json' };
  }

  /** One control-plane request; the JSON answer, or a `ControlError`. */
  async request(method, path, body) {
    const res = await fetch(`${this.controlUrl}${path}`, {
      method,
      headers: this.headers(),
      ...(body !== undefined && { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(this.requestTimeoutMs),
    });
    const text = await res.text();
    let data;
    try {
      data = text ? JSON.parse(text) : undefined;
    } catch {
      data = { message: text };
    }
    if (!res.ok) throw new ControlError(`${method} ${path}`, res.status, data);
    return data;
  }

  /**
   * A new isolated tenant: the default seed's content with fresh credentials (or `seed`, one
   * account in the seed format; `rngSeed` makes its SIDs and secrets reproducible).
   */
  async tenant({ seed, rngSeed } = {}) {
    const credentials = await this.request('POST', '/tenants', {
      ...(seed !== undefined && { seed }),
      ...(rngSeed !== undefined && { rng_seed: rngSeed }),
    });
    const t = new Tenant(this, credentials);
    this.#tenants.add(t);
    return t;
  }

  /** Deletes every tenant made by `tenant()` and not deleted yet (for an `afterEach`). */
  async deleteTenants() {
    await Promise.all([...this.#tenants].map((t) => t.delete()));
  }

  forget(tenant) {
    this.#tenants.delete(tenant);
  }

  /** Stops the server (SIGTERM, then SIGKILL after 10 s); resolves to its exit; idempotent. */
  stop() {
    this.#stopping ??= (async () => {
      if (this.running) {
        this.#child.kill('SIGTERM');
        try {
          return await bounded(this.#exited, STOP_TIMEOUT_MS, 'rehearsal serve did not exit after SIGTERM');
        } catch (err) {
          this.#child.kill('SIGKILL');
          await bounded(this.#exited, STOP_TIMEOUT_MS, 'rehearsal serve did not exit after SIGKILL').catch(() => {});
          throw new Error(`${err.message}\n${this.logs()}`);
        }
      }
      return this.#exited;
    })();
    return this.#stopping;
  }

  async [Symbol.asyncDispose ?? Symbol.for('Symbol.asyncDispose')]() {
    await this.stop();
  }
}

/**
 * Starts `rehearsal serve` on 127.0.0.1, port 0 (a free port), with a fresh random control token,
 * and resolves once it listens. Stop it with `stop()` (an `afterAll`, or the `rehearsal-mock/vitest`
 * fixtures, which do it for you); a server still running when the process exits is killed.
 *
 * @param {import('./index.js').StartOptions} [options]
 */
export async function startRehearsal(options = {}) {
  const {
    binary = binaryPath(),
    args = [],
    env = {},
    startupTimeoutMs = DEFAULT_STARTUP_TIMEOUT_MS,
    requestTimeoutMs = DEFAULT_REQUEST_TIMEOUT_MS,
  } = options;
  const controlToken = randomBytes(16).toString('hex');
  const logs = [];
  const remember = (line) => {
    logs.push(line);
    if (logs.length > LOG_LINES) logs.shift();
  };
  const child = spawn(binary, ['serve', '--listen', '127.0.0.1:0', '--control-token', controlToken, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  // Settles once the process is gone: on 'exit', or on a spawn 'error' (ENOENT, EACCES) after
  // which no 'exit' comes.
  const exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', (error) => {
      if (child.pid === undefined) resolve({ code: null, signal: null, error });
    });
  }).then((r) => {
    live.delete(child);
    return r;
  });
  readline.createInterface({ input: child.stderr, crlfDelay: Infinity }).on('line', remember);
  const listening = new Promise((resolve, reject) => {
    readline.createInterface({ input: child.stdout, crlfDelay: Infinity }).on('line', (line) => {
      remember(line);
      const m = LISTENING_RE.exec(line);
      if (m) resolve(new URL(m[1]).origin);
    });
    exited.then(({ code, signal, error }) =>
      reject(
        new Error(
          error
            ? `cannot start ${binary}: ${error.message}`
            : `rehearsal serve exited (code ${code}, signal ${signal}) before listening\n${logs.join('\n')}`,
        ),
      ),
    );
  });
  let url;
  try {
    url = await bounded(listening, startupTimeoutMs, () => `rehearsal serve did not say where it listens; output:\n${logs.join('\n')}`);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  // The test process must be free to exit without an explicit stop (the 'exit' hook kills it).
  child.unref();
  child.stdout.unref?.();
  child.stderr.unref?.();

  const probe = new Rehearsal({ child, exited, logs, url, controlToken, requestTimeoutMs });
  let defaultAccount;
  try {
    const { tenants } = await probe.request('GET', '/tenants');
    defaultAccount = tenants[0];
  } catch (err) {
    await probe.stop().catch(() => {});
    throw err;
  }
  return new Rehearsal({ child, exited, logs, url, controlToken, requestTimeoutMs, defaultAccount });
}
