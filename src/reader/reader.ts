// The read side of one process: answers keys from the memory tier, coalesces the misses of every request
// into batched store reads, and keeps the tier current from the change feed.
import { Batcher } from '../domain/batcher.js';
import type { Change, StoredEntry, Version } from '../domain/entry.js';
import { systemClock, type Clock } from '../domain/clock.js';
import { MemoryTier, type Lookup } from '../domain/memory-tier.js';
import { log, metrics, reportError } from '../observability.js';
import { callStore, type ChangeBus, type Store, type Subscription } from '../ports.js';
import { FeedMonitor } from './feed-monitor.js';

/** One key's answer, as the API layers present it. */
export interface ReadResult {
  readonly key: string;
  readonly value: string | null;
  readonly version: Version | null;
  /** Where the answer came from (for an absent key too: a remembered absence, or the store's). */
  readonly origin: 'memory' | 'redis';
}

/** A batched store read's answer (see MemoryTier.settle), with the expiry when it is the store's entry. */
export interface Fetched extends Lookup {
  /** Absolute expiry in ms of the answered entry, when it is the one the store returned; else null. */
  readonly expiresAt: number | null;
}

export interface ReaderOptions {
  /** Stable per reader instance: names its subscription (its consumer group) on the bus. */
  instanceId: string;
  memory: { maxEntries: number; maxBytes: number; ttlMs: number; negativeTtlMs: number };
  /** Most keys in one store read. */
  maxBatch: number;
  purgeIntervalMs: number;
  feed: { syncIntervalMs: number; maxLagMs: number };
  clock?: Clock;
}

const reads = metrics.counter(
  'tiercache_reader_keys_total',
  'Keys answered by readers, by origin and whether the key exists',
);
const readSeries = {
  memory: {
    true: reads.bind({ origin: 'memory', exists: 'true' }),
    false: reads.bind({ origin: 'memory', exists: 'false' }),
  },
  redis: {
    true: reads.bind({ origin: 'redis', exists: 'true' }),
    false: reads.bind({ origin: 'redis', exists: 'false' }),
  },
} as const;
const storeReads = metrics.counter(
  'tiercache_reader_store_reads_total',
  'Batched store reads (one Redis MGET each)',
);
const storeKeys = metrics.counter(
  'tiercache_reader_store_read_keys_total',
  'Keys fetched by batched store reads',
);
const applied = metrics.counter(
  'tiercache_reader_changes_applied_total',
  'Changes from the feed applied to the memory tier',
);
// Commit to applied, from the version (commit time in µs on the Redis server's clock) to this reader's
// clock: exact on one machine, off by the clock skew across machines.
const propagation = metrics.histogram(
  'tiercache_reader_propagation_ms',
  'Milliseconds from a change’s commit in the store to its application by this reader',
  [
    0.5, 1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 75, 100, 150, 200, 300, 500, 1000, 2000, 5000,
    10000,
  ],
);
const feedTrust = metrics.counter(
  'tiercache_reader_feed_trust_changes_total',
  'Times the memory tier was cleared because feed trust changed',
);

export class Reader {
  readonly tier: MemoryTier;
  private readonly batcher: Batcher<StoredEntry | null, Fetched>;
  private readonly monitor: FeedMonitor;
  private subscription: Subscription | null = null;
  private purgeTimer: NodeJS.Timeout | null = null;
  private readonly clock: Clock;
  private readonly changeListeners = new Set<(changes: readonly Change[]) => unknown>();
  private readonly trustListeners = new Set<(trusted: boolean) => void>();

  private constructor(
    private readonly store: Store,
    options: ReaderOptions,
  ) {
    const clock = options.clock ?? systemClock;
    this.clock = clock;
    this.tier = new MemoryTier({ ...options.memory, clock });
    this.batcher = new Batcher<StoredEntry | null, Fetched>(
      {
        fetch: (keys) => {
          storeReads.inc();
          storeKeys.inc({}, keys.length);
          return callStore('read', () => this.store.read(keys));
        },
        queued: (key) => this.tier.watch(key),
        settle: (key, stored) => {
          const answer = this.trusted() ? this.tier.settle(key, stored) : this.settleUntrusted(key, stored);
          // The expiry belongs to the store's entry: only an answer that is that entry carries it.
          return { ...answer, expiresAt: answer.origin === 'store' ? (stored?.expiresAt ?? null) : null };
        },
        failed: (key) => this.tier.abandon(key),
      },
      { maxBatch: options.maxBatch },
    );
    this.monitor = new FeedMonitor(
      (timeoutMs) => this.prove(timeoutMs),
      { intervalMs: options.feed.syncIntervalMs, maxLagMs: options.feed.maxLagMs, clock },
      (trusted, lagMs) => this.trustChanged(trusted, lagMs),
    );
    metrics.gauge('tiercache_reader_memory_entries', 'Entries in the memory tier', () => this.tier.size);
    metrics.gauge('tiercache_reader_memory_bytes', 'Bytes counted in the memory tier', () => this.tier.bytes);
    metrics.gauge('tiercache_reader_feed_lag_ms', 'Age of the last proof that the feed is current', () =>
      Math.min(this.monitor.lagMs, Number.MAX_SAFE_INTEGER),
    );
  }

  /**
   * Subscribes to the feed and resolves once it is live; the memory tier is trusted from the start if the
   * outbox held nothing old then (see prove()).
   */
  static async start(store: Store, bus: ChangeBus, options: ReaderOptions): Promise<Reader> {
    const reader = new Reader(store, options);
    const startedAt = reader.clock.now();
    // Redis away at start is no reason not to start: the monitor proves the feed once it answers.
    const backlog = await store.outbox.backlog().catch(() => null);
    reader.subscription = await bus.subscribe(options.instanceId, (changes) => reader.onChanges(changes));
    if (backlog) reader.monitor.proven(startedAt - (backlog.oldestAgeMs ?? 0));
    reader.monitor.start();
    reader.purgeTimer = setInterval(() => {
      const purged = reader.tier.purgeExpired();
      if (purged > 0) log.debug('purged expired memory entries', { purged });
    }, options.purgeIntervalMs);
    reader.purgeTimer.unref();
    return reader;
  }

  /** Whether the feed is proven current, i.e. the memory tier is in use. */
  get feedCurrent(): boolean {
    return this.trusted();
  }

  /**
   * Called each time trust in the feed changes, when it changes (after the memory tier was cleared): false
   * when it is lost, true when it returns and changes may have been missed meanwhile.
   */
  onTrustChange(listener: (trusted: boolean) => void): () => void {
    this.trustListeners.add(listener);
    return () => this.trustListeners.delete(listener);
  }

  /**
   * Answers keys in order when the memory tier holds every one of them, without waiting for anything:
   * undefined when one is missing (or the feed is not proven current), and then read() answers.
   */
  readHeld(keys: readonly string[]): ReadResult[] | undefined {
    if (!this.trusted()) return undefined;
    const results: ReadResult[] = new Array(keys.length);
    let present = 0;
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!; // i < keys.length
      const lookup = this.tier.lookup(key);
      if (lookup === undefined) return undefined;
      if (lookup.value !== null) present++;
      results[i] = { key, value: lookup.value, version: lookup.version, origin: 'memory' };
    }
    if (present > 0) readSeries.memory.true.inc(present);
    if (present < keys.length) readSeries.memory.false.inc(keys.length - present);
    return results;
  }

  /**
   * Answers keys in order. The memory tier answers what it holds (unless `fresh`, or the feed is not proven
   * current); the rest joins the batcher, and only those wait.
   */
  async read(keys: readonly string[], fresh: boolean): Promise<ReadResult[]> {
    const useMemory = !fresh && this.trusted();
    const results: ReadResult[] = new Array(keys.length);
    const pending: Promise<void>[] = [];
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!; // i < keys.length
      const held = useMemory ? this.tier.lookup(key) : undefined;
      if (held !== undefined) results[i] = this.answer(key, held);
      else
        pending.push(
          this.batcher.load(key, fresh).then((lookup) => void (results[i] = this.answer(key, lookup))),
        );
    }
    if (pending.length > 0) await Promise.all(pending);
    return results;
  }

  /**
   * Called with every batch of changes from the feed, in feed order, once the memory tier has taken them
   * (when it is in use): the hook for pushing changes to clients. A listener that returns a promise holds
   * the feed until it settles (backpressure: the next batch waits); whatever else it returns is ignored.
   */
  onApplied(listener: (changes: readonly Change[]) => unknown): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  /**
   * Reads one key from the store through the batcher (sharing the turn's MGET, joining a fetch not yet sent):
   * for subscriptions' snapshots, invalidated values and resyncs, which must not answer from memory alone.
   */
  fetchFresh(key: string): Promise<Fetched> {
    return this.batcher.load(key, true);
  }

  async close(): Promise<void> {
    if (this.purgeTimer) clearInterval(this.purgeTimer);
    await this.monitor.stop();
    await this.subscription?.close();
    this.subscription = null;
  }

  private onChanges(changes: readonly Change[]): Promise<void> | void {
    if (this.trusted()) {
      for (const change of changes) this.tier.apply(change);
      applied.inc({}, changes.length);
    }
    // Sub-millisecond wall clock: Date.now() alone would round every sample to whole ms.
    const nowMicros = (performance.timeOrigin + performance.now()) * 1000;
    for (const change of changes) propagation.observe((nowMicros - Number(change.version)) / 1000);
    let pending: Promise<void>[] | null = null;
    for (const listener of this.changeListeners) {
      try {
        const settled = listener(changes);
        if (settled instanceof Promise)
          (pending ??= []).push(
            settled.catch((error: unknown) => reportError('reader', 'change listener failed', error)),
          );
      } catch (error) {
        reportError('reader', 'change listener failed', error);
      }
    }
    if (pending) return Promise.all(pending).then(() => undefined);
  }

  /** The memory tier is used only while the feed is proven current (the monitor reports each change). */
  private trusted(): boolean {
    return this.monitor.current;
  }

  /**
   * The one place trust changes, called by the monitor the moment it does (a proof arriving, the last one
   * expiring on its timer, or a read noticing first). Losing trust clears the tier: what it holds may already
   * be stale. Regaining it needs no clear: since the loss, nothing but version floors entered the tier
   * (settleUntrusted), so no value it holds can predate what was missed meanwhile.
   */
  private trustChanged(trusted: boolean, lagMs: number): void {
    if (!trusted) this.tier.clear();
    feedTrust.inc();
    if (trusted) log.info('change feed current: memory tier in use', { lagMs });
    else log.warn('change feed not proven current: memory tier cleared, reading from the store', { lagMs });
    for (const listener of this.trustListeners) {
      try {
        listener(trusted);
      } catch (error) {
        reportError('reader', 'trust listener failed', error);
      }
    }
  }

  /**
   * A fetch answered while the feed is not trusted: the value goes to the client, and only its version stays
   * in the tier, as a floor. Redis is ahead of the feed by up to the proof's age; without the floor, a change
   * older than this answer arriving once trust returns would be served from memory, and the reader would go
   * backwards (seen in the fault suite after a paused reader and a Redis restart).
   */
  private settleUntrusted(key: string, stored: StoredEntry | null): Lookup {
    this.tier.abandon(key);
    if (stored) {
      this.tier.apply({ op: 'invalidate', key, version: stored.version, expiresAt: stored.expiresAt });
    }
    return { value: stored?.value ?? null, version: stored?.version ?? null, origin: 'store' };
  }

  /**
   * One proof, end to end (invariant 5): everything committed before the oldest entry still in the outbox
   * has been announced (the relay acknowledges only after Kafka has it), and the bus barrier started after
   * that look proves everything announced before it has been applied here. So every change committed up to
   * (start − age of the oldest unannounced entry) is in memory. A dead or stuck relay makes that entry age,
   * and the proof with it, even while Kafka itself is fine.
   */
  private async prove(timeoutMs: number): Promise<number> {
    const startedAt = this.clock.now();
    const { oldestAgeMs } = await this.store.outbox.backlog();
    const left = timeoutMs - (this.clock.now() - startedAt);
    await this.requireSubscription().sync(Math.max(left, 1));
    return startedAt - (oldestAgeMs ?? 0);
  }

  private answer(key: string, lookup: Lookup): ReadResult {
    const origin = lookup.origin === 'memory' ? 'memory' : 'redis';
    readSeries[origin][lookup.value !== null ? 'true' : 'false'].inc();
    return { key, value: lookup.value, version: lookup.version, origin };
  }

  private requireSubscription(): Subscription {
    if (!this.subscription) throw new Error('reader is not subscribed');
    return this.subscription;
  }
}
