// What the inspector's browser tests share: one headless Chromium per test file (Debian's
// `chromium`, started as the test command's brief says), the page waits, screenshots kept under
// target/ as CI artifacts, and the signed-in URL `rehearsal serve` prints in its banner.

import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { after, before } from 'node:test';

import { chromium } from 'playwright-core';

import { REPO_ROOT, assertNoUnhandledRejections } from '../node/helpers.mjs';
import { exitDespiteSdkTimers } from '../node/sdk-helpers.mjs';

export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
export const SHOTS = path.join(REPO_ROOT, 'target', 'inspector-screenshots');
/** A page's waits: generous, the machine may be loaded. */
export const UI_MS = 20_000;

/**
 * Launches Chromium before the file's tests and closes it after them (then checks for unhandled
 * rejections and lets the process exit despite the SDK's timers). Returns a getter: the browser
 * exists only once `before` has run.
 */
export function useBrowser() {
  let browser;
  before(async () => {
    await mkdir(SHOTS, { recursive: true });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-background-networking'],
    });
  });
  after(async () => {
    await browser?.close();
    assertNoUnhandledRejections();
    exitDespiteSdkTimers();
  });
  return () => browser;
}

/** A full-page screenshot, `target/inspector-screenshots/NAME.png`. */
export async function shot(page, name) {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

/** The inspector URL the banner printed (with the control token in its fragment), and the token. */
export function inspectorUrl(server) {
  const m = /inspector\s+(http:\/\/\S+#token=(\S+))/.exec(server.logs());
  assert.ok(m, `the banner prints the inspector's signed-in URL:\n${server.logs()}`);
  return { url: m[1], token: decodeURIComponent(m[2]) };
}
