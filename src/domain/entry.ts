// The data every tier agrees on: versions, stored entries, changes, and the one string format that packs
// version, expiry and value together so that a single Redis MGET answers all three for N keys.

/**
 * A key's version: strictly greater for every committed change to that key. Versions are assigned by the
 * store as max(previous + 1, commit time in microseconds), so they never go backwards even after a tombstone
 * has expired and the key is written afresh. Kept as bigint so no consumer can lose precision; it travels
 * as a decimal string.
 */
export type Version = bigint;

/** What the store holds for a key: a value, or a tombstone (value null) left by a delete. */
export interface StoredEntry {
  readonly version: Version;
  /** null for a tombstone. */
  readonly value: string | null;
  /** Absolute expiry in ms since the epoch (store clock), or null when the entry does not expire. */
  readonly expiresAt: number | null;
}

/**
 * One committed change, as announced on the bus. `invalidate` carries no value: the value was too large to
 * travel, so readers drop what they hold and learn the version floor instead.
 */
export type Change =
  | {
      readonly op: 'set';
      readonly key: string;
      readonly version: Version;
      readonly value: string;
      readonly expiresAt: number | null;
    }
  | { readonly op: 'delete'; readonly key: string; readonly version: Version }
  | {
      readonly op: 'invalidate';
      readonly key: string;
      readonly version: Version;
      readonly expiresAt: number | null;
    };

/**
 * The change a committed op announces. A value of more than `inlineValueMaxBytes` travels as an
 * invalidation: the version only, so readers drop what they hold and refetch.
 */
export function changeOf(
  op: { readonly op: 'set'; readonly value: string } | { readonly op: 'delete' },
  committed: { readonly key: string; readonly version: Version; readonly expiresAt: number | null },
  inlineValueMaxBytes: number,
): Change {
  const { key, version, expiresAt } = committed;
  if (op.op === 'delete') return { op: 'delete', key, version };
  if (utf8Bytes(op.value) > inlineValueMaxBytes) return { op: 'invalidate', key, version, expiresAt };
  return { op: 'set', key, version, value: op.value, expiresAt };
}

/**
 * Versions are max(previous + 1, now in µs): unique per key, ordered, and roughly the commit time. The Redis
 * write script does the same in Lua; see the note on WRITE_SCRIPT (src/adapters/redis-store.ts) for the tests
 * that hold the two in step. The same goes for changeOf above and packEntry below.
 */
export function nextVersion(previous: Version | null, nowMicros: bigint): Version {
  const bumped = previous === null ? 1n : previous + 1n;
  return bumped > nowMicros ? bumped : nowMicros;
}

// Packed form: `<op><version>:<expiresAt>:<value>`; op is `s` (value) or `d` (tombstone, empty value);
// expiresAt is empty when the entry does not expire. Only the first two colons are structural, so values
// may contain anything. The Lua write script in the Redis adapter writes the same format (kept in step by
// test/integration/redis-store.test.ts, "stores exactly the packed format").
const HEADER = /^([sd])(\d+):(\d*):/;

export function packEntry(entry: StoredEntry): string {
  const op = entry.value === null ? 'd' : 's';
  return `${op}${entry.version}:${entry.expiresAt ?? ''}:${entry.value ?? ''}`;
}

/** Reads a packed entry; throws on anything that was not written by packEntry or the Lua script. */
export function unpackEntry(packed: string): StoredEntry {
  const match = HEADER.exec(packed);
  if (!match) throw new Error(`not a tiercache entry: ${JSON.stringify(packed.slice(0, 40))}`);
  // HEADER's three groups always take part in a match (possibly empty): each is a string.
  const [header, op, version, expiresAt] = match as unknown as [string, string, string, string];
  return {
    version: BigInt(version),
    value: op === 'd' ? null : packed.slice(header.length),
    expiresAt: expiresAt === '' ? null : Number(expiresAt),
  };
}

/** Version ordering helper: undefined counts as older than anything. */
export function isAtLeast(candidate: Version, known: Version | undefined): boolean {
  return known === undefined || candidate >= known;
}

/** Bytes of a string as UTF-8, the unit of every size limit. */
export function utf8Bytes(text: string): number {
  return Buffer.byteLength(text);
}
