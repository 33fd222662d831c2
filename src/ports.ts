// The two interfaces the domain needs from the outside world. Each has a real adapter (Redis, Kafka) and an
// embedded one (in-memory store, in-process bus); one contract suite per port runs against all of them.
import type { Change, StoredEntry, Version } from './domain/entry.js';

/** One operation of a write batch, in the order given. */
export type WriteOp =
  | { readonly op: 'set'; readonly key: string; readonly value: string }
  | { readonly op: 'delete'; readonly key: string };

export interface WriteOptions {
  /** Expiry of the set values, in ms; null for none. Deletes ignore it. */
  readonly ttlMs: number | null;
  /** How long a delete's tombstone is kept, in ms. */
  readonly tombstoneTtlMs: number;
  /** Values of more UTF-8 bytes than this enter the outbox as invalidations (version only). */
  readonly inlineValueMaxBytes: number;
  /**
   * Refuse the write (FeedBackedUp) while the outbox already holds this much unannounced: a long Kafka
   * outage must not fill the Redis that holds the data set. 0 for no bound; absent: unbounded.
   */
  readonly outboxLimit?: { readonly maxEntries: number; readonly maxBytes: number };
}

/** What waits in the outbox to be announced. */
export interface OutboxBacklog {
  /** Entries (committed batches) not yet acknowledged. */
  readonly entries: number;
  /** Their size as stored (the changes' encoded bytes). */
  readonly bytes: number;
  /** How long ago the oldest of them was committed, by the store's clock; null when there is none. */
  readonly oldestAgeMs: number | null;
}

/** A write refused because the outbox holds too much that is not announced yet; it drains by itself. */
export class FeedBackedUp extends Error {
  override readonly name = 'FeedBackedUp';
  constructor(readonly backlog: { readonly entries: number; readonly bytes: number }) {
    super(
      `the change feed is backed up: ${backlog.entries} committed batches (${backlog.bytes} bytes) wait to ` +
        'be announced on Kafka; writes resume by themselves once they drain',
    );
  }
}

/**
 * A batch spanning several outbox shards (Redis Cluster) of which some shards' parts committed and others
 * failed: each part is atomic, the batch is not (see Store.write). Writing the whole batch again is safe.
 */
export class PartialWrite extends Error {
  override readonly name = 'PartialWrite';
  constructor(
    /** What the parts that succeeded committed, in op order. */
    readonly committed: readonly Committed[],
    /** The keys of the ops that were not written, in op order. */
    readonly notWritten: readonly string[],
    cause: unknown,
  ) {
    // The cause (a node's address, a script error) is logged, not shown to the client.
    super(
      `the batch was written only in part: ${committed.length} of ${committed.length + notWritten.length} ` +
        'operations are committed and announced (extensions.written), the others are not ' +
        '(extensions.notWritten): their keys are in other Redis Cluster shards, each committed on its own, and ' +
        `${cause instanceof FeedBackedUp ? 'the change feed is backed up' : 'the store failed'} for those; ` +
        'writing the whole batch again is safe',
      { cause },
    );
  }
}

/**
 * A write committed on its masters that fewer replicas than asked for (REDIS_MIN_REPLICAS_ACK) confirmed in
 * time: it may be lost if such a master fails now. Writing it again is safe.
 */
export class ReplicasNotConfirmed extends Error {
  override readonly name = 'ReplicasNotConfirmed';
  constructor(
    readonly wanted: number,
    readonly confirmed: number,
    readonly timeoutMs: number,
  ) {
    super(
      `the write is committed, but only ${confirmed} of the ${wanted} replicas asked for (REDIS_MIN_REPLICAS_ACK) ` +
        `confirmed it within ${timeoutMs} ms, so a failover could still lose it; write it again to be sure`,
    );
  }
}

/** What the store committed for one op: the version it assigned and the entry's absolute expiry. */
export interface Committed {
  readonly key: string;
  readonly op: 'set' | 'delete';
  readonly version: Version;
  readonly expiresAt: number | null;
}

/** One committed batch's changes (in a sharded outbox: one shard's part of the batch), waiting to be announced. */
export interface OutboxEntry {
  readonly id: string;
  readonly changes: readonly Change[];
}

export interface ClaimOptions {
  /** Most entries to claim. */
  readonly max: number;
  /** How long to wait for a new entry when there is none. */
  readonly blockMs: number;
  /** An entry claimed by a relay that has not acknowledged it for this long is taken over (its relay died). */
  readonly reclaimAfterMs: number;
}

/**
 * The changes of every committed write, appended in the same atomic step as the write, until a relay has
 * put them on the bus. This is what makes an acknowledged write's announcement survive a writer crash.
 */
export interface Outbox {
  /** Claims entries for `relayId`: first those abandoned by other relays, then new ones, oldest first. */
  claim(relayId: string, options: ClaimOptions): Promise<OutboxEntry[]>;
  /** The entries' changes are on the bus: remove them. */
  ack(ids: readonly string[]): Promise<void>;
  /** Entries not yet acknowledged, claimed or not. */
  size(): Promise<number>;
  /**
   * Size and age of what is not yet acknowledged. Everything committed before the oldest unacknowledged
   * entry has been announced: this is how a reader extends its feed proof back to the commit.
   */
  backlog(): Promise<OutboxBacklog>;
}

/**
 * A store call failed (unreachable, timed out, refused): the request may succeed if retried. The reader and
 * writer wrap what the store throws in it, so that the API layers can tell a store outage from a bug.
 */
export class StoreFailure extends Error {
  constructor(operation: string, cause: unknown) {
    super(`store ${operation} failed: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'StoreFailure';
  }
}

/**
 * Runs one store call, turning whatever it throws into a StoreFailure — except FeedBackedUp, PartialWrite and
 * ReplicasNotConfirmed, which tell the client something it can act on, with their own messages.
 */
export async function callStore<T>(operation: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (
      error instanceof FeedBackedUp ||
      error instanceof PartialWrite ||
      error instanceof ReplicasNotConfirmed
    )
      throw error;
    throw new StoreFailure(operation, error);
  }
}

/** The source of truth: holds every entry, assigns versions atomically with the write. */
export interface Store {
  /**
   * Applies the batch, assigning each op a version greater than any the key had, and appends its changes to
   * the outbox in the same atomic step. Atomic (all or nothing) per outbox shard: a store with one shard (the
   * embedded store, a single Redis) applies the whole batch or none of it; a Redis Cluster store commits each
   * shard's part on its own, so a batch across shards either succeeds, or fails as a whole (nothing written),
   * or throws PartialWrite naming what was and was not committed. A key named twice gets two increasing
   * versions; the last op wins. Results are in op order.
   */
  write(ops: readonly WriteOp[], options: WriteOptions): Promise<Committed[]>;
  readonly outbox: Outbox;
  /** Reads keys in one round trip; null where the store has nothing (never written, or expired). */
  read(keys: readonly string[]): Promise<(StoredEntry | null)[]>;
  close(): Promise<void>;
}

/**
 * Receives changes in publish order per key. The bus waits for each call to settle before the next, so a
 * handler sees one batch at a time; a rejected promise is logged by the bus and delivery goes on.
 */
export type ChangeHandler = (changes: readonly Change[]) => Promise<void> | void;

export interface Subscription {
  /**
   * A barrier: resolves once every change published (and acknowledged) before this call has been passed to
   * the handler. This is how a reader proves its feed is current.
   */
  sync(timeoutMs: number): Promise<void>;
  /** Stops delivery and releases what the subscription holds on the broker (e.g. its consumer group). */
  close(): Promise<void>;
}

/** Broadcast of committed changes: every subscriber receives every change. */
export interface ChangeBus {
  /** Resolves once the bus has durably accepted the changes (for Kafka: acked by all in-sync replicas). */
  publish(changes: readonly Change[]): Promise<void>;
  /**
   * Starts delivering changes published from now on to `handler`. `subscriberId` is stable per reader
   * instance; two subscriptions never share delivery. Resolves once the subscription is live, i.e. every
   * change published after the promise resolves will be delivered.
   */
  subscribe(subscriberId: string, handler: ChangeHandler): Promise<Subscription>;
  /**
   * Bytes `change` takes as one message of this bus (key and encoded value): what the broker's message
   * size limit counts, which can be several times the raw value (JSON escapes a control character in six).
   */
  messageBytes(change: Change): number;
  close(): Promise<void>;
}
