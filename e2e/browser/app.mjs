// A stand-in for "your app" in the scenario test: the official SDK connected as one identity in
// a process of its own (as an app would be), printing its connection states until it is killed.
// Requests the SDK has in flight when the scenario drops its socket may end in rejections the
// SDK leaves unhandled (wire-protocol notes §9); they are this app's business, logged here, and
// do not touch the test process's own unhandled-rejection guard.
// Usage: node app.mjs BASE_URL TWILSOCK_URL IDENTITY
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { Client } = require('@twilio/conversations');

const [baseUrl, wsUrl, identity] = process.argv.slice(2);
process.on('unhandledRejection', (e) => console.error(`[app] unhandled rejection: ${e?.message ?? e}`));

const res = await fetch(`${baseUrl}/token?identity=${encodeURIComponent(identity)}`);
if (!res.ok) throw new Error(`GET /token -> ${res.status}`);
const { token } = await res.json();
const client = new Client(token, { twilsock: { uri: wsUrl }, logLevel: 'silent' });
client.on('connectionStateChanged', (s) => console.log(`state ${s}`));
