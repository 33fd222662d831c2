// The same writer and two readers measured on the single-node services (one Redis, one Kafka broker) and on
// the clusters of `services:up --cluster` (Redis Cluster, 3-broker Kafka), one after the other in one run on
// one machine: propagation (write acknowledged → change applied by both readers: section 4's tracked phase
// and the readers' histograms), MGETs per cold read through a reader (INFO commandstats over every master),
// and write entries per second (section 5's write batches). Prints a Markdown table; saves
// .services/bench-cluster-propagation.json. docs/benchmarks.md ("On the clusters") quotes a run.
//
//   npm run bench -- --only=cluster [--writes=1000 --tracked=200 --duration=10]
//   npx tsx scripts/bench/cluster-propagation.ts --writes=1000 --tracked=200 --duration=10
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { Kafka, logLevel } from 'kafkajs';
import { connectRedisCluster, waitUntilReady } from '../../src/adapters/redis-cluster-store.js';
import { clusterServicesUp, servicesDown, servicesUp, type Scope } from '../services/index.js';
import { KAFKA_CLUSTER_NODES } from '../services/kafka-cluster.js';
import { values } from './api.js';
import { request } from './http.js';
import { startTiercache, stopAll, type Started } from './processes.js';
import { measurePropagation, type PropagationResult } from './propagation.js';
import { writeRows, type MatrixRow } from './matrix.js';
import { commandCalls, eventually } from '../../test/support/processes.js';
import { redisEnv, type RedisTarget } from '../../test/support/stores.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Keys per cold read, and reads of each size. */
const COLD_SIZES = [1, 10, 100];
const COLD_READS = 50;
const OUTPUT = path.join(ROOT, '.services', 'bench-cluster-propagation.json');

interface Options {
  writes: number;
  tracked: number;
  duration: number;
}
const LIMITS: Record<keyof Options, [number, number, number]> = {
  writes: [10, 20_000, 1000],
  tracked: [0, 2000, 200],
  duration: [1, 60, 10],
};

interface TargetResult {
  target: Scope;
  redis: string;
  kafkaBrokers: number;
  replicationFactor: number;
  propagation: PropagationResult;
  /** MGET calls per GraphQL read of `keys` keys no reader holds, through one reader. */
  coldReads: { keys: number; mgetsPerRead: number }[];
  writes: MatrixRow[];
}

function log(message: string): void {
  process.stderr.write(`[bench:cluster-propagation] ${message}\n`);
}

function parse(argv: readonly string[]): Options {
  const options: Options = {
    writes: LIMITS.writes[2],
    tracked: LIMITS.tracked[2],
    duration: LIMITS.duration[2],
  };
  for (const arg of argv) {
    const match = /^--([a-z]+)=(\d+)$/.exec(arg);
    const name = match?.[1] as keyof Options | undefined;
    const limits = name ? LIMITS[name] : undefined;
    const value = Number(match?.[2]);
    if (!name || !limits || value < limits[0] || value > limits[1]) {
      throw new Error(
        `bad argument ${arg}; usage: npx tsx scripts/bench/cluster-propagation.ts ${Object.entries(LIMITS)
          .map(([k, [min, max, d]]) => `[--${k}=${min}..${max}, default ${d}]`)
          .join(' ')}`,
      );
    }
    options[name] = value;
  }
  return options;
}

interface Target {
  target: Scope;
  redis: RedisTarget;
  kafkaBrokers: string;
}

/** MGET calls served so far by `redis` (every master of a cluster), from INFO commandstats. */
async function mgetCounter(redis: RedisTarget): Promise<{ calls(): Promise<number>; close(): void }> {
  if ('redisUrl' in redis) {
    const client = new Redis(redis.redisUrl);
    return { calls: () => commandCalls(client, 'mget'), close: () => client.disconnect() };
  }
  const cluster = connectRedisCluster(redis.redisClusterNodes.split(','));
  await waitUntilReady(cluster, 10_000);
  return {
    calls: async () => {
      const counts = await Promise.all(cluster.nodes('master').map((node) => commandCalls(node, 'mget')));
      return counts.reduce((sum, n) => sum + n, 0);
    },
    close: () => cluster.disconnect(),
  };
}

/**
 * Reads of keys never written (so in no memory tier, answered by Redis), one request at a time so that each
 * request is one batch of misses; MGETs counted on the servers. Nothing else reads or writes meanwhile.
 */
async function coldReads(reader: string, redis: RedisTarget, id: string): Promise<TargetResult['coldReads']> {
  const counter = await mgetCounter(redis);
  try {
    const results: TargetResult['coldReads'] = [];
    for (const size of COLD_SIZES) {
      const before = await counter.calls();
      for (let round = 0; round < COLD_READS; round++) {
        const keys = Array.from({ length: size }, (_, i) => `cold-${id}-${size}-${round}-${i}`);
        await values(reader, keys);
      }
      results.push({ keys: size, mgetsPerRead: ((await counter.calls()) - before) / COLD_READS });
    }
    return results;
  } finally {
    counter.close();
  }
}

/**
 * Measures one target in this process (the child the parent starts per target: the bench helpers count
 * the run's writes in a module variable, which a second target in the same process would inherit).
 */
async function measureTarget({ target, redis, kafkaBrokers }: Target, o: Options): Promise<TargetResult> {
  const id = `${target}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  const replicationFactor = target === 'cluster' ? KAFKA_CLUSTER_NODES : 1;
  const env = {
    ...redisEnv(redis),
    KAFKA_BROKERS: kafkaBrokers,
    KAFKA_TOPIC: `tiercache.bench.${id}`,
    KAFKA_PARTITIONS: '6',
    KAFKA_REPLICATION_FACTOR: String(replicationFactor),
    REDIS_KEY_PREFIX: `bench:${id}:`,
    // FEED_MAX_LAG_MS stays at its default (5 s): a reader that loses trust under a backlog is part of what
    // this measures (trustChanges in the JSON).
    LOG_LEVEL: 'info',
  };
  log(`${target}: a writer and two readers on ${JSON.stringify(redis)} and ${kafkaBrokers}`);
  try {
    const writer = await startTiercache('writer', ['--mode=writer'], env);
    const readers: Started[] = await Promise.all(
      ['r1', 'r2'].map((name) =>
        startTiercache(name, ['--mode=reader', `--instance-id=bench-${id}-${name}`], env),
      ),
    );
    for (const reader of readers) {
      await eventually(
        `${reader.name} ready`,
        async () => (await request(`${reader.base}/ready`)).status === 200 || undefined,
        120_000,
      );
    }
    log(`${target}: propagation, ${o.writes} writes by 4 writers, then ${o.tracked} tracked one at a time`);
    const propagation = await measurePropagation({
      writer: writer.base,
      readers: readers.map((r) => ({ name: r.name, base: r.base })),
      writes: o.writes,
      concurrency: 4,
      tracked: o.tracked,
      valueBytes: 100,
    });
    log(
      `${target}: cold reads of ${COLD_SIZES.join(', ')} keys, ${COLD_READS} each, through ${readers[0]!.name}`,
    );
    const cold = await coldReads(readers[0]!.base, redis, id);
    log(`${target}: write batches, ${o.duration} s each`);
    const writes = await writeRows({
      reader: readers[0]!.base,
      readerPid: readers[0]!.pid,
      repeat: 1,
      writer: writer.base,
      keys: [],
      connections: 50,
      writeConnections: 16,
      durationSeconds: o.duration,
      warmupSeconds: 2,
      scratchDir: path.dirname(OUTPUT),
      log,
    });
    return {
      target,
      redis: 'redisUrl' in redis ? 'single node' : 'Cluster, 3 masters + 3 replicas',
      kafkaBrokers: kafkaBrokers.split(',').length,
      replicationFactor,
      propagation,
      coldReads: cold,
      writes,
    };
  } finally {
    await stopAll();
    // Its topic would otherwise stay in the services' data for good.
    const admin = new Kafka({ brokers: kafkaBrokers.split(','), logLevel: logLevel.NOTHING }).admin();
    await admin
      .connect()
      .then(() => admin.deleteTopics({ topics: [env.KAFKA_TOPIC] }))
      .catch((error: unknown) => log(`could not delete topic ${env.KAFKA_TOPIC}: ${String(error)}`))
      .finally(() => admin.disconnect());
  }
}

/** Runs measureTarget in a child process of this script; resolves with what it printed. */
function measureInChild(target: Target, argv: readonly string[]): TargetResult {
  const child = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), ...argv], {
    cwd: ROOT,
    env: { ...process.env, BENCH_TARGET: JSON.stringify(target) },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 2],
    maxBuffer: 64 * 1024 * 1024,
  });
  if (child.status !== 0) throw new Error(`measuring ${target.target} failed (output above)`);
  return JSON.parse(child.stdout) as TargetResult;
}

function render(results: TargetResult[], conditions: string): string {
  const ms = (n: number): string => n.toFixed(1);
  const lines = [
    `Conditions: ${conditions}`,
    '',
    '| services | tracked: both readers have it after the ack, p50 / p99 ms | concurrent: reader histogram p50 / p99 ms | concurrent writes/s | setValues(1) entries/s | setValues(100) entries/s | cold-read MGETs per request (1 / 10 / 100 keys) | reader trust changes |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const r of results) {
    const t = r.propagation.tracked.bothAfterAckMs;
    const hist = r.propagation.concurrent.readers
      .map(
        (x) =>
          `${x.name} ${x.p50.value.toFixed(0)}${x.p50.overflow ? '+' : ''} / ${x.p99.value.toFixed(0)}${x.p99.overflow ? '+' : ''}`,
      )
      .join(', ');
    const entries = (n: string): string =>
      r.writes.find((w) => w.what === `GraphQL setValues(${n})`)?.entriesPerSecond?.toFixed(0) ?? 'n/a';
    const cold = r.coldReads.map((c) => c.mgetsPerRead.toFixed(1)).join(' / ');
    const trust = [r.propagation.concurrent, r.propagation.tracked]
      .flatMap((p) => p.readers.map((x) => x.trustChanges))
      .reduce((sum, n) => sum + n, 0);
    lines.push(
      `| ${r.target}: Redis ${r.redis}, Kafka ${r.kafkaBrokers} broker(s), RF ${r.replicationFactor} | ${ms(t.p50)} / ${ms(t.p99)} (n=${t.count}) | ${hist} | ${r.propagation.concurrent.writesPerSecond.toFixed(0)} | ${entries('1 entry')} | ${entries('100 entries')} | ${cold} | ${trust} |`,
    );
  }
  return `${lines.join('\n')}\n`;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const options = parse(argv);
  const child = process.env.BENCH_TARGET;
  if (child) {
    process.stdout.write(JSON.stringify(await measureTarget(JSON.parse(child) as Target, options)));
    return;
  }
  log('building dist/ (npm run build)');
  const build = spawnSync('npm', ['run', 'build', '--silent'], { cwd: ROOT, stdio: ['ignore', 2, 2] });
  if (build.status !== 0) throw new Error('npm run build failed (output above)');
  const loadBefore = os.loadavg()[0]!;
  const results: TargetResult[] = [];
  let stopSingle = false;
  let stopCluster = false;
  try {
    // The clusters start only once the single-node figures are taken, so that their JVMs do not weigh on
    // those (unless they were already up).
    const single = await servicesUp();
    stopSingle = single.started;
    results.push(
      measureInChild(
        { target: 'single', redis: { redisUrl: single.redisUrl }, kafkaBrokers: single.kafkaBrokers },
        argv,
      ),
    );
    const cluster = await clusterServicesUp({ writeEnv: false });
    stopCluster = cluster.started;
    results.push(
      measureInChild(
        {
          target: 'cluster',
          redis: { redisClusterNodes: cluster.redisClusterNodes },
          kafkaBrokers: cluster.kafkaBrokers,
        },
        argv,
      ),
    );
  } finally {
    if (stopCluster) await servicesDown({ only: 'cluster' });
    if (stopSingle) await servicesDown({ only: 'single' });
  }
  const conditions =
    `${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'unknown'}), load average ${loadBefore.toFixed(1)} ` +
    `before / ${os.loadavg()[0]!.toFixed(1)} after, Node ${process.version}, ${options.writes} concurrent + ` +
    `${options.tracked} tracked writes of 100 B, write batches ${options.duration} s at 16 connections, ` +
    `cold reads ${COLD_READS} per size one at a time, FEED_MAX_LAG_MS default (5000)`;
  fs.mkdirSync(path.dirname(OUTPUT), { recursive: true });
  fs.writeFileSync(OUTPUT, `${JSON.stringify({ options, conditions, results }, null, 2)}\n`);
  process.stdout.write(render(results, conditions));
  log(`wrote ${path.relative(ROOT, OUTPUT)}`);
}

main().then(
  () => process.exit(),
  (error: unknown) => {
    process.stderr.write(
      `[bench:cluster-propagation] failed: ${error instanceof Error ? error.stack : String(error)}\n`,
    );
    process.exit(1);
  },
);
