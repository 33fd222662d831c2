// The wire format of the change topic: a Change, or a bus-internal sync marker, as compact JSON in a Kafka
// message value. Versions travel as decimal strings because JSON numbers lose bigint precision above 2^53.
import type { Change } from '../domain/entry.js';

/**
 * Proof-of-position sent by a subscriber to every partition of the topic: once it reads back its own marker
 * of round n on a partition, it has consumed everything appended to that partition before the marker.
 */
export interface SyncMarker {
  /** Unique per subscription object, so markers of other readers (or earlier incarnations) never count. */
  readonly subscriber: string;
  readonly round: number;
}

export type BusMessage =
  { readonly kind: 'change'; readonly change: Change } | ({ readonly kind: 'sync' } & SyncMarker);

/**
 * One change as a message value. Outbox entries written before the outbox stored entries as packed strings
 * (src/adapters/redis-store.ts, changeOfField) hold this same JSON, built in Lua, and are read back with
 * decodeBusMessage.
 */
export function encodeChange(change: Change): string {
  switch (change.op) {
    case 'set':
      return JSON.stringify({
        op: change.op,
        key: change.key,
        version: change.version.toString(),
        value: change.value,
        expiresAt: checkedExpiry(change.expiresAt),
      });
    case 'invalidate':
      return JSON.stringify({
        op: change.op,
        key: change.key,
        version: change.version.toString(),
        expiresAt: checkedExpiry(change.expiresAt),
      });
    case 'delete':
      return JSON.stringify({ op: change.op, key: change.key, version: change.version.toString() });
  }
}

/** Bytes of one message carrying `change`: its key and its encoded value. */
export function messageBytesOf(key: string, encoded: string): number {
  return Buffer.byteLength(key) + Buffer.byteLength(encoded);
}

export function encodeSyncMarker(marker: SyncMarker): string {
  return JSON.stringify({ op: 'sync', subscriber: marker.subscriber, round: marker.round });
}

/**
 * Reads one message value. Throws a descriptive error on anything that encodeChange / encodeSyncMarker did
 * not write, so the consumer can count and skip it rather than feed a reader a half-valid change. Unknown
 * extra fields are ignored: a newer writer may add some without breaking older readers.
 */
export function decodeBusMessage(value: Buffer | string | null): BusMessage {
  if (value === null) throw new Error('undecodable bus message: no value');
  const text = typeof value === 'string' ? value : value.toString('utf8');
  const fail = (why: string): never => {
    const preview = text.length > 120 ? `${text.slice(0, 120)}…` : text;
    throw new Error(`undecodable bus message (${why}): ${JSON.stringify(preview)}`);
  };
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return fail('not JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return fail('not an object');
  // Proven a plain object just above; its fields are checked one by one below.
  const fields = parsed as Record<string, unknown>;
  const { op } = fields;

  if (op === 'sync') {
    const { subscriber, round } = fields;
    if (typeof subscriber !== 'string' || subscriber === '') return fail('sync marker without subscriber');
    // Number.isSafeInteger() proves round a number but does not narrow `unknown`.
    if (!Number.isSafeInteger(round) || (round as number) < 1) return fail('sync marker without round');
    return { kind: 'sync', subscriber, round: round as number };
  }
  if (op !== 'set' && op !== 'delete' && op !== 'invalidate') return fail('unknown op');

  const { key, version, value: entryValue, expiresAt } = fields;
  if (typeof key !== 'string') return fail('key is not a string');
  if (typeof version !== 'string' || !/^(0|[1-9][0-9]*)$/.test(version)) {
    return fail('version is not a decimal string');
  }
  const common = { key, version: BigInt(version) };
  if (op === 'delete') return { kind: 'change', change: { op, ...common } };

  if (expiresAt !== null && (typeof expiresAt !== 'number' || !Number.isFinite(expiresAt))) {
    return fail('expiresAt is neither a number nor null');
  }
  if (op === 'invalidate') return { kind: 'change', change: { op, ...common, expiresAt } };
  if (typeof entryValue !== 'string') return fail('set without a string value');
  return { kind: 'change', change: { op, ...common, value: entryValue, expiresAt } };
}

// JSON.stringify turns NaN and Infinity into null, which would silently mean "never expires".
function checkedExpiry(expiresAt: number | null): number | null {
  if (expiresAt !== null && !Number.isFinite(expiresAt)) {
    throw new Error(`cannot encode a change with expiresAt ${expiresAt}`);
  }
  return expiresAt;
}
