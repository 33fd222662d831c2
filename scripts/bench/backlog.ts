// Section 8: hot reads while writes flow as fast as the writer takes them, faster than a reader can apply
// them if it cannot keep up. Shows whether the reader falls behind (changes announced by the relay vs.
// applied by the reader, the feed lag its monitor reports each second) and what the feed monitor does then
// (trust changes: each one clears the memory tier, and reads go to Redis until the feed is proven again).
import { scrape } from './http.js';
import { httpLoad, type LoadResult } from './load.js';
import { total, type MetricSample } from './stats.js';

export interface BacklogSetup {
  reader: string;
  writer: string;
  /** Keys held in the reader's memory: the hot 10-key read. */
  keys: readonly string[];
  readConnections: number;
  writeConnections: number;
  /** Entries per write request (REST POST /write). */
  batch: number;
  durationSeconds: number;
  log: (message: string) => void;
}

export interface BacklogResult {
  batch: number;
  writeConnections: number;
  readConnections: number;
  /** The same hot reads with no writes, right before. */
  readsAlone: LoadResult;
  /** The hot reads while the writes flowed. */
  readsUnderWrites: LoadResult;
  writes: LoadResult;
  entriesPerSecond: number;
  /** Over the write window, from the writer's and the reader's /metrics. */
  announcedPerSecond: number;
  /** Changes the reader consumed from the feed, and of those, applied to its memory tier (while trusted). */
  receivedPerSecond: number;
  appliedPerSecond: number;
  /** The reader's tiercache_reader_feed_lag_ms, sampled each second during the window. */
  lagSamplesMs: number[];
  trustChanges: number;
  keysFromMemory: number;
  keysFromRedis: number;
  /** From the end of the writes until the reader consumed every change the relay announced; null: not within 120 s. */
  catchUpSeconds: number | null;
}

const APPLIED = 'tiercache_reader_changes_applied_total';
// Every change the reader consumed, trusted or not (applied counts only those taken while the feed is
// trusted): the count of its propagation histogram.
const RECEIVED = 'tiercache_reader_propagation_ms_count';
const ANNOUNCED = 'tiercache_writer_changes_announced_total';

export async function measureBacklog(s: BacklogSetup): Promise<BacklogResult> {
  const keys = s.keys.slice(0, 10);
  const url = `${s.reader}/graphql`;
  const body = JSON.stringify({
    query: `{ values(keys: [${keys.map((k) => JSON.stringify(k)).join(', ')}]) { key value source version } }`,
  });
  const read = (): Promise<LoadResult> =>
    httpLoad({ url, body, connections: s.readConnections, durationSeconds: s.durationSeconds });
  s.log('  hot reads alone');
  const readsAlone = await read();

  const entries = Array.from({ length: s.batch }, (_, i) => ({ key: `b:${i}`, value: 'x'.repeat(100) }));
  const [readerBefore, writerBefore] = await Promise.all([scrape(s.reader), scrape(s.writer)]);
  const lagSamplesMs: number[] = [];
  const sampler = setInterval(() => {
    scrape(s.reader).then(
      (m) => lagSamplesMs.push(total(m, 'tiercache_reader_feed_lag_ms')),
      () => undefined,
    );
  }, 1000);
  s.log(`  hot reads while ${s.batch}-entry writes flow on ${s.writeConnections} connections`);
  const started = Date.now();
  const [readsUnderWrites, writes] = await Promise.all([
    read(),
    httpLoad({
      url: `${s.writer}/write`,
      body: JSON.stringify({ items: entries }),
      connections: s.writeConnections,
      durationSeconds: s.durationSeconds,
    }),
  ]);
  clearInterval(sampler);
  const seconds = (Date.now() - started) / 1000;
  const [readerAfter, writerAfter] = await Promise.all([scrape(s.reader), scrape(s.writer)]);
  const delta = (after: MetricSample[], before: MetricSample[], name: string, labels = {}): number =>
    total(after, name, labels) - total(before, name, labels);

  s.log('  until the reader has consumed every change announced');
  const catchUpStart = Date.now();
  let catchUpSeconds: number | null = null;
  let lastAnnounced = -1;
  while (Date.now() - catchUpStart < 120_000) {
    const [r, w] = await Promise.all([scrape(s.reader), scrape(s.writer)]);
    const announced = delta(w, writerBefore, ANNOUNCED);
    // The relay may still be announcing what was committed: done once it stopped and the reader has it all.
    if (announced === lastAnnounced && delta(r, readerBefore, RECEIVED) >= announced) {
      catchUpSeconds = (Date.now() - catchUpStart) / 1000;
      break;
    }
    lastAnnounced = announced;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  return {
    batch: s.batch,
    writeConnections: s.writeConnections,
    readConnections: s.readConnections,
    readsAlone,
    readsUnderWrites,
    writes,
    entriesPerSecond: writes.rps * s.batch,
    announcedPerSecond: delta(writerAfter, writerBefore, ANNOUNCED) / seconds,
    receivedPerSecond: delta(readerAfter, readerBefore, RECEIVED) / seconds,
    appliedPerSecond: delta(readerAfter, readerBefore, APPLIED) / seconds,
    lagSamplesMs,
    trustChanges: delta(readerAfter, readerBefore, 'tiercache_reader_feed_trust_changes_total'),
    keysFromMemory: delta(readerAfter, readerBefore, 'tiercache_reader_keys_total', { origin: 'memory' }),
    keysFromRedis: delta(readerAfter, readerBefore, 'tiercache_reader_keys_total', { origin: 'redis' }),
    catchUpSeconds,
  };
}

export function renderBacklog(b: BacklogResult): string {
  const lag = b.lagSamplesMs;
  return (
    [
      `8. hot reads (10 keys, ${b.readConnections} connections) while ${b.batch}-entry REST writes flow on ${b.writeConnections} connections`,
      `  reads alone ${b.readsAlone.rps.toFixed(0)} req/s (p99 ${b.readsAlone.latencyMs.p99.toFixed(2)} ms); ` +
        `under writes ${b.readsUnderWrites.rps.toFixed(0)} req/s (p99 ${b.readsUnderWrites.latencyMs.p99.toFixed(2)} ms), ` +
        `${b.readsUnderWrites.failed} failed`,
      `  writes ${b.entriesPerSecond.toFixed(0)} entries/s committed; relay announced ${b.announcedPerSecond.toFixed(0)}/s; ` +
        `reader consumed ${b.receivedPerSecond.toFixed(0)}/s, applied ${b.appliedPerSecond.toFixed(0)}/s (only while its feed is trusted)`,
      `  feed lag (ms, each second): ${lag.map((n) => n.toFixed(0)).join(' ')}; trust changes ${b.trustChanges}; ` +
        `keys from memory ${b.keysFromMemory}, from Redis ${b.keysFromRedis}`,
      `  caught up ${b.catchUpSeconds === null ? 'NOT within 120 s' : `${b.catchUpSeconds.toFixed(1)} s`} after the writes stopped`,
    ].join('\n') + '\n'
  );
}
