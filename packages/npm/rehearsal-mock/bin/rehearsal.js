#!/usr/bin/env node
// `npx rehearsal …`: runs the platform binary with the same arguments, stdio and exit status.
import { spawn } from 'node:child_process';

import { binaryPath } from '../lib/binary.js';

let bin;
try {
  bin = binaryPath();
} catch (err) {
  console.error(`rehearsal: ${err.message}`);
  process.exit(1);
}
const child = spawn(bin, process.argv.slice(2), { stdio: 'inherit' });
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => child.kill(sig));
child.on('error', (err) => {
  console.error(`rehearsal: cannot run ${bin}: ${err.message}`);
  process.exit(1);
});
child.on('exit', (code, signal) => {
  if (signal) {
    process.removeAllListeners(signal);
    process.kill(process.pid, signal);
  }
  else process.exit(code ?? 1);
});
