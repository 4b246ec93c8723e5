// Self-test of the twilio-conversations-js adapter: a real `rehearsal serve`,
// the adapter as a child process, and the driver protocol spoken over its
// stdin/stdout exactly as `rehearsal run` will.
//
//   node --test adapters/twilio-conversations-js/selftest.mjs
//
// REHEARSAL_BIN overrides the server binary (default target/debug/rehearsal,
// built with `cargo build -p rehearsal-cli` when missing). Every line the
// adapter writes is checked to be JSON (and, when ajv is installed in e2e/,
// valid against harness/schema/driver-protocol.schema.json); every command
// must be answered exactly once. Every wait has a timeout; nothing sleeps.

import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import readline from 'node:readline';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '..', '..');
const ADAPTER = path.join(HERE, 'adapter.mjs');
const SCHEMA_PATH = path.join(REPO, 'harness', 'schema', 'driver-protocol.schema.json');
const REHEARSAL_BIN = process.env.REHEARSAL_BIN || path.join(REPO, 'target', 'debug', 'rehearsal');
const LISTENING_RE = /listening on (http:\/\/\S+)/;
const WAIT_MS = 15_000;

const children = new Set();
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

const timings = [];
after(() => {
  if (timings.length > 0) {
    process.stderr.write(`\nselftest timings (ms):\n${timings.map(([what, ms]) => `  ${String(ms).padStart(6)}  ${what}`).join('\n')}\n`);
  }
});

async function timed(what, fn) {
  const start = performance.now();
  try {
    return await fn();
  } finally {
    timings.push([what, Math.round(performance.now() - start)]);
  }
}

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${typeof what === 'function' ? what() : what} (timed out after ${ms} ms)`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

// ---------------------------------------------------------------------------
// Prerequisites: the server binary and the adapter's node_modules
// ---------------------------------------------------------------------------
function ensurePrerequisites() {
  if (!process.env.REHEARSAL_BIN && !existsSync(REHEARSAL_BIN)) {
    process.stderr.write('selftest: building rehearsal-cli (target/debug/rehearsal is missing)\n');
    execFileSync('cargo', ['build', '-p', 'rehearsal-cli'], { cwd: REPO, stdio: ['ignore', 'inherit', 'inherit'] });
  }
  if (!existsSync(path.join(HERE, 'node_modules', '@twilio', 'conversations'))) {
    process.stderr.write('selftest: installing the adapter (npm ci)\n');
    execFileSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: HERE, stdio: ['ignore', 'inherit', 'inherit'] });
  }
}

/** Schema validator from e2e/node_modules (ajv), or null when it is not installed. */
function loadValidator() {
  let Ajv2020;
  let addFormats;
  try {
    const req = createRequire(path.join(REPO, 'e2e', 'package.json'));
    Ajv2020 = req('ajv/dist/2020').default;
    addFormats = req('ajv-formats');
  } catch {
    return null;
  }
  const schema = JSON.parse(readFileSync(SCHEMA_PATH, 'utf8'));
  const ajv = new Ajv2020({ strict: true, allowUnionTypes: true, allErrors: true });
  (addFormats.default ?? addFormats)(ajv);
  ajv.addSchema(schema);
  const message = ajv.getSchema(schema.$id);
  const result = (cmd) => ajv.getSchema(`${schema.$id}#/$defs/result_${cmd}`);
  const check = (validate, value, what) => {
    if (!validate(value)) throw new Error(`${what} does not match the schema: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(value)}`);
  };
  return {
    message: (value, what) => check(message, value, what),
    result: (cmd, value, what) => check(result(cmd), value, what),
  };
}

const validator = loadValidator();

// ---------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------
async function startServer(t) {
  const child = spawn(REHEARSAL_BIN, ['serve', '--listen', '127.0.0.1:0'], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const logs = [];
  const base = await withTimeout(
    new Promise((resolve, reject) => {
      for (const stream of [child.stdout, child.stderr]) {
        readline.createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => {
          logs.push(line);
          const m = LISTENING_RE.exec(line);
          if (m) resolve(m[1]);
        });
      }
      child.once('error', reject);
      child.once('exit', (code) => reject(new Error(`rehearsal serve exited with ${code}:\n${logs.join('\n')}`)));
    }),
    30_000,
    () => `waiting for "listening on" from rehearsal serve:\n${logs.join('\n')}`,
  );
  t.after(async () => {
    child.kill('SIGTERM');
    await withTimeout(exited, 10_000, 'rehearsal serve to exit').catch(() => child.kill('SIGKILL'));
    children.delete(child);
  });
  return { base, wsUrl: `${base.replace(/^http/, 'ws')}/v3/wsconnect` };
}

// ---------------------------------------------------------------------------
// The adapter, driven over the protocol
// ---------------------------------------------------------------------------
class Adapter {
  constructor(t, args = [], env = {}) {
    this.child = spawn(process.execPath, [ADAPTER, ...args], {
      cwd: REPO,
      // An outer REHEARSAL_MUTANT / REHEARSAL_OBSERVED must not leak into the adapter.
      env: { ...process.env, REHEARSAL_MUTANT: '', REHEARSAL_OBSERVED: '', ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    children.add(this.child);
    this.nextId = 1;
    this.answers = new Map(); // id -> [answer...]
    this.commands = new Map(); // id -> cmd
    this.events = [];
    this.waiters = new Set();
    this.stderr = [];
    this.violations = [];
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })));
    this.exited.then(() => children.delete(this.child));
    readline.createInterface({ input: this.child.stderr, crlfDelay: Infinity }).on('line', (line) => {
      this.stderr.push(line);
      if (this.stderr.length > 300) this.stderr.shift();
    });
    readline.createInterface({ input: this.child.stdout, crlfDelay: Infinity }).on('line', (line) => this.onLine(line));
    t.after(async () => {
      if (this.child.exitCode === null && this.child.signalCode === null) {
        this.child.kill('SIGKILL');
        await this.exited;
      }
    });
  }

  onLine(line) {
    let message;
    try {
      message = JSON.parse(line);
    } catch {
      this.violations.push(`stdout line is not JSON: ${line.slice(0, 200)}`);
      return;
    }
    if (validator) {
      try {
        validator.message(message, 'adapter line');
        if (message.ok === true && this.commands.has(message.id)) {
          validator.result(this.commands.get(message.id).cmd, message.result, `result of ${this.commands.get(message.id).cmd}`);
        }
      } catch (err) {
        this.violations.push(err.message);
      }
    }
    if ('event' in message) {
      this.events.push(message);
    } else if ('id' in message) {
      const list = this.answers.get(message.id) ?? [];
      list.push(message);
      this.answers.set(message.id, list);
      if (list.length > 1) this.violations.push(`command ${message.id} answered ${list.length} times`);
    } else {
      this.violations.push(`stdout line is neither an answer nor an event: ${line.slice(0, 200)}`);
    }
    for (const waiter of [...this.waiters]) waiter();
  }

  trail() {
    return [
      'events:',
      ...this.events.slice(-25).map((e) => `  ${JSON.stringify(e).slice(0, 220)}`),
      'stderr:',
      ...this.stderr.slice(-25).map((l) => `  ${l}`),
    ].join('\n');
  }

  /** Resolve once `check()` returns something truthy (re-checked on every line), or reject after `ms`. */
  until(check, ms, what) {
    const now = check();
    if (now) return Promise.resolve(now);
    let waiter;
    const promise = new Promise((resolve) => {
      waiter = () => {
        const v = check();
        if (v) resolve(v);
      };
      this.waiters.add(waiter);
    });
    return withTimeout(promise, ms, () => `${what}\n${this.trail()}`).finally(() => this.waiters.delete(waiter));
  }

  /** Send a command; resolve with its answer. */
  async request(cmd, ms = WAIT_MS) {
    const id = this.nextId++;
    const full = { id, ...cmd };
    if (validator) validator.message(full, `command ${cmd.cmd}`);
    this.commands.set(id, full);
    this.child.stdin.write(`${JSON.stringify(full)}\n`);
    return this.until(() => this.answers.get(id)?.[0], ms, `waiting for the answer to ${JSON.stringify(full)}`);
  }

  /** Send a command that must succeed; resolve with its result. */
  async ok(cmd, ms) {
    const answer = await this.request(cmd, ms);
    assert.equal(answer.ok, true, `${cmd.cmd} failed: ${JSON.stringify(answer.error)}\n${this.trail()}`);
    return answer.result;
  }

  /** Events matching `pred`, in the order written. */
  all(pred) {
    return this.events.filter(pred);
  }

  waitEvent(pred, what, ms = WAIT_MS) {
    return this.until(() => this.events.find(pred), ms, `waiting for event: ${what}`);
  }

  assertClean() {
    assert.deepEqual(this.violations, [], 'protocol violations');
  }
}

const connect = (adapter, server, name) =>
  adapter.ok({ cmd: 'connect', client: name, identity: name, token_url: `${server.base}/token?`, twilsock_url: server.wsUrl });

const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

ensurePrerequisites();

// ---------------------------------------------------------------------------

test('the protocol end to end against rehearsal serve', async (t) => {
  t.diagnostic(validator ? 'every line checked against harness/schema/driver-protocol.schema.json (ajv from e2e/node_modules)' : 'ajv not found in e2e/node_modules: schema validation skipped');
  const server = await timed('start rehearsal serve', () => startServer(t));
  const adapter = new Adapter(t);

  const hello = await timed('hello', () => adapter.ok({ cmd: 'hello', protocol: 1, scenario: 'selftest' }));
  assert.equal(hello.name, 'twilio-conversations-js');
  assert.equal(hello.version, '3.0.1');
  assert.equal(hello.protocol, 1);
  const expected = ['hello', 'connect', 'update_token', 'list_conversations', 'join', 'leave', 'create', 'send', 'page_messages', 'edit', 'remove', 'typing', 'set_read_horizon', 'get_media', 'shutdown'];
  assert.deepEqual([...hello.capabilities].sort(), [...expected].sort());

  await timed('connect alice', () => connect(adapter, server, 'alice'));
  await timed('connect bob', () => connect(adapter, server, 'bob'));
  for (const name of ['alice', 'bob']) {
    const states = adapter.all((e) => e.event === 'connection_state' && e.client === name).map((e) => e.state);
    assert.deepEqual(states.slice(0, 2), ['connecting', 'connected'], `${name} connection states`);
    assert.equal(adapter.all((e) => e.event === 'initialized' && e.client === name).length, 1);
  }

  const { conversations } = await timed('list_conversations', () => adapter.ok({ cmd: 'list_conversations', client: 'alice' }));
  assert.deepEqual(conversations.map((c) => c.unique_name).sort(), ['general', 'history']);
  const general = conversations.find((c) => c.unique_name === 'general');
  assert.match(general.sid, /^CH[0-9a-f]{32}$/);
  await adapter.waitEvent((e) => e.event === 'conversation_joined' && e.client === 'bob' && e.conversation === general.sid, 'bob conversation_joined general');

  // alice sends; bob sees message_added with the same index.
  const sent = await timed('send + bob message_added', async () => {
    const { index } = await adapter.ok({ cmd: 'send', client: 'alice', conversation: 'general', text: 'hello from the adapter', attributes: '{"via":"selftest"}' });
    const seen = await adapter.waitEvent((e) => e.event === 'message_added' && e.client === 'bob' && e.index === index, `bob message_added #${index}`);
    return { index, seen };
  });
  assert.equal(sent.index, 4, 'the seeded general conversation has messages 0..3');
  assert.equal(sent.seen.conversation, general.sid);
  assert.equal(sent.seen.author, 'alice');
  assert.equal(sent.seen.body, 'hello from the adapter');
  assert.equal(sent.seen.type, 'text');
  assert.deepEqual(JSON.parse(sent.seen.attributes), { via: 'selftest' });
  assert.ok(Math.abs(sent.seen.at - Date.now()) < 60_000, '`at` is the wall clock in ms');

  // 120 messages, 4 pages of 30 backwards: 90..119, 60..89, 30..59, 0..29.
  const paged = await timed('page_messages history 4x30 backwards', () =>
    adapter.ok({ cmd: 'page_messages', client: 'alice', conversation: 'history', page_size: 30, direction: 'backwards', pages: 4 }),
  );
  assert.equal(paged.pages.length, 4);
  paged.pages.forEach((page, i) => assert.deepEqual(page, range(90 - 30 * i, 119 - 30 * i), `page ${i + 1}`));
  assert.deepEqual(paged.pages.flat().sort((a, b) => a - b), range(0, 119), 'no gaps, no duplicates');
  assert.equal(paged.has_more, false);

  // The seeded PNG (general #2) downloads byte for byte.
  const seed = JSON.parse(readFileSync(path.join(REPO, 'fixtures', 'seeds', 'default.json'), 'utf8'));
  const png = Buffer.from(seed.accounts[0].conversations[0].messages[2].media.base64, 'base64');
  const media = await timed('get_media general #2', () => adapter.ok({ cmd: 'get_media', client: 'bob', conversation: 'general', index: 2 }));
  assert.equal(media.content_type, 'image/png');
  assert.equal(media.size, png.length);
  assert.equal(media.sha256, createHash('sha256').update(png).digest('hex'));

  // Read horizon at 1 of 0..4: three unread.
  const horizon = await timed('set_read_horizon', () => adapter.ok({ cmd: 'set_read_horizon', client: 'alice', conversation: 'general', index: 1 }));
  assert.equal(horizon.unread, 3);
  const allRead = await adapter.ok({ cmd: 'set_read_horizon', client: 'alice', conversation: 'general', index: 'all' });
  assert.equal(allRead.unread, 0);

  // Typing: bob sees alice typing.
  await timed('typing + bob typing_started', async () => {
    await adapter.ok({ cmd: 'typing', client: 'alice', conversation: 'general' });
    await adapter.waitEvent((e) => e.event === 'typing_started' && e.client === 'bob' && e.identity === 'alice', 'bob typing_started alice');
  });

  // Unknown commands are unsupported, not fatal.
  const unknown = await adapter.request({ cmd: 'teleport', client: 'alice' });
  assert.equal(unknown.ok, false);
  assert.equal(unknown.error.kind, 'unsupported');
  // SDK errors come back as failed with the SDK's message.
  const missing = await adapter.request({ cmd: 'send', client: 'alice', conversation: 'no-such-conversation', text: 'x' });
  assert.equal(missing.ok, false);
  assert.equal(missing.error.kind, 'failed');
  assert.ok(missing.error.message.length > 0);

  const exit = await timed('shutdown + exit', async () => {
    await adapter.ok({ cmd: 'shutdown' });
    return withTimeout(adapter.exited, 10_000, 'adapter exit after shutdown');
  });
  assert.deepEqual(exit, { code: 0, signal: null }, `adapter exit\n${adapter.trail()}`);
  adapter.assertClean();
});

test('mutant duplicate-message: every message_added is reported twice', async (t) => {
  const server = await startServer(t);
  const adapter = new Adapter(t, ['--mutant', 'duplicate-message']);
  const hello = await adapter.ok({ cmd: 'hello', protocol: 1 });
  assert.equal(hello.mutant, 'duplicate-message');
  await timed('mutant: connect alice + bob', () => Promise.all([connect(adapter, server, 'alice'), connect(adapter, server, 'bob')]));

  const { index } = await adapter.ok({ cmd: 'send', client: 'alice', conversation: 'general', text: 'once' });
  const twice = await timed('mutant: duplicate message_added', () =>
    adapter.until(() => {
      const seen = adapter.all((e) => e.event === 'message_added' && e.client === 'bob' && e.index === index);
      return seen.length >= 2 ? seen : null;
    }, WAIT_MS, `bob message_added #${index} twice`),
  );
  assert.equal(twice.length, 2, 'the duplicate shows up');
  assert.deepEqual({ ...twice[0], at: 0 }, { ...twice[1], at: 0 });

  // stdin EOF (no shutdown command): shut down and exit 0 all the same.
  adapter.child.stdin.end();
  const exit = await withTimeout(adapter.exited, 10_000, 'adapter exit at stdin EOF');
  assert.deepEqual(exit, { code: 0, signal: null });
  adapter.assertClean();
});

test('--sdk VERSION: a release that is not installed exits 2 naming the install command', async () => {
  const child = spawn(process.execPath, [ADAPTER, '--sdk', '0.0.0-not-installed'], { cwd: REPO, stdio: ['pipe', 'pipe', 'pipe'] });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const exit = await withTimeout(new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal }))), WAIT_MS, 'adapter exit');
  children.delete(child);
  assert.deepEqual(exit, { code: 2, signal: null }, stderr);
  assert.equal(stdout, '', 'nothing on the protocol stream');
  assert.match(stderr, /install-sdk\.sh 0\.0\.0-not-installed/);
});

test('--sdk VERSION: not a path, only an exact version', async () => {
  const child = spawn(process.execPath, [ADAPTER, '--sdk', '../..'], { cwd: REPO, stdio: ['pipe', 'pipe', 'pipe'] });
  children.add(child);
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exit = await withTimeout(new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal }))), WAIT_MS, 'adapter exit');
  children.delete(child);
  assert.deepEqual(exit, { code: 2, signal: null }, stderr);
  assert.match(stderr, /not an exact version/);
});
