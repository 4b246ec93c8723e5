// The official twilio-node helper library against a fresh Rehearsal server:
// Conversations v1 REST (conversations, participants, messages, paging, errors).

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import twilio from 'twilio';

import {
  DEFAULT_SEED,
  assertNoUnhandledRejections,
  mapLimit,
  restClient,
  startServer,
  uniqueSuffix,
} from './helpers.mjs';

const { RestException } = twilio;

const SID_RE = (prefix) => new RegExp(`^${prefix}[0-9a-f]{32}$`);
const MESSAGE_COUNT = 250;
const PAGE_SIZE = 50;
const UNKNOWN_CONVERSATION_SID = `CH${'0'.repeat(31)}1`;

/** Await `promise`, which must reject with a RestException of that status/code. */
async function assertRestError(promise, status, code) {
  await assert.rejects(promise, (err) => {
    assert.ok(
      err instanceof RestException,
      `expected a twilio RestException, got ${err?.constructor?.name}: ${err?.stack ?? err}`,
    );
    assert.equal(err.status, status, `HTTP status (message: ${err.message})`);
    assert.equal(err.code, code, `Twilio error code (message: ${err.message})`);
    assert.equal(typeof err.message, 'string');
    assert.ok(err.message.length > 0, 'error message is not empty');
    return true;
  });
}

/** Collect every page by following next_page_url by hand. */
async function collectPages(firstPagePromise) {
  const pages = [];
  let page = await firstPagePromise;
  for (;;) {
    pages.push(page);
    assert.ok(pages.length <= MESSAGE_COUNT, 'paging does not terminate');
    if (!page.nextPageUrl) break;
    const next = await page.nextPage();
    assert.ok(next, 'nextPage() returns a page when nextPageUrl is set');
    page = next;
  }
  return pages;
}

describe('twilio-node helper library against Rehearsal', () => {
  let server;
  let client;

  before(async () => {
    server = await startServer();
    client = restClient(server);
  });

  after(async () => {
    if (server) await server.stop();
    assertNoUnhandledRejections();
  });

  it('`rehearsal env --json` reports the default-seed credentials and base URL', () => {
    assert.equal(server.credsSource, 'env', `rehearsal env --json failed: ${server.credsError?.message}`);
    for (const [key, value] of Object.entries(DEFAULT_SEED)) {
      assert.equal(server.creds[key], value, key);
    }
    assert.equal(server.creds.REHEARSAL_URL.replace(/\/+$/, ''), server.baseUrl);
  });

  describe('conversations', () => {
    const suffix = uniqueSuffix();
    const uniqueName = `e2e-node-${suffix}`;
    const attributes = { topic: 'rehearsal', nested: { n: 1, ok: true }, list: ['a', 'b'] };
    let created;

    it('creates a conversation with FriendlyName, UniqueName and Attributes', async () => {
      created = await client.conversations.v1.conversations.create({
        friendlyName: 'E2E node conversation',
        uniqueName,
        attributes: JSON.stringify(attributes),
      });
      assert.match(created.sid, SID_RE('CH'));
      assert.equal(created.accountSid, server.creds.TWILIO_ACCOUNT_SID);
      assert.equal(created.chatServiceSid, server.creds.TWILIO_CONVERSATIONS_SERVICE_SID);
      assert.equal(created.friendlyName, 'E2E node conversation');
      assert.equal(created.uniqueName, uniqueName);
      assert.equal(typeof created.attributes, 'string', 'attributes is returned as a JSON string');
      assert.deepEqual(JSON.parse(created.attributes), attributes);
      assert.equal(created.state, 'active');
      assert.ok(created.dateCreated instanceof Date && !Number.isNaN(created.dateCreated.getTime()));
      assert.ok(created.dateUpdated instanceof Date && !Number.isNaN(created.dateUpdated.getTime()));
      assert.ok(created.url.endsWith(`/v1/Conversations/${created.sid}`), `url: ${created.url}`);
      assert.ok(created.links?.participants?.endsWith(`/v1/Conversations/${created.sid}/Participants`));
      assert.ok(created.links?.messages?.endsWith(`/v1/Conversations/${created.sid}/Messages`));
    });

    it('fetches it by SID', async () => {
      const fetched = await client.conversations.v1.conversations(created.sid).fetch();
      assert.equal(fetched.sid, created.sid);
      assert.equal(fetched.friendlyName, 'E2E node conversation');
      assert.equal(fetched.uniqueName, uniqueName);
      assert.deepEqual(JSON.parse(fetched.attributes), attributes);
      assert.equal(fetched.dateCreated.getTime(), created.dateCreated.getTime());
    });

    it('fetches it by unique name', async () => {
      const fetched = await client.conversations.v1.conversations(uniqueName).fetch();
      assert.equal(fetched.sid, created.sid);
      assert.equal(fetched.uniqueName, uniqueName);
    });

    it('updates it', async () => {
      const newAttributes = { topic: 'updated', count: 2 };
      const updated = await client.conversations.v1.conversations(created.sid).update({
        friendlyName: 'E2E node conversation (renamed)',
        attributes: JSON.stringify(newAttributes),
      });
      assert.equal(updated.sid, created.sid);
      assert.equal(updated.friendlyName, 'E2E node conversation (renamed)');
      assert.equal(updated.uniqueName, uniqueName, 'unique name unchanged');
      assert.deepEqual(JSON.parse(updated.attributes), newAttributes);
      assert.ok(updated.dateUpdated.getTime() >= created.dateUpdated.getTime());

      const fetched = await client.conversations.v1.conversations(created.sid).fetch();
      assert.equal(fetched.friendlyName, 'E2E node conversation (renamed)');
      assert.deepEqual(JSON.parse(fetched.attributes), newAttributes);
    });

    it('lists it among the account conversations (paging through all)', async () => {
      const all = await client.conversations.v1.conversations.list({ pageSize: 20 });
      const sids = all.map((c) => c.sid);
      assert.equal(new Set(sids).size, sids.length, 'no conversation listed twice');
      assert.ok(sids.includes(created.sid), 'created conversation is listed');
    });

    it('deletes it; fetching it afterwards is a 404 / 20404', async () => {
      const removed = await client.conversations.v1.conversations(created.sid).remove();
      assert.equal(removed, true);
      await assertRestError(client.conversations.v1.conversations(created.sid).fetch(), 404, 20404);
      await assertRestError(client.conversations.v1.conversations(uniqueName).fetch(), 404, 20404);
    });
  });

  describe('participants', () => {
    const suffix = uniqueSuffix();
    const identity = `alice-${suffix}`;
    const smsAddress = '+15558675310';
    const proxyAddress = '+15017122661';
    let conversation;
    let chat;
    let sms;

    before(async () => {
      conversation = await client.conversations.v1.conversations.create({
        friendlyName: 'E2E node participants',
      });
    });

    it('adds a chat participant (Identity)', async () => {
      chat = await client.conversations.v1.conversations(conversation.sid).participants.create({ identity });
      assert.match(chat.sid, SID_RE('MB'));
      assert.equal(chat.conversationSid, conversation.sid);
      assert.equal(chat.accountSid, server.creds.TWILIO_ACCOUNT_SID);
      assert.equal(chat.identity, identity);
      assert.equal(chat.messagingBinding, null);
      assert.ok(chat.url.endsWith(`/v1/Conversations/${conversation.sid}/Participants/${chat.sid}`), chat.url);
    });

    it('adds an SMS participant (MessagingBinding.Address / ProxyAddress)', async () => {
      sms = await client.conversations.v1.conversations(conversation.sid).participants.create({
        'messagingBinding.address': smsAddress,
        'messagingBinding.proxyAddress': proxyAddress,
      });
      assert.match(sms.sid, SID_RE('MB'));
      assert.equal(sms.conversationSid, conversation.sid);
      assert.equal(sms.identity, null);
      assert.ok(sms.messagingBinding, 'messaging_binding is set');
      assert.equal(sms.messagingBinding.type, 'sms');
      assert.equal(sms.messagingBinding.address, smsAddress);
      assert.equal(sms.messagingBinding.proxy_address, proxyAddress);
    });

    it('lists both participants and fetches one', async () => {
      const listed = await client.conversations.v1.conversations(conversation.sid).participants.list();
      assert.deepEqual(listed.map((p) => p.sid).sort(), [chat.sid, sms.sid].sort());
      const byIdentity = listed.find((p) => p.sid === chat.sid);
      assert.equal(byIdentity.identity, identity);
      const bySms = listed.find((p) => p.sid === sms.sid);
      assert.equal(bySms.messagingBinding?.address, smsAddress);

      const fetched = await client.conversations.v1.conversations(conversation.sid).participants(chat.sid).fetch();
      assert.equal(fetched.sid, chat.sid);
      assert.equal(fetched.identity, identity);
    });
  });

  describe(`${MESSAGE_COUNT} messages and paging`, () => {
    let conversation;
    // created[i] is the message posted with Body `message ${i}`.
    let created;

    before(async () => {
      conversation = await client.conversations.v1.conversations.create({ friendlyName: 'E2E node paging' });
      const messages = client.conversations.v1.conversations(conversation.sid).messages;
      created = await mapLimit(
        Array.from({ length: MESSAGE_COUNT }, (_, i) => i),
        10,
        (i) => messages.create({ author: i % 2 === 0 ? 'alice' : 'bob', body: `message ${i}` }),
      );
    });

    it('every create returned a distinct SID and the indexes 0..249 exactly once', () => {
      for (const [i, m] of created.entries()) {
        assert.match(m.sid, SID_RE('IM'));
        assert.equal(m.conversationSid, conversation.sid);
        assert.equal(m.body, `message ${i}`);
        assert.equal(m.author, i % 2 === 0 ? 'alice' : 'bob');
        assert.equal(typeof m.index, 'number');
      }
      assert.equal(new Set(created.map((m) => m.sid)).size, MESSAGE_COUNT);
      const indexes = created.map((m) => m.index).sort((a, b) => a - b);
      assert.deepEqual(indexes, Array.from({ length: MESSAGE_COUNT }, (_, i) => i));
    });

    /** The messages as listed must be exactly `created`, in index order. */
    function assertAscending(listed) {
      assert.equal(listed.length, MESSAGE_COUNT);
      assert.deepEqual(
        listed.map((m) => m.index),
        Array.from({ length: MESSAGE_COUNT }, (_, i) => i),
      );
      const bySid = new Map(created.map((m) => [m.sid, m]));
      for (const m of listed) {
        const original = bySid.get(m.sid);
        assert.ok(original, `listed message ${m.sid} was created by this test`);
        assert.equal(m.index, original.index, `index of ${m.sid}`);
        assert.equal(m.body, original.body, `body of ${m.sid}`);
        assert.equal(m.author, original.author, `author of ${m.sid}`);
      }
      assert.equal(new Set(listed.map((m) => m.sid)).size, MESSAGE_COUNT, 'each message listed once');
    }

    it('messages.list({ pageSize: 50 }) returns every message once, in index order', async () => {
      const listed = await client.conversations.v1.conversations(conversation.sid).messages.list({
        pageSize: PAGE_SIZE,
      });
      assertAscending(listed);
    });

    it('page() / nextPage() following next_page_url returns every message once, in index order', async () => {
      const messages = client.conversations.v1.conversations(conversation.sid).messages;
      const pages = await collectPages(messages.page({ pageSize: PAGE_SIZE }));

      const nonEmpty = pages.filter((p) => p.instances.length > 0);
      assert.equal(nonEmpty.length, MESSAGE_COUNT / PAGE_SIZE, 'number of non-empty pages');
      for (const p of nonEmpty) assert.equal(p.instances.length, PAGE_SIZE, 'page size');
      // Tolerate (only) one trailing empty page after the last full one.
      assert.ok(pages.length <= nonEmpty.length + 1, `${pages.length} pages for ${nonEmpty.length} non-empty`);
      const firstEmpty = pages.findIndex((p) => p.instances.length === 0);
      assert.ok(firstEmpty === -1 || firstEmpty === pages.length - 1, 'an empty page only at the end');

      for (const p of pages.slice(0, -1)) {
        assert.ok(
          p.nextPageUrl.startsWith(`${server.baseUrl}/v1/Conversations/${conversation.sid}/Messages?`),
          `next_page_url is an absolute URL on this server: ${p.nextPageUrl}`,
        );
        assert.match(p.nextPageUrl, /[?&]PageSize=50(&|$)/, `next_page_url keeps PageSize: ${p.nextPageUrl}`);
      }
      assert.equal(pages.at(-1).nextPageUrl, undefined, 'last page has no next_page_url');
      assert.equal(pages[0].previousPageUrl, undefined, 'first page has no previous_page_url');
      if (pages.length > 1) {
        assert.ok(pages[1].previousPageUrl?.startsWith(server.baseUrl), 'second page has a previous_page_url');
      }

      assertAscending(pages.flatMap((p) => p.instances));
    });

    it("order: 'desc' lists the same messages in reverse index order", async () => {
      const messages = client.conversations.v1.conversations(conversation.sid).messages;
      const listed = await messages.list({ order: 'desc', pageSize: PAGE_SIZE });
      assert.equal(listed.length, MESSAGE_COUNT);
      assert.deepEqual(
        listed.map((m) => m.index),
        Array.from({ length: MESSAGE_COUNT }, (_, i) => MESSAGE_COUNT - 1 - i),
      );

      const pages = await collectPages(messages.page({ order: 'desc', pageSize: PAGE_SIZE }));
      const manual = pages.flatMap((p) => p.instances);
      assert.deepEqual(
        manual.map((m) => m.sid),
        listed.map((m) => m.sid),
        'manual desc paging matches list()',
      );
    });

    it('fetches a single message by SID', async () => {
      const target = created[123];
      const fetched = await client.conversations.v1.conversations(conversation.sid).messages(target.sid).fetch();
      assert.equal(fetched.sid, target.sid);
      assert.equal(fetched.index, target.index);
      assert.equal(fetched.body, 'message 123');
    });
  });

  describe('errors', () => {
    it('fetching an unknown conversation SID throws RestException 404 / 20404', async () => {
      await assertRestError(client.conversations.v1.conversations(UNKNOWN_CONVERSATION_SID).fetch(), 404, 20404);
    });

    it('wrong credentials throw RestException 401 / 20003', async () => {
      const bad = restClient(server, {
        username: server.creds.TWILIO_ACCOUNT_SID,
        password: 'not-the-auth-token',
      });
      await assertRestError(bad.conversations.v1.conversations(UNKNOWN_CONVERSATION_SID).fetch(), 401, 20003);
      await assertRestError(bad.conversations.v1.conversations.create({ friendlyName: 'nope' }), 401, 20003);
      // Listing goes through Page, which raises RestException itself.
      await assertRestError(bad.conversations.v1.conversations.list({ limit: 1 }), 401, 20003);
    });
  });

  describe('API key authentication', () => {
    it('authenticates with API key SID + secret (accountSid option)', async () => {
      const keyClient = restClient(server, {
        username: server.creds.TWILIO_API_KEY,
        password: server.creds.TWILIO_API_SECRET,
        accountSid: server.creds.TWILIO_ACCOUNT_SID,
      });
      const conversation = await keyClient.conversations.v1.conversations.create({
        friendlyName: 'E2E node API key',
      });
      assert.match(conversation.sid, SID_RE('CH'));
      assert.equal(conversation.accountSid, server.creds.TWILIO_ACCOUNT_SID);
      const fetched = await keyClient.conversations.v1.conversations(conversation.sid).fetch();
      assert.equal(fetched.sid, conversation.sid);

      const wrongSecret = restClient(server, {
        username: server.creds.TWILIO_API_KEY,
        password: 'not-the-api-secret',
        accountSid: server.creds.TWILIO_ACCOUNT_SID,
      });
      await assertRestError(wrongSecret.conversations.v1.conversations(conversation.sid).fetch(), 401, 20003);
    });
  });
});
