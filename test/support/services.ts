// Where the real services are, for integration and e2e tests: the global setup provides them (starting
// Redis and Kafka itself unless REDIS_URL / KAFKA_BROKERS were given). A test that needs them and finds
// nothing fails with the way to fix it; it never skips.
import { randomUUID } from 'node:crypto';
import { inject } from 'vitest';
import type { RedisTarget } from './stores.js';

// inject()'s keys are declared with the global setup that provides them (test/global-setup.ts).
const HOW = 'run `npm run services:up`, or set REDIS_URL and KAFKA_BROKERS, then run the tests again';

export function redisUrl(): string {
  const url = inject('redisUrl') ?? process.env.REDIS_URL;
  if (!url) throw new Error(`no Redis for this test: ${HOW}`);
  return url;
}

export function kafkaBrokers(): string[] {
  const brokers = inject('kafkaBrokers') ?? process.env.KAFKA_BROKERS;
  if (!brokers) throw new Error(`no Kafka for this test: ${HOW}`);
  return brokers.split(',');
}

/** A name no other test file, and no earlier run, has used: for key prefixes, topics and group ids. */
export function uniqueName(label: string): string {
  return `t-${label}-${Date.now().toString(36)}-${randomUUID().slice(0, 8)}`;
}

/**
 * The Redis this project's processes run on: the cluster project's Redis Cluster when it provides one
 * (test/cluster/global-setup.ts), else the single Redis.
 */
export function redisTarget(): RedisTarget {
  const nodes = inject('redisClusterNodes');
  return nodes ? { redisClusterNodes: nodes } : { redisUrl: redisUrl() };
}
