// The inspector in a real browser: headless Chromium (the Debian package, /usr/bin/chromium)
// driven by playwright-core, against the real `rehearsal serve` binary on port 0 and a live
// official-SDK client (`@twilio/conversations`, from e2e/node_modules). The test opens the
// inspector through the URL the banner prints, watches the client's session appear, drops it
// and sees the SDK reconnect, freezes and advances the clock and sees the token warning reach
// the SDK, taps the session and sees its frames in and out, finds a near-miss after an unimplemented route is called, and
// saves screenshots under target/inspector-screenshots/ (CI artifacts).
//
// Every wait is for an event or a state, bounded by a timeout; nothing sleeps.

import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';

import { WAIT_MS, sdkEnv } from '../node/sdk-helpers.mjs';

import { SHOTS, UI_MS, inspectorUrl, shot, useBrowser } from './browser.mjs';

const browser = useBrowser();
const ACCOUNT = 'AC72656865617273616c00000000000001';

async function newPage() {
  const context = await browser().newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e));
  page.errors = errors;
  return page;
}

test('the landing page says what the server is and links to the inspector, which asks for the token', async (t) => {
  const env = await sdkEnv(t);
  const page = await newPage();
  t.after(() => page.context().close());
  const res = await page.goto(`${env.server.baseUrl}/`);
  assert.equal(res.status(), 200);
  await page.getByText('Twilio Conversations').first().waitFor({ timeout: UI_MS });
  const text = await page.locator('body').innerText();
  assert.match(text, new RegExp(`${env.server.baseUrl}/v1/Conversations`));
  assert.match(text, /AC72656865617273616c00000000000001/, 'the default seed credentials');
  await shot(page, 'landing');

  // Without the token the inspector shows no data and asks for it.
  await page.click('#open-inspector');
  await page.locator('#signin').waitFor({ state: 'visible', timeout: UI_MS });
  assert.equal(await page.locator('#tenant option').count(), 0, 'no tenant listed without the token');

  // The banner's URL signs in (a fragment-only navigation from here), and the token leaves
  // the address bar.
  await page.goto(inspectorUrl(env.server).url);
  await page.locator('#tenant option').first().waitFor({ state: 'attached', timeout: UI_MS });
  await page.locator('#signin').waitFor({ state: 'hidden', timeout: UI_MS });
  assert.doesNotMatch(page.url(), /token=/, 'the token is removed from the address bar');
  assert.deepEqual(page.errors, []);
});

test('sessions appear live; drop reconnects the SDK; the clock moves and the token warning arrives', async (t) => {
  const env = await sdkEnv(t);
  const page = await newPage();
  t.after(() => page.context().close());
  // The list is pushed: the page follows the tenant's connection events.
  const pushed = page.waitForRequest(
    (r) => r.url().includes('/journal/stream') && (new URL(r.url()).searchParams.get('kind') ?? '').split(',').includes('connection'),
    { timeout: UI_MS },
  );
  await page.goto(inspectorUrl(env.server).url);
  await page.locator('#sessions-empty').waitFor({ state: 'visible', timeout: UI_MS });
  await pushed;

  // A live official-SDK client appears without reloading the page.
  const alice = await env.connect('alice');
  const row = page.locator('#sessions-body tr[data-identity="alice"]');
  await row.waitFor({ timeout: UI_MS });
  const firstId = await row.getAttribute('data-session-id');
  assert.match(await row.innerText(), /connected/);

  // "drop": the socket goes away without a close; the SDK reconnects by itself, and its new
  // session replaces the old one on the page.
  const mark = alice.rec.mark();
  await row.locator('button[data-action="drop"]').click();
  await alice.rec.waitFor('connectionStateChanged', (s) => s === 'connecting', { since: mark, what: 'alice reconnecting' });
  await alice.rec.waitFor('connectionStateChanged', (s) => s === 'connected', { since: mark, what: 'alice connected again' });
  await page.waitForFunction(
    (old) => {
      const r = document.querySelector('#sessions-body tr[data-identity="alice"]');
      return r && r.dataset.sessionId !== old;
    },
    firstId,
    { timeout: UI_MS },
  );
  const secondId = await page.locator('#sessions-body tr[data-identity="alice"]').getAttribute('data-session-id');
  assert.notEqual(secondId, firstId);
  assert.equal(await page.locator(`#sessions-body tr[data-session-id="${firstId}"]`).count(), 0, 'the dropped session is gone');

  // A second client shows up beside the first.
  await env.connect('bob');
  await page.locator('#sessions-body tr[data-identity="bob"]').waitFor({ timeout: UI_MS });

  // Freeze the tenant's clock and advance it to 100 s before the token (1 h) expires: the
  // server sends `token_about_to_expire`, which the SDK reports.
  const warned = alice.rec.mark();
  await page.click('button[data-clock="freeze"]');
  await page.locator('#clock-mode', { hasText: 'frozen' }).waitFor({ timeout: UI_MS });
  await page.fill('#advance-by', '3500');
  await page.click('button[data-clock="advance"]');
  await alice.rec.waitFor('tokenAboutToExpire', undefined, { since: warned, ms: WAIT_MS, what: 'tokenAboutToExpire' });
  await page.locator('#sessions-body tr[data-identity="alice"] td.expiry', { hasText: /^in (1[01]\d|\d\d) s$/ }).waitFor({ timeout: UI_MS });
  await shot(page, 'sessions');
  // The README's picture (docs/inspector.png is a copy): the page down to the end of its content.
  const bottom = await page.evaluate(() => Math.ceil(document.querySelector('#tab-sessions').getBoundingClientRect().bottom) + 16);
  await page.screenshot({ path: path.join(SHOTS, 'inspector.png'), clip: { x: 0, y: 0, width: 1400, height: bottom } });

  // The frame view taps the session: from then on each twilsock frame in and out shows,
  // decoded. A second warning goes out, and the SDK's ack of it comes in.
  await page.locator('#sessions-body tr[data-identity="alice"] button', { hasText: 'frames' }).click();
  await page.locator('#frames-state', { hasText: `tapping session ${secondId}` }).waitFor({ timeout: UI_MS });
  const { token } = inspectorUrl(env.server);
  const res = await fetch(`${env.server.baseUrl}/_rehearsal/v1/tenants/${ACCOUNT}/connections/actions`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ target: { session: Number(secondId) }, action: 'warn_token_expiry' }),
  });
  assert.equal(res.status, 200);
  const update = page.locator('#frames .frame[data-direction="out"][data-method="client_update"]');
  await update.waitFor({ timeout: UI_MS });
  const ack = page.locator(`#frames .frame[data-direction="in"][data-method="reply"][data-id="${await update.getAttribute('data-id')}"]`);
  await ack.waitFor({ timeout: UI_MS });
  const [updateSeq, ackSeq] = [Number(await update.getAttribute('data-seq')), Number(await ack.getAttribute('data-seq'))];
  assert.ok(updateSeq < ackSeq, `the warning (${updateSeq}) goes out before the SDK's ack (${ackSeq}) comes in`);
  await update.click();
  const detail = page.locator('#frames .frame-detail');
  await detail.locator('pre', { hasText: '"client_update_type": "token_about_to_expire"' }).waitFor({ timeout: UI_MS });
  await shot(page, 'frames');

  await page.click('button[data-clock="resume"]');
  await page.locator('#clock-mode', { hasText: 'running' }).waitFor({ timeout: UI_MS });
  assert.deepEqual(page.errors, []);
});

test('an unimplemented route shows up among the near-misses; a missing resource does not', async (t) => {
  const env = await sdkEnv(t);
  const page = await newPage();
  t.after(() => page.context().close());
  await page.goto(inspectorUrl(env.server).url);
  await page.click('#tabs button[data-tab="near-misses"]');
  await page.locator('#near-misses-empty').waitFor({ state: 'visible', timeout: UI_MS });

  // Twilio has these; Rehearsal does not.
  await assert.rejects(env.rest('GET', '/v1/Credentials'), /-> 404/);
  await assert.rejects(env.rest('GET', '/v1/Credentials'), /-> 404/);
  await assert.rejects(env.rest('PUT', '/v1/Conversations', { FriendlyName: 'x' }), /-> 405/);
  // A resource that does not exist is an ordinary 404, not a near-miss.
  await assert.rejects(env.rest('GET', '/v1/Conversations/CH00000000000000000000000000000000'), /-> 404/);

  const credentials = page.locator('#near-misses-body tr[data-path="/v1/Credentials"][data-method="GET"]');
  await credentials.waitFor({ timeout: UI_MS });
  await page.locator('#near-misses-body tr[data-path="/v1/Credentials"] td', { hasText: /^2$/ }).waitFor({ timeout: UI_MS });
  await page.locator('#near-misses-body tr[data-path="/v1/Conversations"][data-method="PUT"]').waitFor({ timeout: UI_MS });
  assert.equal(await page.locator('#near-misses-body tr').count(), 2, 'only the two unimplemented routes');
  assert.match(await credentials.innerText(), /404 no such route/);
  await shot(page, 'near-misses');
  assert.deepEqual(page.errors, []);
});

test('the journal follows live with filters; conversations show participants and paged messages', async (t) => {
  const env = await sdkEnv(t);
  const page = await newPage();
  t.after(() => page.context().close());
  await page.goto(inspectorUrl(env.server).url);

  await page.click('#tabs button[data-tab="journal"]');
  await page.fill('#journal-filter input[name="kind"]', 'rest');
  await page.click('#journal-filter button');
  // Recorded after the page started following: arrives through the stream.
  await env.rest('GET', '/v1/Users', { PageSize: '7' });
  const entry = page.locator('#journal-body tr[data-kind="rest"]', { hasText: 'GET /v1/Users -> 200' });
  await entry.waitFor({ timeout: UI_MS });
  assert.equal(await page.locator('#journal-body tr:not(.detail):not([data-kind="rest"])').count(), 0, 'the kind filter holds');
  await entry.click();
  await page.locator('#journal-body tr.detail', { hasText: 'PageSize=7' }).waitFor({ timeout: UI_MS });
  await shot(page, 'journal');

  await page.click('#tabs button[data-tab="conversations"]');
  await page.locator('#conversations li', { hasText: 'General' }).click();
  await page.locator('#participants li', { hasText: 'carol' }).waitFor({ timeout: UI_MS });
  await page.locator('#messages tr').first().waitFor({ timeout: UI_MS });

  // Post as an identity, through the control API's actors; a connected SDK client receives it.
  const bob = await env.connect('bob');
  const general = bob.conversations.find((c) => c.uniqueName === 'general');
  assert.ok(general, 'bob is in general');
  const seen = bob.rec.mark();
  const got = new Promise((resolve) => general.on('messageAdded', (m) => m.body === 'hello from the inspector' && resolve(m)));
  await page.fill('#post-message input[name="as"]', 'alice');
  await page.fill('#post-message input[name="body"]', 'hello from the inspector');
  await page.click('#post-message button');
  const m = await Promise.race([
    got,
    bob.rec.waitFor('never', undefined, { since: seen, ms: WAIT_MS, what: 'messageAdded in general' }),
  ]);
  assert.equal(m.author, 'alice');
  await page.locator('#messages tr', { hasText: 'hello from the inspector' }).waitFor({ timeout: UI_MS });
  await shot(page, 'conversations');
  assert.deepEqual(page.errors, []);
});
