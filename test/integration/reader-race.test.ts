// The cache-aside race, forced on the real Redis and Kafka: a reader's fetch reads v1 from Redis, a write
// of v2 is committed, announced and applied, and only then does the fetch's answer land. The late v1 must
// never enter memory, even when v2 was evicted in between.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Reader } from '../../src/reader/reader.js';
import type { Writer } from '../../src/writer/writer.js';
import { HeldStore } from '../support/held-store.js';
import { startPipeline, type Pipeline } from '../support/pipeline.js';
import { uniqueName } from '../support/services.js';

let pipeline: Pipeline;
let reader: Reader;
let held: HeldStore;
let writer: Writer;

async function until(what: string, check: () => boolean): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Writes through the real writer and resolves once the reader applied the announcement. */
async function writeAndApply(key: string, value: string): Promise<bigint> {
  let seen = false;
  const stop = reader.onApplied(
    (changes) => (seen ||= changes.some((c) => c.key === key && c.op === 'set' && c.value === value)),
  );
  const [committed] = await writer.setValues([{ key, value }], null);
  await until(`the reader to apply ${value}`, () => seen);
  stop();
  return committed!.version;
}

beforeAll(async () => {
  pipeline = await startPipeline({
    name: 'race',
    readerStore: (store) => (held = new HeldStore(store)),
    reader: {
      memory: { maxEntries: 100, maxBytes: 1 << 20, ttlMs: 60_000, negativeTtlMs: 60_000 },
      maxBatch: 100,
      purgeIntervalMs: 60_000,
      feed: { syncIntervalMs: 500, maxLagMs: 30_000 },
    },
  });
  ({ reader, writer } = pipeline);
}, 60_000);

afterAll(async () => {
  held?.release();
  await pipeline?.close();
});

describe.each([
  ['with v2 still in memory', false],
  ['with v2 evicted before the late fill lands', true],
])('a fetch of v1 that lands after v2 was announced (%s)', (_name, evict) => {
  it('never brings v1 back', async () => {
    const key = uniqueName('k');
    await writeAndApply(key, 'v1');
    reader.tier.clear(); // v1 is no longer in memory: the next read must fetch.
    const fetchedBefore = held.fetched;
    held.holding = true;
    const lateRead = reader.read([key], false);
    await until('the fetch to have read v1 from Redis', () => held.fetched > fetchedBefore);
    const v2 = await writeAndApply(key, 'v2');
    if (evict) reader.tier.clear();
    held.release();
    const [late] = await lateRead;
    // The late read overlapped the write, so either answer is linearizable; what matters is memory.
    expect(['v1', 'v2']).toContain(late?.value);
    const held1 = reader.tier.lookup(key);
    expect(held1?.value).not.toBe('v1');
    const [now] = await reader.read([key], false);
    expect(now).toMatchObject({ value: 'v2', version: v2 });
  });
});
