// Runs the README's quickstart script (e2e/examples/quickstart.mjs) unchanged against a real
// server, so the documented example stays true.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';

import { E2E_DIR, startServer, assertNoUnhandledRejections } from './helpers.mjs';

const run = promisify(execFile);

after(() => assertNoUnhandledRejections());

test('the README quickstart sends and receives a message with the official SDK', async () => {
  const server = await startServer();
  try {
    const script = path.join(E2E_DIR, 'examples', 'quickstart.mjs');
    const { stdout } = await run(process.execPath, [script, server.baseUrl], { cwd: E2E_DIR, timeout: 30_000 });
    assert.match(stdout, /received #\d+ from alice: Hello from the official SDK!/);
  } finally {
    await server.stop();
  }
});
