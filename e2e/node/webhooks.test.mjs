// Webhooks from a real `rehearsal serve` to a local backend (a node:http server in this
// process), checked with the twilio helper library's own `validateRequest`: the signature a
// customer's backend verifies must verify. Configuration goes through the helper library,
// SDK actions through the official `@twilio/conversations` SDK.
//
// Run this file:  cd e2e && REHEARSAL_BIN=../target/debug/rehearsal node --test --test-concurrency=1 node/webhooks.test.mjs

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, test } from 'node:test';

import twilio from 'twilio';

import { assertNoUnhandledRejections, restClient, startServer, withTimeout } from './helpers.mjs';
import { CONVERSATION_EVENTS, Recorder, byUniqueName, exitDespiteSdkTimers, sdkEnv } from './sdk-helpers.mjs';

const { RestException } = twilio;
const WAIT_MS = 10_000;

after(() => {
  exitDespiteSdkTimers();
  assertNoUnhandledRejections();
});

/**
 * A customer's backend on 127.0.0.1: records every request (method, the full URL it was
 * called on, headers, form fields) and answers with `respond(request)` → { status, json? }.
 */
async function startBackend(t, respond = () => ({ status: 200 })) {
  const requests = [];
  const waiters = new Set();
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => {
      body += chunk;
    });
    req.on('end', () => {
      const url = `http://127.0.0.1:${server.address().port}${req.url}`;
      const params = req.method === 'POST' ? Object.fromEntries(new URLSearchParams(body)) : {};
      const fields = req.method === 'POST' ? params : Object.fromEntries(new URL(url).searchParams);
      const recorded = { method: req.method, url, path: new URL(url).pathname, headers: req.headers, params, fields };
      requests.push(recorded);
      for (const w of [...waiters]) w();
      const { status, json } = respond(recorded);
      res.writeHead(status, json ? { 'Content-Type': 'application/json' } : {});
      res.end(json ? JSON.stringify(json) : '');
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise((resolve) => server.close(resolve)));
  const base = `http://127.0.0.1:${server.address().port}`;

  /** Resolves once `n` requests have arrived. */
  function received(n) {
    if (requests.length >= n) return Promise.resolve(requests.slice());
    return withTimeout(
      new Promise((resolve) => {
        const w = () => {
          if (requests.length >= n) {
            waiters.delete(w);
            resolve(requests.slice());
          }
        };
        waiters.add(w);
      }),
      WAIT_MS,
      () => `expected ${n} webhook requests, got ${requests.length}: ${requests.map((r) => r.fields.EventType)}`,
    );
  }
  return { base, requests, received };
}

/** What a customer's backend does with every request: twilio.validateRequest. */
function assertSigned(req, authToken) {
  const signature = req.headers['x-twilio-signature'];
  assert.ok(signature, `${req.fields.EventType} carries X-Twilio-Signature`);
  assert.equal(
    twilio.validateRequest(authToken, signature, req.url, req.params),
    true,
    `validateRequest accepts ${req.method} ${req.url}`,
  );
  assert.equal(twilio.validateRequest('not-the-auth-token', signature, req.url, req.params), false, 'a wrong token fails');
}

test('helper library: webhook configuration, X-Twilio-Webhook-Enabled, signed pre and post hooks', async (t) => {
  const server = await startServer({ extraArgs: ['--control-token', 'e2e-control-token'] });
  t.after(() => server.stop());
  const backend = await startBackend(t);
  const client = restClient(server);
  const token = server.creds.TWILIO_AUTH_TOKEN;

  const config = await client.conversations.v1.configuration.webhooks().update({
    preWebhookUrl: `${backend.base}/pre`,
    postWebhookUrl: `${backend.base}/post`,
    method: 'POST',
    filters: ['onMessageAdd', 'onMessageAdded', 'onConversationAdded'],
  });
  assert.equal(config.preWebhookUrl, `${backend.base}/pre`);
  assert.deepEqual(config.filters, ['onMessageAdd', 'onMessageAdded', 'onConversationAdded']);
  assert.deepEqual((await client.conversations.v1.configuration.webhooks().fetch()).filters, config.filters);

  const conv = await client.conversations.v1.conversations.create({ uniqueName: 'hooks-quiet' });
  await client.conversations.v1.conversations(conv.sid).messages.create({ body: 'no header, no hooks' });
  await client.conversations.v1
    .conversations(conv.sid)
    .messages.create({ body: 'hooked', author: 'ops', xTwilioWebhookEnabled: 'true' });
  const got = await backend.received(2);
  assert.deepEqual(
    got.map((r) => [r.path, r.fields.EventType, r.fields.Body]),
    [
      ['/pre', 'onMessageAdd', 'hooked'],
      ['/post', 'onMessageAdded', 'hooked'],
    ],
    'only the call with the header fired (deliveries of a conversation are in order)',
  );
  for (const r of got) {
    assertSigned(r, token);
    assert.equal(r.fields.Source, 'API');
    assert.equal(r.fields.AccountSid, server.creds.TWILIO_ACCOUNT_SID);
    assert.equal(r.fields.ConversationSid, conv.sid);
    assert.equal(r.fields.Author, 'ops');
    assert.match(r.headers['content-type'], /^application\/x-www-form-urlencoded/);
  }
  assert.match(got[1].fields.MessageSid, /^IM[0-9a-f]{32}$/);

  // Conversation-scoped webhooks: created, listed, fetched, updated and removed; they fire too.
  const scoped = await client.conversations.v1.conversations(conv.sid).webhooks.create({
    target: 'webhook',
    'configuration.url': `${backend.base}/scoped`,
    'configuration.method': 'GET',
    'configuration.filters': ['onMessageAdded'],
  });
  assert.match(scoped.sid, /^WH[0-9a-f]{32}$/);
  assert.deepEqual(
    (await client.conversations.v1.conversations(conv.sid).webhooks.list()).map((w) => w.sid),
    [scoped.sid],
  );
  await client.conversations.v1
    .conversations(conv.sid)
    .messages.create({ body: 'scoped too', xTwilioWebhookEnabled: 'true' });
  const more = await backend.received(5);
  const get = more.find((r) => r.path === '/scoped');
  assert.ok(get, `a GET to the scoped webhook: ${more.map((r) => r.path)}`);
  assert.equal(get.method, 'GET');
  assert.equal(get.fields.WebhookSid, scoped.sid);
  assert.equal(get.fields.Body, 'scoped too');
  assertSigned(get, token); // GET: the fields are in the signed URL
  const fetched = await client.conversations.v1.conversations(conv.sid).webhooks(scoped.sid).fetch();
  assert.equal(fetched.target, 'webhook');
  await client.conversations.v1.conversations(conv.sid).webhooks(scoped.sid).update({ 'configuration.filters': ['onMessageUpdated'] });
  assert.equal(await client.conversations.v1.conversations(conv.sid).webhooks(scoped.sid).remove(), true);

  // Every delivery is in the control plane's journal: request, response, timing, outcome.
  const res = await fetch(`${server.baseUrl}/_rehearsal/v1/journal?kind=webhook`, {
    headers: { Authorization: 'Bearer e2e-control-token' },
  });
  assert.equal(res.status, 200);
  const { entries } = await res.json();
  const pre = entries.find((e) => e.detail.event === 'onMessageAdd');
  assert.ok(pre, `an onMessageAdd entry: ${entries.map((e) => e.summary).join('; ')}`);
  assert.equal(pre.kind, 'webhook');
  assert.equal(pre.detail.outcome, 'proceeded');
  assert.equal(pre.detail.response.status, 200);
  assert.equal(pre.detail.request.params.Body, 'hooked');
  assert.equal(typeof pre.detail.duration_ms, 'number');
});

test('helper library: a pre-action hook that rejects fails the call with 403/20403 and stores nothing', async (t) => {
  const server = await startServer();
  t.after(() => server.stop());
  const backend = await startBackend(t, (r) => (r.fields.EventType === 'onConversationAdd' ? { status: 403 } : { status: 200 }));
  const client = restClient(server);
  await client.conversations.v1.configuration.webhooks().update({
    preWebhookUrl: `${backend.base}/pre`,
    filters: ['onConversationAdd'],
  });
  await assert.rejects(
    client.conversations.v1.conversations.create({ uniqueName: 'vetoed', xTwilioWebhookEnabled: 'true' }),
    (err) => {
      assert.ok(err instanceof RestException, `a RestException, got ${err}`);
      assert.equal(err.status, 403);
      assert.equal(err.code, 20403);
      return true;
    },
  );
  const [req] = await backend.received(1);
  assertSigned(req, server.creds.TWILIO_AUTH_TOKEN);
  assert.equal(req.fields.UniqueName, 'vetoed');
  await assert.rejects(client.conversations.v1.conversations('vetoed').fetch(), (err) => err.status === 404);
});

test('SDK: a rejected message fails sendMessage; a modified message reaches everyone modified', async (t) => {
  const env = await sdkEnv(t);
  const token = env.server.creds.TWILIO_AUTH_TOKEN;
  const backend = await startBackend(t, (r) => {
    if (r.fields.EventType !== 'onMessageAdd') return { status: 200 };
    if (r.fields.Body.includes('spam')) return { status: 403 };
    if (r.fields.Body.includes('darn')) return { status: 200, json: { body: r.fields.Body.replace('darn', 'd**n') } };
    return { status: 200 };
  });
  await env.rest('POST', '/v1/Configuration/Webhooks', [
    ['PreWebhookUrl', `${backend.base}/pre`],
    ['PostWebhookUrl', `${backend.base}/post`],
    ['Filters', 'onMessageAdd'],
    ['Filters', 'onMessageAdded'],
  ]);
  const alice = await env.connect('alice');
  const bob = await env.connect('bob');
  const aliceGeneral = byUniqueName(alice, 'general');
  const bobGeneral = byUniqueName(bob, 'general');
  const bobConv = new Recorder('bob/general').watch(bobGeneral, CONVERSATION_EVENTS);
  t.after(() => bobConv.detach());

  await assert.rejects(aliceGeneral.sendMessage('buy spam now'), (err) => {
    // The SDK's TwilsockUpstreamError carries the client API's answer.
    assert.equal(err.status, 403, `${err}`);
    assert.equal(err.body?.code, 20403, `${JSON.stringify(err.body)}`);
    return true;
  });
  const index = await aliceGeneral.sendMessage('darn it');
  const seen = await bobConv.waitFor('messageAdded', (m) => m.index === index, { what: 'bob messageAdded' });
  assert.equal(seen.body, 'd**n it', 'bob sees the body as the backend rewrote it');
  assert.equal(bobConv.all('messageAdded').length, 1, 'the rejected message never reached bob');

  const got = await backend.received(3);
  assert.deepEqual(
    got.map((r) => [r.fields.EventType, r.fields.Body]),
    [
      ['onMessageAdd', 'buy spam now'],
      ['onMessageAdd', 'darn it'],
      ['onMessageAdded', 'd**n it'],
    ],
  );
  for (const r of got) {
    assertSigned(r, token);
    assert.equal(r.fields.Source, 'SDK');
    assert.equal(r.fields.ClientIdentity, 'alice');
    assert.equal(r.fields.ConversationSid, aliceGeneral.sid);
  }

});
