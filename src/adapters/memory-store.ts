// The Store port in process memory, the embedded default: the same packed strings, versions, atomicity and
// expiry rules as the Redis store, so one contract suite holds for both. Nothing survives the process.
import { systemClock, type Clock } from '../domain/clock.js';
import { sleepUnlessWoken, wakeAll } from '../wake.js';
import {
  changeOf,
  nextVersion,
  packEntry,
  unpackEntry,
  utf8Bytes,
  type StoredEntry,
} from '../domain/entry.js';
import {
  FeedBackedUp,
  type ClaimOptions,
  type Committed,
  type Outbox,
  type OutboxBacklog,
  type OutboxEntry,
  type Store,
  type WriteOp,
  type WriteOptions,
} from '../ports.js';
import type { Change } from '../domain/entry.js';

export interface MemoryStoreOptions {
  readonly clock?: Clock;
}

interface Slot {
  /** Exactly what Redis would hold under the key. */
  readonly packed: string;
  /** Parsed out once so that expiry checks need not unpack. */
  readonly expiresAt: number | null;
}

// Sweeping when the writes since the last sweep reach the live count then makes each sweep pay for itself:
// O(1) amortised per write, and never more than about twice the live entries (plus this floor) held.
const MIN_SWEEP_WRITES = 1024;

export class MemoryStore implements Store {
  readonly outbox: MemoryOutbox;
  private readonly slots = new Map<string, Slot>();
  private readonly clock: Clock;
  private lastCommitMicros = 0n;
  private writesSinceSweep = 0;
  private sweepAfter = MIN_SWEEP_WRITES;
  private closed = false;

  constructor(options: MemoryStoreOptions = {}) {
    this.clock = options.clock ?? systemClock;
    this.outbox = new MemoryOutbox(this.clock);
  }

  /** Keys held, expired ones included until a read touches them or a sweep drops them. */
  get size(): number {
    return this.slots.size;
  }

  async write(ops: readonly WriteOp[], options: WriteOptions): Promise<Committed[]> {
    this.assertOpen();
    if (ops.length === 0) return [];
    // Whole ms, as Redis TIME gives: a fraction would not fit the packed header's expiry digits.
    const now = Math.floor(this.clock.now());
    // Everything that can fail is checked before the first change, which is what makes a batch atomic here.
    if (options.ttlMs !== null) checkDuration('ttlMs', options.ttlMs, now);
    checkDuration('tombstoneTtlMs', options.tombstoneTtlMs, now);
    this.outbox.checkRoom(options.outboxLimit);
    const nowMicros = this.commitMicros(now);
    const committed = ops.map((op): Committed => {
      const previous = this.live(op.key, now);
      const version = nextVersion(previous && unpackEntry(previous.packed).version, nowMicros);
      const value = op.op === 'set' ? op.value : null;
      const ttl = op.op === 'set' ? options.ttlMs : options.tombstoneTtlMs;
      const expiresAt = ttl === null ? null : now + ttl;
      this.slots.set(op.key, { packed: packEntry({ version, value, expiresAt }), expiresAt });
      return { key: op.key, op: op.op, version, expiresAt };
    });
    // committed was mapped from ops: one per op, in order.
    this.outbox.append(committed.map((c, i) => changeOf(ops[i] as WriteOp, c, options.inlineValueMaxBytes)));
    this.sweepNowAndThen(ops.length, now);
    return committed;
  }

  async read(keys: readonly string[]): Promise<(StoredEntry | null)[]> {
    this.assertOpen();
    if (keys.length === 0) return [];
    const now = Math.floor(this.clock.now());
    return keys.map((key) => {
      const slot = this.live(key, now);
      return slot ? unpackEntry(slot.packed) : null;
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    this.slots.clear();
    this.outbox.close();
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('MemoryStore is closed');
  }

  /** The slot under `key` unless it has expired, in which case it is dropped, as Redis does on access. */
  private live(key: string, now: number): Slot | null {
    const slot = this.slots.get(key);
    if (!slot) return null;
    if (isExpired(slot, now)) {
      this.slots.delete(key);
      return null;
    }
    return slot;
  }

  /**
   * Commit time in µs, like Redis TIME: never behind the wall clock, and strictly increasing per batch even
   * within one ms or when the wall clock steps back, so a key rewritten after its tombstone expired still
   * gets a newer version.
   */
  private commitMicros(now: number): bigint {
    const wall = BigInt(now) * 1000n;
    this.lastCommitMicros = wall > this.lastCommitMicros ? wall : this.lastCommitMicros + 1n;
    return this.lastCommitMicros;
  }

  private sweepNowAndThen(written: number, now: number): void {
    this.writesSinceSweep += written;
    if (this.writesSinceSweep < this.sweepAfter) return;
    for (const [key, slot] of this.slots) if (isExpired(slot, now)) this.slots.delete(key);
    this.writesSinceSweep = 0;
    this.sweepAfter = Math.max(MIN_SWEEP_WRITES, this.slots.size);
  }
}

// Redis keeps a key through the ms it expires at and drops it after; matching that keeps the two in step.
function isExpired(slot: Slot, now: number): boolean {
  return slot.expiresAt !== null && now > slot.expiresAt;
}

// The same bounds the Redis script enforces: a whole number of ms, and an expiry that a double holds exactly.
function checkDuration(name: string, ms: number, now: number): void {
  if (!Number.isSafeInteger(ms) || ms < 1 || !Number.isSafeInteger(now + ms)) {
    throw new RangeError(`invalid ${name}: ${ms}`);
  }
}

/**
 * The outbox in process memory, with the Redis stream's semantics: entries in commit order, each claimed by
 * one relay until acknowledged, and taken over once its claim is older than reclaimAfterMs.
 */
class MemoryOutbox implements Outbox {
  // A Map iterates in insertion order, which is commit order.
  private readonly entries = new Map<
    string,
    { changes: readonly Change[]; claimedAt: number | null; committedAt: number; bytes: number }
  >();
  private nextId = 1;
  private bytes = 0;
  private readonly waiting = new Set<() => void>();

  constructor(private readonly clock: Clock) {}

  append(changes: readonly Change[]): void {
    // Counted as the Redis outbox counts its fields: each change's key and its entry as stored (the header
    // alone for an invalidation), less the key prefix this store does not have.
    const bytes = changes.reduce((sum, change) => sum + utf8Bytes(change.key) + storedBytes(change), 0);
    this.entries.set(String(this.nextId++), {
      changes,
      claimedAt: null,
      committedAt: this.clock.now(),
      bytes,
    });
    this.bytes += bytes;
    wakeAll(this.waiting);
  }

  /** Throws FeedBackedUp when the outbox is at `limit`, as the Redis write script does. */
  checkRoom(limit: WriteOptions['outboxLimit']): void {
    if (!limit) return;
    const { maxEntries, maxBytes } = limit;
    if ((maxEntries > 0 && this.entries.size >= maxEntries) || (maxBytes > 0 && this.bytes >= maxBytes)) {
      throw new FeedBackedUp({ entries: this.entries.size, bytes: this.bytes });
    }
  }

  async claim(_relayId: string, { max, blockMs, reclaimAfterMs }: ClaimOptions): Promise<OutboxEntry[]> {
    const claimed = this.take(max, reclaimAfterMs);
    if (claimed.length > 0 || blockMs <= 0) return claimed;
    // Like XREADGROUP BLOCK: a wait that times out answers nothing; only a new entry (or close) ends it early.
    return (await sleepUnlessWoken(this.waiting, blockMs)) ? this.take(max, reclaimAfterMs) : [];
  }

  async ack(ids: readonly string[]): Promise<void> {
    for (const id of ids) {
      this.bytes -= this.entries.get(id)?.bytes ?? 0;
      this.entries.delete(id);
    }
  }

  async size(): Promise<number> {
    return this.entries.size;
  }

  async backlog(): Promise<OutboxBacklog> {
    const oldest = this.entries.values().next();
    return {
      entries: this.entries.size,
      bytes: this.bytes,
      oldestAgeMs: oldest.done ? null : Math.max(0, this.clock.now() - oldest.value.committedAt),
    };
  }

  close(): void {
    wakeAll(this.waiting);
  }

  private take(max: number, reclaimAfterMs: number): OutboxEntry[] {
    const now = this.clock.now();
    const abandoned: OutboxEntry[] = [];
    const fresh: OutboxEntry[] = [];
    for (const [id, entry] of this.entries) {
      if (abandoned.length + fresh.length >= max) break;
      if (entry.claimedAt === null) fresh.push({ id, changes: entry.changes });
      else if (now - entry.claimedAt >= reclaimAfterMs) abandoned.push({ id, changes: entry.changes });
      else continue;
      entry.claimedAt = now;
    }
    return [...abandoned, ...fresh];
  }
}

/** Bytes of the string the Redis write script puts in its outbox for `change` (see RedisOutbox). */
function storedBytes(change: Change): number {
  switch (change.op) {
    case 'set':
      return utf8Bytes(
        packEntry({ version: change.version, value: change.value, expiresAt: change.expiresAt }),
      );
    case 'invalidate':
      return utf8Bytes(packEntry({ version: change.version, value: '', expiresAt: change.expiresAt }));
    case 'delete':
      // The tombstone's expiry is not part of the change; its digits are left uncounted.
      return utf8Bytes(packEntry({ version: change.version, value: null, expiresAt: null }));
  }
}
