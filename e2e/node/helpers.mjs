// Shared helpers for the Node end-to-end suites: start/stop a Rehearsal
// server, fetch its credentials, build helper-library clients pointed at it.
//
// Everything here waits on events (process output, process exit) with
// explicit timeouts; nothing sleeps for a fixed time.

import { spawn, execFile } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import twilio from 'twilio';

const execFileAsync = promisify(execFile);

export const E2E_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const REPO_ROOT = path.resolve(E2E_DIR, '..');
export const REHEARSAL_BIN =
  process.env.REHEARSAL_BIN || path.join(REPO_ROOT, 'target', 'debug', 'rehearsal');

/** Values of the embedded default seed (what `rehearsal env --json` should print). */
export const DEFAULT_SEED = Object.freeze({
  TWILIO_ACCOUNT_SID: 'AC72656865617273616c00000000000001',
  TWILIO_AUTH_TOKEN: 'rehearsal-auth-token',
  TWILIO_API_KEY: 'SK72656865617273616c00000000000001',
  TWILIO_API_SECRET: 'rehearsal-api-secret',
  TWILIO_CONVERSATIONS_SERVICE_SID: 'IS72656865617273616c00000000000001',
});

// twilio-node rewrites request hostnames when an edge/region is configured
// (127.0.0.1 would become 127.us1.0.1), and it reads them from the process
// environment: make sure an outer TWILIO_REGION / TWILIO_EDGE cannot leak in.
delete process.env.TWILIO_REGION;
delete process.env.TWILIO_EDGE;

export const LISTENING_RE = /listening on (http:\/\/\S+)/;

const STARTUP_TIMEOUT_MS = 30_000;
const ENV_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 10_000;
const MAX_LOG_LINES = 400;

// ---------------------------------------------------------------------------
// unhandledRejection guard: a promise rejected without a handler is a test bug
// (e.g. a forgotten await). Record it, make the process fail, and let suites
// assert on it in an `after` hook.
// ---------------------------------------------------------------------------
const unhandledRejections = [];
if (!globalThis.__rehearsalUnhandledGuard) {
  globalThis.__rehearsalUnhandledGuard = true;
  process.on('unhandledRejection', (reason) => {
    unhandledRejections.push(reason);
    process.exitCode = 1;
    console.error('[e2e] unhandledRejection:', reason);
  });
}

export function assertNoUnhandledRejections() {
  if (unhandledRejections.length > 0) {
    const first = unhandledRejections[0];
    const err = new Error(
      `${unhandledRejections.length} unhandled promise rejection(s); first: ${
        first instanceof Error ? first.stack : String(first)
      }`,
    );
    throw err;
  }
}

// Kill any server still alive if the test process exits abruptly.
const liveChildren = new Set();
process.on('exit', () => {
  for (const child of liveChildren) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
});

/**
 * Race `promise` against a timer; reject with `message` (a string, or a
 * function called at expiry) on timeout. The timer is cleared as soon as the
 * promise settles.
 */
export function withTimeout(promise, ms, message) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => {
      const text = typeof message === 'function' ? message() : message;
      reject(new Error(`${text} (timed out after ${ms} ms)`));
    }, ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Run `fn` over `items` with at most `limit` calls in flight; results keep input order. */
export async function mapLimit(items, limit, fn) {
  const results = new Array(items.length);
  let next = 0;
  async function worker() {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i], i);
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/**
 * Start `rehearsal serve --listen 127.0.0.1:0` and wait for its listening line.
 *
 * Resolves to a handle:
 *   { baseUrl, host, port, creds, credsSource, child, logs(), stop() }
 * where creds is the object printed by `rehearsal env --json` (or DEFAULT_SEED
 * plus REHEARSAL_URL when that command fails; credsSource says which, and
 * credsError holds the failure).
 */
export async function startServer({ extraArgs = [], env = {}, timeoutMs = STARTUP_TIMEOUT_MS } = {}) {
  const logLines = [];
  const remember = (stream) => (line) => {
    logLines.push(`[${stream}] ${line}`);
    if (logLines.length > MAX_LOG_LINES) logLines.shift();
  };
  const logs = () => logLines.join('\n');

  const child = spawn(REHEARSAL_BIN, ['serve', '--listen', '127.0.0.1:0', ...extraArgs], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  liveChildren.add(child);
  // Resolves once the process is gone: on 'exit', or on a spawn 'error'
  // (ENOENT, EACCES) after which no 'exit' event comes.
  const exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.on('error', (err) => {
      if (child.pid === undefined) resolve({ code: child.exitCode, signal: null, error: err });
    });
  }).then((result) => {
    liveChildren.delete(child);
    return result;
  });

  const stderrLines = readline.createInterface({ input: child.stderr, crlfDelay: Infinity });
  stderrLines.on('line', remember('stderr'));
  const stdoutLines = readline.createInterface({ input: child.stdout, crlfDelay: Infinity });

  const listening = new Promise((resolve, reject) => {
    stdoutLines.on('line', (line) => {
      remember('stdout')(line);
      const m = LISTENING_RE.exec(line);
      if (m) resolve(m[1]);
    });
    child.once('error', (err) =>
      reject(new Error(`cannot start ${REHEARSAL_BIN}: ${err.message}`, { cause: err })),
    );
    exited.then(({ code, signal }) =>
      reject(
        new Error(
          `rehearsal serve exited (code ${code}, signal ${signal}) before printing its listening line\n${logs()}`,
        ),
      ),
    );
  });

  let rawUrl;
  try {
    rawUrl = await withTimeout(
      listening,
      timeoutMs,
      () => `rehearsal serve did not print a "listening on http://..." line; output so far:\n${logs()}`,
    );
  } catch (err) {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await withTimeout(exited, STOP_TIMEOUT_MS, 'rehearsal serve did not exit after SIGKILL').catch(() => {});
    }
    throw err;
  }

  const url = new URL(rawUrl.replace(/[.,;)\]]+$/, ''));
  const baseUrl = url.origin; // http://127.0.0.1:PORT (no trailing slash)
  const host = url.hostname;
  const port = Number(url.port);

  let creds;
  let credsSource = 'env';
  let credsError;
  try {
    creds = await fetchEnvCredentials(`${host}:${port}`);
  } catch (err) {
    credsSource = 'fallback';
    credsError = err;
    creds = { ...DEFAULT_SEED, REHEARSAL_URL: baseUrl };
    console.error(`[e2e] rehearsal env --json failed, using default-seed credentials: ${err.message}`);
  }

  let stopping;
  async function stop() {
    if (!stopping) {
      stopping = (async () => {
        if (child.exitCode !== null || child.signalCode !== null) return exited;
        child.kill('SIGTERM');
        try {
          return await withTimeout(exited, STOP_TIMEOUT_MS, 'rehearsal serve did not exit after SIGTERM');
        } catch (err) {
          child.kill('SIGKILL');
          await withTimeout(exited, STOP_TIMEOUT_MS, 'rehearsal serve did not exit after SIGKILL').catch(() => {});
          throw new Error(`${err.message}\n${logs()}`);
        }
      })();
    }
    return stopping;
  }

  return { baseUrl, host, port, creds, credsSource, credsError, child, logs, stop, exited };
}

/** Run `rehearsal env --json --listen HOST:PORT` and parse its JSON. */
export async function fetchEnvCredentials(listen) {
  const { stdout } = await execFileAsync(REHEARSAL_BIN, ['env', '--json', '--listen', listen], {
    cwd: REPO_ROOT,
    timeout: ENV_TIMEOUT_MS,
    killSignal: 'SIGKILL',
  });
  try {
    return JSON.parse(stdout);
  } catch (err) {
    throw new Error(`rehearsal env --json printed invalid JSON: ${JSON.stringify(stdout)}`, { cause: err });
  }
}

/**
 * An official twilio-node client whose Conversations domain talks to Rehearsal.
 *
 * twilio-node builds every URL as `domain.baseUrl + '/v1/...'`, and
 * `client.conversations` is one lazily created Domain object, so overwriting
 * its `baseUrl` redirects all Conversations calls. Paging follows the
 * absolute `meta.next_page_url` verbatim, which Rehearsal points at itself.
 */
export function restClient(server, { username, password, accountSid, ...opts } = {}) {
  const client = twilio(
    username ?? server.creds.TWILIO_ACCOUNT_SID,
    password ?? server.creds.TWILIO_AUTH_TOKEN,
    { accountSid, autoRetry: false, timeout: 20_000, ...opts },
  );
  client.conversations.baseUrl = server.baseUrl;
  return client;
}

/** A random lowercase suffix for unique names/identities. */
export function uniqueSuffix() {
  return `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
}
