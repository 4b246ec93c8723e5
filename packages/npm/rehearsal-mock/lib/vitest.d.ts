import type { TestAPI } from 'vitest';

import type { Rehearsal, StartOptions, Tenant } from './index.js';

export interface RehearsalFixtures {
  /** One `rehearsal serve` per test file, stopped after its last test. */
  rehearsal: Rehearsal;
  /** An isolated tenant per test, deleted after it. */
  tenant: Tenant;
}

/** A Vitest `test` with the `rehearsal` and `tenant` fixtures; `options` go to `startRehearsal`. */
export declare function withRehearsal(options?: StartOptions): TestAPI<RehearsalFixtures>;
export declare const test: TestAPI<RehearsalFixtures>;
export declare const it: TestAPI<RehearsalFixtures>;
export { expect } from 'vitest';
