// One writer and two readers as separate processes on the real Redis and Kafka: a write reaches both
// readers' memory tiers through the feed, a delete too, and the seed's REST routes keep their shapes. The
// cluster project runs this same file on the Redis Cluster and the 3-node Kafka (redisTarget()); there a
// batch over every outbox shard lands on several masters, and every shard must be relayed.
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KafkaBus } from '../../src/adapters/kafka-bus.js';
import { OUTBOX_SHARDS, shardOf } from '../../src/adapters/redis-cluster-store.js';
import { keySlot } from '../../src/adapters/redis-slots.js';
import { clusterNodes, serves } from '../cluster/support.js';
import { graphql, eventually, startTiercache, type RunningTiercache } from '../support/processes.js';
import { kafkaBrokers, redisTarget, uniqueName } from '../support/services.js';
import { onCluster, openStore, redisEnv } from '../support/stores.js';
import { sseClient, subscribe, wsClient } from '../support/subscriptions.js';

const READ = `query($keys: [String!]!) { values(keys: $keys) { key value exists source version } }`;
const SET = `mutation($entries: [EntryInput!]!, $ttl: Int) { setValues(entries: $entries, ttlSeconds: $ttl) { written { key version } } }`;
const DELETE = `mutation($keys: [String!]!) { deleteValues(keys: $keys) { written { key version } } }`;

interface Entry {
  key: string;
  value: string | null;
  exists: boolean;
  source: 'MEMORY' | 'REDIS' | 'NONE';
  version: string | null;
}

let writer: RunningTiercache;
let readers: RunningTiercache[];
let env: Record<string, string>;
const readerIds = [uniqueName('reader-a'), uniqueName('reader-b')];

async function appliedChanges(base: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  return Number(/^tiercache_reader_changes_applied_total (\d+)/m.exec(text)?.[1] ?? 0);
}

async function read(base: string, keys: string[]): Promise<Entry[]> {
  const res = await graphql<{ values: Entry[] }>(base, READ, { keys });
  if (!res.data) throw new Error(JSON.stringify(res.errors));
  return res.data.values;
}

beforeAll(async () => {
  env = {
    ...redisEnv(redisTarget()),
    KAFKA_BROKERS: kafkaBrokers().join(','),
    KAFKA_TOPIC: uniqueName('e2e'),
    REDIS_KEY_PREFIX: `${uniqueName('e2e')}:`,
    // Long enough that a remembered absence can only turn into a value through the feed.
    NEGATIVE_TTL_MS: '120000',
    FEED_SYNC_INTERVAL_MS: '200',
    KAFKA_INLINE_VALUE_MAX_BYTES: '1024',
  };
  writer = await startTiercache(['--mode=writer'], env);
  readers = await Promise.all(
    readerIds.map((id) => startTiercache(['--mode=reader', `--instance-id=${id}`], env)),
  );
  for (const r of readers) {
    await eventually('reader ready', async () =>
      (await fetch(`${r.base}/ready`)).status === 200 ? true : undefined,
    );
  }
}, 120_000);

afterAll(async () => {
  await Promise.all([writer, ...(readers ?? [])].filter(Boolean).map((p) => p.stop()));
});

describe('a writer and two reader processes', () => {
  it('propagate a write into both readers’ memory tiers through Kafka', async () => {
    const keys = ['alpha', 'beta'];
    // Both readers first learn that the keys are absent, and remember it in memory.
    for (const r of readers) {
      expect(await read(r.base, keys)).toEqual(
        keys.map((key) => ({ key, value: null, exists: false, source: 'NONE', version: null })),
      );
    }
    const res = await graphql<{ setValues: { written: { key: string; version: string }[] } }>(
      writer.base,
      SET,
      {
        entries: [
          { key: 'alpha', value: 'one' },
          { key: 'beta', value: 'two' },
        ],
      },
    );
    const versions = res.data!.setValues.written.map((w) => w.version);
    expect(versions.every((v) => /^\d+$/.test(v))).toBe(true);
    // Only the feed can turn a remembered absence into a value answered from MEMORY.
    for (const r of readers) {
      const entries = await eventually('the write in memory', async () => {
        const e = await read(r.base, keys);
        return e.every((x) => x.source === 'MEMORY' && x.exists) ? e : undefined;
      });
      expect(entries).toEqual([
        { key: 'alpha', value: 'one', exists: true, source: 'MEMORY', version: versions[0] },
        { key: 'beta', value: 'two', exists: true, source: 'MEMORY', version: versions[1] },
      ]);
    }
  });

  it('propagate a delete as a versioned tombstone to both readers', async () => {
    await graphql(writer.base, SET, { entries: [{ key: 'gamma', value: 'soon gone' }] });
    for (const r of readers) {
      await eventually('gamma in memory', async () =>
        (await read(r.base, ['gamma']))[0]?.source === 'MEMORY' ? true : undefined,
      );
    }
    const res = await graphql<{ deleteValues: { written: { version: string }[] } }>(writer.base, DELETE, {
      keys: ['gamma'],
    });
    const version = res.data!.deleteValues.written[0]!.version;
    for (const r of readers) {
      const [entry] = await eventually('the delete', async () => {
        const e = await read(r.base, ['gamma']);
        return e[0]?.version === version ? e : undefined;
      });
      expect(entry).toEqual({ key: 'gamma', value: null, exists: false, source: 'NONE', version });
      // The seed's REST route answers a deleted key as it answered any missing one.
      const rest = (await (await fetch(`${r.base}/read?keys=gamma`)).json()) as unknown;
      expect(rest).toEqual({ items: [{ key: 'gamma', value: '', source: 'not_found', exists: false }] });
    }
  });

  it('keep the newest version of a key two writers write at once, and ignore an older one announced after it', async () => {
    // Two writers' relays claim entries of one stream and publish them independently, so announcements of one
    // key by two writers reach Kafka in either order; readers must end on the version Redis holds.
    const second = await startTiercache(['--mode=writer'], env);
    const store = await openStore(redisTarget(), env.REDIS_KEY_PREFIX!);
    const bus = await KafkaBus.create({
      brokers: kafkaBrokers(),
      topic: env.KAFKA_TOPIC!,
      clientId: uniqueName('stale-publisher'),
      groupPrefix: uniqueName('unused'),
      partitions: 1,
      replicationFactor: 1,
    });
    try {
      for (let round = 0; round < 10; round++) {
        const results = await Promise.all(
          [writer, second, writer, second].map((w, i) =>
            graphql(w.base, SET, { entries: [{ key: 'contended', value: `r${round}-w${i}` }] }),
          ),
        );
        expect(results.every((res) => res.errors === undefined)).toBe(true);
      }
      const [truth] = await store.read(['contended']);
      for (const r of readers) {
        await eventually('the newest version in memory', async () => {
          const [e] = await read(r.base, ['contended']);
          return e?.source === 'MEMORY' && e.version === String(truth!.version) ? e : undefined;
        });
      }
      // An older version arriving late (a takeover's, or a writer's relay slower than another's): applied by
      // every reader (counted), kept by none.
      const appliedBefore = await Promise.all(readers.map((r) => appliedChanges(r.base)));
      await bus.publish([
        { op: 'set', key: 'contended', version: truth!.version - 1n, value: 'stale', expiresAt: null },
      ]);
      for (const [i, r] of readers.entries()) {
        await eventually('the stale change to reach the reader', async () =>
          (await appliedChanges(r.base)) > appliedBefore[i]! ? true : undefined,
        );
        expect((await read(r.base, ['contended']))[0]).toMatchObject({
          value: truth!.value,
          version: String(truth!.version),
          source: 'MEMORY',
        });
      }
    } finally {
      await bus.close();
      await store.close();
      await second.stop();
    }
  });

  it('serve the seed’s REST shapes from the same write path and loaders', async () => {
    const body = JSON.stringify({
      items: [
        { key: 'rest-1', value: 'r1' },
        { key: 'rest-2', value: 'r2' },
      ],
    });
    const written = await fetch(`${writer.base}/write`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    });
    expect(written.status).toBe(200);
    const { message, items } = (await written.json()) as {
      message: string;
      items: { key: string; version: string }[];
    };
    expect(message).toBe('success');
    expect(items.map((i) => i.key)).toEqual(['rest-1', 'rest-2']);
    for (const [i, r] of readers.entries()) {
      const got = await eventually('REST read from memory', async () => {
        const res = (await (await fetch(`${r.base}/read?keys=rest-1,rest-2`)).json()) as {
          items: { source: string }[];
        };
        return res.items.every((item) => item.source === 'memory') ? res : undefined;
      });
      expect(got).toEqual({
        items: [
          { key: 'rest-1', value: 'r1', source: 'memory', exists: true },
          { key: 'rest-2', value: 'r2', source: 'memory', exists: true },
        ],
      });
      // A key this reader never saw, asked twice (Redis answers, then the remembered absence): the seed's shape.
      const absent = `rest-none-${i}`;
      for (let ask = 0; ask < 2; ask++) {
        expect(await (await fetch(`${r.base}/read?keys=${absent}`)).json()).toEqual({
          items: [{ key: absent, value: '', source: 'not_found', exists: false }],
        });
      }
    }
    const bad = await fetch(`${writer.base}/write`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"items":[{"key":""}]}',
    });
    expect(bad.status).toBe(400);
    // The wrong role answers 404 with the same code GraphQL gives.
    const readOnWriter = await fetch(`${writer.base}/read?keys=rest-1`);
    expect(readOnWriter.status).toBe(404);
    expect(await readOnWriter.json()).toMatchObject({ code: 'WRONG_ROLE' });
    const writeOnReader = await fetch(`${readers[0]!.base}/write`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    });
    expect(writeOnReader.status).toBe(404);
    expect(await writeOnReader.json()).toMatchObject({ code: 'WRONG_ROLE' });
    expect(await bad.json()).toMatchObject({ code: 'BAD_USER_INPUT' });
  });

  it('answer fresh reads from Redis, and refuse the wrong role with WRONG_ROLE', async () => {
    await graphql(writer.base, SET, { entries: [{ key: 'fresh-key', value: 'v' }] });
    const fresh = await graphql<{ values: Entry[] }>(
      readers[0]!.base,
      `
        {
          values(keys: ["fresh-key"], fresh: true) {
            value
            source
          }
        }
      `,
    );
    expect(fresh.data!.values).toEqual([{ value: 'v', source: 'REDIS' }]);
    const onWriter = await graphql(writer.base, READ, { keys: ['x'] });
    expect(onWriter.errors?.[0]?.extensions?.code).toBe('WRONG_ROLE');
    const onReader = await graphql(readers[0]!.base, SET, { entries: [{ key: 'x', value: 'y' }] });
    expect(onReader.errors?.[0]?.extensions?.code).toBe('WRONG_ROLE');
  });

  it('expire a value with ttlSeconds in Redis and in every memory tier', async () => {
    // Both readers first remember the key as absent (NEGATIVE_TTL_MS is two minutes): from then on only the
    // feed can put the value in memory, so the expiry checked below is the one the feed carried, not one a
    // read fetched from Redis.
    for (const r of readers) {
      expect((await read(r.base, ['short-lived']))[0]).toMatchObject({ exists: false, version: null });
    }
    await graphql(writer.base, SET, { entries: [{ key: 'short-lived', value: 'v' }], ttl: 1 });
    for (const r of readers) {
      await eventually('short-lived in memory', async () => {
        const [e] = await read(r.base, ['short-lived']);
        return e?.source === 'MEMORY' && e.exists ? true : undefined;
      });
    }
    // Within seconds, not at the memory tier's own TTL (five minutes): the Redis expiry travelled with it.
    for (const r of readers) {
      await eventually(
        'short-lived to expire',
        async () => ((await read(r.base, ['short-lived']))[0]?.exists === false ? true : undefined),
        5000,
      );
    }
  });

  it('carry a batch over every outbox shard to both readers: each shard relayed, the feed proof holding', async () => {
    // One key per outbox shard (on a single Redis there is one shard, and these are just 16 keys): on a Redis
    // Cluster the batch is committed in 16 parts on every master, and a relay that skipped a shard would
    // leave its part unannounced and its outbox never empty.
    const keys: string[] = [];
    for (let i = 0; keys.length < OUTBOX_SHARDS; i++) {
      const key = `spread-${i}`;
      if (!keys.some((k) => shardOf(k) === shardOf(key))) keys.push(key);
    }
    const target = redisTarget();
    const store = await openStore(target, env.REDIS_KEY_PREFIX!);
    try {
      if (onCluster(target) && 'entryKey' in store) {
        const port = Number(target.redisClusterNodes.split(',')[0]!.split(':')[1]);
        const masters = (await clusterNodes(port)).filter((n) => n.role === 'master');
        const used = masters.filter((m) => keys.some((k) => serves(m, keySlot(store.entryKey(k)))));
        expect(used.length).toBeGreaterThanOrEqual(2);
      }
      for (const r of readers) {
        expect((await read(r.base, keys)).every((e) => !e.exists)).toBe(true);
      }
      const res = await graphql<{ setValues: { written: { key: string; version: string }[] } }>(
        writer.base,
        SET,
        { entries: keys.map((key) => ({ key, value: `v-${key}` })) },
      );
      expect(res.errors).toBeUndefined();
      const versions = res.data!.setValues.written.map((w) => w.version);
      await eventually('every outbox shard relayed', async () =>
        (await store.outbox.size()) === 0 ? true : undefined,
      );
      for (const r of readers) {
        const got = await eventually('the batch in memory', async () => {
          const e = await read(r.base, keys);
          return e.every((x) => x.source === 'MEMORY') ? e : undefined;
        });
        expect(got.map((e) => [e.value, e.version])).toEqual(keys.map((k, i) => [`v-${k}`, versions[i]]));
        // The proof covers every shard: the reader stays ready, its last proof recent.
        expect((await fetch(`${r.base}/ready`)).status).toBe(200);
        const metrics = await (await fetch(`${r.base}/metrics`)).text();
        const lag = Number(/^tiercache_reader_feed_lag_ms (\S+)$/m.exec(metrics)?.[1]);
        expect(lag).toBeLessThan(5_000);
      }
    } finally {
      await store.close();
    }
  });

  it('deliver writes to subscriptions on both readers, through graphql-ws and graphql-sse', async () => {
    const keys = ['sub-1', 'sub-2', 'sub-3'];
    const clients = [wsClient(readers[0]!.base), sseClient(readers[1]!.base)];
    try {
      const subs = clients.map((client) => subscribe(client, { keys }));
      // A subscription is live once the reader counts it (a write before that is not owed to it).
      for (const r of readers) {
        await eventually('the subscription open', async () =>
          /^tiercache_subscriptions_open [1-9]/m.test(await (await fetch(`${r.base}/metrics`)).text())
            ? true
            : undefined,
        );
      }
      const res = await graphql<{ setValues: { written: { key: string; version: string }[] } }>(
        writer.base,
        SET,
        { entries: keys.map((key) => ({ key, value: `s-${key}` })) },
      );
      const written = res.data!.setValues.written;
      for (const sub of subs) {
        await eventually('the writes delivered', async () =>
          sub.changes().length >= keys.length ? true : undefined,
        );
        // Keys travel on their own partitions: the order across keys is not promised, each key's is.
        const got = sub.changes().map((c) => [c.key, c.value, c.version, c.op]);
        expect(got.sort()).toEqual(written.map((w) => [w.key, `s-${w.key}`, w.version, 'SET']).sort());
      }
      await Promise.all(subs.map((sub) => sub.stop()));
    } finally {
      for (const client of clients) client.dispose();
    }
  });

  it('send a value too large for the feed as an invalidation: readers drop it and refetch the new value', async () => {
    const big = 'x'.repeat(4096);
    await graphql(writer.base, SET, { entries: [{ key: 'large', value: 'small' }] });
    for (const r of readers) {
      await eventually('small value in memory', async () =>
        (await read(r.base, ['large']))[0]?.value === 'small' ? true : undefined,
      );
    }
    const res = await graphql<{ setValues: { written: { version: string }[] } }>(writer.base, SET, {
      entries: [{ key: 'large', value: big }],
    });
    const version = res.data!.setValues.written[0]!.version;
    for (const r of readers) {
      const [first] = await eventually('the large value', async () => {
        const e = await read(r.base, ['large']);
        return e[0]?.version === version ? e : undefined;
      });
      // It did not travel: the first answer after the invalidation comes from Redis, then memory has it.
      expect(first).toMatchObject({ value: big, source: 'REDIS' });
      expect((await read(r.base, ['large']))[0]).toMatchObject({ value: big, source: 'MEMORY', version });
    }
  });

  it('announce what a writer killed mid-relay claimed but never acknowledged, once another writer runs', async () => {
    const store = await openStore(redisTarget(), env.REDIS_KEY_PREFIX!);
    try {
      // A writer of known instance id, so its relay's claims can be seen in the outbox (XPENDING).
      const id = uniqueName('doomed-writer');
      const doomed = await startTiercache(['--mode=writer', `--instance-id=${id}`], env);
      await writer.stop();
      writer = doomed;
      // Large batches keep the relay busy publishing for a while after the write is acknowledged. Freeze the
      // writer at once and look: once its relay holds a claim it has not acknowledged, kill it right there.
      const entries = Array.from({ length: 500 }, (_, i) => ({
        key: `orphan-${i}`,
        value: 'x'.repeat(1000),
      }));
      let caught = false;
      for (let attempt = 0; attempt < 40 && !caught; attempt++) {
        const res = await graphql(doomed.base, SET, { entries });
        doomed.process.kill('SIGSTOP');
        expect(res.errors).toBeUndefined();
        if ((await store.outbox.claimedBy(id)) > 0) {
          doomed.process.kill('SIGKILL');
          caught = true;
        } else {
          doomed.process.kill('SIGCONT');
        }
      }
      expect(caught, 'the relay was never caught between claim and acknowledgement').toBe(true);
      // And one batch committed after its death, which no relay ever read.
      const options = { ttlMs: null, tombstoneTtlMs: 60_000, inlineValueMaxBytes: 1024 };
      const [last] = await store.write([{ op: 'set', key: 'orphan-last', value: 'new' }], options);
      expect(await store.outbox.claimedBy(id)).toBeGreaterThan(0);

      // A new writer's relay announces the unread entry at once and takes over the dead relay's claims; only
      // after announcing does it acknowledge, so an empty outbox means everything reached Kafka.
      writer = await startTiercache(['--mode=writer', '--outbox-reclaim-ms=300'], env);
      await eventually('the outbox to be empty', async () =>
        (await store.outbox.size()) === 0 ? true : undefined,
      );
      const truth = await store.read(['orphan-0', 'orphan-499', 'orphan-last']);
      for (const r of readers) {
        // Ready again: the feed proven current end to end, the memory tier in use and fed.
        await eventually('reader ready', async () =>
          (await fetch(`${r.base}/ready`)).status === 200 ? true : undefined,
        );
        const got = await eventually('the orphaned writes', async () => {
          const e = await read(r.base, ['orphan-0', 'orphan-499', 'orphan-last']);
          return e.every((x, i) => x.version === String(truth[i]?.version)) ? e : undefined;
        });
        expect(got[2]).toMatchObject({ value: 'new', version: String(last!.version) });
      }
    } finally {
      await store.close();
    }
  });

  it('a reader stopped cleanly removes its consumer group', async () => {
    const admin = new Kafka({
      clientId: 'e2e-admin',
      brokers: kafkaBrokers(),
      logLevel: logLevel.NOTHING,
    }).admin();
    await admin.connect();
    try {
      const groupOf = (id: string) => `tiercache.reader.${id}`;
      const before = (await admin.listGroups()).groups.map((g) => g.groupId);
      expect(before).toEqual(expect.arrayContaining(readerIds.map(groupOf)));
      await readers[1]!.stop();
      expect(readers[1]!.process.exitCode).toBe(0);
      const after = (await admin.listGroups()).groups.map((g) => g.groupId);
      expect(after).toContain(groupOf(readerIds[0]!));
      expect(after).not.toContain(groupOf(readerIds[1]!));
    } finally {
      await admin.disconnect();
    }
  });
});
