// Section 4: how long a write takes to reach every reader's memory tier, against the baseline of the
// writer's own setValues round trip in the same run. Two phases on the same processes:
//
// - concurrent: N writers write in a loop; each reader's commit→applied histogram (exact per reader, but
//   bucketed, and blind to which reader was last for a given write) is read before and after;
// - tracked: writes one at a time, each followed by polling both readers until both answer the new version
//   from memory: the per-write "both readers have it" that the histograms cannot give, as a client sees it.
//
// Polling would distort the concurrent phase (tight loops on 2 cores), hence the phases are kept apart.
import { performance } from 'node:perf_hooks';
import {
  SET_VALUES,
  countWritten,
  setValues,
  valueOf,
  waitAllApplied,
  waitInMemory,
  type SetValuesData,
} from './api.js';
import { graphqlBody, graphqlPost, scrape } from './http.js';
import {
  bucketDelta,
  bucketQuantile,
  distribution,
  histogram,
  total,
  type Distribution,
  type MetricSample,
  type Quantile,
} from './stats.js';

export interface PropagationOptions {
  writer: string;
  readers: { name: string; base: string }[];
  /** Writes in the concurrent phase, one entry per mutation. */
  writes: number;
  /** Writers writing at once in the concurrent phase, each in a loop. */
  concurrency: number;
  /** Writes in the tracked phase. */
  tracked: number;
  valueBytes: number;
}

export interface ReaderPropagation {
  name: string;
  changes: number;
  meanMs: number;
  p50: Quantile;
  p90: Quantile;
  p99: Quantile;
  /** Times this reader lost or regained trust in its feed meanwhile (it then clears its memory tier). */
  trustChanges: number;
}

export interface PhaseResult {
  writes: number;
  seconds: number;
  writesPerSecond: number;
  writerRoundTripMs: Distribution;
  readers: ReaderPropagation[];
}

export interface PropagationResult {
  warmupWrites: number;
  concurrent: PhaseResult & { concurrency: number };
  tracked: PhaseResult & {
    /** From the mutation's answer until both readers answered the new version from memory. */
    bothAfterAckMs: Distribution;
    /** The same from the moment the mutation was sent: what a client writing, then reading elsewhere, sees. */
    bothFromSendMs: Distribution;
    perReaderAfterAckMs: Distribution[];
    /** Polls each reader needed per tracked write, on average: how fine-grained the figures above are. */
    meanPolls: number;
    timedOut: number;
  };
}

const KEYS_PER_WRITER = 50;
const WARMUP_WRITES = 200;
const POLL_TIMEOUT_MS = 10_000;
// Bounds the tracked phase however slow propagation turns out to be; the writes done by then count.
const TRACKED_PHASE_MS = 90_000;
const HISTOGRAM = 'tiercache_reader_propagation_ms';
const TRUST = 'tiercache_reader_feed_trust_changes_total';

const keyOf = (pool: string, n: number): string => `prop:${pool}:${n % KEYS_PER_WRITER}`;

export async function measurePropagation(options: PropagationOptions): Promise<PropagationResult> {
  const { writer, readers, writes, concurrency, tracked, valueBytes } = options;
  const pools = [...Array.from({ length: concurrency }, (_, w) => `w${w}`), 'tracked'];

  // Every key is held in both memory tiers before it is written, so that a poll answers the old version
  // from memory until the change arrives; a poll of an unheld key would fill it from Redis and hide the feed.
  const preload = pools.flatMap((pool) =>
    Array.from({ length: KEYS_PER_WRITER }, (_, n) => ({
      key: keyOf(pool, n),
      value: valueOf('preload', valueBytes),
    })),
  );
  const preloaded = await setValues(writer, preload);
  for (const reader of readers) await waitInMemory(reader.base, preloaded);

  const write = async (
    key: string,
    tag: string,
  ): Promise<{ sent: number; acked: number; version: bigint }> => {
    const body = graphqlBody(SET_VALUES, { entries: [{ key, value: valueOf(tag, valueBytes) }] });
    const sent = performance.now();
    const data = await graphqlPost<SetValuesData>(writer, body);
    const acked = performance.now();
    countWritten(1);
    return { sent, acked, version: BigInt(data.setValues.written[0]?.version ?? '0') };
  };

  const writeConcurrently = async (count: number): Promise<number[]> => {
    const roundTrips: number[] = [];
    let next = 0;
    const worker = async (pool: string): Promise<void> => {
      for (let n = 0; next < count; n++) {
        const { sent, acked } = await write(keyOf(pool, n), `${pool}:${next++}:`);
        roundTrips.push(acked - sent);
      }
    };
    await Promise.all(pools.slice(0, concurrency).map(worker));
    return roundTrips;
  };

  // Unmeasured: the writer's and readers' first few hundred writes run cold (JIT), several times slower.
  await writeConcurrently(WARMUP_WRITES);

  const concurrent = await phase(readers, () => writeConcurrently(writes));

  const afterAck: number[] = [];
  const fromSend: number[] = [];
  const perReader: number[][] = readers.map(() => []);
  let polls = 0;
  let timedOut = 0;
  const trackedPhase = await phase(readers, async () => {
    const roundTrips: number[] = [];
    const deadline = performance.now() + TRACKED_PHASE_MS;
    for (let n = 0; n < tracked && performance.now() < deadline; n++) {
      const key = keyOf('tracked', n);
      const { sent, acked, version } = await write(key, `tracked:${n}:`);
      roundTrips.push(acked - sent);
      try {
        const seen = await Promise.all(readers.map((r) => pollUntilHeld(r.base, key, version)));
        const last = Math.max(...seen.map((s) => s.at));
        afterAck.push(last - acked);
        fromSend.push(last - sent);
        seen.forEach((s, r) => perReader[r]?.push(s.at - acked));
        for (const s of seen) polls += s.polls;
      } catch {
        timedOut++;
      }
    }
    return roundTrips;
  });

  return {
    warmupWrites: WARMUP_WRITES,
    concurrent: { ...concurrent, concurrency },
    tracked: {
      ...trackedPhase,
      bothAfterAckMs: distribution(afterAck),
      bothFromSendMs: distribution(fromSend),
      perReaderAfterAckMs: perReader.map((samples) => distribution(samples)),
      meanPolls: afterAck.length === 0 ? NaN : polls / (afterAck.length * readers.length),
      timedOut,
    },
  };
}

/** Runs `writeAll` between two scrapes of every reader, each taken once the reader has applied all writes. */
async function phase(
  readers: PropagationOptions['readers'],
  writeAll: () => Promise<number[]>,
): Promise<PhaseResult> {
  const scrapeAll = async (): Promise<MetricSample[][]> => {
    for (const reader of readers) await waitAllApplied(reader.base);
    return Promise.all(readers.map((r) => scrape(r.base)));
  };
  const before = await scrapeAll();
  const started = performance.now();
  const roundTrips = await writeAll();
  const seconds = (performance.now() - started) / 1000;
  const after = await scrapeAll();
  return {
    writes: roundTrips.length,
    seconds,
    writesPerSecond: roundTrips.length / seconds,
    writerRoundTripMs: distribution(roundTrips),
    readers: readers.map((r, i) => readerFigures(r.name, before[i] ?? [], after[i] ?? [])),
  };
}

/**
 * Asks `reader` for `key` back to back, no pause, until memory answers `version` or newer; resolves with
 * when that answer arrived. Each answer may lag the change by up to one poll's round trip.
 */
async function pollUntilHeld(
  reader: string,
  key: string,
  version: bigint,
): Promise<{ at: number; polls: number }> {
  const body = graphqlBody('query ($key: String!) { value(key: $key) { source version } }', { key });
  const deadline = performance.now() + POLL_TIMEOUT_MS;
  for (let polls = 1; ; polls++) {
    const { value } = await graphqlPost<{ value: { source: string; version: string | null } }>(reader, body);
    const at = performance.now();
    if (value.source === 'MEMORY' && value.version !== null && BigInt(value.version) >= version) {
      return { at, polls };
    }
    if (at > deadline)
      throw new Error(`${reader} did not show ${key}@${version} within ${POLL_TIMEOUT_MS} ms`);
  }
}

function readerFigures(name: string, before: MetricSample[], after: MetricSample[]): ReaderPropagation {
  const delta = bucketDelta(histogram(before, HISTOGRAM), histogram(after, HISTOGRAM));
  const changes = total(after, `${HISTOGRAM}_count`) - total(before, `${HISTOGRAM}_count`);
  const sumMs = total(after, `${HISTOGRAM}_sum`) - total(before, `${HISTOGRAM}_sum`);
  return {
    name,
    changes,
    meanMs: sumMs / changes,
    p50: bucketQuantile(delta, 0.5),
    p90: bucketQuantile(delta, 0.9),
    p99: bucketQuantile(delta, 0.99),
    trustChanges: total(after, TRUST) - total(before, TRUST),
  };
}
