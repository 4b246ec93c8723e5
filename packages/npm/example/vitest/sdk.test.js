// The official SDK against Rehearsal, driven through rehearsal-mock's typed control calls.
// `rehearsal` is one server for this file; `tenant` is a fresh isolated account per test.
import { expect, test } from 'rehearsal-mock/vitest';

import { connect, nextEvent } from '../support/sdk.js';

/** A tenant one test makes and does not delete (the next test checks that it is gone). */
let leftBehind;

test('a dropped socket: the SDK reconnects and receives what was posted meanwhile', async ({ rehearsal, tenant }) => {
  const { client, states } = await connect(rehearsal, tenant, 'alice');
  const general = await client.getConversationByUniqueName('general');
  const before = (await general.getMessages(1)).items[0].index;

  const gone = nextEvent(client, 'connectionStateChanged', (s) => s !== 'connected');
  const dropped = await tenant.drop('alice');
  expect(dropped.sessions).toHaveLength(1);
  expect(dropped.applied).toEqual(dropped.sessions);
  await gone;

  // Posted while alice is away: it arrives once the SDK has reconnected.
  const arrived = nextEvent(general, 'messageAdded', (m) => m.body === 'while you were away');
  await tenant.post({ as: 'bob', conversation: 'general', body: 'while you were away' });
  await nextEvent(client, 'connectionStateChanged', (s) => s === 'connected');
  const message = await arrived;
  expect(message.author).toBe('bob');
  expect(message.index).toBe(before + 1);
  expect(states).not.toContain('denied');

  const reconnects = await tenant.journal({ kind: 'connection', identity: 'alice' });
  expect(reconnects.entries.length).toBeGreaterThanOrEqual(2);
  await client.shutdown();
});

test('an expired token: tokenExpired, and updateToken brings the client back', async ({ rehearsal, tenant }) => {
  const { client } = await connect(rehearsal, tenant, 'alice');
  const expired = nextEvent(client, 'tokenExpired');
  // The SDK reports `disconnected` a few seconds after the server's 410 close (its close timer).
  const disconnected = nextEvent(client, 'connectionStateChanged', (s) => s === 'disconnected');
  const closed = await tenant.expireToken('alice');
  expect(closed.sessions).toHaveLength(1);
  await expired;
  await disconnected;

  // What an app does on tokenExpired: fetch a new token and update.
  const back = nextEvent(client, 'connectionStateChanged', (s) => s === 'connected');
  await client.updateToken(await tenant.token('alice'));
  await back;
  await client.shutdown();
});

test('a warning, then a 308 close: tokenAboutToExpire, and the SDK comes back by itself', async ({ rehearsal, tenant }) => {
  const { client } = await connect(rehearsal, tenant, 'alice');
  const warned = nextEvent(client, 'tokenAboutToExpire');
  expect((await tenant.warnTokenExpiry('alice')).sessions).toHaveLength(1);
  await warned;

  const [session] = await tenant.connections('alice');
  const { last_seq: last } = await tenant.journal({ limit: 1 });
  const back = nextEvent(client, 'connectionStateChanged', (s) => s === 'connected');
  expect((await tenant.close({ session: session.id }, 308, { backoffMs: 100 })).sessions).toEqual([session.id]);
  await back;
  const reconnect = await tenant.journal.waitFor({ kind: 'connection', identity: 'alice', after: last, contains: 'init ok' });
  expect(reconnect.session).not.toBe(session.id);
  await client.shutdown();
});

test('a frozen clock moved past the warning point: tokenAboutToExpire', async ({ rehearsal, tenant }) => {
  await tenant.clock.freeze();
  const { client } = await connect(rehearsal, tenant, 'alice', { ttl: 600 });
  const warned = nextEvent(client, 'tokenAboutToExpire');
  // Rehearsal warns 180 s before the token's expiry, on the tenant's clock.
  const moved = await tenant.clock.advance(421_000);
  expect(moved.mode).toMatch(/frozen/);
  await warned;
  await client.shutdown();
});

test('an HTTP fault answers the next matching request, and the journal records it', async ({ tenant }) => {
  const { TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, REHEARSAL_URL } = tenant.env;
  const auth = `Basic ${Buffer.from(`${TWILIO_ACCOUNT_SID}:${TWILIO_AUTH_TOKEN}`).toString('base64')}`;
  const list = () => fetch(`${REHEARSAL_URL}/v1/Conversations`, { headers: { authorization: auth } });

  const fault = await tenant.faults.http({
    method: 'GET',
    path: '/v1/Conversations',
    count: 1,
    fault: { kind: 'fail', status: 503, code: 20503 },
  });
  const failed = await list();
  expect(failed.status).toBe(503);
  expect((await failed.json()).code).toBe(20503);
  expect((await list()).status).toBe(200);
  await expect(fault.remove()).rejects.toMatchObject({ status: 404, code: 'no_fault' });

  const faults = await tenant.journal({ kind: 'fault' });
  expect(faults.entries).toHaveLength(1);
  expect(faults.entries[0].account).toBe(TWILIO_ACCOUNT_SID);
});

test("tenants are isolated, and a deleted tenant's credentials stop working", async ({ rehearsal }) => {
  const a = await rehearsal.tenant();
  const b = await rehearsal.tenant();
  expect(a.accountSid).not.toBe(b.accountSid);
  expect(a.accountSid).not.toBe(rehearsal.accountSid);
  const rest = (t, path) =>
    fetch(`${t.env.REHEARSAL_URL}${path}`, {
      headers: { authorization: `Basic ${Buffer.from(`${t.env.TWILIO_ACCOUNT_SID}:${t.env.TWILIO_AUTH_TOKEN}`).toString('base64')}` },
    });
  const generalMessages = async (t) => {
    const { conversations } = await (await rest(t, '/v1/Conversations')).json();
    const general = conversations.find((c) => c.unique_name === 'general');
    const { messages } = await (await rest(t, `/v1/Conversations/${general.sid}/Messages?PageSize=100`)).json();
    return messages.map((m) => m.body);
  };

  const before = await generalMessages(b);
  await a.post({ as: 'alice', conversation: 'general', body: 'only in a' });
  expect(await generalMessages(a)).toEqual([...before, 'only in a']);
  expect(await generalMessages(b)).toEqual(before);

  await a.delete();
  expect((await rest(a, '/v1/Conversations')).status).toBe(401);
  expect((await rest(b, '/v1/Conversations')).status).toBe(200);
  leftBehind = b;
});

test('a tenant the previous test made and left is gone', async () => {
  expect(leftBehind).toBeDefined();
  const res = await fetch(`${leftBehind.env.REHEARSAL_URL}/v1/Conversations`, {
    headers: {
      authorization: `Basic ${Buffer.from(`${leftBehind.env.TWILIO_ACCOUNT_SID}:${leftBehind.env.TWILIO_AUTH_TOKEN}`).toString('base64')}`,
    },
  });
  expect(res.status).toBe(401);
});

test('env is what `rehearsal env` prints, for the default account', async ({ rehearsal }) => {
  expect(rehearsal.env).toMatchObject({
    TWILIO_ACCOUNT_SID: 'AC72656865617273616c00000000000001',
    TWILIO_CONVERSATIONS_SERVICE_SID: 'IS72656865617273616c00000000000001',
    REHEARSAL_URL: rehearsal.url,
    REHEARSAL_TWILSOCK_URL: rehearsal.url.replace('http', 'ws') + '/v3/wsconnect',
    REHEARSAL_TOKEN_URL: `${rehearsal.url}/token`,
    REHEARSAL_CONTROL_URL: `${rehearsal.url}/_rehearsal/v1`,
  });
  expect(rehearsal.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  expect(rehearsal.env.REHEARSAL_CONTROL_TOKEN).toMatch(/^[0-9a-f]{32}$/);
  const unauthorized = await fetch(`${rehearsal.controlUrl}/tenants`);
  expect(unauthorized.status).toBe(401);

  const token = await rehearsal.token('carol', { ttl: 60 });
  const claims = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString());
  expect(claims.sub).toBe(rehearsal.accountSid);
  expect(claims.grants.identity).toBe('carol');
  expect(claims.exp - claims.iat).toBe(60);
  await expect(rehearsal.token('carol', { ttl: 86_401 })).rejects.toMatchObject({ status: 400 });
});
