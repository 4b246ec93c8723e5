import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['vitest/**/*.test.js'],
    // Generous bounds for a loaded CI machine: every wait in the tests is on an event.
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
