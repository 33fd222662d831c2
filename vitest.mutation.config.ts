// The tests StrykerJS runs against each mutant: the "unit" project alone (domain, reader and relay with fakes,
// contract suites on the embedded adapters). Real Redis and Kafka would make each of hundreds of runs slow.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/unit/**/*.test.ts', 'test/contract/**/*.test.ts'],
    // The slowest of these tests takes half a second. A mutant that makes one wait forever (a close() that
    // never returns, a delivery that never comes) fails it here after 3 s, instead of running into vitest's
    // 10 s for hooks and then Stryker's own time-out, which also restarts the test process: most of the
    // whole run's time went to those.
    testTimeout: 3_000,
    hookTimeout: 3_000,
  },
});
