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

// What the tier holds for a key, packed into one flat string, so that an entry costs the cache's bookkeeping
// and one string header beyond the key and value themselves (an object, a BigInt and a second string would
// triple that). The string is a 12-character header, then the value:
//   char 0       bit 7: long form; bits 6-5: the tag; bits 4-0: version bits 52-48
//   chars 1-6    version bits 47-0, 8 bits per character, most significant first
//   chars 7-11   expiry: ms after the tier's epoch, 40 bits, most significant first
// Every header character is below 256, so a value of Latin-1 text keeps the whole entry one byte per
// character. A version of 2^53 or more, or none (the store knows no version), takes the long form: its
// decimal digits (none for no version) and a colon follow the header, before the value.
// The tag says what the entry is: a value; no value (a delete, or a key the store does not have); or only a
// version floor — an invalidation announced a newer version whose value did not travel, so reads miss until
// a fill brings it. The expiry is checked by the tier itself, so lru-cache keeps no TTL arrays of its own, and
// the tier counts bytes itself, so lru-cache keeps no size array either: each would cost every entry 8 to
// 16 bytes more.
const VALUE = 1;
const NO_VALUE = 2;
const FLOOR = 3;
type Tag = typeof VALUE | typeof NO_VALUE | typeof FLOOR;

const HEADER = 12;
const LONG = 0x80;
const MAX_SHORT_VERSION = 2n ** 53n - 1n;
const MAX_EXPIRY = 2 ** 40 - 1;
const B8 = 2 ** 8;
const B16 = 2 ** 16;
const B24 = 2 ** 24;
const B32 = 2 ** 32;
const B40 = 2 ** 40;
const B48 = 2 ** 48;

function pack(tag: Tag, version: Version | null, expiry: number, value: string | null): string {
  const short = version !== null && version >= 0n && version <= MAX_SHORT_VERSION;
  const v = short ? Number(version) : 0;
  const high = Math.floor(v / B24); // bits 52-24
  const low = v % B24; // bits 23-0
  const e = Math.min(Math.max(Math.floor(expiry), 0), MAX_EXPIRY);
  const eHigh = Math.floor(e / B24); // bits 39-24
  const eLow = e % B24;
  const header = String.fromCharCode(
    (short ? 0 : LONG) | (tag << 5) | Math.floor(high / B24),
    Math.floor(high / B16) % B8,
    Math.floor(high / B8) % B8,
    high % B8,
    low >>> 16,
    (low >>> 8) & 0xff,
    low & 0xff,
    eHigh >>> 8,
    eHigh & 0xff,
    eLow >>> 16,
    (eLow >>> 8) & 0xff,
    eLow & 0xff,
  );
  // join() writes one flat string; `+` would build a tree of the parts (V8's cons strings), keeping the
  // parts alive and adding a node per concatenation.
  return short
    ? [header, value ?? ''].join('')
    : [header, version === null ? '' : version.toString(), ':', value ?? ''].join('');
}

const tagOf = (packed: string): Tag => ((packed.charCodeAt(0) >> 5) & 3) as Tag;

function versionOf(packed: string): Version | null {
  const first = packed.charCodeAt(0);
  if (first & LONG) {
    const digits = packed.slice(HEADER, packed.indexOf(':', HEADER));
    return digits === '' ? null : BigInt(digits);
  }
  const c = (i: number): number => packed.charCodeAt(i);
  return BigInt((first & 0x1f) * B48 + c(1) * B40 + c(2) * B32 + c(3) * B24 + c(4) * B16 + c(5) * B8 + c(6));
}

/** Ms after the tier's epoch past which the entry is expired. */
function expiryOf(packed: string): number {
  const c = (i: number): number => packed.charCodeAt(i);
  return c(7) * B32 + c(8) * B24 + c(9) * B16 + c(10) * B8 + c(11);
}

function valueOf(packed: string): string | null {
  if (tagOf(packed) !== VALUE) return null;
  return packed.charCodeAt(0) & LONG ? packed.slice(packed.indexOf(':', HEADER) + 1) : packed.slice(HEADER);
}

function unpack(packed: string, origin: Lookup['origin']): Lookup {
  return { value: valueOf(packed), version: versionOf(packed), origin };
}

// A rough per-entry cost of the cache's own bookkeeping, so that many tiny entries still count.
const ENTRY_OVERHEAD_BYTES = 64;

/** What MEMORY_MAX_BYTES counts for an entry: a fixed overhead, and its key and value in UTF-8. */
function sizeOf(key: string, value: string | null): number {
  return ENTRY_OVERHEAD_BYTES + utf8Bytes(key) + (value === null ? 0 : utf8Bytes(value));
}

export class MemoryTier {
  private readonly cache: LRUCache<string, string>;
  private readonly clock: Clock;
  /** Expiries are kept as ms after this moment (the tier's start), in 40 bits: 34 years. */
  private readonly epoch: number;
  /** What MEMORY_MAX_BYTES counts of the entries held. */
  private counted = 0;
  /** Keys with a fetch in flight → how many fetches, and the newest version announced meanwhile. */
  private readonly watched = new Map<string, { fetches: number; floor: Version | undefined }>();
  /** The newest version of any entry the tier has let go of (evicted, expired, deleted or cleared). */
  private horizon: Version | undefined;

  constructor(private readonly options: MemoryTierOptions) {
    this.clock = options.clock ?? systemClock;
    this.epoch = this.clock.now();
    this.cache = new LRUCache<string, string>({
      max: options.maxEntries,
      // An entry let go of: its bytes are no longer counted, and its version joins the horizon. Not for
      // 'set' (a newer entry replaced it; hold() counts that, as lru-cache says nothing when the new string
      // equals the old one).
      dispose: (packed, key, reason) => {
        if (reason === 'set') return;
        this.counted -= sizeOf(key, valueOf(packed));
        this.horizon = maxVersion(this.horizon, versionOf(packed) ?? undefined);
      },
    });
  }

  get size(): number {
    return this.cache.size;
  }

  get bytes(): number {
    return this.counted;
  }

  /** The held answer for a key, or undefined for a miss (unknown, expired, or only a version floor). */
  lookup(key: string): Lookup | undefined {
    const packed = this.held(key);
    if (packed === undefined || tagOf(packed) === FLOOR) return undefined;
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
    const held = this.held(key);
    const heldVersion = held === undefined ? null : versionOf(held);
    const newest = maxVersion(floor, heldVersion ?? undefined);
    // A null version (absent in the store) is older than any announced change.
    const fetchedVersion = stored?.version ?? -1n;
    if (!isAtLeast(fetchedVersion, newest)) {
      // What the tier holds is never older than the floor (apply() raises both, or drops the entry), so a
      // servable entry here is the newest the tier knows.
      return held !== undefined && tagOf(held) !== FLOOR ? unpack(held, 'memory') : fetched;
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
    const held = this.held(change.key);
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

  /** Keys held and not expired (values, tombstones and version floors), most recently used first. */
  *keys(): IterableIterator<string> {
    const now = this.clock.now() - this.epoch;
    for (const [key, packed] of this.cache.entries()) if (!(now > expiryOf(packed))) yield key;
  }

  /** Forgets everything: the feed can no longer be proven current. Watches stay, their fetches are real. */
  clear(): void {
    this.cache.clear();
  }

  /** Removes expired entries; returns how many. Called on a schedule so expired data does not hold memory. */
  purgeExpired(): number {
    const now = this.clock.now() - this.epoch;
    const expired: string[] = [];
    this.cache.forEach((packed, key) => {
      if (now > expiryOf(packed)) expired.push(key);
    });
    for (const key of expired) this.cache.delete(key);
    return expired.length;
  }

  /** The entry held for `key`, or undefined; an expired one is dropped on the way (its version remembered). */
  private held(key: string): string | undefined {
    const packed = this.cache.get(key);
    if (packed === undefined) return undefined;
    if (this.clock.now() - this.epoch > expiryOf(packed)) {
      this.cache.delete(key);
      return undefined;
    }
    return packed;
  }

  private ttlFor(value: string | null, expiresAt: number | null): number {
    const base = value === null ? this.options.negativeTtlMs : this.options.ttlMs;
    return expiresAt === null ? base : Math.min(base, expiresAt - this.clock.now());
  }

  private hold(key: string, tag: Tag, version: Version | null, value: string | null, ttlMs: number): void {
    const size = sizeOf(key, value);
    // Already expired (or expiring this ms): holding it would serve data past the store's expiry. Larger
    // than the whole budget: it could only be held by evicting everything, and then not all of it.
    if (ttlMs <= 0 || size > this.options.maxBytes) {
      this.cache.delete(key);
      return;
    }
    const now = this.clock.now();
    const replaced = this.cache.peek(key);
    if (replaced !== undefined) this.counted -= sizeOf(key, valueOf(replaced));
    // set() evicts the least recently used entry past maxEntries; the bytes past maxBytes are evicted here,
    // least recently used first.
    this.cache.set(key, pack(tag, version, now + ttlMs - this.epoch, value));
    this.counted += size;
    while (this.counted > this.options.maxBytes && this.cache.size > 1) this.cache.pop();
  }
}

function maxVersion(a: Version | undefined, b: Version | undefined): Version | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return a > b ? a : b;
}
