// A/B of the write path: one writer process (`--mode=writer`, no reader) of each of two or more builds, against
// the same Redis and Kafka, in interleaved rounds, so that whatever else loads the machine weighs on every
// build alike. Reports entries/s and, less sensitive to that load, CPU per entry: the writer's (from /proc,
// its relay included, measured until its outbox is drained) and Redis's (INFO cpu).
//
//   npm run services:up
//   git worktree add --detach /tmp/ab-old <commit> && (cd /tmp/ab-old && npm ci && npm run build)
//   npm run build && npx tsx scripts/bench/writes-ab.ts --build=old=/tmp/ab-old --build=new=.
//     [--rounds=2] [--duration=10] [--warmup=3] [--connections=10] [--batches=1,100] [--apis=graphql,rest]
//     [--profile]   (each writer under node --cpu-prof; top frames per build and batch printed at the end)
//
// A build is a project directory with dist/ built. Each writer gets its own key prefix and topic, so no
// build's outbox or announcements are mixed with another's. Prints a Markdown table; JSON in .services/.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Redis } from 'ioredis';
import { request } from './http.js';
import { cpuMs, httpLoad } from './load.js';
import { startNode, stop, stopAll } from './processes.js';
import { renderSummary, summarize } from './profile.js';

interface Options {
  builds: { label: string; dir: string }[];
  rounds: number;
  duration: number;
  warmup: number;
  connections: number;
  batches: number[];
  apis: ('graphql' | 'rest')[];
  profile: boolean;
}

interface Measured {
  label: string;
  round: number;
  api: string;
  batch: number;
  entriesPerSecond: number;
  failed: number;
  /** Writer CPU (user + system) per committed entry, from the end of warm-up until its outbox is empty. */
  writerCpuUsPerEntry: number;
  redisCpuUsPerEntry: number;
  /** How long the relay needed after the load stopped to empty the outbox (0 without an outbox). */
  drainSeconds: number;
  load: string;
}

function parse(argv: string[]): Options {
  const value = (name: string): string | undefined =>
    argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  const builds = argv
    .filter((a) => a.startsWith('--build='))
    .map((a) => {
      const [label, dir] = a.slice('--build='.length).split('=');
      if (!label || !dir) throw new Error(`--build wants label=dir, got ${a}`);
      const resolved = path.resolve(dir);
      if (!fs.existsSync(path.join(resolved, 'dist/main.js')))
        throw new Error(`${resolved}/dist/main.js missing: build it first (npm run build there)`);
      return { label, dir: resolved };
    });
  if (builds.length === 0) throw new Error('give one --build=label=dir or more');
  const number = (name: string, fallback: number): number => {
    const n = Number(value(name) ?? fallback);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number`);
    return n;
  };
  const apis = (value('apis') ?? 'graphql,rest').split(',');
  for (const api of apis) if (api !== 'graphql' && api !== 'rest') throw new Error(`unknown api ${api}`);
  return {
    builds,
    rounds: number('rounds', 2),
    duration: number('duration', 10),
    warmup: number('warmup', 3),
    connections: number('connections', 10),
    batches: (value('batches') ?? '1,100').split(',').map(Number),
    apis: apis as ('graphql' | 'rest')[],
    profile: argv.includes('--profile'),
  };
}

/** REDIS_URL and KAFKA_BROKERS from the environment, else from what `npm run services:up` wrote. */
function services(): { REDIS_URL: string; KAFKA_BROKERS: string } {
  const env: Record<string, string> = {};
  const file = '.services/env';
  if (fs.existsSync(file)) {
    for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
      const match = /^([A-Z_]+)=(.*)$/.exec(line);
      if (match?.[1] && match[2] !== undefined) env[match[1]] = match[2];
    }
  }
  const REDIS_URL = process.env.REDIS_URL ?? env.REDIS_URL;
  const KAFKA_BROKERS = process.env.KAFKA_BROKERS ?? env.KAFKA_BROKERS;
  if (!REDIS_URL || !KAFKA_BROKERS) throw new Error('no services: run `npm run services:up` first');
  return { REDIS_URL, KAFKA_BROKERS };
}

async function redisCpuMs(redis: Redis): Promise<number> {
  const info = await redis.info('cpu');
  const field = (name: string): number => Number(new RegExp(`^${name}:([0-9.]+)`, 'm').exec(info)?.[1] ?? 0);
  return (field('used_cpu_sys') + field('used_cpu_user')) * 1000;
}

function bodyOf(api: 'graphql' | 'rest', batch: number): { path: string; body: string } {
  const entries = Array.from({ length: batch }, (_, i) => ({ key: `w:${i}`, value: 'x'.repeat(100) }));
  return api === 'graphql'
    ? {
        path: '/graphql',
        body: JSON.stringify({
          query: 'mutation ($e: [EntryInput!]!) { setValues(entries: $e) { written { key version } } }',
          variables: { e: entries },
        }),
      }
    : { path: '/write', body: JSON.stringify({ items: entries }) };
}

const loadAverage = (): string =>
  os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

async function waitDrained(redis: Redis, outbox: string, timeoutMs: number): Promise<number> {
  const started = Date.now();
  // A build without an outbox never creates the stream: XLEN answers 0 at once.
  while ((await redis.xlen(outbox)) > 0) {
    if (Date.now() - started > timeoutMs) throw new Error(`${outbox} not drained in ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return (Date.now() - started) / 1000;
}

async function measureOne(
  o: Options,
  build: { label: string; dir: string },
  api: 'graphql' | 'rest',
  batch: number,
  round: number,
  redis: Redis,
  env: Record<string, string>,
  run: string,
  profileDir: string,
): Promise<Measured> {
  const prefix = `ab:${run}:${build.label}:${api}:${batch}:${round}:`;
  const nodeFlags = o.profile
    ? ['--cpu-prof', `--cpu-prof-dir=${path.join(profileDir, `${build.label}-${api}-${batch}`)}`]
    : [];
  const writer = await startNode(
    `writer ${build.label}`,
    [...nodeFlags, path.join(build.dir, 'dist/main.js'), '--port=0', '--mode=writer'],
    {
      ...env,
      REDIS_KEY_PREFIX: prefix,
      KAFKA_TOPIC: `tiercache.ab.${run}.${build.label}.${api}.${batch}.${round}`,
    },
    /"url":"(http:\/\/[^"]+)\/graphql"/m,
  );
  try {
    const { path: route, body } = bodyOf(api, batch);
    const url = `${writer.base}${route}`;
    const check = await request(url, 'POST', body);
    if (check.status !== 200 || check.body.toString('utf8').includes('"errors"'))
      throw new Error(`${build.label} ${api} write failed: ${check.body.toString('utf8').slice(0, 300)}`);
    await httpLoad({ url, body, connections: o.connections, durationSeconds: o.warmup });
    await waitDrained(redis, `${prefix}outbox`, 120_000);
    const cpu0 = cpuMs(writer.pid);
    const redis0 = await redisCpuMs(redis);
    const result = await httpLoad({ url, body, connections: o.connections, durationSeconds: o.duration });
    const drainSeconds = await waitDrained(redis, `${prefix}outbox`, 120_000);
    const entries = result.ok * batch;
    const writerCpu = cpuMs(writer.pid) - cpu0;
    const redisCpu = (await redisCpuMs(redis)) - redis0;
    return {
      label: build.label,
      round,
      api,
      batch,
      entriesPerSecond: entries / result.seconds,
      failed: result.failed,
      writerCpuUsPerEntry: (1000 * writerCpu) / entries,
      redisCpuUsPerEntry: (1000 * redisCpu) / entries,
      drainSeconds,
      load: loadAverage(),
    };
  } finally {
    await stop(writer.pid);
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

function table(o: Options, results: Measured[]): string {
  const lines = [
    '| shape | build | entries/s (each round) | writer CPU µs/entry | Redis CPU µs/entry | drain after load (s) |',
    '|---|---|---:|---:|---:|---:|',
  ];
  for (const api of o.apis) {
    for (const batch of o.batches) {
      for (const { label } of o.builds) {
        const rows = results.filter((r) => r.api === api && r.batch === batch && r.label === label);
        if (rows.length === 0) continue;
        const each = rows.map((r) => Math.round(r.entriesPerSecond)).join(' / ');
        lines.push(
          `| ${api} ${batch} | ${label} | ${each} | ${median(rows.map((r) => r.writerCpuUsPerEntry)).toFixed(1)} | ` +
            `${median(rows.map((r) => r.redisCpuUsPerEntry)).toFixed(1)} | ${median(rows.map((r) => r.drainSeconds)).toFixed(1)} |`,
        );
      }
    }
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const o = parse(process.argv.slice(2));
  const env = services();
  const run = Date.now().toString(36);
  const profileDir = path.resolve('.services/profiles/writes-ab', run);
  const redis = new Redis(env.REDIS_URL);
  const results: Measured[] = [];
  const started = new Date().toISOString();
  console.log(
    `writes A/B ${run}: ${o.builds.map((b) => `${b.label}=${b.dir}`).join(', ')}; load ${loadAverage()}`,
  );
  try {
    for (let round = 1; round <= o.rounds; round++) {
      // Alternate the order each round, so neither build always runs first after a pause.
      const order = round % 2 ? o.builds : [...o.builds].reverse();
      for (const api of o.apis) {
        for (const batch of o.batches) {
          for (const build of order) {
            const m = await measureOne(o, build, api, batch, round, redis, env, run, profileDir);
            results.push(m);
            console.log(
              `round ${round} ${api} ${batch} ${build.label}: ${Math.round(m.entriesPerSecond)} entries/s, ` +
                `writer ${m.writerCpuUsPerEntry.toFixed(1)} µs/entry, Redis ${m.redisCpuUsPerEntry.toFixed(1)} µs/entry, ` +
                `drained in ${m.drainSeconds.toFixed(1)} s, ${m.failed} failed; load ${m.load}`,
            );
          }
        }
      }
    }
  } finally {
    await redis.quit();
    const left = await stopAll();
    if (left.length > 0) console.error(`processes still running: ${left.join(' ')}`);
  }
  console.log(
    `\n${started} – ${new Date().toISOString()}, load ${loadAverage()}, ${o.connections} connections, ` +
      `${o.warmup} s warm-up + ${o.duration} s, ${o.rounds} rounds\n`,
  );
  console.log(table(o, results));
  if (o.profile) {
    for (const dir of fs.readdirSync(profileDir).sort()) {
      const files = fs.readdirSync(path.join(profileDir, dir)).filter((f) => f.endsWith('.cpuprofile'));
      for (const file of files)
        console.log('\n' + renderSummary(summarize(path.join(profileDir, dir, file), 20), dir));
    }
  }
  fs.mkdirSync('.services', { recursive: true });
  const out = `.services/writes-ab-${run}.json`;
  fs.writeFileSync(out, JSON.stringify({ started, options: o, results }, null, 2));
  console.log(`\nJSON: ${out}`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
