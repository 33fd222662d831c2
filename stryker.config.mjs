// Mutation testing (`npm run test:mutation`): changes the code under test one small way at a time and
// checks that some test fails. Needs Node >= 22 (scripts/mutation.sh provides it); reports in reports/.
// stryker.domain.config.mjs narrows it to src/domain, the part CI runs and holds to a higher threshold.
/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'vitest',
  vitest: { configFile: 'vitest.mutation.config.ts' },
  coverageAnalysis: 'perTest',
  mutate: [
    'src/domain/**/*.ts',
    'src/reader/**/*.ts',
    'src/writer/**/*.ts',
    // The adapters' pure parts; the rest of them is I/O, tested against real Redis and Kafka.
    'src/adapters/change-codec.ts',
  ],
  // Two cores on the machines this runs on; more processes only queue.
  concurrency: 2,
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/index.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  // Re-running after a small change only tests the mutants and tests that change touched.
  incremental: true,
  incrementalFile: 'reports/mutation/incremental.json',
  tempDirName: '.stryker-tmp',
  cleanTempDir: 'always',
  thresholds: { high: 90, low: 80, break: 80 },
};
