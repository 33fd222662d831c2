// RedisStore on the real Redis: the shared Store contract, then what only Redis can get wrong — foreign
// values under the prefix, the exact stored format, exact big versions, one MGET per read, who closes.
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { connectRedis, RedisStore } from '../../src/adapters/redis-store.js';
import { packEntry } from '../../src/domain/entry.js';
import { metrics } from '../../src/observability.js';
import type { WriteOp } from '../../src/ports.js';
import { describeStoreContract } from '../contract/store.contract.js';
import { captureLogs, messages } from '../support/logs.js';
import { eventually, startPrivateRedis } from '../support/processes.js';
import { redisUrl, uniqueName } from '../support/services.js';

const KEEP = { ttlMs: null, tombstoneTtlMs: 60_000, inlineValueMaxBytes: 65536 };
const set = (key: string, value: string): WriteOp => ({ op: 'set', key, value });

let redis: Redis;
beforeAll(() => {
  redis = connectRedis(redisUrl());
});
afterAll(async () => {
  await redis.quit();
});

/** Removes what a test left under its prefix: entries without a TTL would otherwise outlive the run. */
async function dropPrefix(prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    if (keys.length > 0) await redis.unlink(keys);
    cursor = next;
  } while (cursor !== '0');
}

describeStoreContract('RedisStore', async () => {
  const name = uniqueName('store');
  const prefix = `${name}:`;
  // A client of its own, so that its outbox connection (`<name>-outbox`) can be found in CLIENT LIST.
  const store = new RedisStore({
    redis: new Redis(redisUrl(), { connectionName: name }),
    prefix,
    ownsClient: true,
  });
  return {
    store,
    cleanup: async () => {
      await dropPrefix(prefix);
      await store.close();
    },
    // Stream idle times are on the server's clock: only real time moves them.
    elapse: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    claimWaiting: async () => {
      await eventually('the claim to block in XREADGROUP', async () => {
        const clients = (await redis.client('LIST')) as string;
        return clients
          .split('\n')
          .some((line) => line.includes(` name=${name}-outbox `) && / flags=\w*b/.test(line))
          ? true
          : undefined;
      });
    },
  };
});

describe('RedisStore on Redis', () => {
  let prefix: string;
  let store: RedisStore;
  beforeEach(() => {
    prefix = `${uniqueName('redis-store')}:`;
    store = new RedisStore({ redis, prefix });
  });
  afterEach(async () => {
    await dropPrefix(prefix);
  });

  const foreign: [string, (key: string) => Promise<unknown>][] = [
    ['a plain string', (key) => redis.set(key, 'hello')],
    ['an empty string', (key) => redis.set(key, '')],
    ['a string with half a header', (key) => redis.set(key, 's123:no second colon')],
    ['a version beyond 2^53', (key) => redis.set(key, 's9007199254740992::x')],
    ['a hash', (key) => redis.hset(key, 'field', 'value')],
    ['a list', (key) => redis.rpush(key, 'item')],
  ];
  it.each(foreign)('rejects a whole batch naming a key that holds %s', async (_, plant) => {
    const before = await store.write([set('a', 'A'), set('c', 'C')], KEEP);
    await plant(prefix + 'e:foreign');
    const planted = await redis.dumpBuffer(prefix + 'e:foreign');

    // The foreign key comes after other ops, so a script that wrote as it checked would have written them.
    const batch: WriteOp[] = [
      set('a', 'A2'),
      { op: 'delete', key: 'c' },
      set('fresh', 'F'),
      set('foreign', 'x'),
    ];
    await expect(store.write(batch, KEEP)).rejects.toThrow(`${prefix}e:foreign`);

    expect(await store.read(['a', 'c', 'fresh'])).toEqual([
      { version: before[0]?.version, value: 'A', expiresAt: null },
      { version: before[1]?.version, value: 'C', expiresAt: null },
      null,
    ]);
    expect(await redis.dumpBuffer(prefix + 'e:foreign')).toEqual(planted);
  });

  it('refuses to read a foreign string rather than hide it, naming the key', async () => {
    await redis.set(prefix + 'e:foreign', 'hello');
    await expect(store.read(['foreign'])).rejects.toThrow(`${prefix}e:foreign`);
  });

  it('stores exactly the packed format under the prefixed entry key (prefix, then e:), with Redis expiry to match', async () => {
    const [kept, expiring, deleted] = await Promise.all([
      store.write([set('kept', 'a:b')], KEEP),
      store.write([set('expiring', '😀')], {
        ttlMs: 60_000,
        tombstoneTtlMs: 60_000,
        inlineValueMaxBytes: 65536,
      }),
      store.write([{ op: 'delete', key: 'deleted' }], {
        ttlMs: null,
        tombstoneTtlMs: 30_000,
        inlineValueMaxBytes: 65536,
      }),
    ]).then((batches) => batches.map(([committed]) => committed));

    const stored = await redis.mget(prefix + 'e:kept', prefix + 'e:expiring', prefix + 'e:deleted');
    expect(stored).toEqual([
      packEntry({ version: kept?.version ?? 0n, value: 'a:b', expiresAt: null }),
      packEntry({ version: expiring?.version ?? 0n, value: '😀', expiresAt: expiring?.expiresAt ?? null }),
      packEntry({ version: deleted?.version ?? 0n, value: null, expiresAt: deleted?.expiresAt ?? null }),
    ]);
    expect(await redis.pttl(prefix + 'e:kept')).toBe(-1);
    expect(await redis.pttl(prefix + 'e:expiring')).toBeGreaterThan(30_000);
    expect(await redis.pttl(prefix + 'e:deleted')).toBeGreaterThan(0);
    expect(await redis.pttl(prefix + 'e:deleted')).toBeLessThanOrEqual(30_000);
  });

  it("expires each key at exactly the expiresAt it reports, however long the batch's script runs", async () => {
    // Subscribers get EXPIRE once the reader's clock is past expiresAt: Redis must have dropped the key by then.
    // A relative PX counted from each SET's own time, later than the script's TIME, would drop it later.
    const ops = Array.from({ length: 500 }, (_, i) => set(`ttl${i}`, 'v'.repeat(2048)));
    const deletes = Array.from({ length: 500 }, (_, i) => ({ op: 'delete' as const, key: `gone${i}` }));
    const committed = await store.write([...ops, ...deletes], {
      ttlMs: 60_000,
      tombstoneTtlMs: 30_000,
      inlineValueMaxBytes: 65536,
    });
    const pipeline = redis.pipeline();
    for (const c of committed) pipeline.call('PEXPIRETIME', `${prefix}e:${c.key}`);
    const expiries = (await pipeline.exec())!.map(([error, at]) => (error ? error : Number(at)));
    expect(expiries).toEqual(committed.map((c) => c.expiresAt));
  });

  it('carries a stored version far above the clock forward by exactly one', async () => {
    // Above 2^52 a double still counts in ones but prints as 4.5e+15 unless formatted with care.
    await redis.set(prefix + 'e:a', 's4503599627370497::old');
    const [committed] = await store.write([set('a', 'new')], KEEP);
    expect(committed?.version).toBe(4503599627370498n);
    expect(await redis.get(prefix + 'e:a')).toBe('s4503599627370498::new');
  });

  it('records in its outbox each entry key and the very string it stored, the header alone for an invalidation', async () => {
    const committed = await store.write([set('kept', ':'), set('big', 'xx'), { op: 'delete', key: 'gone' }], {
      ...KEEP,
      inlineValueMaxBytes: 1,
    });
    const keys = ['kept', 'big', 'gone'].map((key) => `${prefix}e:${key}`);
    const stored = await redis.mget(keys);
    const [[, fields]] = (await redis.xrange(`${prefix}outbox`, '-', '+')) as [[string, string[]]];
    const big = committed[1]!;
    expect(fields).toEqual([keys[0], stored[0], keys[1], `i${big.version}::`, keys[2], stored[2]]);
    // The counter holds the entry's bytes, names and values, as UTF-8.
    const bytes = fields.reduce((sum, field) => sum + Buffer.byteLength(field), 0);
    expect((await store.outbox.backlog()).bytes).toBe(bytes);
  });

  it('frees exactly the bytes of the entries it removes, whoever claimed them, and never twice', async () => {
    const other = new RedisStore({ redis, prefix });
    for (const value of ['é', 'éé', 'ééé']) await store.write([set('k', value)], KEEP);
    const entryBytes = (await redis.xrange(`${prefix}outbox`, '-', '+')).map(([, fields]) =>
      fields.reduce((sum, field) => sum + Buffer.byteLength(field), 0),
    );
    const bytesNow = async (): Promise<number> => (await store.outbox.backlog()).bytes;
    expect(await bytesNow()).toBe(entryBytes[0]! + entryBytes[1]! + entryBytes[2]!);
    const claimed = await store.outbox.claim('r1', { max: 10, blockMs: 0, reclaimAfterMs: 60_000 });
    // Counted from the claim.
    await store.outbox.ack([claimed[0]!.id]);
    expect(await bytesNow()).toBe(entryBytes[1]! + entryBytes[2]!);
    // A store that never claimed it (a relay that took it over, or a restarted process) counts it in Redis.
    await other.outbox.ack([claimed[1]!.id]);
    expect(await bytesNow()).toBe(entryBytes[2]!);
    // Acknowledged a second time by the relay that claimed it first: already gone, frees nothing.
    await store.outbox.ack([claimed[1]!.id]);
    expect(await bytesNow()).toBe(entryBytes[2]!);
    await other.close();
  });

  it('still announces outbox entries in the JSON of earlier versions, so an upgrade leaves none behind', async () => {
    // What the write script up to db250f1 appended: field i is the bus message of op i.
    const legacy = [
      '{"key":"a","version":"12","op":"set","value":"x\\/y","expiresAt":null}',
      '{"key":"b","version":"13","op":"invalidate","expiresAt":1700000000000}',
      '{"key":"c","version":"14","op":"delete"}',
    ];
    await redis.xadd(`${prefix}outbox`, '*', '1', legacy[0]!, '2', legacy[1]!, '3', legacy[2]!);
    await redis.set(`${prefix}outbox:bytes`, legacy.join('').length);
    const [entry, ...more] = await store.outbox.claim('r1', { max: 10, blockMs: 0, reclaimAfterMs: 60_000 });
    expect(more).toEqual([]);
    expect(entry?.changes).toEqual([
      { op: 'set', key: 'a', version: 12n, value: 'x/y', expiresAt: null },
      { op: 'invalidate', key: 'b', version: 13n, expiresAt: 1700000000000 },
      { op: 'delete', key: 'c', version: 14n },
    ]);
    await store.outbox.ack([entry!.id]);
    expect(await store.outbox.backlog()).toEqual({ entries: 0, bytes: 0, oldestAgeMs: null });
  });

  it('keeps an outbox entry it cannot decode, unannounced and unacknowledged, and says so', async () => {
    const before = await store.write([set('a', 'one')], KEEP);
    const junk = await redis.xadd(`${prefix}outbox`, '*', '1', 'not a change');
    const after = await store.write([set('b', 'two')], KEEP);
    const failuresBefore =
      (await metrics.render()).match(/^tiercache_outbox_malformed_total (\d+)/m)?.[1] ?? '0';
    const logs = captureLogs();
    const claimed = await store.outbox.claim('r1', { max: 10, blockMs: 0, reclaimAfterMs: 60_000 });
    logs.restore();
    expect(messages(logs.lines, 'error')).toEqual([
      'an outbox entry cannot be decoded; it stays in the outbox, unannounced',
    ]);
    // The two good entries are handed out; the junk one is not, so no relay can acknowledge it.
    expect(claimed.map((e) => e.changes.map((c) => c.version))).toEqual([
      [before[0]!.version],
      [after[0]!.version],
    ]);
    expect(Number((await metrics.render()).match(/^tiercache_outbox_malformed_total (\d+)/m)?.[1])).toBe(
      Number(failuresBefore) + 1,
    );
    await store.outbox.ack(claimed.map((e) => e.id));
    expect(await redis.xrange(`${prefix}outbox`, '-', '+')).toEqual([[junk, ['1', 'not a change']]]);
    // It stays in the backlog, which is what stops readers from trusting a feed that misses it.
    expect((await store.outbox.backlog()).entries).toBe(1);
  });

  it('reads 500 keys with exactly one MGET', async () => {
    // Counted on the server, not in the client: MONITOR reports every command Redis runs together with the
    // address of the connection that sent it, so a read() that looped over GETs or split its MGET fails here,
    // and commands from test files running in parallel against the same Redis are told apart by address.
    // (INFO commandstats is server-wide, and wrapping ioredis methods would miss what it does underneath.)
    const client = connectRedis(redisUrl());
    const measured = new RedisStore({ redis: client, prefix, ownsClient: true });
    const keys = Array.from({ length: 500 }, (_, i) => `k${i}`);
    await measured.write(
      keys.map((key) => set(key, `value of ${key}`)),
      KEEP,
    );
    const address = /\baddr=(\S+)/.exec(await client.client('INFO'))?.[1];
    expect(address).toBeDefined();

    const monitor = await redis.monitor();
    const sent: string[][] = [];
    const marker = uniqueName('end-of-read');
    const markerSeen = new Promise<void>((resolve) => {
      monitor.on('monitor', (_time: unknown, args: unknown, source: unknown) => {
        if (source !== address || !Array.isArray(args)) return;
        const command = args.map(String);
        if (command[1] === marker) resolve();
        else sent.push(command);
      });
    });
    try {
      const entries = await measured.read(keys);
      // Commands from one connection reach MONITOR in order: once the marker is seen, the read is complete.
      await client.echo(marker);
      await markerSeen;
      expect(entries.map((entry) => entry?.value)).toEqual(keys.map((key) => `value of ${key}`));
      expect(sent).toEqual([['mget', ...keys.map((key) => prefix + 'e:' + key)]]);
    } finally {
      monitor.disconnect();
      await measured.close();
    }
  });

  it('quits the client on close() only when it owns it', async () => {
    const client = connectRedis(redisUrl());
    await new RedisStore({ redis: client, prefix }).close();
    expect(await client.ping()).toBe('PONG');
    const owner = new RedisStore({ redis: client, prefix, ownsClient: true });
    await owner.close();
    expect(client.status).toBe('end');
    await owner.close();
  });

  it("logs that the outbox's blocking connection is lost, not only counts it", async () => {
    const server = await startPrivateRedis();
    const lines: string[] = [];
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
      lines.push(String(chunk));
      return true;
    });
    const client = connectRedis(server.url);
    const owner = new RedisStore({ redis: client, prefix, ownsClient: true });
    try {
      // The first claim opens the blocking connection.
      await owner.outbox.claim('r1', { max: 1, blockMs: 0, reclaimAfterMs: 60_000 });
      await server.stop();
      const lost = await eventually('the blocking connection to be reported lost', async () =>
        lines.find((line) => line.includes('connection lost') && line.includes('"tiercache-outbox"')),
      );
      expect(JSON.parse(lost)).toMatchObject({ level: 'warn', connection: 'tiercache-outbox' });
    } finally {
      stderr.mockRestore();
      client.disconnect();
      owner.outbox.close();
      await server.stop();
    }
  });
});
