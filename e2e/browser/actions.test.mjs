// The inspector's other views and actions in headless Chromium, each through the control API
// and checked on the server or the SDK: HTTP faults armed and disarmed, media and webhook
// views, tenant credentials, state export as a download, reset, notification hold for an
// identity and for one session, token expiry, closing an identity with a code, refused
// connections, media previews, and the progress and verdict of `rehearsal serve --scenario` on the page.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { startServer, withTimeout } from '../node/helpers.mjs';
import { sdkEnv } from '../node/sdk-helpers.mjs';

import { UI_MS, inspectorUrl, shot, useBrowser } from './browser.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ACCOUNT = 'AC72656865617273616c00000000000001';

const browser = useBrowser();

async function open(t, server) {
  const context = await browser().newContext({ viewport: { width: 1400, height: 900 }, acceptDownloads: true });
  t.after(() => context.close());
  const page = await context.newPage();
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(e));
  const { url, token } = inspectorUrl(server);
  page.token = token;
  await page.goto(url);
  await page.locator('#tenant option').first().waitFor({ state: 'attached', timeout: UI_MS });
  page.control = async (pathname) => {
    const res = await fetch(`${server.baseUrl}/_rehearsal/v1${pathname}`, { headers: { Authorization: `Bearer ${token}` } });
    assert.equal(res.status, 200, pathname);
    return res.json();
  };
  return page;
}

test('HTTP faults are armed and disarmed from the page and meet the REST API', async (t) => {
  const env = await sdkEnv(t);
  const page = await open(t, env.server);
  await page.click('#tabs button[data-tab="faults"]');
  const form = page.locator('#arm-fault');
  await form.locator('input[name="method"]').fill('GET');
  await form.locator('input[name="path"]').fill('/v1/Users');
  await form.locator('input[name="count"]').fill('5');
  await form.locator('button').click();
  const row = page.locator('#faults-body tr', { hasText: 'HTTP GET /v1/Users: fail 503/20503' });
  await row.waitFor({ timeout: UI_MS });
  await assert.rejects(env.rest('GET', '/v1/Users'), /-> 503/);
  await row.locator('button', { hasText: 'disarm' }).click();
  await row.waitFor({ state: 'detached', timeout: UI_MS });
  const users = await env.rest('GET', '/v1/Users');
  assert.ok(Array.isArray(users.users), 'disarmed: the request goes through');
  assert.deepEqual(page.errors, []);
});

test('media, webhooks and tenants views; export downloads the state; reset rebuilds the tenant', async (t) => {
  const env = await sdkEnv(t);
  const page = await open(t, env.server);

  await page.click('#tabs button[data-tab="media"]');
  await page.locator('#media-body tr', { hasText: 'rehearsal.png' }).waitFor({ timeout: UI_MS });
  // The image's bytes, read through the control API with the token, render in the page.
  const preview = page.locator('#media-body tr', { hasText: 'rehearsal.png' }).locator('img.media-preview');
  await page.waitForFunction((img) => img && img.complete && img.naturalWidth > 0, await preview.elementHandle(), { timeout: UI_MS });
  const sid = await preview.getAttribute('data-media');
  const bytes = await fetch(`${env.server.baseUrl}/_rehearsal/v1/tenants/${ACCOUNT}/media/${sid}/content`);
  assert.equal(bytes.status, 401, 'the media bytes need the control token');
  await shot(page, 'media');

  // A conversation-scoped webhook to a port nobody listens on: its deliveries fail, and the
  // journal records each attempt.
  const hookUrl = 'http://127.0.0.1:9/rehearsal-inspector-hook';
  await env.rest('POST', '/v1/Conversations/general/Webhooks', {
    Target: 'webhook',
    'Configuration.Url': hookUrl,
    'Configuration.Method': 'POST',
    'Configuration.Filters': 'onMessageAdded',
  });
  // Posted as an identity from the page (a client's action: REST actions fire webhooks only
  // with X-Twilio-Webhook-Enabled, as on Twilio).
  await page.click('#tabs button[data-tab="conversations"]');
  await page.locator('#conversations li', { hasText: 'General' }).click();
  await page.locator('#conversation-webhooks', { hasText: hookUrl }).waitFor({ timeout: UI_MS });
  await page.fill('#post-message input[name="as"]', 'alice');
  await page.fill('#post-message input[name="body"]', 'to the hook');
  await page.click('#post-message button');
  const stream = await withTimeout(
    fetch(`${env.server.baseUrl}/_rehearsal/v1/tenants/${ACCOUNT}/journal/stream?kind=webhook&after=0&limit=1`, {
      headers: { Authorization: `Bearer ${page.token}` },
    }).then((r) => r.text()),
    UI_MS,
    'a webhook delivery in the journal',
  );
  assert.match(stream, /rehearsal-inspector-hook/);

  await page.click('#tabs button[data-tab="webhooks"]');
  await page.locator('#webhooks-account', { hasText: ACCOUNT }).waitFor({ timeout: UI_MS });
  await page.locator('#webhooks-service', { hasText: 'IS72656865617273616c00000000000001' }).waitFor({ timeout: UI_MS });
  await page.locator('#deliveries tr', { hasText: 'rehearsal-inspector-hook' }).first().waitFor({ timeout: UI_MS });

  await page.click('#tabs button[data-tab="tenant"]');
  await page.locator('#tenants-body tr', { hasText: 'rehearsal-auth-token' }).waitFor({ timeout: UI_MS });

  // A message the reset must take away.
  await env.rest('POST', '/v1/Conversations/general/Messages', { Body: 'gone after the reset', Author: 'bob' });

  const [download] = await Promise.all([page.waitForEvent('download', { timeout: UI_MS }), page.click('#export')]);
  assert.equal(download.suggestedFilename(), `rehearsal-${ACCOUNT}.json`);
  const exported = JSON.parse(await readFile(await download.path(), 'utf8'));
  assert.ok(JSON.stringify(exported).includes('gone after the reset'), 'the export holds the tenant state');

  page.once('dialog', (d) => d.accept());
  await page.click('#reset');
  await page.locator('#status', { hasText: 'reset: done' }).waitFor({ timeout: UI_MS });
  const after = await env.rest('GET', '/v1/Conversations/general/Messages', { PageSize: '100' });
  assert.ok(!after.messages.some((m) => m.body === 'gone after the reset'), 'the reset rebuilt the seed content');
  assert.deepEqual(page.errors, []);
});

test('an identity\'s notifications are held and released from the page', async (t) => {
  const env = await sdkEnv(t);
  const page = await open(t, env.server);
  const alice = await env.connect('alice');
  await page.locator('#sessions-body tr[data-identity="alice"]').waitFor({ timeout: UI_MS });
  const general = alice.conversations.find((c) => c.uniqueName === 'general');
  const bodies = [];
  general.on('messageAdded', (m) => bodies.push(m.body));

  const form = page.locator('#identity-action');
  await form.locator('input[name="identity"]').fill('alice');
  await form.locator('select[name="action"]').selectOption('hold_notifications');
  await form.locator('button').click();
  await page.locator('#status', { hasText: 'hold_notifications: done' }).waitFor({ timeout: UI_MS });
  const held = await page.control(`/tenants/${ACCOUNT}/journal?kind=fault&contains=hold_notifications%20applied`);
  assert.equal(held.entries.length, 1, 'the session applied the hold');

  await env.rest('POST', '/v1/Conversations/general/Messages', { Body: 'held back', Author: 'bob' });
  // The server keeps the push back: the session's queue shows it waiting.
  await page.locator('#sessions-body tr[data-identity="alice"] td', { hasText: /^[1-9]\d* frames/ }).waitFor({ timeout: UI_MS });
  assert.deepEqual(bodies, [], 'nothing arrives while held');

  await form.locator('select[name="action"]').selectOption('release_notifications');
  await form.locator('button').click();
  await alice.rec.waitFor('messageAdded', (m) => m.body === 'held back', { what: 'the held message after the release' });
  assert.deepEqual(bodies, ['held back']);
  assert.deepEqual(page.errors, []);
});

test('a session is warned, closed with a code, stalled and unstalled from its row', async (t) => {
  const env = await sdkEnv(t);
  const page = await open(t, env.server);
  const alice = await env.connect('alice');
  const row = () => page.locator('#sessions-body tr[data-identity="alice"]');
  await row().waitFor({ timeout: UI_MS });

  let mark = alice.rec.mark();
  await row().locator('button[data-action="warn_token_expiry"]').click();
  await alice.rec.waitFor('tokenAboutToExpire', undefined, { since: mark, what: 'tokenAboutToExpire after "warn expiry"' });

  // "close…" asks for the code; 308 (offload) makes the SDK reconnect.
  const first = await row().getAttribute('data-session-id');
  mark = alice.rec.mark();
  page.once('dialog', (d) => d.accept('308'));
  await row().locator('button[data-action="close"]').click();
  await alice.rec.waitFor('connectionStateChanged', (s) => s === 'connecting', { since: mark, what: 'alice reconnecting after close 308' });
  await alice.rec.waitFor('connectionStateChanged', (s) => s === 'connected', { since: mark, what: 'alice back after close 308' });
  await page.waitForFunction(
    (old) => document.querySelector('#sessions-body tr[data-identity="alice"]')?.dataset.sessionId !== old,
    first,
    { timeout: UI_MS },
  );
  const ctl = await page.control(`/tenants/${ACCOUNT}/journal?kind=packet_out&contains=close%20308`);
  assert.equal(ctl.entries.length, 1, 'the server sent close 308');

  // Stall, then unstall: both reach the session (the journal says it applied them).
  for (const action of ['stall', 'unstall']) {
    await row().locator(`button[data-action="${action}"]`).click();
    await page.locator('#status', { hasText: `${action}: done` }).waitFor({ timeout: UI_MS });
    const applied = await page.control(`/tenants/${ACCOUNT}/journal?kind=fault&contains=${action}%20applied`);
    assert.equal(applied.entries.length, 1, `${action} applied`);
  }
  assert.deepEqual(page.errors, []);
});

test('serve --scenario shows the play and its verdict on the page', async (t) => {
  const server = await startServer({ extraArgs: ['--scenario', 'connection.drop-reconnects'] });
  t.after(() => server.stop());
  const page = await open(t, server);
  const banner = page.locator('#scenario-banner');
  await banner.locator('strong', { hasText: 'Scenario connection.drop-reconnects' }).waitFor({ timeout: UI_MS });
  assert.match(await banner.innerText(), /play 1, waiting for the app to connect/);

  // The app: the official SDK as the scenario's identity, in a process of its own. The play
  // drops its socket and judges the reconnect.
  const app = spawn(process.execPath, [path.join(HERE, 'app.mjs'), server.baseUrl, `ws://${server.host}:${server.port}/v3/wsconnect`, 'alice'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const appLog = [];
  app.stdout.on('data', (d) => appLog.push(String(d)));
  app.stderr.on('data', (d) => appLog.push(String(d)));
  const appExited = new Promise((resolve) => app.once('exit', resolve));
  t.after(async () => {
    app.kill('SIGKILL');
    await withTimeout(appExited, UI_MS, 'the app process did not exit');
  });
  await banner
    .locator('.verdict.OK')
    .waitFor({ timeout: 30_000 })
    .catch((e) => {
      throw new Error(`${e.message}\napp output:\n${appLog.join('')}\nserver:\n${server.logs()}`);
    });
  await banner.locator('.verdict.OK').waitFor({ timeout: 30_000 });
  // The board counts the steps of the play under way, and lists each ended play's steps.
  assert.match(await banner.innerText(), /steps done: \d+ of [1-9]\d*/);
  await page.click('#tabs button[data-tab="scenario"]');
  await page.locator('#scenario .outcome .outcome-steps li.ok').first().waitFor({ timeout: UI_MS });
  await page.locator('#scenario .outcome', { hasText: 'one successful re-init, no duplicate sessions' }).waitFor({ timeout: UI_MS });
  await shot(page, 'scenario');
  assert.deepEqual(page.errors, []);
});

test('a session\'s notifications are held and released from its row; "expire token" ends it as the SDK expects', async (t) => {
  const env = await sdkEnv(t);
  const page = await open(t, env.server);
  const alice = await env.connect('alice');
  const row = () => page.locator('#sessions-body tr[data-identity="alice"]');
  await row().waitFor({ timeout: UI_MS });
  const general = alice.conversations.find((c) => c.uniqueName === 'general');
  const bodies = [];
  general.on('messageAdded', (m) => bodies.push(m.body));

  await row().locator('button[data-action="hold_notifications"]').click();
  await page.locator('#status', { hasText: 'hold_notifications: done' }).waitFor({ timeout: UI_MS });
  await env.rest('POST', '/v1/Conversations/general/Messages', { Body: 'held in the row', Author: 'bob' });
  await page.locator('#sessions-body tr[data-identity="alice"] td', { hasText: /^[1-9]\d* frames/ }).waitFor({ timeout: UI_MS });
  assert.deepEqual(bodies, [], 'nothing arrives while held');
  await row().locator('button[data-action="release_notifications"]').click();
  await alice.rec.waitFor('messageAdded', (m) => m.body === 'held in the row', { what: 'the held message after the release' });
  assert.deepEqual(bodies, ['held in the row']);

  // "expire token": close 410 (20104); the SDK reports tokenExpired and disconnects.
  const mark = alice.rec.mark();
  await row().locator('button[data-action="expire_token"]').click();
  await alice.rec.waitFor('tokenExpired', undefined, { since: mark, what: 'tokenExpired after "expire token"' });
  await alice.rec.waitFor('connectionStateChanged', (s) => s === 'disconnected', { since: mark, what: 'disconnected after "expire token"' });
  await row().waitFor({ state: 'detached', timeout: UI_MS });
  const closed = await page.control(`/tenants/${ACCOUNT}/journal?kind=packet_out&contains=close%20410`);
  assert.equal(closed.entries.length, 1, 'the server sent close 410');
  await shot(page, 'expired');
  assert.deepEqual(page.errors, []);
});

test('an identity is closed with a code from the form; refused connections keep a new client out', async (t) => {
  const env = await sdkEnv(t);
  const page = await open(t, env.server);
  const alice = await env.connect('alice');
  await page.locator('#sessions-body tr[data-identity="alice"]').waitFor({ timeout: UI_MS });

  // Close every session of alice with 308: the SDK reconnects.
  const form = page.locator('#identity-action');
  await form.locator('input[name="identity"]').fill('alice');
  await form.locator('select[name="action"]').selectOption('close');
  await form.locator('input[name="code"]').fill('308');
  const mark = alice.rec.mark();
  await form.locator('button').click();
  await alice.rec.waitFor('connectionStateChanged', (s) => s === 'connecting', { since: mark, what: 'alice reconnecting after close 308' });
  await alice.rec.waitFor('connectionStateChanged', (s) => s === 'connected', { since: mark, what: 'alice back after close 308' });
  const closed = await page.control(`/tenants/${ACCOUNT}/journal?kind=packet_out&contains=close%20308&identity=alice`);
  assert.equal(closed.entries.length, 1, 'the server sent close 308 to alice');

  // Refuse connections for an hour of the tenant's clock: a new client's init is refused.
  await page.fill('#refuse input[name="seconds"]', '3600');
  await page.click('#refuse button');
  await page.locator('#status', { hasText: 'refuse connections: done' }).waitFor({ timeout: UI_MS });
  await page.click('#tabs button[data-tab="faults"]');
  await page.locator('#faults-body tr', { hasText: 'connections refused until' }).waitFor({ timeout: UI_MS });
  const bob = await env.connect('bob', { waitInit: false });
  const refused = await withTimeout(
    fetch(`${env.server.baseUrl}/_rehearsal/v1/tenants/${ACCOUNT}/journal/stream?kind=fault&contains=connections%20refused&after=0&limit=1`, {
      headers: { Authorization: `Bearer ${page.token}` },
    }).then((r) => r.text()),
    UI_MS,
    'bob\'s init refused',
  );
  assert.match(refused, /"identity":"bob"/);
  assert.notEqual(bob.client.connectionState, 'connected', 'bob is kept out');
  assert.equal(alice.client.connectionState, 'connected', 'a connected client stays');
  await shot(page, 'refused');
  assert.deepEqual(page.errors, []);
});
