// The same package under Jest (ESM: run with node --experimental-vm-modules): one server for the
// file, a tenant per test, a drop and a token expiry with the official SDK. Jest's globals
// (`test`, `expect`, hooks) are injected. package.json sets `forceExit`: the SDK keeps a timer
// running for a while after `shutdown()` (twilsock's request timer), which would hold Jest open.
import { startRehearsal } from 'rehearsal-mock';

import { connect, nextEvent } from '../support/sdk.js';

let rehearsal;
beforeAll(async () => {
  rehearsal = await startRehearsal();
});
afterEach(() => rehearsal.deleteTenants());
afterAll(() => rehearsal?.stop());

test('drop and token expiry with the official SDK', async () => {
  const tenant = await rehearsal.tenant();
  const { client } = await connect(rehearsal, tenant, 'alice');

  const reconnected = nextEvent(client, 'connectionStateChanged', (s) => s === 'connected');
  expect((await tenant.drop('alice')).sessions).toHaveLength(1);
  await reconnected;

  const expired = nextEvent(client, 'tokenExpired');
  const disconnected = nextEvent(client, 'connectionStateChanged', (s) => s === 'disconnected');
  expect((await tenant.expireToken('alice')).sessions).toHaveLength(1);
  await expired;
  await disconnected;
  await client.shutdown();
});
