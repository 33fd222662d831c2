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
  /** Seed of the key's first place (see hashKey); random unless given, so tests can choose colliding keys. */
  hashSeed?: number;
  /** Seed of the key's second place, drawn apart from the first; random unless given, as hashSeed. */
  secondHashSeed?: number;
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
// triple that). The cache is keyed by a 31-bit hash of the key, a small integer V8 keeps inside the key map
// and lists themselves (a key string of its own would cost its 16-byte header and rounding), and the key
// travels inside the packed string. The string is a 12-character header, the key's length, the key, then
// the value:
//   char 0       bit 7: long form; bits 6-5: the tag; bits 4-0: version bits 52-48
//   chars 1-6    version bits 47-0, 8 bits per character, most significant first
//   chars 7-11   expiry: ms after the tier's epoch, 40 bits, most significant first
//   char 12      the key's length in UTF-16 units below 128; else 0x80 | bits 22-16, then two characters
//                of bits 15-0 (a key of 2^23 units or more is never held)
// Every header character is below 256, so a key and value of Latin-1 text keep the whole entry one byte per
// character. A version of 2^53 or more, or none (the store knows no version), takes the long form: its
// decimal digits (none for no version) and a colon follow the key, before the value.
// The tag says what the entry is: a value; no value (a delete, or a key the store does not have); or only a
// version floor — an invalidation announced a newer version whose value did not travel, so reads miss until
// a fill brings it. The expiry is checked by the tier itself, so lru-cache keeps no TTL arrays of its own, and
// the tier counts bytes itself, so lru-cache keeps no size array either: each would cost every entry 8 to
// 16 bytes more.
// A key has two places: its hash under two seeds drawn apart. One place each would let two hot keys of the
// same hash (about n²/2³² pairs among n keys) take it from each other on every write, each read of either a
// miss. So a key is held at its first place if that is free or already its own, else at its second if that
// is free or its own; it is never held at both. A lookup checks the key in the packed string, first place
// then second, so a key is never answered with another's entry, and nearly every key answers from its first
// place with one map read. Only when both places hold other keys does the key take its first place, letting
// go of the key there as if evicted (its bytes uncounted, its version into the horizon): that key, on its
// next fill, finds its own second place free unless its hashes collided twice more. The first place rather
// than the less recently used occupant: lru-cache does not say which of two entries is older, and the first
// place keeps the newcomer at one map read. The seeds are drawn per tier, so which keys collide differs from
// process to process and cannot be prepared offline.
const VALUE = 1;
const NO_VALUE = 2;
const FLOOR = 3;
type Tag = typeof VALUE | typeof NO_VALUE | typeof FLOOR;

const HEADER = 12;
const LONG = 0x80;
const MAX_SHORT_VERSION = 2n ** 53n - 1n;
const MAX_EXPIRY = 2 ** 40 - 1;
const SHORT_KEY_LENGTH = 0x80;
const MAX_KEY_LENGTH = 2 ** 23 - 1;
const B8 = 2 ** 8;
const B16 = 2 ** 16;
const B24 = 2 ** 24;
const B32 = 2 ** 32;
const B40 = 2 ** 40;
const B48 = 2 ** 48;

/** FNV-1a over the key's UTF-16 units from a seeded start, then shifted to 31 bits: a V8 small integer. */
export function hashKey(key: string, seed: number): number {
  let h = (0x811c9dc5 ^ seed) | 0;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return h >> 1;
}

function keyLengthChars(length: number): string {
  return length < SHORT_KEY_LENGTH
    ? String.fromCharCode(length)
    : String.fromCharCode(SHORT_KEY_LENGTH | (length >>> 16), (length >>> 8) & 0xff, length & 0xff);
}

function pack(key: string, tag: Tag, version: Version | null, expiry: number, value: string | null): string {
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
    ? [header, keyLengthChars(key.length), key, value ?? ''].join('')
    : [
        header,
        keyLengthChars(key.length),
        key,
        version === null ? '' : version.toString(),
        ':',
        value ?? '',
      ].join('');
}

/** Where the key starts in a packed entry. */
const keyStart = (packed: string): number =>
  packed.charCodeAt(HEADER) < SHORT_KEY_LENGTH ? HEADER + 1 : HEADER + 3;

function keyLength(packed: string): number {
  const c = packed.charCodeAt(HEADER);
  return c < SHORT_KEY_LENGTH
    ? c
    : (c & 0x7f) * B16 + packed.charCodeAt(HEADER + 1) * B8 + packed.charCodeAt(HEADER + 2);
}

/** Where what follows the key starts: the value, or in the long form the version's digits. */
const bodyStart = (packed: string): number => keyStart(packed) + keyLength(packed);

function keyOf(packed: string): string {
  const start = keyStart(packed);
  return packed.slice(start, start + keyLength(packed));
}

/** Whether `packed` is the entry of `key`, not of another key with the same hash. */
function isEntryOf(packed: string, key: string): boolean {
  if (keyLength(packed) !== key.length) return false;
  // A loop V8 compiles inline: startsWith() with a position is a call into the runtime on every lookup.
  const start = keyStart(packed);
  for (let i = 0; i < key.length; i++) if (packed.charCodeAt(start + i) !== key.charCodeAt(i)) return false;
  return true;
}

const tagOf = (packed: string): Tag => ((packed.charCodeAt(0) >> 5) & 3) as Tag;

// `body` (where the key ends) can be given by a caller that knows it, so a lookup does not work it out again.
function versionOf(packed: string, body?: number): Version | null {
  const first = packed.charCodeAt(0);
  if (first & LONG) {
    body ??= bodyStart(packed);
    const digits = packed.slice(body, packed.indexOf(':', body));
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

function valueOf(packed: string, body = bodyStart(packed)): string | null {
  if (tagOf(packed) !== VALUE) return null;
  return packed.charCodeAt(0) & LONG ? packed.slice(packed.indexOf(':', body) + 1) : packed.slice(body);
}

function unpack(packed: string, origin: Lookup['origin'], body = bodyStart(packed)): Lookup {
  return { value: valueOf(packed, body), version: versionOf(packed, body), origin };
}

// A rough per-entry cost of the cache's own bookkeeping, so that many tiny entries still count.
const ENTRY_OVERHEAD_BYTES = 64;

/** What MEMORY_MAX_BYTES counts for an entry: a fixed overhead, and its key and value in UTF-8. */
function sizeOf(key: string, value: string | null): number {
  return ENTRY_OVERHEAD_BYTES + utf8Bytes(key) + (value === null ? 0 : utf8Bytes(value));
}

export class MemoryTier {
  private readonly cache: LRUCache<number, string>;
  private readonly clock: Clock;
  private readonly seed: number;
  private readonly secondSeed: number;
  /** Expiries are kept as ms after this moment (the tier's start), in 40 bits: 34 years. */
  private readonly epoch: number;
  /** What MEMORY_MAX_BYTES counts of the entries held. */
  private counted = 0;
  private collided = 0;
  /** Keys with a fetch in flight → how many fetches, and the newest version announced meanwhile. */
  private readonly watched = new Map<string, { fetches: number; floor: Version | undefined }>();
  /** The newest version of any entry the tier has let go of (evicted, expired, deleted or cleared). */
  private horizon: Version | undefined;

  constructor(private readonly options: MemoryTierOptions) {
    this.clock = options.clock ?? systemClock;
    this.seed = options.hashSeed ?? Math.floor(Math.random() * B32);
    this.secondSeed = options.secondHashSeed ?? Math.floor(Math.random() * B32);
    this.epoch = this.clock.now();
    this.cache = new LRUCache<number, string>({
      max: options.maxEntries,
      // An entry let go of: its bytes are no longer counted, and its version joins the horizon. Not for
      // 'set' (a newer entry, or another key's, replaced it; hold() counts that, as lru-cache says nothing
      // when the new string equals the old one).
      dispose: (packed, _hash, reason) => {
        if (reason === 'set') return;
        this.letGo(packed, keyOf(packed));
      },
    });
  }

  get size(): number {
    return this.cache.size;
  }

  get bytes(): number {
    return this.counted;
  }

  /** How many entries were let go of because another key, finding both its places taken, took theirs. */
  get collisions(): number {
    return this.collided;
  }

  /** The held answer for a key, or undefined for a miss (unknown, expired, or only a version floor). */
  lookup(key: string): Lookup | undefined {
    const packed = this.held(key);
    if (packed === undefined || tagOf(packed) === FLOOR) return undefined;
    return unpack(packed, 'memory', keyStart(packed) + key.length);
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
    for (const packed of this.cache.values()) if (!(now > expiryOf(packed))) yield keyOf(packed);
  }

  /** Forgets everything: the feed can no longer be proven current. Watches stay, their fetches are real. */
  clear(): void {
    this.cache.clear();
  }

  /** Removes expired entries; returns how many. Called on a schedule so expired data does not hold memory. */
  purgeExpired(): number {
    const now = this.clock.now() - this.epoch;
    const expired: number[] = [];
    this.cache.forEach((packed, hash) => {
      if (now > expiryOf(packed)) expired.push(hash);
    });
    for (const hash of expired) this.cache.delete(hash);
    return expired.length;
  }

  /** The entry held for `key`, or undefined; an expired one is dropped on the way (its version remembered). */
  // get() marks as recently used whatever holds the first place, this key's entry or not: a peek first would
  // cost every hit a second map read, and only the few keys held at their second place bump another's.
  private held(key: string): string | undefined {
    let place = hashKey(key, this.seed);
    let packed = this.cache.get(place);
    if (packed === undefined || !isEntryOf(packed, key)) {
      place = hashKey(key, this.secondSeed);
      packed = this.cache.get(place);
      if (packed === undefined || !isEntryOf(packed, key)) return undefined;
    }
    if (this.clock.now() - this.epoch > expiryOf(packed)) {
      this.cache.delete(place);
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
    // Its own place if it has one (never a second copy), else a free place, else its first place.
    let hash = hashKey(key, this.seed);
    let there = this.cache.peek(hash);
    if (there === undefined || !isEntryOf(there, key)) {
      const second = hashKey(key, this.secondSeed);
      const atSecond = this.cache.peek(second);
      if (atSecond === undefined ? there !== undefined : isEntryOf(atSecond, key)) {
        hash = second;
        there = atSecond;
      }
    }
    const replaced = there;
    const own = replaced !== undefined && isEntryOf(replaced, key);
    // Already expired (or expiring this ms): holding it would serve data past the store's expiry. Larger
    // than the whole budget: it could only be held by evicting everything, and then not all of it. A key too
    // long for the packed length: not held either, the next read fetches it.
    if (ttlMs <= 0 || size > this.options.maxBytes || key.length > MAX_KEY_LENGTH) {
      // Only this key's own entry goes; another key's, in the same place, stays.
      if (own) this.cache.delete(hash);
      return;
    }
    const now = this.clock.now();
    if (own) this.counted -= sizeOf(key, valueOf(replaced));
    else if (replaced !== undefined) {
      // Both places held by other keys: the one at the first place is let go of as if evicted.
      this.collided++;
      this.letGo(replaced, keyOf(replaced));
    }
    // set() evicts the least recently used entry past maxEntries; the bytes past maxBytes are evicted here,
    // least recently used first.
    this.cache.set(hash, pack(key, tag, version, now + ttlMs - this.epoch, value));
    this.counted += size;
    while (this.counted > this.options.maxBytes && this.cache.size > 1) this.cache.pop();
  }

  /** An entry leaves: its bytes are no longer counted, and its version joins the horizon. */
  private letGo(packed: string, key: string): void {
    this.counted -= sizeOf(key, valueOf(packed));
    this.horizon = maxVersion(this.horizon, versionOf(packed) ?? undefined);
  }
}

function maxVersion(a: Version | undefined, b: Version | undefined): Version | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return a > b ? a : b;
}
