// Section 3: read throughput and latency under load, each against its baseline in the same run.
//   3a hot reads (memory tier) vs a plain node:http server answering the very same bytes;
//   3b fresh reads (memory skipped, batched MGET) vs redis-benchmark sending the same MGET to the same Redis,
//      with the MGETs the reader issued per request, from its /metrics.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { values } from './api.js';
import type { RecordedResponse } from './baseline-server.js';
import { request, scrape, type Response } from './http.js';
import { findRedisBenchmark, httpLoad, redisBenchmark, type LoadResult } from './load.js';
import { startNode, type Started } from './processes.js';
import type { FreshReads, HotReads } from './report.js';
import { total } from './stats.js';

export interface ReadSetup {
  /** The reader under load. */
  reader: string;
  keys: readonly string[];
  /** The version each key was written with (the hot reads must answer exactly these). */
  versions: ReadonlyMap<string, bigint>;
  connections: number;
  durationSeconds: number;
  warmupSeconds: number;
  /** Where the baseline server's recorded response is handed over (a folder git ignores). */
  scratchDir: string;
  redisUrl: string;
  /** The reader's REDIS_KEY_PREFIX: redis-benchmark reads the very keys the reader reads. */
  redisKeyPrefix: string;
  redisRequests: number;
}

function readQuery(keys: readonly string[], fresh: boolean): string {
  const list = keys.map((k) => JSON.stringify(k)).join(', ');
  return JSON.stringify({
    query: `{ values(keys: [${list}]${fresh ? ', fresh: true' : ''}) { key value source version } }`,
  });
}

function loader(s: ReadSetup) {
  const load = (url: string, body: string, seconds: number): Promise<LoadResult> =>
    httpLoad({ url, body, connections: s.connections, durationSeconds: seconds });
  const warmUp = async (url: string, body: string): Promise<void> => {
    if (s.warmupSeconds > 0) await load(url, body, s.warmupSeconds);
  };
  /** A measured run of the reader between two scrapes of its /metrics. */
  const loadReader = async (body: string): Promise<{ result: LoadResult; delta: MetricDelta }> => {
    const url = `${s.reader}/graphql`;
    await warmUp(url, body);
    const before = await scrape(s.reader);
    const result = await load(url, body, s.durationSeconds);
    const after = await scrape(s.reader);
    return { result, delta: (name, labels = {}) => total(after, name, labels) - total(before, name, labels) };
  };
  return { load, warmUp, loadReader };
}

type MetricDelta = (name: string, labels?: Record<string, string>) => number;

export async function hotReads(s: ReadSetup): Promise<HotReads & { response: Response }> {
  const body = readQuery(s.keys, false);
  const response = await request(`${s.reader}/graphql`, 'POST', body);
  const answered = (
    JSON.parse(response.body.toString('utf8')) as {
      data?: { values?: { source: string; version: string }[] };
    }
  ).data?.values;
  const fromMemory =
    answered?.length === s.keys.length &&
    answered.every((e, i) => e.source === 'MEMORY' && e.version === String(s.versions.get(s.keys[i] ?? '')));
  if (response.status !== 200 || !fromMemory) {
    throw new Error(`the hot read is not answered from memory: ${response.body.toString('utf8')}`);
  }

  const baseline = await startBaseline(s.scratchDir, response);
  const echoed = await request(baseline.base, 'POST', body);
  if (!echoed.body.equals(response.body))
    throw new Error('the baseline server does not answer the same bytes');

  const { load, warmUp, loadReader } = loader(s);
  await warmUp(baseline.base, body);
  const baselineBefore = await load(baseline.base, body, s.durationSeconds);
  const { result, delta } = await loadReader(body);
  const baselineAfter = await load(baseline.base, body, s.durationSeconds);
  return {
    response,
    baselineBefore,
    tiercache: result,
    baselineAfter,
    keysFromMemory: delta('tiercache_reader_keys_total', { origin: 'memory' }),
    keysFromRedis: delta('tiercache_reader_keys_total', { origin: 'redis' }),
  };
}

export async function freshReads(s: ReadSetup): Promise<FreshReads> {
  const check = await values(s.reader, s.keys, true);
  if (check.some((e) => e.source !== 'REDIS' || e.version !== String(s.versions.get(e.key)))) {
    throw new Error(`the fresh read is not answered from Redis: ${JSON.stringify(check)}`);
  }
  const { result, delta } = await loader(s).loadReader(readQuery(s.keys, true));
  const binary = findRedisBenchmark();
  const mget = ['MGET', ...s.keys.map((k) => s.redisKeyPrefix + k)];
  return {
    tiercache: result,
    redisBenchmark: binary
      ? redisBenchmark(binary, s.redisUrl, s.connections, s.redisRequests, mget)
      : { skipped: 'redis-benchmark not found (Debian package redis-tools)' },
    graphqlRequests: delta('tiercache_http_requests_total', { route: '/graphql' }),
    storeReads: delta('tiercache_reader_store_reads_total'),
    storeReadKeys: delta('tiercache_reader_store_read_keys_total'),
  };
}

export async function startBaseline(scratchDir: string, response: Response): Promise<Started> {
  const file = path.join(scratchDir, `bench-response-${process.pid}.json`);
  const recorded: RecordedResponse = {
    status: response.status,
    rawHeaders: response.rawHeaders,
    bodyBase64: response.body.toString('base64'),
  };
  fs.mkdirSync(scratchDir, { recursive: true });
  fs.writeFileSync(file, JSON.stringify(recorded));
  try {
    return await startNode(
      'baseline',
      ['--import', 'tsx', 'scripts/bench/baseline-server.ts', file],
      {},
      /"msg":"baseline listening","url":"(http:\/\/[^"]+)"/,
    );
  } finally {
    // Read by the server before it listens (or it failed): either way no longer needed.
    fs.rmSync(file, { force: true });
  }
}
