// The reader's in-process tier of hot entries, and the fill rule that keeps it from ever moving backwards.
//
// Entries come from two directions: fills (answers from the store to a miss) and changes (from the bus).
// Either is kept only if its version is at least the newest this tier has seen for the key. "Seen" must
// survive eviction for keys being fetched, or the cache-aside race comes back: a fetch reads v1, a change
// to v2 is applied (and perhaps evicted), then the fetch stores v1. So every key with a fetch in flight is
// watched from before the fetch is sent, and the newest version announced while it was in flight is its
// floor. A fetch that started after a change was applied cannot return older data, because the store
// commits before the change is announced.
//
// "Seen" must also survive eviction for changes: a change that arrives late (a dead writer's batch announced
// by the relay that took it over, a replay) for a key the tier has since evicted, expired or cleared would
// otherwise enter as if it were the newest. So the tier remembers the newest version it ever let go of (its
// horizon), and a change older than that is not taken for a key it does not hold: the next read fetches it.
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

// What the tier holds for a key, packed into one flat string so that an entry costs the cache's bookkeeping,
// one string header and its version digits beyond the key and value themselves (an object, a BigInt and a
// second string would triple that): `<tag><version digits>:<value>`. The tag says what the entry is:
// a value; no value (a delete, or a key the store does not have — then the digits may be empty: the store
// knows no version); or only a version floor — an invalidation announced a newer version whose value did not
// travel, so reads miss until a fill brings it.
const VALUE = 'v';
const NO_VALUE = 'n';
const FLOOR = 'f';
type Tag = typeof VALUE | typeof NO_VALUE | typeof FLOOR;

function pack(tag: Tag, version: Version | null, value: string | null): string {
  // join() writes one flat string; `+` or a template literal would build a tree of the parts (V8's cons
  // strings), keeping the parts alive and adding a node per concatenation.
  return [tag, version ?? '', ':', value ?? ''].join('');
}

function versionOf(packed: string): Version | null {
  const digits = packed.slice(1, packed.indexOf(':', 1));
  return digits === '' ? null : BigInt(digits);
}

function unpack(packed: string, origin: Lookup['origin']): Lookup {
  const colon = packed.indexOf(':', 1);
  const digits = packed.slice(1, colon);
  return {
    value: packed[0] === VALUE ? packed.slice(colon + 1) : null,
    version: digits === '' ? null : BigInt(digits),
    origin,
  };
}

// A rough per-entry cost of the cache's own bookkeeping, so that many tiny entries still count.
const ENTRY_OVERHEAD_BYTES = 64;

export class MemoryTier {
  private readonly cache: LRUCache<string, string>;
  private readonly clock: Clock;
  /** Keys with a fetch in flight → how many fetches, and the newest version announced meanwhile. */
  private readonly watched = new Map<string, { fetches: number; floor: Version | undefined }>();
  /** The newest version of any entry the tier has let go of (evicted, expired, deleted or cleared). */
  private horizon: Version | undefined;

  constructor(private readonly options: MemoryTierOptions) {
    this.clock = options.clock ?? systemClock;
    this.cache = new LRUCache<string, string>({
      max: options.maxEntries,
      maxSize: options.maxBytes,
      // Each set() gives the entry's size (hold() below): key and value bytes, not the packed header.
      ttl: options.ttlMs,
      // Expired entries are removed by purgeExpired() on a schedule, not by a timer per entry.
      ttlAutopurge: false,
      // Every TTL check reads the injected clock, so tests can move time without sleeping.
      ttlResolution: 0,
      perf: { now: () => this.clock.now() },
      // 'set' replaces an entry with a newer one: nothing is forgotten then.
      dispose: (packed, _key, reason) => {
        if (reason !== 'set') this.horizon = maxVersion(this.horizon, versionOf(packed) ?? undefined);
      },
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
    const packed = this.cache.get(key);
    if (packed === undefined || packed[0] === FLOOR) return undefined;
    return unpack(packed, 'memory');
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
    const heldVersion = held === undefined ? null : versionOf(held);
    const newest = maxVersion(floor, heldVersion ?? undefined);
    // A null version (absent in the store) is older than any announced change.
    const fetchedVersion = stored?.version ?? -1n;
    if (!isAtLeast(fetchedVersion, newest)) {
      // What the tier holds is never older than the floor (apply() raises both, or drops the entry), so a
      // servable entry here is the newest the tier knows.
      return held !== undefined && held[0] !== FLOOR ? unpack(held, 'memory') : fetched;
    }
    this.hold(
      key,
      fetched.value === null ? NO_VALUE : VALUE,
      fetched.version,
      fetched.value,
      this.ttlFor(fetched.value, stored?.expiresAt ?? null),
    );
    return fetched;
  }

  /** Applies a change from the feed; older than what the tier has seen, it is ignored. */
  apply(change: Change): void {
    const w = this.watched.get(change.key);
    const held = this.cache.get(change.key);
    const newest = maxVersion(w?.floor, (held === undefined ? null : versionOf(held)) ?? undefined);
    if (w) w.floor = maxVersion(w.floor, change.version);
    if (!isAtLeast(change.version, newest)) return;
    // Not held, and older than something the tier forgot: it may be older than what the key had.
    if (held === undefined && this.horizon !== undefined && change.version < this.horizon) return;
    switch (change.op) {
      case 'set':
        this.hold(
          change.key,
          VALUE,
          change.version,
          change.value,
          this.ttlFor(change.value, change.expiresAt),
        );
        return;
      case 'delete':
        this.hold(change.key, NO_VALUE, change.version, null, this.options.negativeTtlMs);
        return;
      case 'invalidate':
        this.hold(change.key, FLOOR, change.version, null, this.ttlFor(null, change.expiresAt));
        return;
    }
  }

  /** Keys held (values, tombstones and version floors), most recently used first. */
  keys(): IterableIterator<string> {
    return this.cache.keys();
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

  private hold(key: string, tag: Tag, version: Version | null, value: string | null, ttlMs: number): void {
    // Already expired (or expiring this ms): holding it would serve data past the store's expiry.
    if (ttlMs <= 0) {
      this.cache.delete(key);
      return;
    }
    const size = ENTRY_OVERHEAD_BYTES + utf8Bytes(key) + (value === null ? 0 : utf8Bytes(value));
    this.cache.set(key, pack(tag, version, value), { ttl: ttlMs, size });
  }
}

function maxVersion(a: Version | undefined, b: Version | undefined): Version | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return a > b ? a : b;
}
