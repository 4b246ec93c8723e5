// The official, unmodified `@twilio/conversations` 3.0.1 SDK (pinned in
// e2e/package-lock.json) against a real `rehearsal serve`.
//
// Every test starts its own server (default seed unless it writes its own),
// so tests are independent of each other and of their order. Every wait is
// for an event with an explicit timeout; the only time-based waits are the
// token lifetimes themselves, which are real (there is no clock control yet).
// Clients reach the server through a transparent TCP proxy that decodes the
// twilsock packets: a failed wait prints the last ones.
//
// Run this file:  cd e2e && REHEARSAL_BIN=../target/debug/rehearsal node --test --test-concurrency=1 node/sdk.test.mjs
// SDK logs:       SDK_LOG_LEVEL=debug ...   (the SDK's own log, twilsock frames included)
// Packet trail:   SDK_TRAIL=1 ...           (every test prints its decoded twilsock packets)

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, test } from 'node:test';

import { assertNoUnhandledRejections } from './helpers.mjs';
import {
  CONVERSATION_EVENTS,
  Recorder,
  SDK_CLOSE_TIMER_MS,
  TOKEN_WARNING_LEAD_SECS,
  byUniqueName,
  defaultSeed,
  exitDespiteSdkTimers,
  jwtPayload,
  mintAccessToken,
  sdkEnv,
} from './sdk-helpers.mjs';

// The SDK is known to reject promises nobody awaits when the backend fails it
// (wire-protocol §9); helpers.mjs records every unhandled rejection and fails
// the run. Check it once every test (and its client shutdowns) has finished.
// Then stop waiting for timers the SDK leaves behind after shutdown().
after(() => {
  exitDespiteSdkTimers();
  assertNoUnhandledRejections();
});

const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const nowSecs = () => Math.floor(Date.now() / 1000);

/** Record a conversation's own events (messageAdded, typingStarted, …) as seen by `handle`'s client. */
function watchConversation(handle, conversation) {
  const rec = new Recorder(`${handle.identity}/${conversation.uniqueName}`).watch(conversation, CONVERSATION_EVENTS);
  rec.diagnostics = handle.rec.diagnostics;
  return rec;
}

// ---------------------------------------------------------------------------

test('connect: connectionStateChanged "connected", then "initialized"; subscribed conversations', async (t) => {
  const env = await sdkEnv(t);
  const alice = await env.connect('alice');
  const { rec, client } = alice;

  const states = rec.all('connectionStateChanged').map((e) => e.arg);
  assert.deepEqual(states, ['connecting', 'connected'], 'connection states in order');
  const connected = rec.all('connectionStateChanged', (s) => s === 'connected')[0];
  const initialized = rec.all('initialized')[0];
  assert.ok(connected.seq < initialized.seq, 'connected before initialized');
  assert.equal(rec.all('initFailed').length, 0);
  assert.equal(rec.all('connectionError').length, 0);
  assert.equal(client.connectionState, 'connected');

  assert.equal(client.user.identity, 'alice');
  assert.equal(client.user.friendlyName, 'Alice');

  // getSubscribedConversations (awaited by env.connect, every page).
  const names = alice.conversations.map((c) => c.uniqueName).sort();
  assert.deepEqual(names, ['general', 'history']);
  const general = byUniqueName(alice, 'general');
  assert.match(general.sid, /^CH[0-9a-f]{32}$/);
  assert.equal(general.friendlyName, 'General');
  assert.deepEqual(general.attributes, { topic: 'everything' });
  assert.equal(general.status, 'joined');
  assert.equal(await general.getMessagesCount(), 4);
  assert.equal(await general.getParticipantsCount(), 3);
  const participants = (await general.getParticipants()).map((p) => p.identity).sort();
  assert.deepEqual(participants, ['alice', 'bob', 'carol']);

  const page = await general.getMessages();
  assert.deepEqual(
    page.items.map((m) => [m.index, m.author, m.body]),
    [
      [0, 'alice', 'Welcome to Rehearsal!'],
      [1, 'bob', 'Hi Alice 👋'],
      [2, 'carol', 'Here is the logo.'],
      [3, 'alice', 'Looks great.'],
    ],
  );
  assert.deepEqual(page.items[1].attributes, { importance: 'low' });
  assert.equal(page.hasPrevPage, false);
  assert.equal(page.hasNextPage, false);

  // Carol only takes part in "general"; every conversation arrived as conversationJoined.
  const carol = await env.connect('carol');
  assert.deepEqual(
    carol.conversations.map((c) => c.uniqueName),
    ['general'],
  );
  await carol.rec.waitFor('conversationJoined', (c) => c.uniqueName === 'general');
});

test('getMessages pages a 500-message history forwards and backwards from an anchor', async (t) => {
  const COUNT = 500;
  const seed = defaultSeed();
  seed.accounts[0].conversations.push({
    unique_name: 'long',
    friendly_name: 'Five hundred',
    participants: ['alice', 'bob'],
    generate_messages: COUNT,
  });
  const env = await sdkEnv(t, { seed });
  const alice = await env.connect('alice');
  const conv = byUniqueName(alice, 'long');
  assert.equal(await conv.getMessagesCount(), COUNT);

  // Generated message n (1-based) has index n-1 and is authored by the participants in turn.
  const expectPage = (page, from, to, { hasPrevPage, hasNextPage }, label) => {
    assert.deepEqual(
      page.items.map((m) => m.index),
      range(from, to),
      `${label}: indices ${from}..${to}`,
    );
    for (const m of page.items) {
      assert.equal(m.body, `message ${m.index + 1}`, `${label}: body of ${m.index}`);
      assert.equal(m.author, m.index % 2 === 0 ? 'alice' : 'bob', `${label}: author of ${m.index}`);
    }
    if (hasPrevPage !== undefined) assert.equal(page.hasPrevPage, hasPrevPage, `${label}: hasPrevPage`);
    if (hasNextPage !== undefined) assert.equal(page.hasNextPage, hasNextPage, `${label}: hasNextPage`);
  };

  // Default: the newest page.
  let page = await conv.getMessages();
  expectPage(page, 470, 499, { hasPrevPage: true, hasNextPage: false }, 'newest');

  // Forwards from anchor 100, three pages, then one back.
  page = await conv.getMessages(30, 100, 'forward');
  expectPage(page, 100, 129, { hasPrevPage: true, hasNextPage: true }, 'forward p1');
  page = await page.nextPage();
  expectPage(page, 130, 159, { hasPrevPage: true, hasNextPage: true }, 'forward p2');
  page = await page.nextPage();
  expectPage(page, 160, 189, { hasPrevPage: true, hasNextPage: true }, 'forward p3');
  page = await page.prevPage();
  expectPage(page, 130, 159, { hasPrevPage: true, hasNextPage: true }, 'forward p3 -> prev');

  // Forwards to the end of the history.
  page = await conv.getMessages(25, 450, 'forward');
  expectPage(page, 450, 474, { hasPrevPage: true, hasNextPage: true }, 'forward to end p1');
  page = await page.nextPage();
  expectPage(page, 475, 499, { hasNextPage: false }, 'forward to end p2');

  // Backwards from anchor 400, three pages, then one forward.
  page = await conv.getMessages(30, 400, 'backwards');
  expectPage(page, 371, 400, { hasPrevPage: true, hasNextPage: true }, 'backwards p1');
  page = await page.prevPage();
  expectPage(page, 341, 370, { hasPrevPage: true, hasNextPage: true }, 'backwards p2');
  page = await page.prevPage();
  expectPage(page, 311, 340, { hasPrevPage: true, hasNextPage: true }, 'backwards p3');
  page = await page.nextPage();
  expectPage(page, 341, 370, { hasPrevPage: true, hasNextPage: true }, 'backwards p3 -> next');

  // Backwards to the beginning of the history.
  page = await conv.getMessages(25, 60, 'backwards');
  expectPage(page, 36, 60, { hasPrevPage: true }, 'backwards to start p1');
  page = await page.prevPage();
  expectPage(page, 11, 35, { hasPrevPage: true }, 'backwards to start p2');
  page = await page.prevPage();
  expectPage(page, 0, 10, { hasPrevPage: false }, 'backwards to start p3');

  // Anchors at both ends.
  page = await conv.getMessages(10, 0, 'forward');
  expectPage(page, 0, 9, { hasPrevPage: false, hasNextPage: true }, 'anchor 0 forward');
  page = await conv.getMessages(10, 0, 'backwards');
  expectPage(page, 0, 0, { hasPrevPage: false, hasNextPage: true }, 'anchor 0 backwards');
  page = await conv.getMessages(10, COUNT - 1, 'forward');
  expectPage(page, COUNT - 1, COUNT - 1, { hasPrevPage: true, hasNextPage: false }, 'last anchor forward');
});

test('sendMessage: a second client gets messageAdded with the same index', async (t) => {
  const env = await sdkEnv(t);
  const alice = await env.connect('alice');
  const bob = await env.connect('bob');
  const aliceGeneral = byUniqueName(alice, 'general');
  const bobGeneral = byUniqueName(bob, 'general');
  const aliceConv = watchConversation(alice, aliceGeneral);
  const bobConv = watchConversation(bob, bobGeneral);

  const index = await aliceGeneral.sendMessage('hello from alice', { via: 'sdk', n: 1 });
  assert.equal(index, 4, 'the seeded conversation has messages 0..3');

  const seen = await bobConv.waitFor('messageAdded', (m) => m.index === index, { what: `bob messageAdded #${index}` });
  assert.equal(seen.body, 'hello from alice');
  assert.equal(seen.author, 'alice');
  assert.deepEqual(seen.attributes, { via: 'sdk', n: 1 });
  assert.equal(seen.type, 'text');
  assert.match(seen.sid, /^IM[0-9a-f]{32}$/);
  assert.equal(seen.conversation.sid, bobGeneral.sid);
  assert.ok(seen.dateCreated instanceof Date, 'dateCreated is a Date');
  assert.ok(Math.abs(seen.dateCreated.getTime() - Date.now()) < 60_000, `dateCreated ${seen.dateCreated.toISOString()} is now`);
  const aliceParticipant = await bobGeneral.getParticipantByIdentity('alice');
  assert.equal(seen.participantSid, aliceParticipant.sid, 'participantSid is alice’s');

  const own = await aliceConv.waitFor('messageAdded', (m) => m.index === index, { what: 'alice own messageAdded' });
  assert.equal(own.sid, seen.sid, 'both clients see the same message');

  // And bob answers: alice gets it with the next index.
  const reply = await bobGeneral.sendMessage('hi alice');
  assert.equal(reply, index + 1);
  const back = await aliceConv.waitFor('messageAdded', (m) => m.index === reply);
  assert.equal(back.body, 'hi alice');
  assert.equal(back.author, 'bob');
  // (sendMessage resolves on the REST answer; the sender's own event follows.)
  await bobConv.waitFor('messageAdded', (m) => m.index === reply, { what: 'bob own messageAdded' });

  // Exactly one messageAdded per message on each side.
  for (const rec of [aliceConv, bobConv]) {
    assert.deepEqual(
      rec.all('messageAdded').map((e) => e.arg.index),
      [index, reply],
      `${rec.label}: one messageAdded per message`,
    );
  }

  // REST agrees.
  const rest = await env.rest('GET', `/v1/Conversations/${aliceGeneral.sid}/Messages/${seen.sid}`);
  assert.equal(rest.index, index);
  assert.equal(rest.body, 'hello from alice');
  assert.equal(rest.author, 'alice');
});

test('a message created over REST is delivered live as messageAdded', async (t) => {
  const env = await sdkEnv(t);
  const alice = await env.connect('alice');
  const general = byUniqueName(alice, 'general');
  const conv = watchConversation(alice, general);

  const created = await env.rest('POST', `/v1/Conversations/${general.sid}/Messages`, {
    Author: 'carol',
    Body: 'posted over REST',
    Attributes: JSON.stringify({ via: 'rest' }),
  });
  assert.equal(created.index, 4);

  const m = await alice.rec.waitFor('messageAdded', (msg) => msg.sid === created.sid, {
    what: `messageAdded for REST message ${created.sid}`,
  });
  assert.equal(m.index, created.index);
  assert.equal(m.author, 'carol');
  assert.equal(m.body, 'posted over REST');
  assert.deepEqual(m.attributes, { via: 'rest' });
  assert.equal(m.conversation.sid, general.sid);
  // The conversation document follows (a separate Sync object: its update may come before or after).
  await conv.waitFor('updated', ({ conversation }) => conversation.lastMessage?.index === created.index, {
    what: 'conversation updated with lastMessage.index',
  });
  assert.equal(general.lastMessage.index, created.index);
});

test('REST participant add/remove: conversationJoined, then conversationLeft', async (t) => {
  const env = await sdkEnv(t);
  const alice = await env.connect('alice');

  const bob = await env.connect('bob');
  const conv = await env.rest('POST', '/v1/Conversations', { UniqueName: 'side-room', FriendlyName: 'Side room' });
  await env.rest('POST', `/v1/Conversations/${conv.sid}/Participants`, { Identity: 'bob' });
  const bobRoom = await bob.rec.waitFor('conversationJoined', (c) => c.sid === conv.sid, { what: 'bob joined side-room' });
  const bobView = watchConversation(bob, bobRoom);
  // Participants already in the roster when the SDK loads it come without
  // participantJoined: let bob's client load it before alice joins.
  assert.deepEqual((await bobRoom.getParticipants()).map((p) => p.identity), ['bob']);
  const mark = alice.rec.mark();
  const participant = await env.rest('POST', `/v1/Conversations/${conv.sid}/Participants`, { Identity: 'alice' });

  const joined = await alice.rec.waitFor('conversationJoined', (c) => c.sid === conv.sid, {
    since: mark,
    what: 'conversationJoined for side-room',
  });
  assert.equal(joined.uniqueName, 'side-room');
  assert.equal(joined.friendlyName, 'Side room');
  assert.equal(joined.status, 'joined');
  assert.deepEqual((await env.subscribed(alice)).map((c) => c.uniqueName).sort(), ['general', 'history', 'side-room']);
  assert.deepEqual((await joined.getParticipants()).map((p) => p.identity).sort(), ['alice', 'bob']);
  const aliceJoined = await bobView.waitFor('participantJoined', (p) => p.identity === 'alice', {
    what: 'bob sees alice join',
  });
  assert.equal(aliceJoined.sid, participant.sid);

  // The joined conversation is live (its message list is loaded first, for the same reason).
  assert.deepEqual((await joined.getMessages()).items, []);
  const msg = await env.rest('POST', `/v1/Conversations/${conv.sid}/Messages`, { Author: 'bob', Body: 'welcome' });
  const added = await alice.rec.waitFor('messageAdded', (m) => m.sid === msg.sid, { what: 'messageAdded in side-room' });
  assert.equal(added.conversation.sid, conv.sid);
  assert.equal(added.index, 0);

  const leftMark = alice.rec.mark();
  await env.rest('DELETE', `/v1/Conversations/${conv.sid}/Participants/${participant.sid}`);
  const left = await alice.rec.waitFor('conversationLeft', (c) => c.sid === conv.sid, {
    since: leftMark,
    what: 'conversationLeft for side-room',
  });
  assert.equal(left.sid, conv.sid);
  assert.deepEqual((await env.subscribed(alice)).map((c) => c.uniqueName).sort(), ['general', 'history']);
  const aliceLeft = await bobView.waitFor('participantLeft', (p) => p.identity === 'alice', { what: 'bob sees alice leave' });
  assert.equal(aliceLeft.sid, participant.sid);
  assert.deepEqual((await bobRoom.getParticipants()).map((p) => p.identity), ['bob']);
});

test('media: upload with a message, the other client downloads the same bytes', async (t) => {
  const env = await sdkEnv(t);
  const alice = await env.connect('alice');
  const bob = await env.connect('bob');
  const aliceGeneral = byUniqueName(alice, 'general');
  const bobConv = watchConversation(bob, byUniqueName(bob, 'general'));

  // Every byte value, then random bytes: no text decoding may survive this.
  const bytes = Buffer.concat([Buffer.from(range(0, 255)), randomBytes(50_000)]);
  const index = await aliceGeneral
    .prepareMessage()
    .setBody('the data')
    .addMedia({ contentType: 'application/octet-stream', filename: 'blob.bin', media: bytes })
    .build()
    .send();

  const m = await bobConv.waitFor('messageAdded', (msg) => msg.index === index, { what: `media messageAdded #${index}` });
  assert.equal(m.type, 'media');
  assert.equal(m.author, 'alice');
  assert.equal(m.attachedMedia?.length, 1, 'one attached media');
  const [media] = m.attachedMedia;
  assert.match(media.sid, /^ME[0-9a-f]{32}$/);
  assert.equal(media.contentType, 'application/octet-stream');
  assert.equal(media.filename, 'blob.bin');
  assert.equal(media.size, bytes.length);

  const url = await media.getContentTemporaryUrl();
  assert.equal(typeof url, 'string');
  const res = await fetch(url);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'application/octet-stream');
  const downloaded = Buffer.from(await res.arrayBuffer());
  assert.equal(downloaded.length, bytes.length);
  assert.ok(downloaded.equals(bytes), 'downloaded bytes equal the uploaded bytes');

  // The legacy single-media form of sendMessage, and the seeded PNG.
  const png = Buffer.from(
    defaultSeed().accounts[0].conversations[0].messages[2].media.base64,
    'base64',
  );
  const index2 = await aliceGeneral.sendMessage({ contentType: 'image/png', filename: 'copy.png', media: png });
  const m2 = await bobConv.waitFor('messageAdded', (msg) => msg.index === index2);
  assert.equal(m2.type, 'media');
  const [media2] = m2.attachedMedia;
  assert.equal(media2.contentType, 'image/png');
  const bytes2 = Buffer.from(await (await fetch(await media2.getContentTemporaryUrl())).arrayBuffer());
  assert.ok(bytes2.equals(png), 'legacy sendMessage media round-trips');

  const seeded = (await byUniqueName(bob, 'general').getMessages(1, 2, 'forward')).items[0];
  assert.equal(seeded.type, 'media');
  const seededBytes = Buffer.from(await (await fetch(await seeded.attachedMedia[0].getContentTemporaryUrl())).arrayBuffer());
  assert.ok(seededBytes.equals(png), 'seeded PNG downloads byte for byte');
});

test('typing indicators both ways', async (t) => {
  const env = await sdkEnv(t);
  const alice = await env.connect('alice');
  const bob = await env.connect('bob');
  const aliceGeneral = byUniqueName(alice, 'general');
  const bobGeneral = byUniqueName(bob, 'general');
  const aliceConv = watchConversation(alice, aliceGeneral);
  const bobConv = watchConversation(bob, bobGeneral);

  // alice → bob
  await aliceGeneral.typing();
  const aliceTyping = await bobConv.waitFor('typingStarted', (p) => p.identity === 'alice', {
    what: 'bob sees alice typing',
  });
  assert.equal(aliceTyping.isTyping, true);
  await bob.rec.waitFor('typingStarted', (p) => p.identity === 'alice', { what: 'client-level typingStarted' });

  // bob → alice
  await bobGeneral.typing();
  const bobTyping = await aliceConv.waitFor('typingStarted', (p) => p.identity === 'bob', {
    what: 'alice sees bob typing',
  });
  assert.equal(bobTyping.isTyping, true);

  // A message from the typist ends its indicator.
  await aliceGeneral.sendMessage('done typing');
  await bobConv.waitFor('typingEnded', (p) => p.identity === 'alice', { what: 'typingEnded after alice’s message' });
});

test('read horizon: unread count, participantUpdated on the other client, REST', async (t) => {
  const env = await sdkEnv(t);
  const alice = await env.connect('alice');
  const bob = await env.connect('bob');
  const aliceGeneral = byUniqueName(alice, 'general');
  const bobGeneral = byUniqueName(bob, 'general');
  const aliceConv = watchConversation(alice, aliceGeneral);
  const bobConv = watchConversation(bob, bobGeneral);
  const aliceParticipant = await aliceGeneral.getParticipantByIdentity('alice');
  const restParticipant = () =>
    env.rest('GET', `/v1/Conversations/${aliceGeneral.sid}/Participants/${aliceParticipant.sid}`);

  // Messages 0..3; read up to 1 → 2 unread.
  assert.equal(await aliceGeneral.updateLastReadMessageIndex(1), 2);
  assert.equal(await aliceGeneral.getUnreadMessagesCount(), 2);
  const upd = await bobConv.waitFor(
    'participantUpdated',
    ({ participant }) => participant.identity === 'alice' && participant.lastReadMessageIndex === 1,
    { what: 'bob sees alice lastReadMessageIndex 1' },
  );
  assert.ok(upd.updateReasons.includes('lastReadMessageIndex'), `reasons: ${upd.updateReasons}`);
  await aliceConv.waitFor('updated', ({ conversation }) => conversation.lastReadMessageIndex === 1, {
    what: 'alice conversation.lastReadMessageIndex 1',
  });
  assert.equal((await restParticipant()).last_read_message_index, 1);

  // All read.
  assert.equal(await aliceGeneral.setAllMessagesRead(), 0);
  assert.equal(await aliceGeneral.getUnreadMessagesCount(), 0);
  await bobConv.waitFor(
    'participantUpdated',
    ({ participant }) => participant.identity === 'alice' && participant.lastReadMessageIndex === 3,
    { what: 'bob sees alice lastReadMessageIndex 3' },
  );
  assert.equal((await restParticipant()).last_read_message_index, 3);

  // A new message makes one unread again.
  await bobGeneral.sendMessage('one more');
  await aliceConv.waitFor('messageAdded', (m) => m.index === 4);
  assert.equal(await aliceGeneral.getUnreadMessagesCount(), 1);
});

test('read horizon on a conversation created over REST settles: no update per write (demo app loop)', async (t) => {
  // Twilio's demo React app (twilio-conversations-demo-react: AppContainer.tsx reloads the
  // messages on every `conversationUpdated`; MessagesBox.tsx sets the read horizon to the first
  // loaded message whenever its messages change) loops without end if each read-horizon write
  // makes the SDK emit `updated`. Seen with a conversation created over REST only: the SDK
  // read its `createdBy` as changed on every update.
  const env = await sdkEnv(t);
  const conv = await env.rest('POST', '/v1/Conversations', { UniqueName: 'made-over-rest', FriendlyName: 'Made over REST' });
  await env.rest('POST', `/v1/Conversations/${conv.sid}/Participants`, { Identity: 'alice' });
  for (const body of ['one', 'two', 'three']) {
    await env.rest('POST', `/v1/Conversations/${conv.sid}/Messages`, { Author: 'bob', Body: body });
  }
  const alice = await env.connect('alice');
  const made = byUniqueName(alice, 'made-over-rest');
  assert.equal(made.createdBy, 'system', 'a conversation created over REST has the system as its creator');

  const MAX_WRITES = 30;
  let writes = 0;
  const reasons = [];
  const markRead = async () => {
    writes += 1;
    if (writes > MAX_WRITES) return;
    const page = await made.getMessages();
    await made.updateLastReadMessageIndex(page.items[0].index);
  };
  const onUpdated = ({ conversation, updateReasons }) => {
    if (conversation.sid !== made.sid) return;
    reasons.push(updateReasons);
    markRead().catch((err) => console.error(`[sdk] markRead: ${err.message}`));
  };
  alice.client.on('conversationUpdated', onUpdated);
  t.after(() => alice.client.removeListener('conversationUpdated', onUpdated));

  await markRead();
  await alice.rec.waitFor('conversationUpdated', ({ conversation }) => conversation.sid === made.sid && conversation.lastReadMessageIndex === 0, {
    what: 'alice sees her read horizon at 0',
  });
  // Settled: nothing in flight and nothing crossing the socket (a loop never gets here within
  // its bound of writes, and then shows in `writes`).
  await env.tap.waitIdle({ quietMs: 500, ms: 20_000 });
  assert.ok(
    writes <= 2,
    `the read horizon was written ${writes} times (updates: ${JSON.stringify(reasons.slice(0, 5))}…); one write, and one more for the update it caused, settle it`,
  );
  assert.ok(!reasons.flat().includes('createdBy'), `no update reports a changed creator: ${JSON.stringify(reasons)}`);
});

test('updateToken while connected replaces the token: new warning, no expiry at the old exp', async (t) => {
  const env = await sdkEnv(t);
  // alice's first token and bob's (the control) expire in a few seconds;
  // alice's is minted first, so it expires no later than bob's.
  const shortTtl = 4;
  const aliceToken = mintAccessToken({ identity: 'alice', ttl: shortTtl });
  const bobToken = mintAccessToken({ identity: 'bob', ttl: shortTtl });
  assert.ok(jwtPayload(aliceToken).exp <= jwtPayload(bobToken).exp);

  const alice = await env.connect('alice', { token: aliceToken });
  const bob = await env.connect('bob', { token: bobToken });
  // Inside the warning lead from the start: warned at once.
  await alice.rec.waitFor('tokenAboutToExpire', undefined, { what: 'alice first warning' });

  // A token valid for longer than the old one, but still inside the lead.
  const newTtl = TOKEN_WARNING_LEAD_SECS - 60;
  const mark = alice.rec.mark();
  const fresh = await env.devToken('alice', newTtl);
  const updated = await alice.client.updateToken(fresh);
  assert.equal(updated, alice.client, 'updateToken resolves to the client');
  await alice.rec.waitFor('tokenAboutToExpire', undefined, {
    since: mark,
    what: 'a warning for the new token (it is inside the lead too)',
  });

  // bob's token expires: the server closes his session …
  await bob.rec.waitFor('tokenExpired', undefined, { ms: (shortTtl + 5) * 1000, what: 'bob (control) tokenExpired' });
  // … but alice's session runs on the new token.
  const general = byUniqueName(alice, 'general');
  const index = await general.sendMessage('still here');
  assert.equal(index, 4);
  assert.equal(alice.client.connectionState, 'connected');
  assert.deepEqual(alice.rec.all('tokenExpired'), [], 'alice never got tokenExpired');
  assert.deepEqual(
    alice.rec.all('connectionStateChanged', undefined, { since: mark }).map((e) => e.arg),
    [],
    'alice stayed connected through the update',
  );
});

test('token warning: tokenAboutToExpire arrives the lead time before exp', async (t) => {
  const env = await sdkEnv(t);
  const token = mintAccessToken({ identity: 'alice', ttl: TOKEN_WARNING_LEAD_SECS + 3 });
  const { exp } = jwtPayload(token);
  const alice = await env.connect('alice', { token });
  const connectedAt = alice.rec.all('connectionStateChanged', (s) => s === 'connected')[0].at;

  const warning = await alice.rec.waitForEntry('tokenAboutToExpire', undefined, {
    ms: 8_000,
    what: 'tokenAboutToExpire',
  });
  const dueAt = (exp - TOKEN_WARNING_LEAD_SECS) * 1000;
  assert.ok(
    warning.at >= dueAt - 1_000 && warning.at <= dueAt + 1_500,
    `warning at ${warning.at - dueAt} ms from due time (connected ${connectedAt - dueAt} ms from it)`,
  );
  assert.ok(warning.at > connectedAt + 200, 'not sent at connect: the token was outside the lead then');
  assert.equal(alice.client.connectionState, 'connected');
  assert.deepEqual(alice.rec.all('tokenExpired'), []);
  // Still usable.
  assert.equal(await byUniqueName(alice, 'general').sendMessage('warned'), 4);
});

test('token expiry: tokenExpired, then disconnected; updateToken reconnects', async (t) => {
  const env = await sdkEnv(t);
  const token = mintAccessToken({ identity: 'alice', ttl: 2 });
  const { exp } = jwtPayload(token);
  const alice = await env.connect('alice', { token });
  const { rec, client } = alice;

  await rec.waitFor('tokenAboutToExpire', undefined, { what: 'immediate warning (inside the lead)' });
  const expired = await rec.waitForEntry('tokenExpired', undefined, { ms: 8_000, what: 'tokenExpired' });
  assert.ok(
    expired.at >= exp * 1000 - 1_000 && expired.at <= exp * 1000 + 1_500,
    `tokenExpired ${expired.at - exp * 1000} ms from exp`,
  );
  const disconnected = await rec.waitForEntry('connectionStateChanged', (s) => s === 'disconnected', {
    since: expired.seq,
    ms: SDK_CLOSE_TIMER_MS + 5_000,
    what: 'disconnected after tokenExpired',
  });
  // The SDK reports "disconnecting" as it handles the close, just before tokenExpired.
  const connected = rec.all('connectionStateChanged', (s) => s === 'connected')[0];
  const states = rec.all('connectionStateChanged', undefined, { since: connected.seq }).map((e) => e.arg);
  assert.deepEqual(states, ['disconnecting', 'disconnected'], 'states after the 410 close');
  const warned = rec.all('tokenAboutToExpire')[0];
  assert.ok(warned.seq < expired.seq && expired.seq < disconnected.seq, 'warning → expired → disconnected');
  assert.equal(client.connectionState, 'disconnected');

  // What a quickstart does on tokenExpired: fetch a new token and update.
  const mark = rec.mark();
  await client.updateToken(await env.devToken('alice', 3600));
  await rec.waitFor('connectionStateChanged', (s) => s === 'connected', { since: mark, what: 'reconnected' });
  assert.equal(await byUniqueName(alice, 'general').sendMessage('back'), 4);
});

test('expired token at start: denied and tokenExpired, then updateToken recovers', async (t) => {
  const env = await sdkEnv(t);
  const iat = nowSecs() - 7200;
  const expiredToken = mintAccessToken({ identity: 'alice', iat, exp: iat + 3600 });
  const alice = await env.connect('alice', { token: expiredToken, waitInit: false });
  const { rec, client } = alice;

  await rec.waitFor('connectionStateChanged', (s) => s === 'denied', { what: 'denied' });
  await rec.waitFor('tokenExpired', undefined, { what: 'tokenExpired (errorCode 20104)' });
  const err = await rec.waitFor('connectionError', undefined, { what: 'connectionError' });
  assert.equal(err.terminal, true);
  assert.equal(err.errorCode, 20104);
  assert.equal(err.httpStatusCode, 401);
  await rec.waitFor('initFailed', undefined, { what: 'initFailed' });
  assert.equal(rec.all('initialized').length, 0);

  // Recovery. SDK quirk (wire-protocol §3): updateToken itself rejects with a
  // TypeError on this path (it touches the never-built MCS client), while the
  // reconnect and initialisation go ahead in the background.
  const mark = rec.mark();
  const outcome = await client.updateToken(await env.devToken('alice', 3600)).then(
    () => null,
    (e) => e,
  );
  if (outcome !== null) assert.ok(outcome instanceof TypeError, `updateToken rejected with ${outcome?.stack ?? outcome}`);
  await rec.waitFor('connectionStateChanged', (s) => s === 'connected', { since: mark, what: 'connected after updateToken' });
  await rec.waitFor('initialized', undefined, { since: mark, what: 'initialized after updateToken' });
  alice.initialized = true;
  const names = (await env.subscribed(alice)).map((c) => c.uniqueName).sort();
  assert.deepEqual(names, ['general', 'history']);
  alice.conversations = await env.subscribed(alice);
  assert.equal(await byUniqueName(alice, 'general').sendMessage('recovered'), 4);
});

test('invalid token signature at start: denied without tokenExpired', async (t) => {
  const env = await sdkEnv(t);
  const forged = mintAccessToken({ identity: 'alice', secret: 'not-the-secret' });
  const alice = await env.connect('alice', { token: forged, waitInit: false });
  const { rec } = alice;
  await rec.waitFor('connectionStateChanged', (s) => s === 'denied', { what: 'denied' });
  const err = await rec.waitFor('connectionError', undefined, { what: 'connectionError' });
  assert.equal(err.terminal, true);
  assert.notEqual(err.errorCode, 20104);
  await rec.waitFor('initFailed', undefined, { what: 'initFailed' });
  assert.deepEqual(rec.all('tokenExpired'), [], 'an invalid token is not an expired one');
});

test('dropped socket: the SDK reconnects and messages posted meanwhile arrive by replay', async (t) => {
  const env = await sdkEnv(t);
  const proxy = env.tap; // every client connects through it
  const alice = await env.connect('alice');
  const general = byUniqueName(alice, 'general');
  const conv = watchConversation(alice, general);
  assert.equal(proxy.open, 1, 'one proxied twilsock connection');

  // Drop at a quiet moment: a request in flight when the socket dies makes
  // the SDK reject a promise nobody handles (SDK hazard, wire-protocol §9).
  await proxy.waitIdle();
  const dropMark = alice.rec.mark();
  assert.deepEqual(proxy.drop(), [], 'no request was in flight at the drop');
  await alice.rec.waitFor('connectionStateChanged', (s) => s !== 'connected', {
    since: dropMark,
    what: 'the SDK notices the drop',
  });

  // While alice is offline: three messages over REST, and a new conversation she joins.
  const posted = [];
  for (const body of ['while away 1', 'while away 2', 'while away 3']) {
    posted.push(await env.rest('POST', `/v1/Conversations/${general.sid}/Messages`, { Author: 'bob', Body: body }));
  }
  assert.deepEqual(posted.map((m) => m.index), [4, 5, 6]);
  const room = await env.rest('POST', '/v1/Conversations', { UniqueName: 'while-away' });
  await env.rest('POST', `/v1/Conversations/${room.sid}/Participants`, { Identity: 'alice' });
  // And alice sends one herself: the SDK queues it until it is connected again.
  const queued = general.sendMessage('sent while offline');

  // The SDK's reconnection attempt is held at the proxy until now.
  await proxy.waitHeld(1);
  assert.equal(conv.all('messageAdded').length, 0, 'nothing delivered while the socket was down');
  proxy.release();
  const reconnected = await alice.rec.waitForEntry('connectionStateChanged', (s) => s === 'connected', {
    since: dropMark,
    what: 'reconnected',
  });
  assert.equal(proxy.accepted, 2, 'the SDK opened a second socket');
  const states = alice.rec.all('connectionStateChanged', undefined, { since: dropMark }).map((e) => e.arg);
  assert.ok(
    states.every((s) => ['connecting', 'retrying', 'connected'].includes(s)),
    `a drop is not terminal: ${states.join(' → ')}`,
  );

  for (const m of posted) {
    await conv.waitFor('messageAdded', (msg) => msg.index === m.index, { what: `replayed message #${m.index}` });
  }
  await alice.rec.waitFor('conversationJoined', (c) => c.sid === room.sid, { what: 'conversationJoined replayed' });
  assert.equal(await queued, 7, 'the queued message goes out after the reconnect');
  await conv.waitFor('messageAdded', (msg) => msg.index === 7, { what: 'own queued message' });

  // Live delivery resumes after the replay.
  const live = await env.rest('POST', `/v1/Conversations/${general.sid}/Messages`, { Author: 'bob', Body: 'live again' });
  await conv.waitFor('messageAdded', (msg) => msg.index === live.index, { what: 'live message after reconnect' });

  const added = conv.all('messageAdded');
  assert.deepEqual(
    added.map((e) => [e.arg.index, e.arg.body]),
    [
      [4, 'while away 1'],
      [5, 'while away 2'],
      [6, 'while away 3'],
      [7, 'sent while offline'],
      [8, 'live again'],
    ],
    'each message exactly once, in order',
  );
  assert.ok(added.every((e) => e.at >= reconnected.at), 'delivered after the reconnect');
  assert.deepEqual(
    (await general.getMessages(10)).items.map((m) => m.index),
    range(0, 8),
  );
});


// ---------------------------------------------------------------------------
// Behaviour the SDK (and Twilio's documentation) expect: create-then-join, a
// null unread count before any read horizon, and reachability.
// ---------------------------------------------------------------------------

test(
  'createConversation, then join() as Twilio documents it, add a participant, send',
  async (t) => {
    const env = await sdkEnv(t);
    const alice = await env.connect('alice');
    const bob = await env.connect('bob');

    const conv = await alice.client.createConversation({
      uniqueName: 'made-by-sdk',
      friendlyName: 'Made by the SDK',
      attributes: { k: 'v' },
    });
    assert.equal(conv.uniqueName, 'made-by-sdk');
    assert.equal(conv.friendlyName, 'Made by the SDK');
    assert.deepEqual(conv.attributes, { k: 'v' });
    assert.equal(conv.createdBy, 'alice');

    // "After creating the Conversation, you'll need to join it to participate."
    // (twilio.com/docs/conversations/working-with-conversations)
    await conv.join();
    await alice.rec.waitFor('conversationJoined', (c) => c.sid === conv.sid, { what: 'alice joined her conversation' });

    await conv.add('bob');
    const bobConv = await bob.rec.waitFor('conversationJoined', (c) => c.sid === conv.sid, { what: 'bob added' });
    assert.deepEqual((await bobConv.getMessages()).items, []);
    const bobView = watchConversation(bob, bobConv);
    assert.equal(await conv.sendMessage('first'), 0);
    await bobView.waitFor('messageAdded', (m) => m.index === 0 && m.body === 'first');
  },
);

test(
  'read horizon not set: getUnreadMessagesCount() is null',
  async (t) => {
    const env = await sdkEnv(t);
    const alice = await env.connect('alice');
    const general = byUniqueName(alice, 'general');
    // SDK contract (Conversation.getUnreadMessagesCount): "If the read horizon
    // is not set, this function will return null." Rehearsal's own REST
    // (GET /v1/Services/{IS}/Users/{identity}/Conversations) already says null.
    assert.equal(general.lastReadMessageIndex, null);
    const rest = await env.rest('GET', `/v1/Services/${env.server.creds.TWILIO_CONVERSATIONS_SERVICE_SID}/Users/alice/Conversations`);
    const restGeneral = rest.conversations.find((c) => c.conversation_sid === general.sid);
    assert.equal(restGeneral.unread_messages_count, null, 'REST: null without a horizon');
    assert.equal(await general.getUnreadMessagesCount(), null, 'SDK: null without a horizon');

    // Set, then unset again.
    assert.equal(await general.updateLastReadMessageIndex(1), 2);
    await general.setAllMessagesUnread();
    assert.equal(await general.getUnreadMessagesCount(), null, 'SDK: null after setAllMessagesUnread()');
  },
);

test(
  'reachability: a connected user is online, and offline once it disconnects',
  async (t) => {
    const env = await sdkEnv(t);
    const alice = await env.connect('alice');
    const bob = await env.connect('bob');
    assert.equal(alice.client.reachabilityEnabled, true);
    const aliceSeenByBob = await (await byUniqueName(bob, 'general').getParticipantByIdentity('alice')).getUser();

    const online = (user) => user.isOnline === true;
    if (!online(alice.client.user)) {
      await alice.rec.waitFor('userUpdated', ({ user }) => user.identity === 'alice' && online(user), {
        ms: 2_000,
        what: 'alice sees herself online',
      });
    }
    if (!online(aliceSeenByBob)) {
      await bob.rec.waitFor('userUpdated', ({ user }) => user.identity === 'alice' && online(user), {
        ms: 2_000,
        what: 'bob sees alice online',
      });
    }

    const mark = bob.rec.mark();
    await env.shutdown(alice);
    await bob.rec.waitFor('userUpdated', ({ user }) => user.identity === 'alice' && user.isOnline === false, {
      since: mark,
      ms: 2_000,
      what: 'bob sees alice go offline',
    });
  },
);
