// tiercache as processes on a fault file's dedicated Redis and Kafka, with the short staleness bound the
// fault scenarios judge against, and where their figures go.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DIR } from '../../scripts/services/state.js';
import { eventually, startTiercache, type RunningTiercache } from '../support/processes.js';
import { uniqueName } from '../support/services.js';
import { redisEnv, type RedisTarget } from '../support/stores.js';
import type { Endpoint, Figures } from './observer.js';

export const FEED_MAX_LAG_MS = 2_000;
/** What every scenario holds readers to: FEED_MAX_LAG_MS + 1 s after an acknowledgement. */
export const BOUND_MS = FEED_MAX_LAG_MS + 1_000;

export interface Cluster {
  readonly env: Record<string, string>;
  /** The Redis its processes use: what an Observer of them reads. */
  readonly redis: RedisTarget;
  readonly prefix: string;
  writers: (RunningTiercache & Endpoint)[];
  readers: (RunningTiercache & Endpoint)[];
  startWriter(name: string, extra?: Record<string, string>): Promise<RunningTiercache & Endpoint>;
  startReader(name: string): Promise<RunningTiercache & Endpoint>;
  stopAll(): Promise<void>;
}

/**
 * Any Redis and Kafka will do: a fault file's dedicated ones, or the cluster project's clusters (a Redis
 * Cluster given by its nodes).
 */
export function cluster(
  services: RedisTarget & { readonly brokers: string },
  extra: Record<string, string> = {},
): Cluster {
  const prefix = `${uniqueName('faults')}:`;
  const redis: RedisTarget =
    'redisUrl' in services
      ? { redisUrl: services.redisUrl }
      : { redisClusterNodes: services.redisClusterNodes };
  const env = {
    ...redisEnv(redis),
    KAFKA_BROKERS: services.brokers,
    KAFKA_TOPIC: uniqueName('faults'),
    KAFKA_PARTITIONS: '3',
    REDIS_KEY_PREFIX: prefix,
    FEED_MAX_LAG_MS: String(FEED_MAX_LAG_MS),
    FEED_SYNC_INTERVAL_MS: '200',
    OUTBOX_RECLAIM_MS: '1000',
    ...extra,
  };
  const all: RunningTiercache[] = [];
  const c: Cluster = {
    env,
    redis,
    prefix,
    writers: [],
    readers: [],
    async startWriter(name, more = {}) {
      const writer = await startTiercache(['--mode=writer', `--instance-id=${name}`], { ...env, ...more });
      all.push(writer);
      const endpoint = Object.assign(writer, { name });
      c.writers.push(endpoint);
      return endpoint;
    },
    async startReader(name) {
      const reader = await startTiercache(['--mode=reader', `--instance-id=${name}`], env);
      all.push(reader);
      await eventually(
        `${name} ready`,
        async () => ((await fetch(`${reader.base}/ready`)).status === 200 ? true : undefined),
        60_000,
      );
      const endpoint = Object.assign(reader, { name });
      c.readers.push(endpoint);
      return endpoint;
    },
    async stopAll() {
      await Promise.all(
        all.map((p) => {
          // A stopped (SIGSTOP) process cannot act on SIGTERM.
          if (p.process.exitCode === null && p.process.signalCode === null) p.process.kill('SIGCONT');
          return p.stop();
        }),
      );
    },
  };
  return c;
}

/** A plain (unlabelled) metric of a tiercache process, as /metrics shows it now. */
export async function metric(base: string, name: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
}

/** Every reader proves its feed again (ready): answers from Redis alone would hide a feed that never came back. */
export async function allReady(c: Cluster): Promise<void> {
  for (const r of c.readers) {
    await eventually(
      `${r.name} ready again`,
      async () => ((await fetch(`${r.base}/ready`)).status === 200 ? true : undefined),
      90_000,
    );
  }
}

/**
 * Appends a scenario's figures (and any of its own) to .services/<suite>/figures.jsonl (docs/reliability.md
 * quotes a run).
 */
export function report<F extends Figures>(figures: F, suite: 'faults' | 'cluster' = 'faults'): void {
  const file = path.join(DIR, suite, 'figures.jsonl');
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.appendFileSync(file, `${JSON.stringify({ at: new Date().toISOString(), ...figures })}\n`);
  console.log(`[${suite}] ${JSON.stringify(figures)}`);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
