// The domain alone (versions, fill rule, batcher, limits, subscription bookkeeping), held to 90%: the run CI
// makes (about 2 min).
import base from './stryker.config.mjs';

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  ...base,
  mutate: ['src/domain/**/*.ts'],
  // Its few (a header regex, a size constant) are worth their time.
  ignoreStatic: false,
  htmlReporter: { fileName: 'reports/mutation-domain/index.html' },
  jsonReporter: { fileName: 'reports/mutation-domain/mutation.json' },
  incrementalFile: 'reports/mutation-domain/incremental.json',
  thresholds: { high: 95, low: 90, break: 90 },
};
