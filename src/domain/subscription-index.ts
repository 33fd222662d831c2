// Pure bookkeeping for live subscriptions: which subscriptions watch a key (by key or by prefix, without a
// scan over all subscriptions), and each subscription's bounded queue of events with its per-key version
// gate (at most once per version, never backwards) and same-key coalescing while the queue is full.
import type { Version } from './entry.js';

export type ValueEventOp = 'SET' | 'DELETE' | 'EXPIRE';

/** One event sent to a subscriber: a key's state after a change (or its current state, when initial). */
export interface ValueEvent {
  readonly key: string;
  /** null once the key has no value. */
  readonly value: string | null;
  /** null only for an initial event of a key the store knows nothing of. */
  readonly version: Version | null;
  readonly op: ValueEventOp;
  readonly initial: boolean;
  /** Absolute expiry (ms since the epoch, store clock) of a SET, for the EXPIRE that follows; else null. */
  readonly expiresAt: number | null;
}

/** What a subscription watches: a list of keys, a prefix, or both. */
export interface Watch {
  readonly keys: readonly string[];
  readonly prefix: string | null;
}

/**
 * Key → subscriptions and prefix → subscriptions. A change looks up its key once, and its prefixes once per
 * distinct prefix length in use: the cost does not grow with subscriptions that watch other keys.
 */
export class SubscriptionIndex<S> {
  private readonly byKey = new Map<string, Set<S>>();
  private readonly byPrefix = new Map<string, Set<S>>();
  /** Distinct prefix lengths in use → how many prefixes have that length. */
  private readonly prefixLengths = new Map<number, number>();
  private entryCount = 0;

  add(subscription: S, watch: Watch): void {
    for (const key of new Set(watch.keys)) this.entryCount += addTo(this.byKey, key, subscription);
    if (watch.prefix !== null) {
      const added = addTo(this.byPrefix, watch.prefix, subscription);
      if (added && this.byPrefix.get(watch.prefix)?.size === 1) {
        const length = watch.prefix.length;
        this.prefixLengths.set(length, (this.prefixLengths.get(length) ?? 0) + 1);
      }
      this.entryCount += added;
    }
  }

  remove(subscription: S, watch: Watch): void {
    for (const key of new Set(watch.keys)) this.entryCount -= removeFrom(this.byKey, key, subscription);
    if (watch.prefix !== null) {
      const removed = removeFrom(this.byPrefix, watch.prefix, subscription);
      if (removed && !this.byPrefix.has(watch.prefix)) {
        const length = watch.prefix.length;
        const left = (this.prefixLengths.get(length) ?? 1) - 1;
        if (left === 0) this.prefixLengths.delete(length);
        else this.prefixLengths.set(length, left);
      }
      this.entryCount -= removed;
    }
  }

  /** Every subscription watching `key`, each once. */
  matching(key: string): Set<S> {
    const found = new Set<S>(this.byKey.get(key));
    for (const length of this.prefixLengths.keys()) {
      if (length > key.length) continue;
      const subs = this.byPrefix.get(key.slice(0, length));
      if (subs) for (const s of subs) found.add(s);
    }
    return found;
  }

  /** Whether any subscription watches `key`. */
  watches(key: string): boolean {
    if (this.byKey.has(key)) return true;
    for (const length of this.prefixLengths.keys())
      if (length <= key.length && this.byPrefix.has(key.slice(0, length))) return true;
    return false;
  }

  /** Key and prefix entries held: zero once every subscription is removed (what /metrics shows). */
  get entries(): number {
    return this.entryCount;
  }
}

function addTo<S>(map: Map<string, Set<S>>, name: string, subscription: S): number {
  let set = map.get(name);
  if (!set) map.set(name, (set = new Set()));
  if (set.has(subscription)) return 0;
  set.add(subscription);
  return 1;
}

function removeFrom<S>(map: Map<string, Set<S>>, name: string, subscription: S): number {
  const set = map.get(name);
  if (!set?.delete(subscription)) return 0;
  if (set.size === 0) map.delete(name);
  return 1;
}

export type OfferResult =
  /** Queued as a new event. */
  | 'queued'
  /** The queue was full: it replaced the pending event of the same key (newest version wins). */
  | 'coalesced'
  /** Not newer than what the subscriber already has or will get: dropped. */
  | 'stale'
  /** The subscriber is too far behind: close it (the queue is unchanged). */
  | 'behind';

export interface QueueLimits {
  /** Events waiting before the queue counts as full; from then on, events coalesce per key. */
  readonly capacity: number;
  /** How long the queue may stay full before the subscriber counts as behind, in ms. */
  readonly maxFullMs: number;
  /** Most keys whose last version the gate holds (see EventQueue): bounds a prefix subscription's memory. */
  readonly rememberedKeys: number;
}

/**
 * One subscriber's pending events. Every event passes a per-key gate: it must carry a newer version than
 * the last one queued for its key (or be the EXPIRE of that same version), so replays and duplicates are
 * dropped and a key never goes backwards.
 *
 * The gate holds the last version of at most `rememberedKeys` keys, the least recently passed forgotten
 * first, and keeps the newest version it forgot as a floor: an event for a key it does not hold passes only
 * if it is newer than that floor. So a prefix subscription costs the same memory after a million distinct
 * keys as after a thousand, a replay of a forgotten key is still dropped, and a key still never goes
 * backwards. Two events pass a forgotten key whatever the floor: an EXPIRE (the expiry of a value sent long
 * ago must not go missing) and a snapshot's initial answer (the first thing sent for that key).
 *
 * Full means `capacity` events waiting: from then on an event for a key that already waits replaces it in
 * place. A new key still gets in, up to twice the capacity, because one feed batch can bring more keys than
 * a buffer holds and a client that reads promptly takes them within moments. The subscriber is behind when
 * the queue stays full for longer than `maxFullMs`, or a new key finds twice the capacity waiting.
 */
export class EventQueue {
  private items: (ValueEvent | undefined)[] = [];
  private head = 0;
  /** Index in `items` of the last waiting event of each key. */
  private readonly lastIndex = new Map<string, number>();
  /** Newest version queued per key, and whether it was an EXPIRE; in order of last pass (oldest first). */
  private readonly gate = new Map<string, { version: Version; expired: boolean }>();
  /** Newest version the gate forgot. */
  private floor: Version | null = null;
  private fullSince: number | null = null;

  constructor(private readonly limits: QueueLimits) {}

  get length(): number {
    return this.items.length - this.head;
  }

  /** Keys whose last version the gate holds. */
  get remembered(): number {
    return this.gate.size;
  }

  /** The newest version queued (or sent) for a key, if the gate still holds it. */
  lastVersion(key: string): { version: Version; expired: boolean } | undefined {
    return this.gate.get(key);
  }

  /** Keys the gate holds: for a prefix subscription, the keys it was told about most recently. */
  seenKeys(): IterableIterator<string> {
    return this.gate.keys();
  }

  offer(event: ValueEvent, now: number): OfferResult {
    if (!this.newer(event)) return 'stale';
    const { capacity, maxFullMs } = this.limits;
    if (this.length >= capacity) {
      if (this.fullSince !== null && now - this.fullSince > maxFullMs) return 'behind';
      this.fullSince ??= now;
      const waiting = this.lastIndex.get(event.key);
      if (waiting !== undefined) {
        this.items[waiting] = event;
        this.pass(event);
        return 'coalesced';
      }
      if (this.length >= 2 * capacity) return 'behind';
    }
    this.lastIndex.set(event.key, this.items.length);
    this.items.push(event);
    this.pass(event);
    if (this.length >= capacity) this.fullSince ??= now;
    return 'queued';
  }

  take(): ValueEvent | undefined {
    if (this.length === 0) return undefined;
    const index = this.head;
    // Only slots before head are emptied: the one at head holds a waiting event (length > 0).
    const event = this.items[index] as ValueEvent;
    this.items[index] = undefined;
    this.head++;
    if (this.lastIndex.get(event.key) === index) this.lastIndex.delete(event.key);
    if (this.length < this.limits.capacity) this.fullSince = null;
    if (this.head >= 1024 && this.head * 2 >= this.items.length) this.compact();
    return event;
  }

  /** Drops every waiting event (the subscription is closing). */
  clear(): void {
    this.items = [];
    this.head = 0;
    this.lastIndex.clear();
  }

  private newer(event: ValueEvent): boolean {
    if (event.version === null) return !this.gate.has(event.key);
    const last = this.gate.get(event.key);
    if (!last)
      return event.op === 'EXPIRE' || event.initial || this.floor === null || event.version > this.floor;
    if (event.version > last.version) return true;
    return event.version === last.version && event.op === 'EXPIRE' && !last.expired;
  }

  private pass(event: ValueEvent): void {
    if (event.version === null) return;
    // Deleted first so that the key moves to the newest end of the map's order.
    this.gate.delete(event.key);
    this.gate.set(event.key, { version: event.version, expired: event.op === 'EXPIRE' });
    if (this.gate.size <= this.limits.rememberedKeys) return;
    const [oldest, last] = this.gate.entries().next().value as [string, { version: Version }];
    this.gate.delete(oldest);
    if (this.floor === null || last.version > this.floor) this.floor = last.version;
  }

  private compact(): void {
    this.items = this.items.slice(this.head);
    for (const [key, index] of this.lastIndex) this.lastIndex.set(key, index - this.head);
    this.head = 0;
  }
}
