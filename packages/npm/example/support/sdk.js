// What a user's test would write around the official SDK: connect a client to Rehearsal and wait
// for its events with a timeout (never a fixed sleep).
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { Client } = require('@twilio/conversations');

export const WAIT_MS = 20_000;

/** Resolves with the arguments of the next `event` from `emitter` for which `pred` holds. */
export function nextEvent(emitter, event, pred = () => true, ms = WAIT_MS) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, on);
      reject(new Error(`no ${event} within ${ms} ms`));
    }, ms);
    function on(...args) {
      if (!pred(...args)) return;
      clearTimeout(timer);
      emitter.off(event, on);
      resolve(args[0]);
    }
    emitter.on(event, on);
  });
}

/**
 * An SDK client of `account` (a Rehearsal or one of its tenants) as `identity`, once it is
 * initialized and has loaded its conversations: the SDK's background list fetch must be over
 * before its socket is dropped or it is shut down (else it rejects a promise nobody awaits).
 */
export async function connect(rehearsal, account, identity, { ttl } = {}) {
  const token = await account.token(identity, { ttl });
  const client = new Client(token, { twilsock: { uri: rehearsal.twilsockUrl }, logLevel: 'silent' });
  const states = [];
  client.on('connectionStateChanged', (s) => states.push(s));
  await Promise.race([
    nextEvent(client, 'initialized'),
    nextEvent(client, 'initFailed').then((e) => Promise.reject(new Error(`initFailed: ${e?.error?.message}`))),
  ]);
  await client.getSubscribedConversations();
  return { client, states };
}
