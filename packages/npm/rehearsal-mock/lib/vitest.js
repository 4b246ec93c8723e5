// Vitest fixtures: `rehearsal`, one server per test file (stopped after the file's last test),
// and `tenant`, an isolated tenant per test (deleted after the test, as is every tenant a test
// makes with `rehearsal.tenant()`).
//
//   import { test, expect } from 'rehearsal-mock/vitest';
//   test('…', async ({ tenant }) => { const token = await tenant.token('alice'); … });
import { test as base } from 'vitest';

import { startRehearsal } from './index.js';

/** A `test` with the `rehearsal` and `tenant` fixtures; `options` go to `startRehearsal`. */
export function withRehearsal(options = {}) {
  return base.extend({
    // Vitest reads a fixture's dependencies from its first parameter: it must be a destructuring.
    rehearsal: [
      // eslint-disable-next-line no-empty-pattern
      async ({}, use) => {
        const rh = await startRehearsal(options);
        try {
          await use(rh);
        } finally {
          await rh.stop();
        }
      },
      { scope: 'file' },
    ],
    // Tenants a test made itself with `rehearsal.tenant()` go when the test ends, too.
    cleanupTenants: [
      async ({ rehearsal }, use) => {
        await use(undefined);
        await rehearsal.deleteTenants();
      },
      { auto: true },
    ],
    tenant: async ({ rehearsal }, use) => {
      const tenant = await rehearsal.tenant();
      try {
        await use(tenant);
      } finally {
        await tenant.delete();
      }
    },
  });
}

export const test = withRehearsal();
export const it = test;
export { expect } from 'vitest';
