// One test command for everything. The "unit" project (domain, config, contract suites on the embedded
// adapters) needs nothing; the "services" project (integration and end to end) gets real Redis and Kafka
// from the global setup, which starts them unless REDIS_URL / KAFKA_BROKERS are given; the "faults" project
// (test/faults/) starts Redis and Kafka of its own to kill.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Real brokers and child processes on 2 cores: a few files at a time keeps group joins from starving.
    maxWorkers: 2,
    projects: [
      { test: { name: 'unit', include: ['test/unit/**/*.test.ts', 'test/contract/**/*.test.ts'] } },
      {
        test: {
          name: 'services',
          include: ['test/integration/**/*.test.ts', 'test/e2e/**/*.test.ts'],
          globalSetup: ['test/global-setup.ts'],
          testTimeout: 60_000,
          hookTimeout: 120_000,
        },
      },
      {
        // Long: kills and restarts Redis, Kafka and tiercache processes (each file its own Redis and Kafka).
        // CI runs it once, not per Node line. One file at a time: two brokers at once would starve 2 cores.
        test: {
          name: 'faults',
          include: ['test/faults/**/*.test.ts'],
          fileParallelism: false,
          testTimeout: 180_000,
          hookTimeout: 240_000,
        },
      },
      {
        // Real clusters on loopback: the setup starts a Redis Cluster (3 masters + 3 replicas) and a 3-node
        // Kafka once for all files (services:up --cluster); nodes are killed and restarted, so one file at a
        // time. CI runs it once, not per Node line.
        test: {
          name: 'cluster',
          // The end-to-end suite again, on the clusters: its writer and readers get them from this setup.
          include: ['test/cluster/**/*.test.ts', 'test/e2e/propagation.test.ts'],
          globalSetup: ['test/cluster/global-setup.ts'],
          // For the tiercache processes the tests start: the topics they create get 3 replicas.
          env: { KAFKA_REPLICATION_FACTOR: '3' },
          fileParallelism: false,
          testTimeout: 600_000,
          hookTimeout: 600_000,
        },
      },
      // A real browser (Debian's chromium) on the embedded default: run once per CI run.
      {
        test: {
          name: 'browser',
          include: ['test/browser/**/*.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
