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
  // Mutants of module-level code (metric names and help texts, histogram buckets) run every test, not only
  // those that cover them: a fifth of the mutants, more than half the time. The domain run keeps them.
  ignoreStatic: true,
  // Two cores on the machines this runs on; more processes only queue.
  concurrency: 2,
  // A mutant whose tests run longer than 1.5 × their unmutated time + this is stopped and counted as killed
  // (an endless loop, a promise never settled). With Stryker's 5 s, on a machine loaded by other work, the
  // reader's and relay's files had more time-outs than kills: too short to tell slowed-down tests from hangs.
  timeoutMS: 10_000,
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/index.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  // `--incremental` re-tests only what a change touched, for quick local rounds; off by default, because it
  // kept stale results for mutants of module-level constants (a regex) that a new test killed.
  incrementalFile: 'reports/mutation/incremental.json',
  tempDirName: '.stryker-tmp',
  cleanTempDir: 'always',
  thresholds: { high: 90, low: 80, break: 80 },
};
