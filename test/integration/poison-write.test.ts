// One valid write must never stop the announcements of every later one. Sixteen values of 60,000 × U+0001
// are small as raw bytes (under the inline limit) but six times larger as JSON (`\u0001`), far over
// Kafka's message limit: the relay must size what it sends by its encoded form, and send a change too
// large for one message as an invalidation, so the next write still reaches readers through the feed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Reader } from '../../src/reader/reader.js';
import type { Writer } from '../../src/writer/writer.js';
import { startPipeline, type Pipeline } from '../support/pipeline.js';

let pipeline: Pipeline;
let reader: Reader;
let writer: Writer;

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

beforeAll(async () => {
  pipeline = await startPipeline({
    name: 'poison',
    reader: {
      memory: { maxEntries: 1000, maxBytes: 64 << 20, ttlMs: 300_000, negativeTtlMs: 300_000 },
      maxBatch: 100,
      purgeIntervalMs: 60_000,
      feed: { syncIntervalMs: 500, maxLagMs: 5_000 },
    },
    // The service's own batch bound (src/app.ts), under the broker's default 1 MB message limit.
    relay: { maxBatchBytes: 512 * 1024, maxBatch: 500 },
  });
  ({ reader, writer } = pipeline);
}, 60_000);

afterAll(async () => {
  await pipeline?.close();
});

describe('a write whose values grow past the message limit when encoded', () => {
  it('does not block later announcements, and travels as invalidations', async () => {
    const poison = '\u0001'.repeat(60_000);
    const keys = Array.from({ length: 16 }, (_, i) => `poison-${i}`);
    await writer.setValues(
      [{ key: 'k', value: 'old' }, ...keys.map((key) => ({ key, value: 'small' }))],
      null,
    );
    // The reader holds k and the sixteen keys in memory, learnt from the feed.
    await until('the old values in memory', async () => {
      const answers = await reader.read(['k', ...keys], false);
      return answers.every((a) => a.origin === 'memory' && a.value !== null) ? true : undefined;
    });
    const poisoned = await writer.setValues(
      keys.map((key) => ({ key, value: poison })),
      null,
    );
    const [fresh] = await writer.setValues([{ key: 'k', value: 'new' }], null);
    // Only the feed can replace what memory holds, so the new value in memory proves announcements flow.
    const [k] = await until('k=new in memory', async () => {
      const answer = await reader.read(['k'], false);
      return answer[0]?.value === 'new' && answer[0].origin === 'memory' ? answer : undefined;
    });
    expect(k?.version).toBe(fresh?.version);
    // The large values were announced without their value (on other partitions, so perhaps a moment
    // later): the reader drops the small ones it holds and refetches.
    const answers = await until('the large values', async () => {
      const got = await reader.read(keys, false);
      return got.every((a) => a.value !== 'small') ? got : undefined;
    });
    expect(answers.map((a) => [a.value === poison, a.version])).toEqual(
      poisoned.map((c) => [true, c.version]),
    );
  });
});
