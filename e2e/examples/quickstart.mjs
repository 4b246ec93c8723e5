// The README's first realtime example: fetch a token from Rehearsal's development token endpoint,
// connect the official SDK, send a message and receive it. Run: node quickstart.mjs [BASE_URL]
import { Client } from '@twilio/conversations';

const base = process.argv[2] ?? 'http://127.0.0.1:4510';
const { token } = await (await fetch(`${base}/token?identity=alice`)).json();
const client = new Client(token, { twilsock: { uri: base.replace(/^http/, 'ws') + '/v3/wsconnect' } });
await new Promise((resolve, reject) => { client.once('initialized', resolve); client.once('initFailed', reject); });
const conversation = await client.getConversationByUniqueName('general');
await conversation.getMessages(1); // history loaded: what is sent from now on arrives as messageAdded
conversation.on('messageAdded', async (m) => { console.log(`received #${m.index} from ${m.author}: ${m.body}`); await client.shutdown(); });
await conversation.sendMessage('Hello from the official SDK!');
