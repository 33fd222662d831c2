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
  /** Most events waiting; past it, events coalesce per key. */
  readonly capacity: number;
  /** How long the queue may stay full before the subscriber counts as behind, in ms. */
  readonly maxFullMs: number;
}

/**
 * One subscriber's pending events. Every event passes a per-key gate: it must carry a newer version than
 * the last one queued for its key (or be the EXPIRE of that same version), so replays and duplicates are
 * dropped and a key never goes backwards. While the queue is full, an event for a key that already waits
 * replaces it in place; an event for another key, or a queue full for longer than `maxFullMs`, means the
 * subscriber is behind.
 */
export class EventQueue {
  private items: (ValueEvent | undefined)[] = [];
  private head = 0;
  /** Index in `items` of the last waiting event of each key. */
  private readonly lastIndex = new Map<string, number>();
  /** Newest version queued per key, and whether it was an EXPIRE. */
  private readonly gate = new Map<string, { version: Version; expired: boolean }>();
  private fullSince: number | null = null;

  constructor(private readonly limits: QueueLimits) {}

  get length(): number {
    return this.items.length - this.head;
  }

  /** The newest version queued (or sent) for a key, if any. */
  lastVersion(key: string): { version: Version; expired: boolean } | undefined {
    return this.gate.get(key);
  }

  /** Keys that ever passed the gate: for a prefix subscription, the keys it has been told about. */
  seenKeys(): IterableIterator<string> {
    return this.gate.keys();
  }

  offer(event: ValueEvent, now: number): OfferResult {
    if (!this.newer(event)) return 'stale';
    const full = this.length >= this.limits.capacity;
    if (full) {
      this.fullSince ??= now;
      const waiting = this.lastIndex.get(event.key);
      if (waiting === undefined || now - this.fullSince > this.limits.maxFullMs) return 'behind';
      this.items[waiting] = event;
      this.pass(event);
      return 'coalesced';
    }
    this.lastIndex.set(event.key, this.items.length);
    this.items.push(event);
    this.pass(event);
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
    if (!last) return true;
    if (event.version > last.version) return true;
    return event.version === last.version && event.op === 'EXPIRE' && !last.expired;
  }

  private pass(event: ValueEvent): void {
    if (event.version !== null)
      this.gate.set(event.key, { version: event.version, expired: event.op === 'EXPIRE' });
  }

  private compact(): void {
    this.items = this.items.slice(this.head);
    for (const [key, index] of this.lastIndex) this.lastIndex.set(key, index - this.head);
    this.head = 0;
  }
}
