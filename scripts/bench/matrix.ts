// Section 5: the hot-read matrix (1, 10 and 100 keys over GraphQL and REST, each against a bare node:http
// server answering the very same bytes, measured right before it), the same with the reader's --workers,
// and write batches (1 and 100 entries, GraphQL and REST) in entries per second.
import { stop, type Started } from './processes.js';
import { request } from './http.js';
import { cpuMs, httpLoad, type LoadResult } from './load.js';
import { startBaseline } from './reads.js';

export interface MatrixRow {
  what: string;
  connections: number;
  /** null for writes, which have no bare-server equivalent. */
  baseline: LoadResult | null;
  tiercache: LoadResult;
  /** Entries written per second (writes only). */
  entriesPerSecond?: number;
  /** tiercache over baseline req/s of each baseline → tiercache pair (--repeat); the row shows the median pair. */
  ratios?: number[];
}

export interface MatrixSetup {
  reader: string;
  /** The reader's pid, for its CPU time per answer. */
  readerPid: number;
  writer: string;
  /** Keys written beforehand and held in the reader's memory (at least 100). */
  keys: readonly string[];
  connections: number;
  writeConnections: number;
  durationSeconds: number;
  warmupSeconds: number;
  /** Baseline → tiercache pairs measured per hot row (the spread of the ratio is reported). */
  repeat: number;
  scratchDir: string;
  log: (message: string) => void;
}

interface Shape {
  what: string;
  /** Path below the base URL. */
  path: string;
  /** POST body; GET without one. */
  body?: string;
  /** Checks an answer of the reader: every key from memory. */
  fromMemory: (body: string) => boolean;
}

const ENTRY_FIELDS = '{ key value source version }';

function graphqlRead(keys: readonly string[]): Shape {
  const list = keys.map((k) => JSON.stringify(k)).join(', ');
  return {
    what: `GraphQL values(${keys.length} key${keys.length > 1 ? 's' : ''})`,
    path: '/graphql',
    body: JSON.stringify({ query: `{ values(keys: [${list}]) ${ENTRY_FIELDS} }` }),
    fromMemory: (text) => {
      const values = (JSON.parse(text) as { data?: { values?: { source: string }[] } }).data?.values;
      return values?.length === keys.length && values.every((e) => e.source === 'MEMORY');
    },
  };
}

function restRead(keys: readonly string[]): Shape {
  return {
    what: `REST GET /read (${keys.length} key${keys.length > 1 ? 's' : ''})`,
    path: `/read?keys=${keys.map(encodeURIComponent).join(',')}`,
    fromMemory: (text) => {
      const items = (JSON.parse(text) as { items?: { source: string }[] }).items;
      return items?.length === keys.length && items.every((e) => e.source === 'memory');
    },
  };
}

async function measure(
  url: string,
  body: string | undefined,
  connections: number,
  s: MatrixSetup,
  serverPid?: number,
): Promise<LoadResult> {
  if (s.warmupSeconds > 0) await httpLoad({ url, body, connections, durationSeconds: s.warmupSeconds });
  const before = serverPid === undefined ? 0 : cpuMs(serverPid);
  const result = await httpLoad({ url, body, connections, durationSeconds: s.durationSeconds });
  if (serverPid === undefined || result.ok === 0) return result;
  return { ...result, serverCpuUsPerRequest: ((cpuMs(serverPid) - before) * 1000) / result.ok };
}

/** One shape: the reader's answer recorded, checked, replayed by a baseline server measured right before. */
async function hotRow(
  { base: reader, pid: readerPid }: { base: string; pid: number },
  shape: Shape,
  s: MatrixSetup,
): Promise<MatrixRow> {
  const url = `${reader}${shape.path}`;
  const method = shape.body === undefined ? 'GET' : 'POST';
  // A worker that has not read these keys yet fills them from Redis first: ask until memory answers.
  let response = await request(url, method, shape.body);
  for (
    let i = 0;
    i < 50 && !(response.status === 200 && shape.fromMemory(response.body.toString('utf8')));
    i++
  )
    response = await request(url, method, shape.body);
  if (response.status !== 200 || !shape.fromMemory(response.body.toString('utf8')))
    throw new Error(
      `${shape.what} is not answered from memory: ${response.body.toString('utf8').slice(0, 300)}`,
    );
  let baseline: Started | undefined;
  try {
    baseline = await startBaseline(s.scratchDir, response);
    const echoed = await request(`${baseline.base}${shape.path}`, method, shape.body);
    if (!echoed.body.equals(response.body))
      throw new Error('the baseline server does not answer the same bytes');
    const pairs: { base: LoadResult; tiercache: LoadResult }[] = [];
    for (let i = 0; i < s.repeat; i++) {
      s.log(`  ${shape.what}: baseline, then tiercache (${i + 1} of ${s.repeat})`);
      const base = await measure(`${baseline.base}${shape.path}`, shape.body, s.connections, s, baseline.pid);
      pairs.push({ base, tiercache: await measure(url, shape.body, s.connections, s, readerPid) });
    }
    const ratioOf = (p: { base: LoadResult; tiercache: LoadResult }): number => p.tiercache.rps / p.base.rps;
    const sorted = [...pairs].sort((a, b) => ratioOf(a) - ratioOf(b));
    // The lower median for an even count: never flattering.
    const median = sorted[Math.floor((sorted.length - 1) / 2)]!;
    return {
      what: shape.what,
      connections: s.connections,
      baseline: median.base,
      tiercache: median.tiercache,
      ratios: pairs.map(ratioOf),
    };
  } finally {
    if (baseline) await stop(baseline.pid);
  }
}

export async function hotMatrix(s: MatrixSetup): Promise<MatrixRow[]> {
  const rows: MatrixRow[] = [];
  for (const n of [1, 10, 100]) {
    const keys = s.keys.slice(0, n);
    const reader = { base: s.reader, pid: s.readerPid };
    rows.push(await hotRow(reader, graphqlRead(keys), s));
    rows.push(await hotRow(reader, restRead(keys), s));
  }
  return rows;
}

/** Hot 10-key reads on a reader started with --workers (the load generator shares the cores). */
export async function workersRows(
  reader: { base: string; pid: number },
  workers: number,
  s: MatrixSetup,
): Promise<MatrixRow[]> {
  const keys = s.keys.slice(0, 10);
  const rows = [await hotRow(reader, graphqlRead(keys), s), await hotRow(reader, restRead(keys), s)];
  return rows.map((r) => ({ ...r, what: `${r.what}, --workers=${workers}` }));
}

/**
 * Latency at one connection: hot 10-key reads over GraphQL and REST on `reader`, and over GraphQL on
 * `yogaOnly` (a reader with FAST_PATH=false), each against its own baseline.
 */
export async function latencyRows(
  reader: { base: string; pid: number },
  yogaOnly: { base: string; pid: number },
  s: MatrixSetup,
): Promise<MatrixRow[]> {
  const one = { ...s, connections: 1 };
  const keys = s.keys.slice(0, 10);
  const rows = [await hotRow(reader, graphqlRead(keys), one), await hotRow(reader, restRead(keys), one)];
  const yoga = await hotRow(yogaOnly, graphqlRead(keys), one);
  return [...rows, { ...yoga, what: `${yoga.what}, FAST_PATH=false` }];
}

/** Write batches of 1 and 100 entries, over GraphQL and REST, the same keys rewritten each time. */
export async function writeRows(s: MatrixSetup): Promise<MatrixRow[]> {
  const rows: MatrixRow[] = [];
  for (const n of [1, 100]) {
    const entries = Array.from({ length: n }, (_, i) => ({ key: `w:${i}`, value: 'x'.repeat(100) }));
    const shapes = [
      {
        what: `GraphQL setValues(${n} entr${n > 1 ? 'ies' : 'y'})`,
        path: '/graphql',
        body: JSON.stringify({
          query: 'mutation ($e: [EntryInput!]!) { setValues(entries: $e) { written { key version } } }',
          variables: { e: entries },
        }),
      },
      {
        what: `REST POST /write (${n} entr${n > 1 ? 'ies' : 'y'})`,
        path: '/write',
        body: JSON.stringify({ items: entries }),
      },
    ];
    for (const shape of shapes) {
      const check = await request(`${s.writer}${shape.path}`, 'POST', shape.body);
      const text = check.body.toString('utf8');
      if (check.status !== 200 || text.includes('"errors"'))
        throw new Error(`${shape.what} failed: ${text.slice(0, 300)}`);
      s.log(`  ${shape.what}`);
      const result = await measure(`${s.writer}${shape.path}`, shape.body, s.writeConnections, s);
      rows.push({
        what: shape.what,
        connections: s.writeConnections,
        baseline: null,
        tiercache: result,
        entriesPerSecond: result.rps * n,
      });
    }
  }
  return rows;
}
