// RedisClusterStore on a real Redis Cluster (the project's, 3 masters + 3 replicas): the shared Store contract,
// then what only a cluster can get wrong — the slots Redis computes, a batch spread over masters, one MGET
// per slot, and a batch that commits in some shards and not in others.
import type { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  OUTBOX_SHARDS,
  RedisClusterStore,
  SHARD_TAGS,
  shardOf,
} from '../../src/adapters/redis-cluster-store.js';
import { keySlot } from '../../src/adapters/redis-slots.js';
import { PartialWrite, type WriteOp } from '../../src/ports.js';
import { describeStoreContract } from '../contract/store.contract.js';
import { eventually } from '../support/processes.js';
import { uniqueName } from '../support/services.js';
import { clusterNodes, connectReady, KEEP, serves, sharedClusterNodes } from './support.js';

const set = (key: string, value: string): WriteOp => ({ op: 'set', key, value });

let admin: Cluster;
beforeAll(async () => {
  admin = await connectReady(sharedClusterNodes());
});
afterAll(() => {
  admin?.disconnect();
});

/** The node id of the master serving `slot`, from CLUSTER NODES. */
async function slotOwners(): Promise<(slot: number) => string> {
  const [first] = sharedClusterNodes();
  if (!first) throw new Error('no nodes');
  const masters = (await clusterNodes(Number(first.split(':')[1]))).filter((node) => node.role === 'master');
  return (slot) => {
    const owner = masters.find((node) => serves(node, slot));
    if (!owner) throw new Error(`no master serves slot ${slot}`);
    return owner.id;
  };
}

describeStoreContract('RedisClusterStore', async () => {
  const prefix = `${uniqueName('cstore')}:`;
  const store = new RedisClusterStore({
    cluster: await connectReady(sharedClusterNodes()),
    prefix,
    ownsClient: true,
  });
  return {
    store,
    shardOf,
    cleanup: async () => {
      // Every key of the test is under one of the shards' tags: one SCAN-free DEL per shard.
      await Promise.all(
        SHARD_TAGS.map(async (tag) => {
          const keys = [`${prefix}{${tag}}outbox`, `${prefix}{${tag}}outbox:bytes`];
          for (const key of ['a', 'b', 'big', 'gone', 'late', 'exact', 'over', 'odd', 'k', 'x']) {
            if (SHARD_TAGS[shardOf(key)] === tag) keys.push(store.entryKey(key));
          }
          await admin.del(...keys);
        }),
      );
      await store.close();
    },
    elapse: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    claimWaiting: () =>
      eventually('the claim to wait for a write', async () =>
        store.outbox.waitingClaims > 0 ? true : undefined,
      ).then(() => undefined),
  };
});

describe('RedisClusterStore on a Redis Cluster', () => {
  it('computes the slot of a key as Redis does (hash tags, UTF-8, empty tags)', async () => {
    const keys = [
      'a',
      '{user1000}.following',
      'foo{}{bar}',
      'foo{{bar}}zap',
      'ü😀x',
      '',
      '{}',
      'x{y',
      ...SHARD_TAGS,
    ];
    for (const key of keys) {
      expect([key, keySlot(key)]).toEqual([key, await admin.call('CLUSTER', 'KEYSLOT', key)]);
    }
  });

  it('spreads its 16 shards over every master, and a batch of keys over at least two', async () => {
    const owner = await slotOwners();
    const prefix = `${uniqueName('spread')}:`;
    const store = new RedisClusterStore({ cluster: admin, prefix });
    const shardMasters = SHARD_TAGS.map((tag) => owner(keySlot(tag)));
    expect(new Set(shardMasters).size).toBe(3);
    const keys = Array.from({ length: 20 }, (_, i) => `key-${i}`);
    const committed = await store.write(
      keys.map((key) => set(key, key)),
      KEEP,
    );
    expect(committed.map((c) => c.key)).toEqual(keys);
    // Where Redis itself says the stored keys live, not where the store meant to put them.
    const masters = new Set<string>();
    for (const key of keys) {
      const slot = Number(await admin.call('CLUSTER', 'KEYSLOT', store.entryKey(key)));
      expect(await admin.exists(store.entryKey(key))).toBe(1);
      masters.add(owner(slot));
    }
    expect(masters.size).toBeGreaterThanOrEqual(2);
    expect((await store.read(keys)).map((entry) => entry?.value)).toEqual(keys);
    expect(await store.outbox.size()).toBe(new Set(keys.map(shardOf)).size);
    await store.close();
  });

  it('reads a batch across slots with one MGET per slot, answers in request order', async () => {
    const prefix = `${uniqueName('mget')}:`;
    const store = new RedisClusterStore({ cluster: admin, prefix });
    const keys = Array.from({ length: 50 }, (_, i) => `k${i}`);
    await store.write(
      keys.filter((_, i) => i % 2 === 0).map((key) => set(key, `v-${key}`)),
      KEEP,
    );
    const asked = [...keys].reverse().concat(['k0', 'missing']);
    const before = await mgetCalls();
    const entries = await store.read(asked);
    const after = await mgetCalls();
    expect(entries.map((entry) => entry?.value ?? null)).toEqual(
      asked.map((key) => (key !== 'missing' && Number(key.slice(1)) % 2 === 0 ? `v-${key}` : null)),
    );
    const slots = new Set(asked.map((key) => keySlot(store.entryKey(key))));
    expect(slots.size).toBeLessThanOrEqual(OUTBOX_SHARDS);
    expect(after - before).toBe(slots.size);
    await store.close();
  });

  it('commits the shards it can and says which keys it could not write (PARTIAL_WRITE)', async () => {
    const prefix = `${uniqueName('partial')}:`;
    const store = new RedisClusterStore({ cluster: admin, prefix });
    const keys = Array.from({ length: 20 }, (_, i) => `p${i}`);
    const broken = keys[0] as string;
    // A foreign value under one key refuses that key's shard's part, and only it.
    await admin.hset(store.entryKey(broken), 'not', 'an entry');
    const brokenShard = shardOf(broken);
    const error: unknown = await store
      .write(
        keys.map((key) => set(key, 'v')),
        KEEP,
      )
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(PartialWrite);
    const partial = error as PartialWrite;
    expect(partial.notWritten).toEqual(keys.filter((key) => shardOf(key) === brokenShard));
    expect(partial.committed.map((c) => c.key)).toEqual(keys.filter((key) => shardOf(key) !== brokenShard));
    const stored = await store.read(keys.filter((key) => key !== broken));
    expect(stored.map((entry) => entry?.value ?? null)).toEqual(
      keys.filter((key) => key !== broken).map((key) => (shardOf(key) === brokenShard ? null : 'v')),
    );
    await store.close();
  });
});

describe('RedisClusterStore outbox over its shards', () => {
  const KEYS = Array.from({ length: 40 }, (_, i) => `o${i}`);

  it('answers the age of the oldest entry of any shard, so that a feed proof covers every shard', async () => {
    const store = new RedisClusterStore({ cluster: admin, prefix: `${uniqueName('age')}:` });
    const [older, younger] = [
      KEYS[0] as string,
      KEYS.find((key) => shardOf(key) !== shardOf(KEYS[0] as string)),
    ];
    if (!younger) throw new Error('no key in another shard');
    await store.write([set(older, 'first')], KEEP);
    await new Promise((resolve) => setTimeout(resolve, 200));
    await store.write([set(younger, 'second')], KEEP);
    const entries = await store.outbox.claim('r1', { max: 100, blockMs: 0, reclaimAfterMs: 60_000 });
    const ofYounger = entries.filter((entry) => entry.changes[0]?.key === younger);
    await store.outbox.ack(ofYounger.map((entry) => entry.id));
    // The younger shard is drained; the older one still holds its entry, and the backlog says so.
    const backlog = await store.outbox.backlog();
    expect(backlog.entries).toBe(1);
    expect(backlog.oldestAgeMs).toBeGreaterThanOrEqual(190);
    await store.outbox.ack(
      entries.filter((entry) => entry.changes[0]?.key === older).map((entry) => entry.id),
    );
    expect(await store.outbox.backlog()).toEqual({ entries: 0, bytes: 0, oldestAgeMs: null });
    await store.close();
  });

  it('takes over, on every shard, the entries a dead relay claimed and never acknowledged', async () => {
    const store = new RedisClusterStore({ cluster: admin, prefix: `${uniqueName('takeover')}:` });
    for (const key of KEYS) await store.write([set(key, 'v')], KEEP);
    const shards = new Set(KEYS.map(shardOf));
    expect(shards.size).toBeGreaterThan(8);
    // The dead relay claimed everything (in several claims: each takes a few per shard).
    const dead: string[] = [];
    for (
      let claimed;
      (claimed = await store.outbox.claim('dead', { max: 100, blockMs: 0, reclaimAfterMs: 60_000 })).length >
      0;
    ) {
      dead.push(...claimed.map((entry) => entry.id));
    }
    expect(dead).toHaveLength(KEYS.length);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const taken: string[] = [];
    for (
      let claimed;
      (claimed = await store.outbox.claim('alive', { max: 100, blockMs: 0, reclaimAfterMs: 50 })).length > 0;
    ) {
      taken.push(...claimed.map((entry) => entry.id));
      await store.outbox.ack(claimed.map((entry) => entry.id));
      // Each relay looks for abandoned entries a few times per reclaim period, not on every claim.
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(taken.sort()).toEqual(dead.sort());
    expect(await store.outbox.size()).toBe(0);
    await store.close();
  });
});

/** MGET calls served so far by all masters (INFO commandstats). */
async function mgetCalls(): Promise<number> {
  let calls = 0;
  for (const node of admin.nodes('master')) {
    const stats = String(await node.info('commandstats'));
    calls += Number(/cmdstat_mget:calls=(\d+)/.exec(stats)?.[1] ?? 0);
  }
  return calls;
}
