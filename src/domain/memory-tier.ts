// The reader's in-process tier of hot entries, and the fill rule that keeps it from ever moving backwards.
//
// Entries come from two directions: fills (answers from the store to a miss) and changes (from the bus).
// Either is kept only if its version is at least the newest this tier has seen for the key. "Seen" must
// survive eviction for keys being fetched, or the cache-aside race comes back: a fetch reads v1, a change
// to v2 is applied (and perhaps evicted), then the fetch stores v1. So every key with a fetch in flight is
// watched from before the fetch is sent, and the newest version announced while it was in flight is its
// floor. A fetch that started after a change was applied cannot return older data, because the store
// commits before the change is announced.
import { LRUCache } from 'lru-cache';
import { systemClock, type Clock } from './clock.js';
import { isAtLeast, utf8Bytes, type Change, type StoredEntry, type Version } from './entry.js';

export interface MemoryTierOptions {
  /** Most entries held at once; the least recently used go first. */
  maxEntries: number;
  /** Most bytes held (keys and values as UTF-8, plus a fixed overhead per entry). */
  maxBytes: number;
  /** Longest time any entry is kept, even if the feed never changes it. */
  ttlMs: number;
  /** How long an absent key (or a deleted one) is remembered, so a storm of reads for it does not reach the store. */
  negativeTtlMs: number;
  clock?: Clock;
}

/** An answer for one key: what the value is, which change it reflects, and where it came from. */
export interface Lookup {
  readonly value: string | null;
  /** null: the store knows no change for this key (never written, or its tombstone expired). */
  readonly version: Version | null;
  readonly origin: 'memory' | 'store';
}

/**
 * What the tier holds for a key. `servable: false` is a version floor without a value: an invalidation
 * announced a newer version whose value did not travel, so reads miss until a fill brings it.
 */
interface Held {
  readonly value: string | null;
  readonly version: Version | null;
  readonly servable: boolean;
}

// A rough per-entry cost of the cache's own bookkeeping, so that many tiny entries still count.
const ENTRY_OVERHEAD_BYTES = 64;

export class MemoryTier {
  private readonly cache: LRUCache<string, Held>;
  private readonly clock: Clock;
  /** Keys with a fetch in flight → how many fetches, and the newest version announced meanwhile. */
  private readonly watched = new Map<string, { fetches: number; floor: Version | undefined }>();

  constructor(private readonly options: MemoryTierOptions) {
    this.clock = options.clock ?? systemClock;
    this.cache = new LRUCache<string, Held>({
      max: options.maxEntries,
      maxSize: options.maxBytes,
      sizeCalculation: (held, key) =>
        ENTRY_OVERHEAD_BYTES + utf8Bytes(key) + (held.value === null ? 0 : utf8Bytes(held.value)),
      ttl: options.ttlMs,
      // Expired entries are removed by purgeExpired() on a schedule, not by a timer per entry.
      ttlAutopurge: false,
      // Every TTL check reads the injected clock, so tests can move time without sleeping.
      ttlResolution: 0,
      perf: { now: () => this.clock.now() },
    });
  }

  get size(): number {
    return this.cache.size;
  }

  get bytes(): number {
    return this.cache.calculatedSize;
  }

  /** The held answer for a key, or undefined for a miss (unknown, expired, or only a version floor). */
  lookup(key: string): Lookup | undefined {
    const held = this.cache.get(key);
    if (!held?.servable) return undefined;
    return { value: held.value, version: held.version, origin: 'memory' };
  }

  /** Call before a fetch for `key` is sent; pair with settle() or abandon(). */
  watch(key: string): void {
    const w = this.watched.get(key);
    if (w) w.fetches++;
    else this.watched.set(key, { fetches: 1, floor: undefined });
  }

  /** The fetch for `key` failed: stop watching it. */
  abandon(key: string): void {
    const w = this.watched.get(key);
    if (!w) return;
    if (--w.fetches === 0) this.watched.delete(key);
  }

  /**
   * A fetch for `key` answered `stored`. Keeps it if the fill rule allows, and returns what to answer: the
   * fetched entry, or what the tier learned meanwhile if that is newer and servable.
   */
  settle(key: string, stored: StoredEntry | null): Lookup {
    const floor = this.watched.get(key)?.floor;
    this.abandon(key);
    const fetched: Lookup = {
      value: stored?.value ?? null,
      version: stored?.version ?? null,
      origin: 'store',
    };
    const held = this.cache.get(key);
    const newest = maxVersion(floor, held?.version ?? undefined);
    // A null version (absent in the store) is older than any announced change.
    const fetchedVersion = stored?.version ?? -1n;
    if (newest !== undefined && !isAtLeast(fetchedVersion, newest)) {
      return held?.servable && held.version === newest
        ? { value: held.value, version: held.version, origin: 'memory' }
        : fetched;
    }
    this.hold(
      key,
      { value: fetched.value, version: fetched.version, servable: true },
      this.ttlFor(fetched.value, stored?.expiresAt ?? null),
    );
    return fetched;
  }

  /** Applies a change from the feed; older than what the tier has seen, it is ignored. */
  apply(change: Change): void {
    const w = this.watched.get(change.key);
    const held = this.cache.get(change.key);
    const newest = maxVersion(w?.floor, held?.version ?? undefined);
    if (w) w.floor = maxVersion(w.floor, change.version);
    if (!isAtLeast(change.version, newest)) return;
    switch (change.op) {
      case 'set':
        this.hold(
          change.key,
          { value: change.value, version: change.version, servable: true },
          this.ttlFor(change.value, change.expiresAt),
        );
        return;
      case 'delete':
        this.hold(
          change.key,
          { value: null, version: change.version, servable: true },
          this.options.negativeTtlMs,
        );
        return;
      case 'invalidate':
        this.hold(
          change.key,
          { value: null, version: change.version, servable: false },
          this.ttlFor(null, change.expiresAt),
        );
        return;
    }
  }

  /** Forgets everything: the feed can no longer be proven current. Watches stay, their fetches are real. */
  clear(): void {
    this.cache.clear();
  }

  /** Removes expired entries; returns how many. Called on a schedule so expired data does not hold memory. */
  purgeExpired(): number {
    const before = this.cache.size;
    this.cache.purgeStale();
    return before - this.cache.size;
  }

  private ttlFor(value: string | null, expiresAt: number | null): number {
    const base = value === null ? this.options.negativeTtlMs : this.options.ttlMs;
    return expiresAt === null ? base : Math.min(base, expiresAt - this.clock.now());
  }

  private hold(key: string, held: Held, ttlMs: number): void {
    // Already expired (or expiring this ms): holding it would serve data past the store's expiry.
    if (ttlMs <= 0) {
      this.cache.delete(key);
      return;
    }
    this.cache.set(key, held, { ttl: ttlMs });
  }
}

function maxVersion(a: Version | undefined, b: Version | undefined): Version | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return a > b ? a : b;
}
