// Renders one run's figures as the plain-text summary `npm run bench` prints: every measurement beside
// the baseline it was taken against, and the ratio between them.
import type { LoadResult, RedisBenchmarkResult } from './load.js';
import type { PhaseResult, PropagationResult } from './propagation.js';
import type { Distribution, Quantile } from './stats.js';
import type { MemoryResult } from './memory.js';
import type { SubscriptionResult } from './subscriptions.js';
import type { MatrixRow } from './matrix.js';
import type { BacklogResult } from './backlog.js';

export interface Conditions {
  date: string;
  nproc: number;
  cpuModel: string;
  loadAverage: { start: number[]; end: number[] };
  node: string;
  redis: string;
  kafka: string;
  servicesStartedByBench: boolean;
  connections: number;
  durationSeconds: number;
  warmupSeconds: number;
  keysPerRead: number;
  keyBytes: number;
  valueBytes: number;
  responseBytes: number;
  kafkaPartitions: number;
}

export interface HotReads {
  baselineBefore: LoadResult;
  tiercache: LoadResult;
  baselineAfter: LoadResult;
  /** From the reader's /metrics over the measured run: how many keys memory and Redis answered. */
  keysFromMemory: number;
  keysFromRedis: number;
}

export interface FreshReads {
  tiercache: LoadResult;
  redisBenchmark: RedisBenchmarkResult | { skipped: string };
  graphqlRequests: number;
  storeReads: number;
  storeReadKeys: number;
}

export interface Report {
  runId: string;
  conditions: Conditions;
  /** Each section is absent when --only left it out. */
  hot?: HotReads;
  fresh?: FreshReads;
  propagation?: PropagationResult;
  memory: MemoryResult[];
  /** Phase 6, rendered by scripts/bench/subscriptions.ts; absent with --subscribers=0. */
  subscriptions?: SubscriptionResult;
  matrix: MatrixRow[];
  /** Section 8, rendered by scripts/bench/backlog.ts. */
  backlog?: BacklogResult;
  leftoverPids: number[];
}

const ms = (value: number): string =>
  Number.isNaN(value)
    ? '–'
    : value < 10
      ? value.toFixed(2)
      : value < 100
        ? value.toFixed(1)
        : value.toFixed(0);
const quantile = (q: Quantile): string => (q.overflow ? `>${ms(q.value)}` : ms(q.value));
const ratio = (value: number): string => (Number.isFinite(value) ? `${value.toFixed(2)}×` : '–');

/** Columns padded to fit; a row of one cell is a heading for the rows below it and sets no width. */
function table(header: string[], rows: string[][]): string {
  const cells = rows.filter((r) => r.length > 1);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)));
  const line = (row: string[]): string =>
    row.length === 1
      ? (row[0] ?? '')
      : row.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

function loadRow(what: string, r: LoadResult, versus: string): string[] {
  const l = r.latencyMs;
  return [
    what,
    r.rps.toFixed(0),
    ms(l.mean),
    ms(l.p50),
    ms(l.p90),
    ms(l.p99),
    ms(l.max),
    String(r.failed),
    versus,
  ];
}

function versus(r: LoadResult, base: { rps: number; p50: number; p99: number }): string {
  return `${ratio(r.rps / base.rps)} req/s, ${ratio(r.latencyMs.p50 / base.p50)} p50, ${ratio(r.latencyMs.p99 / base.p99)} p99`;
}

function latencyRow(what: string, d: Distribution, note = ''): string[] {
  return [what, String(d.count), ms(d.mean), ms(d.p50), ms(d.p90), ms(d.p99), ms(d.max), note];
}

export function render({
  runId,
  conditions: c,
  hot,
  fresh,
  propagation: p,
  memory,
  matrix,
  leftoverPids,
}: Report): string {
  const out: string[] = [];
  out.push(
    `tiercache benchmark ${c.date} (run ${runId})`,
    `${c.nproc} cores (${c.cpuModel}), load average ${c.loadAverage.start.map((n) => n.toFixed(2)).join(' ')} at start, ` +
      `${c.loadAverage.end.map((n) => n.toFixed(2)).join(' ')} at end; node ${c.node}, Redis ${c.redis}, Kafka ${c.kafka}`,
    `reads: ${c.connections} keep-alive connections, ${c.durationSeconds} s each after ${c.warmupSeconds} s warm-up; ` +
      `${c.keysPerRead} keys of ${c.keyBytes} B with ${c.valueBytes} B values, response ${c.responseBytes} B`,
    '',
  );

  if (!hot && fresh) {
    // --only=fresh without hot: the fresh figures on their own.
    const rb = fresh.redisBenchmark;
    out.push(
      `3b. fresh reads: values(10 keys, fresh) ${fresh.tiercache.rps.toFixed(0)} req/s, p50 ${ms(fresh.tiercache.latencyMs.p50)} ms, ` +
        `p99 ${ms(fresh.tiercache.latencyMs.p99)} ms; ` +
        ('skipped' in rb
          ? rb.skipped
          : `redis-benchmark MGET ${rb.rps.toFixed(0)}/s (${ratio(fresh.tiercache.rps / rb.rps)})`),
      `   ${fresh.storeReads} MGETs for ${fresh.graphqlRequests} requests = ` +
        `${(fresh.storeReads / fresh.graphqlRequests).toFixed(3)} MGETs per request, ` +
        `${(fresh.storeReadKeys / fresh.storeReads).toFixed(1)} keys per MGET`,
      '',
    );
  }
  if (hot && fresh) {
    const base = {
      rps: (hot.baselineBefore.rps + hot.baselineAfter.rps) / 2,
      p50: (hot.baselineBefore.latencyMs.p50 + hot.baselineAfter.latencyMs.p50) / 2,
      p99: (hot.baselineBefore.latencyMs.p99 + hot.baselineAfter.latencyMs.p99) / 2,
    };
    const header = [
      'reads (latency in ms)',
      'req/s',
      'mean',
      'p50',
      'p90',
      'p99',
      'max',
      'failed',
      'vs baseline',
    ];
    const rows = [
      loadRow('baseline: node:http, same bytes (before)', hot.baselineBefore, ''),
      loadRow('hot reads: values(10 keys), MEMORY', hot.tiercache, versus(hot.tiercache, base)),
      loadRow('baseline: node:http, same bytes (after)', hot.baselineAfter, ''),
      loadRow('fresh reads: values(10 keys, fresh), MGET', fresh.tiercache, ''),
    ];
    const rb = fresh.redisBenchmark;
    if ('skipped' in rb) {
      rows.push(['baseline: redis-benchmark MGET', 'skipped', '', '', '', '', '', '', rb.skipped]);
    } else {
      const l = rb.latencyMs;
      rows.push([
        'baseline: redis-benchmark MGET 10 keys',
        rb.rps.toFixed(0),
        ms(l.mean),
        ms(l.p50),
        `${ms(l.p95)}*`,
        ms(l.p99),
        ms(l.max),
        '0',
        '',
      ]);
      rows[3] = loadRow(
        'fresh reads: values(10 keys, fresh), MGET',
        fresh.tiercache,
        versus(fresh.tiercache, { rps: rb.rps, p50: l.p50, p99: l.p99 }),
      );
    }
    out.push(table(header, rows));
    if (!('skipped' in rb)) out.push('* redis-benchmark reports p95, not p90');
    out.push(
      `hot reads answered ${hot.keysFromMemory} keys from memory and ${hot.keysFromRedis} from Redis (reader /metrics)`,
      `fresh reads: ${fresh.storeReads} MGETs for ${fresh.graphqlRequests} requests = ` +
        `${(fresh.storeReads / fresh.graphqlRequests).toFixed(3)} MGETs per request, ` +
        `${(fresh.storeReadKeys / fresh.storeReads).toFixed(1)} keys per MGET (reader /metrics)`,
      '',
    );
  }
  if (p) {
    const { concurrent: cp, tracked: tp } = p;
    const readerRows = (phase: PhaseResult): string[][] =>
      phase.readers.map((r) => [
        `${r.name}: commit → applied (its histogram)`,
        String(r.changes),
        ms(r.meanMs),
        quantile(r.p50),
        quantile(r.p90),
        quantile(r.p99),
        '',
        `bucket-interpolated; trust changes ${r.trustChanges}`,
      ]);
    const propRows = [
      [
        `concurrent: ${cp.writes} writes, ${cp.concurrency} writers, ${cp.writesPerSecond.toFixed(0)} writes/s`,
      ],
      latencyRow('baseline: writer setValues round trip', cp.writerRoundTripMs, 'client-side, every write'),
      ...readerRows(cp),
      [`tracked: ${tp.writes} writes one at a time, each polled on both readers`],
      latencyRow('baseline: writer setValues round trip', tp.writerRoundTripMs, 'client-side, every write'),
      ...readerRows(tp),
      latencyRow(
        'both readers answer it from memory, after ack',
        tp.bothAfterAckMs,
        'client-observed per write',
      ),
      latencyRow('the same, from the send', tp.bothFromSendMs, 'round trip + the row above'),
    ];
    out.push(table(['propagation (ms)', 'count', 'mean', 'p50', 'p90', 'p99', 'max', 'how'], propRows));
    out.push(
      `propagation was measured after ${p.warmupWrites} unmeasured warm-up writes; tracked writes polled each ` +
        `reader ${tp.meanPolls.toFixed(1)} times on average (back to back, no pause), ${tp.timedOut} timed out`,
      '',
    );
  }
  if (matrix.length > 0) out.push('5. hot reads, writes and workers', matrixTable(matrix), '');
  if (memory.length > 0)
    out.push(
      table(
        [
          'memory tier, filled by feed changes',
          'entries',
          'RSS B/entry',
          'heap B/entry',
          'heap overhead',
          'counted',
          'collisions',
        ],
        memory.map((m) => [
          `${m.keyBytes} B keys, ${m.valueBytes} B values, after forced GC`,
          String(m.entries),
          String(m.rssBytesPerEntry),
          String(m.heapBytesPerEntry),
          String(m.heapOverheadPerEntry),
          String(m.countedBytesPerEntry),
          String(m.collisions),
        ]),
      ),
      'heap overhead = heap bytes per entry minus the key and value bytes; counted = what MEMORY_MAX_BYTES sees;',
      'collisions = entries let go of because another key found both its places taken (the figures are per entry held)',
      '',
    );
  out.push(
    leftoverPids.length === 0
      ? 'all processes the benchmark started are gone (ps)'
      : `LEFTOVER processes: ${leftoverPids.join(', ')}`,
  );
  return out.join('\n') + '\n';
}

/** Server CPU per answer of the baseline and tiercache, and the baseline's over tiercache's (as req/s ratios read). */
function cpu(b: LoadResult | null, t: LoadResult): string {
  const bt = b?.serverCpuUsPerRequest;
  const tt = t.serverCpuUsPerRequest;
  if (tt === undefined) return '–';
  if (bt === undefined) return `– / ${tt.toFixed(0)}`;
  return `${bt.toFixed(0)} / ${tt.toFixed(0)} (${ratio(bt / tt)})`;
}

/** The ratios of a row's repeated pairs as min–max (count); '–' for a row measured once. */
function spread(ratios: readonly number[] | undefined): string {
  if (!ratios || ratios.length < 2) return '–';
  return `${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)} (${ratios.length})`;
}

/** Section 5 as a Markdown table, the form docs/benchmarks.md keeps. */
export function matrixTable(rows: readonly MatrixRow[]): string {
  const lines = [
    '| what | conn. | baseline req/s | tiercache req/s | ratio | ratio min–max (pairs) | CPU µs/answer: baseline / tiercache (ratio) | p50 ms | p99 ms | baseline p50 / p99 ms | entries/s | failed |',
    '|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|',
  ];
  for (const r of rows) {
    const t = r.tiercache;
    const b = r.baseline;
    lines.push(
      `| ${r.what} | ${r.connections} | ${b ? b.rps.toFixed(0) : '–'} | ${t.rps.toFixed(0)} | ` +
        `${b ? ratio(t.rps / b.rps) : '–'} | ${spread(r.ratios)} | ${cpu(b, t)} | ${ms(t.latencyMs.p50)} | ${ms(t.latencyMs.p99)} | ` +
        `${b ? `${ms(b.latencyMs.p50)} / ${ms(b.latencyMs.p99)}` : '–'} | ` +
        `${r.entriesPerSecond === undefined ? '–' : r.entriesPerSecond.toFixed(0)} | ${t.failed + (b?.failed ?? 0)} |`,
    );
  }
  return lines.join('\n');
}
