// The Store port on a Redis Cluster: the single-node store's scripts, run once per outbox shard. A key
// belongs to one of OUTBOX_SHARDS shards; a shard's entries, outbox stream and byte counter share one hash
// tag, hence one slot, so each shard's part of a batch commits atomically with its announcement. Reads are
// one MGET per slot, sent at once. docs/architecture.md ("Redis Cluster") has the design and its contract.
import { Cluster } from 'ioredis';
import type { StoredEntry } from '../domain/entry.js';
import { log, metrics } from '../observability.js';
import {
  PartialWrite,
  ReplicasNotConfirmed,
  type ClaimOptions,
  type Committed,
  type Outbox,
  type OutboxBacklog,
  type OutboxEntry,
  type Store,
  type WriteOp,
  type WriteOptions,
} from '../ports.js';
import { sleepUnlessWoken, wakeAll } from '../wake.js';
import {
  backlogRefusal,
  callScript,
  committedFrom,
  defineScripts,
  REDIS_DOWN_FAIL_MS,
  RedisOutbox,
  unpackStored,
  writeCall,
  type ShardKeys,
} from './redis-store.js';
import { CLUSTER_SLOTS, keySlot } from './redis-slots.js';

/** Why 16: docs/architecture.md ("Redis Cluster"). Changing it moves every key: it is part of the layout. */
export const OUTBOX_SHARDS = 16;
/** How long a claim that found nothing waits before looking at every shard again (unless woken). */
export const CLAIM_POLL_MS = 100;
/** Replies that say a command was not run on this node: sending it again after a slot map refresh is safe. */
const NOT_RUN = /^(MOVED|ASK|TRYAGAIN|CLUSTERDOWN) /;
// As long as a write waits while Redis is unreachable (REDIS_DOWN_FAIL_MS).
const REDIRECT_ATTEMPTS = 5;
const REDIRECT_DELAY_MS = REDIS_DOWN_FAIL_MS / REDIRECT_ATTEMPTS;
/** How long a write waits for REDIS_MIN_REPLICAS_ACK replicas (WAIT's timeout). */
export const REPLICA_ACK_TIMEOUT_MS = 1_000;

/**
 * The hash tag of each shard: the first `s<i>.<n>` whose slot lies in the i-th sixteenth of the slot space,
 * so that the shards are spread evenly over the masters of a cluster with evenly split slots.
 */
export const SHARD_TAGS: readonly string[] = Array.from({ length: OUTBOX_SHARDS }, (_, shard) => {
  const span = CLUSTER_SLOTS / OUTBOX_SHARDS;
  for (let n = 0; ; n++) {
    const tag = `s${shard}.${n}`;
    if (Math.floor(keySlot(tag) / span) === shard) return tag;
  }
});

/** The shard of an entry key (as the client names it): keys sharing a hash tag share a shard. */
export function shardOf(key: string): number {
  return keySlot(key) % OUTBOX_SHARDS;
}

const connectionErrors = metrics.counter(
  'tiercache_redis_cluster_connection_errors_total',
  'Errors on the Redis Cluster client (a node lost, a failover under way)',
);

/**
 * A Cluster client for the store, failing as fast as the single-node one (REDIS_DOWN_FAIL_MS) while a node is
 * unreachable, and following MOVED and failovers by itself: ioredis refreshes its slot map on MOVED and when
 * a node's connection is lost.
 */
export function connectRedisCluster(seeds: readonly string[]): Cluster {
  const cluster = new Cluster(
    seeds.map((seed) => {
      const at = seed.lastIndexOf(':');
      return { host: seed.slice(0, at), port: Number(seed.slice(at + 1)) };
    }),
    {
      enableAutoPipelining: false,
      // While no node answers, commands fail at once instead of waiting in a queue without bound: a request
      // answers UNAVAILABLE, as with a single Redis. Start-up waits for 'ready' (waitUntilReady).
      enableOfflineQueue: false,
      scaleReads: 'master',
      retryDelayOnFailover: 200,
      retryDelayOnClusterDown: 200,
      retryDelayOnTryAgain: 200,
      clusterRetryStrategy: () => 200,
      slotsRefreshTimeout: REDIS_DOWN_FAIL_MS,
      redisOptions: {
        connectionName: 'tiercache',
        maxRetriesPerRequest: 0,
        connectTimeout: REDIS_DOWN_FAIL_MS - 200,
      },
    },
  );
  let lost = false;
  cluster.on('error', (error: Error) => {
    connectionErrors.inc();
    if (!lost) log.warn('redis cluster connection error; ioredis reconnects', { error: error.message });
    lost = true;
  });
  cluster.on('ready', () => {
    if (lost) log.info('redis cluster connection back');
    lost = false;
  });
  return cluster;
}

/** Resolves once the client has the cluster's slot map, or rejects after `timeoutMs` with the last error. */
export async function waitUntilReady(cluster: Cluster, timeoutMs: number): Promise<void> {
  if (cluster.status === 'ready') return;
  let lastError: Error | undefined;
  const remember = (error: Error): void => void (lastError = error);
  cluster.on('error', remember);
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(lastError ?? new Error(`no answer within ${timeoutMs} ms`)),
        timeoutMs,
      );
      cluster.once('ready', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  } finally {
    cluster.off('error', remember);
  }
}

export interface RedisClusterStoreOptions {
  readonly cluster: Cluster;
  /** As for RedisStore; entries live at `prefix + '{' + tag + '}e:' + key`, beside their shard's outbox. */
  readonly prefix: string;
  /** Replicas each write part waits for (WAIT) before it is acknowledged; 0 for none. */
  readonly minReplicasAck?: number;
  /** true hands the client to the store: close() then quits it. */
  readonly ownsClient?: boolean;
}

export class RedisClusterStore implements Store {
  readonly outbox: ShardedOutbox;
  private readonly cluster: Cluster;
  private readonly shards: ShardKeys[];
  private readonly minReplicasAck: number;
  private readonly ownsClient: boolean;

  constructor(options: RedisClusterStoreOptions) {
    this.cluster = options.cluster;
    this.shards = SHARD_TAGS.map((tag) => ({
      entryPrefix: `${options.prefix}{${tag}}e:`,
      outbox: `${options.prefix}{${tag}}outbox`,
      outboxBytes: `${options.prefix}{${tag}}outbox:bytes`,
    }));
    this.minReplicasAck = options.minReplicasAck ?? 0;
    this.ownsClient = options.ownsClient ?? false;
    this.outbox = new ShardedOutbox(
      this.shards.map(
        (shard) => new RedisOutbox(this.cluster, shard.outbox, shard.outboxBytes, shard.entryPrefix),
      ),
    );
    defineScripts(this.cluster);
  }

  /** The Redis key an entry is stored at (its shard's hash tag included). */
  entryKey(key: string): string {
    return this.shardKeys(key).entryPrefix + key;
  }

  async write(ops: readonly WriteOp[], options: WriteOptions): Promise<Committed[]> {
    if (ops.length === 0) return [];
    const parts = new Map<number, number[]>();
    ops.forEach((op, i) => {
      const shard = shardOf(op.key);
      const indexes = parts.get(shard);
      if (indexes) indexes.push(i);
      else parts.set(shard, [i]);
    });
    const outcomes = await Promise.allSettled(
      [...parts].map(async ([shard, indexes]) => {
        const partOps = indexes.map((i) => ops[i] as WriteOp);
        return { indexes, ...(await this.writePart(shard, partOps, options)) };
      }),
    );
    const committed: (Committed | undefined)[] = new Array<Committed | undefined>(ops.length);
    let confirmedLeast = Infinity;
    let firstError: unknown;
    for (const outcome of outcomes) {
      if (outcome.status === 'rejected') {
        firstError ??= outcome.reason;
        continue;
      }
      outcome.value.indexes.forEach((opIndex, i) => (committed[opIndex] = outcome.value.committed[i]));
      confirmedLeast = Math.min(confirmedLeast, outcome.value.replicas);
    }
    const done = committed.filter((c): c is Committed => c !== undefined);
    if (done.length > 0) this.outbox.wake();
    if (firstError !== undefined) {
      if (done.length === 0) throw firstError;
      throw new PartialWrite(
        done,
        ops.filter((_, i) => committed[i] === undefined).map((op) => op.key),
        firstError,
      );
    }
    if (confirmedLeast < this.minReplicasAck) {
      throw new ReplicasNotConfirmed(this.minReplicasAck, confirmedLeast, REPLICA_ACK_TIMEOUT_MS);
    }
    return done;
  }

  /**
   * One shard's part: the write script, and with minReplicasAck a WAIT in the same pipeline, so that it goes
   * to the master that ran the script, on the same connection, right after it.
   */
  private async writePart(
    shard: number,
    ops: readonly WriteOp[],
    options: WriteOptions,
  ): Promise<{ committed: Committed[]; replicas: number }> {
    const { name, keys, args } = writeCall(this.shards[shard] as ShardKeys, ops, options);
    if (this.minReplicasAck === 0) {
      const reply = await callScript(this.cluster, name, keys, args).catch((error: unknown) => {
        throw backlogRefusal(error) ?? error;
      });
      return { committed: committedFrom(ops, reply), replicas: Infinity };
    }
    // ioredis follows MOVED for a pipeline only when all its commands are read-only; ours is not, so a
    // redirection (or a cluster mid-failover) is followed here: the script did not run, it is safe to resend.
    for (let attempt = 1; ; attempt++) {
      const pipeline = this.cluster.pipeline();
      const command: unknown = Reflect.get(pipeline, name);
      if (typeof command !== 'function') throw new Error(`ioredis did not define ${name} on pipelines`);
      Reflect.apply(command, pipeline, [keys.length, keys, args]);
      pipeline.call('WAIT', String(this.minReplicasAck), String(REPLICA_ACK_TIMEOUT_MS));
      const [script, wait] = (await pipeline.exec()) ?? [];
      if (!script || !wait) throw new Error('the write pipeline was aborted');
      const [error, reply] = script;
      if (error && NOT_RUN.test(error.message) && attempt < REDIRECT_ATTEMPTS) {
        await new Promise((resolve) =>
          this.cluster.refreshSlotsCache(() => setTimeout(resolve, REDIRECT_DELAY_MS)),
        );
        continue;
      }
      if (error) throw backlogRefusal(error) ?? error;
      const committed = committedFrom(ops, reply);
      // The script committed: a failed WAIT is reported as unconfirmed, not as a failed write.
      return { committed, replicas: wait[0] ? 0 : Number(wait[1]) };
    }
  }

  async read(keys: readonly string[]): Promise<(StoredEntry | null)[]> {
    if (keys.length === 0) return [];
    const redisKeys = keys.map((key) => this.entryKey(key));
    // One MGET per slot: Redis Cluster refuses a multi-key command across slots (CROSSSLOT).
    const bySlot = new Map<number, number[]>();
    redisKeys.forEach((key, i) => {
      const slot = keySlot(key);
      const indexes = bySlot.get(slot);
      if (indexes) indexes.push(i);
      else bySlot.set(slot, [i]);
    });
    const answers = new Array<StoredEntry | null>(keys.length).fill(null);
    await Promise.all(
      [...bySlot.values()].map(async (indexes) => {
        const slotKeys = indexes.map((i) => redisKeys[i] as string);
        const packed = await this.cluster.mget(slotKeys);
        indexes.forEach(
          (opIndex, i) => (answers[opIndex] = unpackStored(packed[i] ?? null, slotKeys[i] as string)),
        );
      }),
    );
    return answers;
  }

  async close(): Promise<void> {
    this.outbox.close();
    if (!this.ownsClient || this.cluster.status === 'end') return;
    if (this.cluster.status !== 'ready') return void this.cluster.disconnect();
    await this.cluster.quit();
  }

  private shardKeys(key: string): ShardKeys {
    return this.shards[shardOf(key)] as ShardKeys;
  }
}

/**
 * The outbox over every shard: a claim reads all of them (no blocking read can span slots), and when all are
 * empty waits until the store commits a write or CLAIM_POLL_MS pass. An entry's id is `<shard>/<stream id>`.
 */
export class ShardedOutbox implements Outbox {
  private readonly wakers = new Set<() => void>();
  private closed = false;

  constructor(private readonly shards: readonly RedisOutbox[]) {}

  /** Claims waiting right now (for tests: a claim that waits is what a write must wake). */
  get waitingClaims(): number {
    return this.wakers.size;
  }

  async claim(relayId: string, options: ClaimOptions): Promise<OutboxEntry[]> {
    const deadline = Date.now() + options.blockMs;
    for (;;) {
      const found = await this.claimEach(relayId, options);
      const left = deadline - Date.now();
      if (found.length > 0 || left <= 0 || this.closed) return found;
      await sleepUnlessWoken(this.wakers, Math.min(CLAIM_POLL_MS, left));
    }
  }

  async ack(ids: readonly string[]): Promise<void> {
    const byShard = new Map<number, string[]>();
    for (const id of ids) {
      const slash = id.indexOf('/');
      const shard = Number(id.slice(0, slash));
      if (slash < 0 || !this.shards[shard])
        throw new Error(`${JSON.stringify(id)} is not a sharded outbox id`);
      const list = byShard.get(shard);
      if (list) list.push(id.slice(slash + 1));
      else byShard.set(shard, [id.slice(slash + 1)]);
    }
    await Promise.all([...byShard].map(([shard, streamIds]) => this.shards[shard]?.ack(streamIds)));
  }

  async size(): Promise<number> {
    const sizes = await Promise.all(this.shards.map((shard) => shard.size()));
    return sizes.reduce((sum, size) => sum + size, 0);
  }

  /** Over every shard, as RedisOutbox.claimedBy. */
  async claimedBy(relayId: string): Promise<number> {
    const counts = await Promise.all(this.shards.map((shard) => shard.claimedBy(relayId)));
    return counts.reduce((sum, count) => sum + count, 0);
  }

  /** Sums over the shards, and the oldest entry of any: a reader's proof covers every shard. */
  async backlog(): Promise<OutboxBacklog> {
    const all = await Promise.all(this.shards.map((shard) => shard.backlog()));
    const ages = all.flatMap((backlog) => (backlog.oldestAgeMs === null ? [] : [backlog.oldestAgeMs]));
    return {
      entries: all.reduce((sum, backlog) => sum + backlog.entries, 0),
      bytes: all.reduce((sum, backlog) => sum + backlog.bytes, 0),
      oldestAgeMs: ages.length === 0 ? null : Math.max(...ages),
    };
  }

  /** A write was committed here: claims waiting for one look again now. */
  wake(): void {
    wakeAll(this.wakers);
  }

  close(): void {
    this.closed = true;
    wakeAll(this.wakers);
    for (const shard of this.shards) shard.close();
  }

  /** One look at every shard, at once; at most `max` entries in all, or one per shard when max is smaller. */
  private async claimEach(relayId: string, { max, reclaimAfterMs }: ClaimOptions): Promise<OutboxEntry[]> {
    const perShard = Math.max(1, Math.floor(max / this.shards.length));
    const found = await Promise.all(
      this.shards.map(async (shard, i) =>
        (await shard.claim(relayId, { max: perShard, blockMs: 0, reclaimAfterMs })).map((entry) => ({
          id: `${i}/${entry.id}`,
          changes: entry.changes,
        })),
      ),
    );
    return found.flat();
  }
}
