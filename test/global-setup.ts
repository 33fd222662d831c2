// Gives every test run real Redis and Kafka: the ones REDIS_URL / KAFKA_BROKERS name, else ones that
// scripts/services starts (or finds already running). Stops them afterwards only if this run started them.
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';
import { servicesDown, servicesUp, type ServicesUpResult } from '../scripts/services/index.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** e.g. redis://127.0.0.1:6379 */
    redisUrl: string;
    /** Comma-separated host:port list, e.g. 127.0.0.1:9092 */
    kafkaBrokers: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  let services: ServicesUpResult;
  try {
    services = await servicesUp();
  } catch (error) {
    // Integration suites must fail loudly rather than skip: a green run without them proves nothing.
    throw new Error(
      'The tests need real Redis and Kafka, and they could not be provided.\n' +
        `Cause: ${error instanceof Error ? error.message : String(error)}\n` +
        'Provide them with `npm run services:up` (needs redis-server, or root to apt-get it; Java 17+; Maven), ' +
        'or set REDIS_URL and KAFKA_BROKERS to services that are already running.',
      { cause: error },
    );
  }

  // Both ways: inject() for tests, the environment for code under test that reads its config from there.
  process.env.REDIS_URL = services.redisUrl;
  process.env.KAFKA_BROKERS = services.kafkaBrokers;
  project.provide('redisUrl', services.redisUrl);
  project.provide('kafkaBrokers', services.kafkaBrokers);

  if (services.started) stopOnSignals();
  return async () => {
    // Services that ran before this test run (e.g. `npm run services:up`) belong to whoever started them.
    // Only the single nodes: the cluster project's setup stops its own.
    if (services.started) await servicesDown({ only: 'single' });
  };
}

/**
 * Ctrl-C or SIGTERM can end vitest before its teardown runs, which would leave this run's Redis and Kafka
 * behind: a detached `services:down`, which outlives this process, stops exactly what was recorded.
 */
export function stopOnSignals(): void {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      spawn(process.execPath, ['--import', 'tsx', 'scripts/services/index.ts', 'down'], {
        cwd: root,
        detached: true,
        stdio: 'ignore',
      }).unref();
      // Without another listener (vitest's own), the signal's default action ends the process as before.
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    });
  }
}
