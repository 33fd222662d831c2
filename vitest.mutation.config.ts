// The tests StrykerJS runs against each mutant: the "unit" project alone (domain, reader and relay with fakes,
// contract suites on the embedded adapters). Real Redis and Kafka would make each of hundreds of runs slow.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: { include: ['test/unit/**/*.test.ts', 'test/contract/**/*.test.ts'] },
});
