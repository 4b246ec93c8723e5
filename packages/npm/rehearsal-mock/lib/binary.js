// Where the `rehearsal` binary is: `REHEARSAL_BIN` if set, else the per-platform package that
// npm installed as an optionalDependency (the pattern esbuild and biome use: npm installs only
// the one whose `os`/`cpu` match the machine).
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);

/** `${process.platform}-${process.arch}` → the package that carries the binary for it. */
export const PLATFORM_PACKAGES = Object.freeze({
  'linux-x64': 'rehearsal-mock-linux-x64',
  'linux-arm64': 'rehearsal-mock-linux-arm64',
  'darwin-x64': 'rehearsal-mock-darwin-x64',
  'darwin-arm64': 'rehearsal-mock-darwin-arm64',
  'win32-x64': 'rehearsal-mock-win32-x64',
});

/** The path of the `rehearsal` binary for this machine; throws with what to do when there is none. */
export function binaryPath() {
  const fromEnv = process.env.REHEARSAL_BIN;
  if (fromEnv) return fromEnv;
  const key = `${process.platform}-${process.arch}`;
  const pkg = PLATFORM_PACKAGES[key];
  if (!pkg) {
    throw new Error(
      `rehearsal-mock has no binary for ${key} (packages exist for ${Object.keys(PLATFORM_PACKAGES).join(', ')}); ` +
        'build one with `cargo build --release -p rehearsal-cli` and set REHEARSAL_BIN to its path',
    );
  }
  let manifest;
  try {
    manifest = require.resolve(`${pkg}/package.json`);
  } catch {
    throw new Error(
      `the package ${pkg}, which carries the rehearsal binary for ${key}, is not installed. ` +
        'npm installs it as an optionalDependency of rehearsal-mock: reinstall without --omit=optional / ' +
        '--no-optional, or set REHEARSAL_BIN to a rehearsal binary',
    );
  }
  return path.join(path.dirname(manifest), 'bin', process.platform === 'win32' ? 'rehearsal.exe' : 'rehearsal');
}
