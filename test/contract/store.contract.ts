// The Store contract, run against every adapter: what the rest of tiercache relies on about versions, atomic
// batches, tombstones, expiry and exact round trips, whichever store holds the data. A store with several
// outbox shards (Redis Cluster) says how keys map to them (shardOf): batches are atomic, and recorded in the
// outbox, per shard; one shard is the same contract for a whole batch.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Change, StoredEntry } from '../../src/domain/entry.js';
import type { Committed, Store, WriteOp, WriteOptions } from '../../src/ports.js';

export interface StoreFixture {
  store: Store;
  cleanup(): Promise<void>;
  /** Lets `ms` of the store's own time pass: a fake clock's, or (Redis, whose clock is the server's) real time. */
  elapse(ms: number): Promise<void>;
  /** Resolves once a claim made on the store is waiting for new entries. */
  claimWaiting(): Promise<void>;
  /** The outbox shard of a key; absent: one shard for every key. */
  shardOf?: (key: string) => number;
}

const KEEP: WriteOptions = { ttlMs: null, tombstoneTtlMs: 60_000, inlineValueMaxBytes: 65536 };
// Short enough to wait for, long enough that the entry is still there when the test reads it back.
const SHORT_MS = 150;
// Long enough for a claim to be recent when checked right away (a cluster's claim looks at 16 shards, on a
// loaded machine), short enough to let pass on a real clock.
const RECLAIM_MS = 300;
// Stores stamp with their own clock (Redis may run elsewhere): only a coarse agreement is asserted.
const CLOCK_SLACK_MS = 60_000;

const set = (key: string, value: string): WriteOp => ({ op: 'set', key, value });
const del = (key: string): WriteOp => ({ op: 'delete', key });

function expectAboutNowPlus(ms: number, actual: number | null): void {
  expect(actual).not.toBeNull();
  expect(Math.abs(Number(actual) - (Date.now() + ms))).toBeLessThan(CLOCK_SLACK_MS);
}

export function describeStoreContract(name: string, create: () => Promise<StoreFixture>): void {
  describe(`Store contract: ${name}`, () => {
    let fixture: StoreFixture;
    let store: Store;
    beforeEach(async () => {
      fixture = await create();
      store = fixture.store;
    });
    afterEach(async () => {
      await fixture.cleanup();
    });

    async function writeOne(op: WriteOp, options: WriteOptions = KEEP): Promise<Committed> {
      const [committed] = await store.write([op], options);
      if (!committed) throw new Error('write answered nothing for one op');
      return committed;
    }

    /**
     * Lets SHORT_MS elapse on the store's clock, then polls until `key` is gone: when exactly an expired key
     * disappears is the store's business (Redis checks on access), the test only bounds how long it may take.
     */
    async function expireShort(key: string): Promise<void> {
      await fixture.elapse(SHORT_MS);
      const deadline = Date.now() + 5_000;
      while ((await store.read([key]))[0] !== null) {
        if (Date.now() > deadline) throw new Error(`${key} still there 5 s after its expiry`);
        await fixture.elapse(10);
      }
    }

    async function readOne(key: string): Promise<StoredEntry | null> {
      const [entry] = await store.read([key]);
      if (entry === undefined) throw new Error('read answered nothing for one key');
      return entry;
    }

    it('reads back a set with its version and no expiry', async () => {
      const committed = await writeOne(set('a', 'one'));
      expect(committed).toEqual({ key: 'a', op: 'set', version: committed.version, expiresAt: null });
      expect(await readOne('a')).toEqual({ version: committed.version, value: 'one', expiresAt: null });
    });

    it('stamps versions with the commit time in µs', async () => {
      const { version } = await writeOne(set('a', 'one'));
      const slackMicros = BigInt(CLOCK_SLACK_MS) * 1000n;
      expect(version).toBeGreaterThan(BigInt(Date.now()) * 1000n - slackMicros);
      expect(version).toBeLessThan(BigInt(Date.now()) * 1000n + slackMicros);
    });

    it('gives every write to a key a greater version than the last', async () => {
      const versions: bigint[] = [];
      for (const op of [set('a', '1'), set('a', '2'), del('a'), set('a', '3'), set('a', '3')]) {
        versions.push((await writeOne(op)).version);
      }
      for (let i = 1; i < versions.length; i++) expect(versions[i]).toBeGreaterThan(versions[i - 1] ?? 0n);
    });

    it('versions a key named twice in one batch twice, and the last op wins', async () => {
      const [first, other, second] = await store.write([set('a', 'x'), set('b', 'y'), set('a', 'z')], KEEP);
      expect([first?.key, other?.key, second?.key]).toEqual(['a', 'b', 'a']);
      expect(second?.version).toBeGreaterThan(first?.version ?? 0n);
      expect(await readOne('a')).toEqual({ version: second?.version, value: 'z', expiresAt: null });

      const [, deleted] = await store.write([set('a', 'again'), del('a')], KEEP);
      expect(deleted?.op).toBe('delete');
      expect((await readOne('a'))?.value).toBeNull();
    });

    it('keeps concurrent batches to one key apart: distinct versions, the newest one stored', async () => {
      const committed = await Promise.all(
        Array.from({ length: 20 }, (_, i) => store.write([set('a', `v${i}`), set(`own${i}`, 'x')], KEEP)),
      );
      const versions = committed.map((batch) => batch[0]?.version ?? 0n);
      expect(new Set(versions).size).toBe(versions.length);
      const newest = versions.reduce((max, v) => (v > max ? v : max));
      const stored = await readOne('a');
      expect(stored?.version).toBe(newest);
      expect(stored?.value).toBe(`v${versions.indexOf(newest)}`);
    });

    it('answers reads in key order, with null for unknown keys, and repeats duplicates', async () => {
      const [a, b] = await store.write([set('a', 'A'), set('b', 'B')], KEEP);
      const entries = await store.read(['b', 'missing', 'a', 'b']);
      expect(entries).toEqual([
        { version: b?.version, value: 'B', expiresAt: null },
        null,
        { version: a?.version, value: 'A', expiresAt: null },
        { version: b?.version, value: 'B', expiresAt: null },
      ]);
    });

    it('answers an empty read and an empty batch with []', async () => {
      expect(await store.read([])).toEqual([]);
      expect(await store.write([], KEEP)).toEqual([]);
    });

    it('leaves a newer tombstone on delete, gone after tombstoneTtlMs', async () => {
      const written = await writeOne(set('a', 'one'));
      const deleted = await writeOne(del('a'), {
        ttlMs: null,
        tombstoneTtlMs: SHORT_MS,
        inlineValueMaxBytes: 65536,
      });
      expect(deleted.op).toBe('delete');
      expect(deleted.version).toBeGreaterThan(written.version);
      expectAboutNowPlus(SHORT_MS, deleted.expiresAt);
      expect(await readOne('a')).toEqual({
        version: deleted.version,
        value: null,
        expiresAt: deleted.expiresAt,
      });
      await expireShort('a');
    });

    it('leaves a tombstone for a key that never held a value', async () => {
      const deleted = await writeOne(del('never'));
      expect((await readOne('never'))?.version).toBe(deleted.version);
      expect((await readOne('never'))?.value).toBeNull();
    });

    it('expires a set after ttlMs, with expiresAt about now + ttl', async () => {
      const committed = await writeOne(set('a', 'one'), {
        ttlMs: SHORT_MS,
        tombstoneTtlMs: 60_000,
        inlineValueMaxBytes: 65536,
      });
      expectAboutNowPlus(SHORT_MS, committed.expiresAt);
      expect(await readOne('a')).toEqual({
        version: committed.version,
        value: 'one',
        expiresAt: committed.expiresAt,
      });
      await expireShort('a');
    });

    it('drops the expiry of a key set again without ttl', async () => {
      const short = { ttlMs: SHORT_MS, tombstoneTtlMs: 60_000, inlineValueMaxBytes: 65536 };
      await store.write([set('kept', 'first'), set('gone', 'x')], short);
      await writeOne(set('kept', 'second'));
      // `gone` shares the first expiry, so once it has expired `kept` would have too.
      await expireShort('gone');
      expect(await readOne('kept')).toMatchObject({ value: 'second', expiresAt: null });
    });

    it('versions a key written after its tombstone expired above everything before', async () => {
      await writeOne(set('a', 'one'));
      const deleted = await writeOne(del('a'), {
        ttlMs: null,
        tombstoneTtlMs: SHORT_MS,
        inlineValueMaxBytes: 65536,
      });
      await expireShort('a');
      const rewritten = await writeOne(set('a', 'two'));
      expect(rewritten.version).toBeGreaterThan(deleted.version);
    });

    it('round-trips keys and values exactly: separators, empty, unicode, control characters, 1 MiB', async () => {
      const large = '0123456789:€😀中'.repeat(Math.ceil(2 ** 20 / 20)).slice(0, 2 ** 20);
      const values: Record<string, string> = {
        'colons:key': 'a:b::c:',
        empty: '',
        'looks-packed': 's123:456:value',
        '😀 emoji': '😀👍🏽 family 👨‍👩‍👧',
        中文键: '中文字符，日本語の文字',
        control: 'line\nbreak\ttab\u0000nul\r\n',
        large,
      };
      const committed = await store.write(
        Object.entries(values).map(([key, value]) => set(key, value)),
        KEEP,
      );
      const entries = await store.read(Object.keys(values));
      expect(entries.map((entry) => entry?.value)).toEqual(Object.values(values));
      expect(entries.map((entry) => entry?.version)).toEqual(committed.map((c) => c.version));
    });

    it('rejects invalid durations and writes nothing of the batch', async () => {
      const before = await writeOne(set('a', 'one'));
      const invalid: WriteOptions[] = [
        { ttlMs: 0, tombstoneTtlMs: 1_000, inlineValueMaxBytes: 65536 },
        { ttlMs: 1.5, tombstoneTtlMs: 1_000, inlineValueMaxBytes: 65536 },
        { ttlMs: Number.NaN, tombstoneTtlMs: 1_000, inlineValueMaxBytes: 65536 },
        { ttlMs: null, tombstoneTtlMs: -1, inlineValueMaxBytes: 65536 },
        { ttlMs: null, tombstoneTtlMs: Number.POSITIVE_INFINITY, inlineValueMaxBytes: 65536 },
      ];
      for (const options of invalid) {
        await expect(store.write([del('b'), set('a', 'two')], options)).rejects.toThrow(/ttl/i);
      }
      expect(await store.read(['a', 'b'])).toEqual([
        { version: before.version, value: 'one', expiresAt: null },
        null,
      ]);
    });

    describe('outbox', () => {
      const claimNow = (relay: string, reclaimAfterMs = 60_000) =>
        store.outbox.claim(relay, { max: 100, blockMs: 0, reclaimAfterMs });

      it('records each committed batch (per shard), in commit order, as the changes it announces', async () => {
        const shardOf = fixture.shardOf ?? (() => 0);
        const first = await store.write([set('a', 'small'), set('big', 'x'.repeat(101)), del('gone')], {
          ...KEEP,
          inlineValueMaxBytes: 100,
        });
        const second = await store.write([set('a', 'ü'.repeat(10))], {
          ...KEEP,
          ttlMs: 60_000,
          inlineValueMaxBytes: 100,
        });
        const batches: Change[][] = [
          [
            { op: 'set', key: 'a', version: first[0]!.version, value: 'small', expiresAt: null },
            { op: 'invalidate', key: 'big', version: first[1]!.version, expiresAt: null },
            { op: 'delete', key: 'gone', version: first[2]!.version },
          ],
          [
            {
              op: 'set',
              key: 'a',
              version: second[0]!.version,
              value: 'ü'.repeat(10),
              expiresAt: second[0]!.expiresAt,
            },
          ],
        ];
        // Per shard, in commit order: each batch's changes of that shard, as one entry in op order.
        const expected = new Map<number, Change[][]>();
        for (const batch of batches) {
          const parts = new Map<number, Change[]>();
          for (const change of batch)
            parts.set(shardOf(change.key), [...(parts.get(shardOf(change.key)) ?? []), change]);
          for (const [shard, part] of parts) expected.set(shard, [...(expected.get(shard) ?? []), part]);
        }
        const entryCount = [...expected.values()].reduce((sum, entries) => sum + entries.length, 0);
        expect(await store.outbox.size()).toBe(entryCount);
        const entries = await claimNow('r1');
        const claimed = new Map<number, Change[][]>();
        for (const { changes } of entries) {
          const shard = shardOf(changes[0]!.key);
          claimed.set(shard, [...(claimed.get(shard) ?? []), [...changes]]);
        }
        expect(claimed).toEqual(expected);
        await store.outbox.ack(entries.map((e) => e.id));
        expect(await store.outbox.size()).toBe(0);
        expect(await claimNow('r1')).toEqual([]);
      });

      it('counts UTF-8 bytes against inlineValueMaxBytes, and carries any value exactly', async () => {
        const odd = 'line\nbreak "quoted" \\ / \u0000 😀';
        await store.write([set('exact', 'é'.repeat(50)), set('over', 'é'.repeat(51)), set('odd', odd)], {
          ...KEEP,
          inlineValueMaxBytes: 100,
        });
        const changes = new Map((await claimNow('r1')).flatMap((e) => e.changes).map((c) => [c.key, c]));
        expect(['exact', 'over', 'odd'].map((key) => changes.get(key)?.op)).toEqual([
          'set',
          'invalidate',
          'set',
        ]);
        expect(changes.get('odd')).toMatchObject({ value: odd });
      });

      it('writes nothing to the outbox for a rejected or empty batch', async () => {
        await expect(store.write([set('a', 'x')], { ...KEEP, ttlMs: 0 })).rejects.toThrow(/ttl/i);
        await store.write([], KEEP);
        expect(await store.outbox.size()).toBe(0);
      });

      it('gives a claimed entry to no other relay until its claim is older than reclaimAfterMs', async () => {
        await writeOne(set('a', 'one'));
        const [claimed] = await claimNow('r1');
        expect(claimed).toBeDefined();
        // Each relay's first claim looks for abandoned entries: r2 does, and finds the claim too recent.
        expect(await claimNow('r2', RECLAIM_MS)).toEqual([]);
        await fixture.elapse(RECLAIM_MS + 10);
        const taken = await claimNow('r3', RECLAIM_MS);
        expect(taken).toEqual([claimed]);
        await store.outbox.ack([claimed!.id]);
        expect(await store.outbox.size()).toBe(0);
      });

      it('reports its backlog: entries, bytes and the age of the oldest, all freed by the acknowledgement', async () => {
        expect(await store.outbox.backlog()).toEqual({ entries: 0, bytes: 0, oldestAgeMs: null });
        await writeOne(set('a', 'one'));
        await fixture.elapse(30);
        await writeOne(set('b', 'two'));
        const backlog = await store.outbox.backlog();
        expect(backlog.entries).toBe(2);
        // Each change is at least its key and its entry as stored: header, version digits and value.
        expect(backlog.bytes).toBeGreaterThanOrEqual(2 * ('a'.length + 's1::one'.length));
        // The oldest was committed first: at least the 30 ms between the two writes ago.
        expect(backlog.oldestAgeMs).toBeGreaterThanOrEqual(25);
        const entries = await claimNow('r1');
        await store.outbox.ack([entries[0]!.id]);
        const half = await store.outbox.backlog();
        expect(half.entries).toBe(1);
        expect(half.bytes).toBeGreaterThan(0);
        expect(half.bytes).toBeLessThan(backlog.bytes);
        await store.outbox.ack([entries[1]!.id]);
        expect(await store.outbox.backlog()).toEqual({ entries: 0, bytes: 0, oldestAgeMs: null });
      });

      it('refuses a write while the outbox is at its bound, writing nothing, and takes writes again once it drains', async () => {
        const bounded = { ...KEEP, outboxLimit: { maxEntries: 2, maxBytes: 0 } };
        await store.write([set('a', '1')], bounded);
        await store.write([set('a', '2')], bounded);
        await expect(store.write([set('a', '3')], bounded)).rejects.toMatchObject({
          name: 'FeedBackedUp',
          message: expect.stringMatching(/change feed is backed up/),
        });
        expect((await store.read(['a']))[0]?.value).toBe('2');
        // The bound is per shard: the one holding 'a' is full.
        const byBytes = { ...KEEP, outboxLimit: { maxEntries: 0, maxBytes: 10 } };
        await expect(store.write([set('a', '4')], byBytes)).rejects.toMatchObject({ name: 'FeedBackedUp' });
        await store.outbox.ack((await claimNow('r1')).map((e) => e.id));
        await store.write([set('a', '3')], bounded);
        expect((await store.read(['a']))[0]?.value).toBe('3');
      });

      it('a waiting claim wakes up for a write', async () => {
        // Well below the test's timeout: a claim that is not woken answers [] and fails the assertion below.
        const waiting = store.outbox.claim('r1', { max: 10, blockMs: 2_000, reclaimAfterMs: 60_000 });
        await fixture.claimWaiting();
        const committed = await writeOne(set('late', 'v'));
        const entries = await waiting;
        expect(entries.map((e) => e.changes[0]?.version)).toEqual([committed.version]);
      });
    });
  });
}
