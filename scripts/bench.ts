// `npm run bench`: measures tiercache's reads and change propagation on real processes, real Redis and
// real Kafka, each figure against a baseline taken in the same run, and prints and saves the summary
// (.services/bench-latest.json). docs/benchmarks.md explains every section and keeps measured figures.
//
//   npm run bench -- --duration=10 --connections=50 --writes=1000
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { Kafka, logLevel } from 'kafkajs';
import { servicesDown, servicesUp } from './services/index.js';
import { eventually } from '../test/support/processes.js';
import { setValues, valueOf, waitAllApplied, waitInMemory } from './bench/api.js';
import { closeClient, request } from './bench/http.js';
import { startTiercache, stop, stopAll, type Started } from './bench/processes.js';
import { newestProfile, renderSummary, summarize, type ProfileSummary } from './bench/profile.js';
import { measurePropagation } from './bench/propagation.js';
import { freshReads, hotReads, type ReadSetup } from './bench/reads.js';
import { matrixTable, render, type Conditions, type Report } from './bench/report.js';
import type { MemoryResult } from './bench/memory.js';
import { measureSubscriptions, renderSubscriptions } from './bench/subscriptions.js';
import {
  hotMatrix,
  latencyRows,
  workersRows,
  writeRows,
  type MatrixRow,
  type MatrixSetup,
} from './bench/matrix.js';
import { measureBacklog, renderBacklog, type BacklogResult } from './bench/backlog.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const OUTPUT = path.join(ROOT, '.services', 'bench-latest.json');
const MARKDOWN_OUTPUT = path.join(ROOT, '.services', 'bench-latest.md');
const PROFILE_OUTPUT = path.join(ROOT, '.services', 'profile-latest.json');
const PROFILE_DIR = path.join(ROOT, '.services', 'profiles');
// tiercache's default, written down here because the run reports it and sets it explicitly.
const KAFKA_PARTITIONS = 6;

interface Options {
  duration: number;
  warmup: number;
  connections: number;
  keys: number;
  valueBytes: number;
  redisRequests: number;
  writes: number;
  writers: number;
  tracked: number;
  subscribers: number;
  subKeys: number;
  subRate: number;
  subDuration: number;
  workers: number;
  matrix: number;
  repeat: number;
  /** Sections to run (--only=a,b); all of them by default. */
  only: ReadonlySet<Section>;
  build: boolean;
  /** CPU-profile the reader under the hot-read load (section 3a only) and print its top frames. */
  profile: boolean;
  /** Run the subscription phase's reader under node --cpu-prof and print its top frames after the report. */
  profileSubscriptions: boolean;
}

const DEFAULTS: Options = {
  duration: 10,
  warmup: 5,
  connections: 50,
  keys: 10,
  valueBytes: 100,
  redisRequests: 100_000,
  writes: 1000,
  writers: 4,
  tracked: 200,
  subscribers: 10_000,
  subKeys: 1000,
  subRate: 200,
  subDuration: 10,
  workers: 2,
  matrix: 1,
  repeat: 1,
  only: new Set(),
  build: true,
  profile: false,
  profileSubscriptions: false,
};

// Bounds keep a run short and loopback-friendly whatever is asked: the default run takes about 2 minutes.
/** The sections --only can pick. */
const SECTIONS = [
  'hot',
  'fresh',
  'memory',
  'propagation',
  'subscriptions',
  'matrix',
  'latency',
  'workers',
  'writes',
  'backlog',
  // Not part of a default run (it starts both clusters, minutes and 3 JVMs): only when named.
  'cluster',
] as const;
type Section = (typeof SECTIONS)[number];

const LIMITS: Record<
  Exclude<keyof Options, 'build' | 'profile' | 'profileSubscriptions' | 'only'>,
  [number, number, string]
> = {
  duration: [1, 60, 'seconds of each measured load run'],
  warmup: [0, 30, 'seconds of unmeasured load before each run'],
  connections: [1, 500, 'concurrent keep-alive connections (and redis-benchmark clients)'],
  keys: [1, 100, 'keys per read'],
  valueBytes: [1, 65_536, 'bytes per value'],
  redisRequests: [1000, 2_000_000, 'MGETs redis-benchmark sends'],
  writes: [10, 20_000, "single-entry writes for the readers' propagation histograms"],
  writers: [1, 32, 'writers writing at once in that phase'],
  tracked: [0, 2000, 'further writes, one at a time, each polled for on both readers'],
  subscribers: [0, 15_000, 'SSE subscribers on one reader in the subscription phase (0: skip it)'],
  subKeys: [1, 100_000, 'keys the subscribers are spread over (one key each)'],
  subRate: [1, 5000, 'writes per second during the subscription phase'],
  subDuration: [1, 60, 'seconds of writes in the subscription phase'],
  workers: [0, 16, 'reader workers (--workers) for the scaling rows of section 5; 0: skip them'],
  matrix: [0, 1, 'section 5: 1/10/100-key GraphQL and REST reads and write batches (0: skip)'],
  repeat: [1, 10, 'baseline → tiercache pairs per hot row of sections 5 and 9 (median and spread shown)'],
};

const USAGE = `usage: npm run bench -- [--name=value ...]\n${Object.entries(LIMITS)
  .map(
    ([name, [min, max, help]]) =>
      `  --${flag(name)}=N  ${help} (${min}..${max}, default ${DEFAULTS[name as keyof Options]})`,
  )
  .join(
    '\n',
  )}\n  --only=SECTION,...  run only these sections: ${SECTIONS.join(', ')}\n  --no-build  use dist/ as it is\n  --profile  only the hot reads, with the reader under node --cpu-prof; prints its top frames\n  --profile-subscriptions  the subscription phase's reader under node --cpu-prof; prints its top frames\n`;

function flag(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

function parseOptions(argv: readonly string[]): Options {
  const options = { ...DEFAULTS };
  for (const arg of argv) {
    if (arg === '--help' || arg === '-h') {
      process.stdout.write(USAGE);
      process.exit(0);
    }
    if (arg === '--no-build') {
      options.build = false;
      continue;
    }
    if (arg === '--profile') {
      options.profile = true;
      continue;
    }
    if (arg === '--profile-subscriptions') {
      options.profileSubscriptions = true;
      continue;
    }
    if (arg.startsWith('--only=')) {
      const names = arg.slice('--only='.length).split(',');
      const unknown = names.filter((n) => !(SECTIONS as readonly string[]).includes(n));
      if (unknown.length > 0)
        throw new Error(`bad argument ${arg}: no section ${unknown.join(', ')}\n${USAGE}`);
      options.only = new Set(names as Section[]);
      continue;
    }
    const match = /^--([a-z-]+)=(\d+)$/.exec(arg);
    const name = Object.keys(LIMITS).find((n) => flag(n) === match?.[1]) as keyof typeof LIMITS | undefined;
    const [min, max] = name ? LIMITS[name] : [0, 0];
    const value = Number(match?.[2]);
    if (!name || value < min || value > max) throw new Error(`bad argument ${arg}\n${USAGE}`);
    options[name] = value;
  }
  return options;
}

function log(message: string): void {
  // stdout carries only the summary.
  process.stderr.write(`[bench] ${message}\n`);
}

// ---------------------------------------------------------------------------------------------------------

interface Run {
  id: string;
  /** REDIS_URL and KAFKA_BROKERS came from the environment: their versions may be anyone's. */
  servicesGiven: boolean;
  /** servicesUp() started them, so the run stops them at its end. */
  servicesStarted: boolean;
  env: Record<string, string>;
  redisUrl: string;
  kafkaBrokers: string;
  prefix: string;
  topic: string;
}

async function main(options: Options): Promise<void> {
  const given = Boolean(process.env.REDIS_URL && process.env.KAFKA_BROKERS);
  const services = await servicesUp();
  const id = `${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  const run: Run = {
    id,
    servicesGiven: given,
    servicesStarted: services.started,
    redisUrl: services.redisUrl,
    kafkaBrokers: services.kafkaBrokers,
    prefix: `bench:${id}:`,
    topic: `tiercache.bench.${id}`,
    env: {
      REDIS_URL: services.redisUrl,
      KAFKA_BROKERS: services.kafkaBrokers,
      KAFKA_TOPIC: `tiercache.bench.${id}`,
      KAFKA_PARTITIONS: String(KAFKA_PARTITIONS),
      REDIS_KEY_PREFIX: `bench:${id}:`,
      // The listening line is logged at info; nothing is logged per request at that level.
      LOG_LEVEL: 'info',
    },
  };
  onSignal(() => tearDown(run));
  let report: Omit<Report, 'leftoverPids'> | ProfileSummary | undefined;
  let failure: unknown;
  try {
    report = await measure(run, options);
  } catch (error) {
    failure = error;
  }
  const leftoverPids = await tearDown(run);
  if (failure !== undefined) throw failure;
  if (!report) return;
  if ('top' in report) {
    fs.writeFileSync(PROFILE_OUTPUT, `${JSON.stringify({ options, ...report }, null, 2)}\n`);
    process.stdout.write(renderSummary(report, 'reader CPU profile under hot reads'));
    log(`wrote ${path.relative(ROOT, PROFILE_OUTPUT)}`);
    return;
  }
  const full: Report = { ...report, leftoverPids };
  full.conditions.loadAverage.end = os.loadavg();
  fs.mkdirSync(path.dirname(OUTPUT), { recursive: true });
  fs.writeFileSync(OUTPUT, `${JSON.stringify({ options, ...full }, null, 2)}\n`);
  process.stdout.write(render(full));
  if (full.subscriptions) process.stdout.write(renderSubscriptions(full.subscriptions));
  if (full.backlog) process.stdout.write(renderBacklog(full.backlog));
  if (subscriptionProfile)
    process.stdout.write(renderSummary(subscriptionProfile, 'subscription reader CPU profile (phase 6)'));
  if (full.matrix.length > 0) {
    const c = full.conditions;
    fs.writeFileSync(
      MARKDOWN_OUTPUT,
      `Run \`${full.runId}\`, ${c.date}: ${c.nproc} cores (${c.cpuModel}), load average ` +
        `${c.loadAverage.start.map((n) => n.toFixed(1)).join(' ')} at start, ` +
        `${c.loadAverage.end.map((n) => n.toFixed(1)).join(' ')} at end; node ${c.node}; ` +
        `${c.durationSeconds} s measured after ${c.warmupSeconds} s warm-up per row; values ${c.valueBytes} B.\n\n` +
        `${matrixTable(full.matrix)}\n`,
    );
    log(`wrote ${path.relative(ROOT, MARKDOWN_OUTPUT)}`);
  }
  log(`wrote ${path.relative(ROOT, OUTPUT)}`);
  if (leftoverPids.length > 0) process.exitCode = 1;
}

/** Top frames of the subscription phase's reader, with --profile-subscriptions. */
let subscriptionProfile: ProfileSummary | undefined;

async function measure(run: Run, o: Options): Promise<Omit<Report, 'leftoverPids'> | ProfileSummary> {
  const loadStart = os.loadavg();
  if (o.build) {
    log('building dist/ (npm run build)');
    const build = spawnSync('npm', ['run', 'build', '--silent'], { cwd: ROOT, stdio: ['ignore', 2, 2] });
    if (build.status !== 0) throw new Error('npm run build failed (output above)');
  }

  log(`starting a writer and two readers (topic ${run.topic}, key prefix ${run.prefix})`);
  const writer = await startTiercache('writer', ['--mode=writer'], run.env);
  const profileDir = path.join(PROFILE_DIR, run.id);
  const readers = await Promise.all(
    ['r1', 'r2'].map((name) =>
      startTiercache(
        name,
        ['--mode=reader', `--instance-id=bench-${run.id}-${name}`],
        run.env,
        // Written when the process exits cleanly (SIGTERM), so the profile is read after stopping it.
        o.profile && name === 'r1' ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [],
      ),
    ),
  );
  for (const reader of readers) {
    await eventually(
      `${reader.name} ready`,
      async () => (await request(`${reader.base}/ready`)).status === 200 || undefined,
      60_000,
    );
  }
  const [r1] = readers as [Started, Started];

  const keys = Array.from({ length: o.keys }, (_, i) => `hot:${i}`);
  const versions = await setValues(
    writer.base,
    keys.map((key, i) => ({ key, value: valueOf(`hot:${i}:`, o.valueBytes) })),
  );
  await waitInMemory(r1.base, versions);
  await waitAllApplied(r1.base);

  const setup: ReadSetup = {
    reader: r1.base,
    keys,
    versions,
    connections: o.connections,
    durationSeconds: o.duration,
    warmupSeconds: o.warmup,
    scratchDir: path.dirname(OUTPUT),
    redisUrl: run.redisUrl,
    redisKeyPrefix: run.prefix,
    redisRequests: o.redisRequests,
  };
  const want = (section: Section): boolean => o.only.size === 0 || o.only.has(section);
  let hot: Report['hot'];
  let response: { body: Buffer } | undefined;
  if (want('hot') || o.profile) {
    log(`3a: hot reads and their baseline, ${o.connections} connections, ${o.duration} s each`);
    const measured = await hotReads(setup);
    ({ response, ...hot } = measured);
  }
  if (o.profile && hot) {
    await stop(r1.pid);
    const baselineRps = (hot.baselineBefore.rps + hot.baselineAfter.rps) / 2;
    log(
      `hot reads under the profiler: ${hot.tiercache.rps.toFixed(0)} req/s, baseline ${baselineRps.toFixed(0)} req/s ` +
        `(${(hot.tiercache.rps / baselineRps).toFixed(3)}×)`,
    );
    return summarize(newestProfile(profileDir));
  }
  let fresh: Report['fresh'];
  if (want('fresh')) {
    log('3b: fresh reads (memory skipped, MGET to Redis) and redis-benchmark');
    fresh = await freshReads(setup);
  }

  const memory: MemoryResult[] = [];
  if (want('memory')) {
    log('7: memory tier bytes per entry, 100 k and 1 M entries filled as the feed fills them');
    for (const entries of [100_000, 1_000_000]) memory.push(memoryPerEntry(entries, 7, o.valueBytes));
  }

  let propagation: Report['propagation'];
  if (want('propagation')) {
    log(
      `4: propagation, ${o.writes} writes by ${o.writers} writers, then ${o.tracked} tracked one at a time`,
    );
    propagation = await measurePropagation({
      writer: writer.base,
      readers: readers.map((r) => ({ name: r.name, base: r.base })),
      writes: o.writes,
      concurrency: o.writers,
      tracked: o.tracked,
      valueBytes: o.valueBytes,
    });
  }

  let subscriptions;
  if (o.subscribers > 0 && want('subscriptions')) {
    log(
      `6: ${o.subscribers} SSE subscribers on a reader of their own, ${o.subRate} writes/s for ${o.subDuration} s`,
    );
    // A reader of its own: the file descriptors and the connection cap must fit the subscribers.
    const subProfileDir = path.join(PROFILE_DIR, `${run.id}-subs`);
    const subReader = await startTiercache(
      'r-subs',
      ['--mode=reader', `--instance-id=bench-${run.id}-subs`],
      {
        ...run.env,
        MAX_CONNECTIONS: String(o.subscribers + 100),
        SUBSCRIPTIONS_PER_PROCESS: String(o.subscribers),
      },
      o.profileSubscriptions ? ['--cpu-prof', `--cpu-prof-dir=${subProfileDir}`] : [],
    );
    await eventually(
      'subscription reader ready',
      async () => (await request(`${subReader.base}/ready`)).status === 200 || undefined,
      60_000,
    );
    subscriptions = await measureSubscriptions({
      writer: writer.base,
      reader: subReader.base,
      readerPid: subReader.pid,
      subscribers: o.subscribers,
      keys: Math.min(o.subKeys, o.subscribers),
      rate: o.subRate,
      durationSeconds: o.subDuration,
      valueBytes: o.valueBytes,
    });
    if (o.profileSubscriptions) {
      // The profile is written when the process exits cleanly.
      await stop(subReader.pid);
      subscriptionProfile = summarize(newestProfile(subProfileDir));
    }
  }

  const matrix: MatrixRow[] = [];
  let backlog: BacklogResult | undefined;
  const sectionFive = ['matrix', 'latency', 'workers', 'writes', 'backlog'] as const;
  if (o.matrix > 0 && sectionFive.some(want)) {
    const matrixKeys = Array.from({ length: 100 }, (_, i) => `m:${i}`);
    const matrixVersions = await setValues(
      writer.base,
      matrixKeys.map((key, i) => ({ key, value: valueOf(`m:${i}:`, o.valueBytes) })),
    );
    await waitInMemory(r1.base, matrixVersions);
    const m: MatrixSetup = {
      reader: r1.base,
      readerPid: r1.pid,
      writer: writer.base,
      keys: matrixKeys,
      connections: o.connections,
      writeConnections: 10,
      durationSeconds: o.duration,
      warmupSeconds: o.warmup,
      repeat: o.repeat,
      scratchDir: path.dirname(OUTPUT),
      log,
    };
    if (want('matrix')) {
      log(`5: hot reads of 1, 10 and 100 keys, GraphQL and REST, each after its node:http baseline`);
      matrix.push(...(await hotMatrix(m)));
    }
    if (want('latency')) {
      log(
        '9: one connection: hot 10-key reads, GraphQL and REST, and GraphQL on a reader with FAST_PATH=false',
      );
      const yogaOnly = await startTiercache(
        'r-yoga',
        ['--mode=reader', `--instance-id=bench-${run.id}-yoga`],
        { ...run.env, FAST_PATH: 'false' },
      );
      await eventually(
        'the FAST_PATH=false reader ready',
        async () => (await request(`${yogaOnly.base}/ready`)).status === 200 || undefined,
        60_000,
      );
      matrix.push(...(await latencyRows(r1, yogaOnly, m)));
      await stop(yogaOnly.pid);
    }
    if (o.workers > 0 && want('workers')) {
      log(`5: the same reads on the one-worker reader, then on a reader with --workers=${o.workers}`);
      matrix.push(...(await workersRows(r1, 1, m)));
      const workersReader = await startTiercache(
        'rw',
        ['--mode=reader', `--instance-id=bench-${run.id}-rw`, `--workers=${o.workers}`],
        run.env,
      );
      await eventually(
        'the --workers reader ready',
        async () => (await request(`${workersReader.base}/ready`)).status === 200 || undefined,
        60_000,
      );
      matrix.push(...(await workersRows(workersReader, o.workers, m)));
      await stop(workersReader.pid);
    }
    if (want('writes')) {
      log('5: write batches of 1 and 100 entries, GraphQL and REST, 10 connections');
      matrix.push(...(await writeRows(m)));
    }
    if (want('backlog')) {
      log('8: hot reads while 100-entry writes flow as fast as the writer takes them');
      backlog = await measureBacklog({
        reader: r1.base,
        writer: writer.base,
        keys: matrixKeys,
        readConnections: o.connections,
        writeConnections: 10,
        batch: 100,
        durationSeconds: o.duration,
        log,
      });
    }
  }

  const conditions: Conditions = {
    date: new Date().toISOString(),
    nproc: Number(spawnSync('nproc', { encoding: 'utf8' }).stdout.trim()) || os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    loadAverage: { start: loadStart, end: [] },
    node: process.version,
    redis: await redisVersion(run.redisUrl),
    kafka: run.servicesGiven ? 'unknown (KAFKA_BROKERS given)' : kafkaVersion(),
    servicesStartedByBench: run.servicesStarted,
    connections: o.connections,
    durationSeconds: o.duration,
    warmupSeconds: o.warmup,
    keysPerRead: o.keys,
    keyBytes: Buffer.byteLength(keys[0] ?? ''),
    valueBytes: o.valueBytes,
    responseBytes: response?.body.length ?? 0,
    kafkaPartitions: KAFKA_PARTITIONS,
  };
  return { runId: run.id, conditions, hot, fresh, propagation, memory, subscriptions, matrix, backlog };
}

/** One fill of a fresh memory tier in a process of its own (scripts/bench/memory.ts). */
function memoryPerEntry(entries: number, keyBytes: number, valueBytes: number): MemoryResult {
  const child = spawnSync(
    process.execPath,
    [
      '--expose-gc',
      '--import',
      'tsx',
      'scripts/bench/memory.ts',
      String(entries),
      String(keyBytes),
      String(valueBytes),
    ],
    { cwd: ROOT, encoding: 'utf8', timeout: 300_000 },
  );
  if (child.status !== 0) throw new Error(`memory measurement failed: ${child.stderr}`);
  // The script prints one JSON line of this shape.
  return JSON.parse(child.stdout) as MemoryResult;
}

async function redisVersion(url: string): Promise<string> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    return /redis_version:(\S+)/.exec(await redis.info('server'))?.[1] ?? 'unknown';
  } finally {
    redis.disconnect();
  }
}

function kafkaVersion(): string {
  // The broker scripts/services runs is the jar it fetched.
  const lib = path.join(ROOT, '.services', 'kafka', 'lib');
  const jar = fs.existsSync(lib)
    ? fs.readdirSync(lib).find((f) => /^kafka_[\d.]+-[\d.]+\.jar$/.test(f))
    : undefined;
  return jar ? (/-([\d.]+)\.jar$/.exec(jar)?.[1] ?? 'unknown') : 'unknown';
}

// ---------------------------------------------------------------------------------------------------------
// Teardown

let tornDown: Promise<number[]> | undefined;

/** Stops what the run started and removes what it wrote; safe to call twice (a signal during the finish). */
function tearDown(run: Run): Promise<number[]> {
  tornDown ??= (async () => {
    const leftovers = await stopAll();
    closeClient();
    await Promise.allSettled([deleteKeys(run), deleteTopic(run)]).then((results) => {
      for (const r of results) if (r.status === 'rejected') log(`cleanup: ${String(r.reason)}`);
    });
    if (run.servicesStarted) await servicesDown();
    return leftovers;
  })();
  return tornDown;
}

async function deleteKeys(run: Run): Promise<void> {
  const redis = new Redis(run.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, found] = await redis.scan(cursor, 'MATCH', `${run.prefix}*`, 'COUNT', 1000);
      if (found.length > 0) await redis.unlink(...found);
      cursor = next;
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

async function deleteTopic(run: Run): Promise<void> {
  const admin = new Kafka({
    clientId: 'tiercache-bench',
    brokers: run.kafkaBrokers.split(','),
    logLevel: logLevel.NOTHING,
  }).admin();
  try {
    await admin.connect();
    await admin.deleteTopics({ topics: [run.topic], timeout: 10_000 });
  } finally {
    await admin.disconnect();
  }
}

/** Ctrl-C or a kill ends the run, never before what it started is stopped (the teardown runs once). */
function onSignal(handler: () => Promise<unknown>): void {
  const listener = (signal: NodeJS.Signals): void => {
    log(`${signal}: stopping everything the benchmark started`);
    void handler().finally(() => process.exit(130));
  };
  process.on('SIGINT', listener);
  process.on('SIGTERM', listener);
}

let options: Options;
try {
  options = parseOptions(process.argv.slice(2));
} catch (error) {
  process.stderr.write(`${(error as Error).message}`);
  process.exit(2);
}
/**
 * --only=cluster: scripts/bench/cluster-propagation.ts (its defaults), the single nodes next to the clusters,
 * after any other section asked for.
 */
async function run(o: Options): Promise<void> {
  const cluster = o.only.has('cluster');
  const others = new Set([...o.only].filter((section) => section !== 'cluster'));
  if (!cluster || others.size > 0) await main({ ...o, only: others });
  if (!cluster) return;
  log('the clusters: scripts/bench/cluster-propagation.ts');
  const child = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/bench/cluster-propagation.ts'], {
    cwd: ROOT,
    stdio: 'inherit',
  });
  if (child.status !== 0) throw new Error('scripts/bench/cluster-propagation.ts failed (output above)');
}

run(options).then(
  // Explicit exit: a kafkajs or ioredis handle left behind must not keep a finished run alive.
  () => process.exit(),
  (error: unknown) => {
    process.stderr.write(
      `[bench] failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exit(1);
  },
);
