// The store on a Redis Cluster next to the store on one Redis, in the same run on the same machine: MGETs
// and latency of cold reads, write entries/s, and what REDIS_MIN_REPLICAS_ACK=1 costs a write. Starts a
// single redis-server and a 3-master + 3-replica cluster of its own under .services/bench-cluster/ and stops
// them at the end.
//
//   npx tsx scripts/bench/cluster.ts [--seconds=5] [--concurrency=16]
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Redis, type Cluster } from 'ioredis';
import {
  connectRedisCluster,
  RedisClusterStore,
  waitUntilReady,
} from '../../src/adapters/redis-cluster-store.js';
import { RedisStore } from '../../src/adapters/redis-store.js';
import { setLogLevel } from '../../src/observability.js';
import type { Store, WriteOptions } from '../../src/ports.js';
import { freePort, stopPid } from '../services/processes.js';
import { REDIS, redisUrlFor, spawnRedis, startRedisCluster } from '../services/redis.js';
import { DIR } from '../services/state.js';
import { distribution } from './stats.js';

const KEEP: WriteOptions = { ttlMs: null, tombstoneTtlMs: 60_000, inlineValueMaxBytes: 65536 };
const VALUE = 'v'.repeat(100);

function flag(name: string, fallback: number): number {
  const given = process.argv.find((arg) => arg.startsWith(`--${name}=`));
  return given ? Number(given.split('=')[1]) : fallback;
}

interface Target {
  name: string;
  store: Store;
  /** MGET calls served so far, over every master. */
  mgets(): Promise<number>;
}

async function mgetsOf(clients: readonly Redis[]): Promise<number> {
  let calls = 0;
  for (const client of clients) {
    const stats = String(await client.info('commandstats'));
    calls += Number(/cmdstat_mget:calls=(\d+)/.exec(stats)?.[1] ?? 0);
  }
  return calls;
}

/** Reads of `size` distinct keys straight from the store (what a reader's cold misses cost), `rounds` times. */
async function coldReads(target: Target, size: number, rounds: number) {
  const latencies: number[] = [];
  const before = await target.mgets();
  for (let round = 0; round < rounds; round++) {
    // Half of cold-0 … cold-999 were written: MGET answers values and nils.
    const keys = Array.from({ length: size }, (_, i) => `cold-${(round * size + i) % 1000}`);
    const start = performance.now();
    await target.store.read(keys);
    latencies.push(performance.now() - start);
  }
  const mgets = ((await target.mgets()) - before) / rounds;
  return { size, mgetsPerRead: mgets, latencyMs: distribution(latencies) };
}

/** `concurrency` loops writing batches of `batch` random keys for `seconds`. */
async function writes(store: Store, batch: number, concurrency: number, seconds: number) {
  const latencies: number[] = [];
  let entries = 0;
  let failed = 0;
  const end = Date.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, loop) => {
      for (let n = 0; Date.now() < end; n++) {
        const ops = Array.from({ length: batch }, (_, i) => ({
          op: 'set' as const,
          key: `w-${loop}-${(n * batch + i) % 5000}`,
          value: VALUE,
        }));
        const start = performance.now();
        try {
          await store.write(ops, KEEP);
          entries += batch;
          latencies.push(performance.now() - start);
        } catch {
          failed++;
        }
      }
    }),
  );
  return {
    batch,
    concurrency,
    entriesPerSecond: Math.round(entries / seconds),
    failed,
    latencyMs: distribution(latencies),
  };
}

async function main(): Promise<void> {
  setLogLevel('warn');
  const seconds = flag('seconds', 5);
  const concurrency = flag('concurrency', 16);
  const dir = path.join(DIR, 'bench-cluster');
  fs.rmSync(dir, { recursive: true, force: true });
  const port = await freePort();
  let singlePid: number | undefined;
  await spawnRedis(path.join(dir, 'single'), port, (pid) => (singlePid = pid));
  const cluster = await startRedisCluster(path.join(dir, 'cluster'));
  const clients: Cluster[] = [];
  const single = new Redis(redisUrlFor(port));
  try {
    const connect = async (): Promise<Cluster> => {
      const client = connectRedisCluster(cluster.nodes);
      await waitUntilReady(client, 10_000);
      clients.push(client);
      return client;
    };
    const admin = await connect();
    const masters = (): Redis[] => admin.nodes('master');
    const targets = {
      single: {
        name: 'single Redis',
        store: new RedisStore({ redis: single, prefix: 'b:' }),
        mgets: () => mgetsOf([single]),
      },
      cluster: {
        name: 'Redis Cluster',
        store: new RedisClusterStore({ cluster: await connect(), prefix: 'b:' }),
        mgets: () => mgetsOf(masters()),
      },
    };
    const acked = new RedisClusterStore({ cluster: await connect(), prefix: 'b:', minReplicasAck: 1 });

    const results: Record<string, unknown> = {
      machine: 'shared with other helpers (2 cores)',
      redis: String(await single.info('server')).match(/redis_version:(\S+)/)?.[1],
      seconds,
      concurrency,
    };
    for (const target of Object.values(targets)) {
      await target.store.write(
        Array.from({ length: 500 }, (_, i) => ({ op: 'set' as const, key: `cold-${i}`, value: VALUE })),
        KEEP,
      );
      results[`${target.name}: cold reads`] = [
        await coldReads(target, 1, 200),
        await coldReads(target, 10, 200),
        await coldReads(target, 100, 100),
        await coldReads(target, 500, 40),
      ];
    }
    for (const batch of [1, 10]) {
      results[`writes, batches of ${batch}`] = {
        single: await writes(targets.single.store, batch, concurrency, seconds),
        cluster: await writes(targets.cluster.store, batch, concurrency, seconds),
        clusterMinReplicasAck1: await writes(acked, batch, concurrency, seconds),
      };
    }
    // One write at a time: the latency a lone client sees, without queueing behind others.
    results['writes, one at a time (batch of 1)'] = {
      single: await writes(targets.single.store, 1, 1, seconds),
      cluster: await writes(targets.cluster.store, 1, 1, seconds),
      clusterMinReplicasAck1: await writes(acked, 1, 1, seconds),
    };
    process.stdout.write(
      `${JSON.stringify(results, (_, value: unknown) => (typeof value === 'number' ? Math.round(value * 1000) / 1000 : value), 2)}\n`,
    );
  } finally {
    single.disconnect();
    for (const client of clients) client.disconnect();
    await cluster.stop();
    if (singlePid !== undefined) await stopPid(REDIS, singlePid);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
    process.exit(1);
  },
);
