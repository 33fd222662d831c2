// Live subscriptions of one reader: each change the reader applies from the feed is fanned out to the
// subscriptions watching its key, after an optional snapshot; invalidations are turned into values (one
// batched store read for all subscribers), expiries into EXPIRE events, and feed loss into a resync from
// the store once the feed is trusted again. Transports consume each subscription as an async iterator.
import type { Change, Version } from '../domain/entry.js';
import { systemClock, type Clock } from '../domain/clock.js';
import { EventQueue, SubscriptionIndex, type ValueEvent, type Watch } from '../domain/subscription-index.js';
import { log, metrics, reportError } from '../observability.js';
import type { Fetched, Reader } from './reader.js';

export interface LiveOptions {
  /** Events waiting per subscription before changes to the same key coalesce. */
  bufferSize: number;
  /** A subscription whose buffer stays full this long, or holds twice its size, is closed. */
  slowConsumerMs: number;
  /** Keys whose last sent version a subscription remembers (see EventQueue). */
  rememberedKeys: number;
  maxPerProcess: number;
  maxPerConnection: number;
  /** Most keys a prefix snapshot covers. */
  maxSnapshotKeys: number;
  clock?: Clock;
}

/** The server ended the subscription: the transport sends this as the last event, with its reason. */
export interface Ended {
  readonly ended: 'SLOW_CONSUMER' | 'UNAVAILABLE';
  readonly message: string;
}

export type Delivery = ValueEvent | Ended;

/** Over a subscription limit: the client must close some subscriptions first. */
export class SubscriptionRefused extends Error {
  override readonly name = 'SubscriptionRefused';
}

/** The open subscriptions of one client connection (a WebSocket, an SSE stream or request). */
export class Connection {
  open = 0;
  /** Called when the last subscription of the connection ends (e.g. to forget a stream token). */
  constructor(readonly idle?: () => void) {}
}

const opened = metrics.counter('tiercache_subscriptions_opened_total', 'Subscriptions opened');
const closed = metrics.counter(
  'tiercache_subscriptions_closed_total',
  'Subscriptions closed, by reason (client, complete, slow_consumer, unavailable)',
);
const sent = metrics.counter(
  'tiercache_subscription_events_total',
  'Events handed to subscription transports, by op',
);
const coalesced = metrics.counter(
  'tiercache_subscription_events_coalesced_total',
  'Events that replaced a waiting event of the same key in a full subscription buffer',
);
// What the clients' delivery costs the reader: from the change's commit (version, µs on the store's clock)
// to the moment a transport takes the event.
const delivery = metrics.histogram(
  'tiercache_subscription_delivery_ms',
  'Milliseconds from a change’s commit to its event being taken by a subscription transport',
  [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000],
);
const sentByOp = {
  SET: sent.bind({ op: 'SET' }),
  DELETE: sent.bind({ op: 'DELETE' }),
  EXPIRE: sent.bind({ op: 'EXPIRE' }),
} as const;

// setTimeout's longest delay; farther expiries re-arm.
const MAX_TIMER_MS = 2 ** 31 - 1;

export class LiveSubscriptions {
  private readonly index = new SubscriptionIndex<LiveSubscription>();
  private readonly open = new Set<LiveSubscription>();
  /** Subscriptions whose transport has not yet taken their last result (open ones, and ending ones). */
  private readonly unfinished = new Set<LiveSubscription>();
  /** Keys whose invalidated value is being fetched → their later changes, held to keep per-key order. */
  private readonly fetching = new Map<string, Change[]>();
  /** One timer per watched key whose current value expires, for its EXPIRE event. */
  private readonly expiries = new Map<string, { version: Version; timer: NodeJS.Timeout }>();
  private readonly stopListening: (() => void)[];
  private readonly clock: Clock;

  constructor(
    private readonly reader: Reader,
    private readonly options: LiveOptions,
  ) {
    this.clock = options.clock ?? systemClock;
    this.stopListening = [
      reader.onApplied((changes) => this.routeAll(changes)),
      reader.onTrustChange((trusted) => {
        if (trusted) void this.resync();
      }),
    ];
    metrics.gauge('tiercache_subscriptions_open', 'Open subscriptions', () => this.open.size);
    metrics.gauge(
      'tiercache_subscription_index_entries',
      'Key and prefix entries in the subscription index (0 when no subscription is open)',
      () => this.index.entries,
    );
    metrics.gauge(
      'tiercache_subscription_expiry_timers',
      'Keys with a pending EXPIRE timer',
      () => this.expiries.size,
    );
    metrics.gauge(
      'tiercache_subscription_remembered_keys',
      'Keys whose last sent version open subscriptions remember (each subscription holds at most SUBSCRIPTION_REMEMBERED_KEYS)',
      () => {
        let remembered = 0;
        for (const sub of this.open) remembered += sub.remembered;
        return remembered;
      },
    );
    metrics.gauge('tiercache_subscription_buffered_events', 'Events waiting in subscription buffers', () => {
      let waiting = 0;
      for (const sub of this.open) waiting += sub.buffered;
      return waiting;
    });
  }

  get size(): number {
    return this.open.size;
  }

  /**
   * Opens a subscription. With `includeInitial`, its first events are the watched keys' current entries
   * (read from the store after the subscription is indexed, so no change in between is missed); live
   * changes that arrive meanwhile wait behind them and pass the version gate.
   */
  subscribe(watch: Watch, includeInitial: boolean, connection: Connection): AsyncIterableIterator<Delivery> {
    if (this.open.size >= this.options.maxPerProcess)
      throw new SubscriptionRefused(
        `this reader already serves ${this.options.maxPerProcess} subscriptions (SUBSCRIPTIONS_PER_PROCESS); try another reader or later`,
      );
    if (connection.open >= this.options.maxPerConnection)
      throw new SubscriptionRefused(
        `this connection already has ${this.options.maxPerConnection} subscriptions (SUBSCRIPTIONS_PER_CONNECTION); close one first`,
      );
    const sub = new LiveSubscription(watch, this.options, this.clock, includeInitial, {
      release: (s, reason) => this.release(s, reason, connection),
      finished: (s) => this.unfinished.delete(s),
    });
    connection.open++;
    this.open.add(sub);
    this.unfinished.add(sub);
    this.index.add(sub, watch);
    opened.inc();
    if (includeInitial) void this.snapshot(sub);
    return sub;
  }

  /** Ends every subscription with a complete (after the events already waiting): the process is stopping. */
  completeAll(): void {
    for (const sub of [...this.open]) sub.complete();
  }

  /** Resolves once every subscription's transport has taken its last event, or after `timeoutMs`. */
  async drained(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.unfinished.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    // A transport writes its complete message a few promise turns after taking the end: let it.
    await new Promise((r) => setTimeout(r, 20));
  }

  close(): void {
    for (const stop of this.stopListening) stop();
    this.completeAll();
    for (const { timer } of this.expiries.values()) clearTimeout(timer);
    this.expiries.clear();
  }

  private release(sub: LiveSubscription, reason: string, connection: Connection): void {
    if (!this.open.delete(sub)) return;
    if (--connection.open === 0) connection.idle?.();
    this.index.remove(sub, sub.watch);
    closed.inc({ reason });
    for (const key of sub.keys()) {
      if (this.index.watches(key)) continue;
      const expiry = this.expiries.get(key);
      if (expiry) clearTimeout(expiry.timer);
      this.expiries.delete(key);
    }
  }

  private async snapshot(sub: LiveSubscription): Promise<void> {
    const keys = new Set(sub.watch.keys);
    const { prefix } = sub.watch;
    if (prefix !== null) {
      for (const key of this.reader.tier.keys()) {
        if (keys.size >= this.options.maxSnapshotKeys) break;
        if (key.startsWith(prefix)) keys.add(key);
      }
    }
    try {
      const initial = await Promise.all(
        [...keys].map(async (key) => eventOf(key, await this.reader.fetchFresh(key), true)),
      );
      sub.finishSnapshot(initial);
      for (const event of initial) this.trackExpiry(event);
    } catch (error) {
      reportError('subscriptions', 'snapshot failed', error, { keys: keys.size });
      sub.fail('the current values could not be read from the store; subscribe again');
    }
  }

  /**
   * One feed batch can carry more keys than a subscription's buffer holds: it is routed in slices of half a
   * buffer, and the event loop turns between slices, so transports take what waits before the next slice
   * comes (the feed waits for this, so nothing piles up here). A client that reads promptly is never closed
   * for the size of a batch; one that does not read fills its buffer and is closed (see EventQueue).
   */
  private routeAll(changes: readonly Change[]): Promise<void> | void {
    const slice = Math.max(1, Math.floor(this.options.bufferSize / 2));
    if (changes.length <= slice) {
      for (const change of changes) this.route(change);
      return;
    }
    return (async () => {
      for (let start = 0; start < changes.length; start += slice) {
        if (start > 0) await new Promise((resolve) => setImmediate(resolve));
        for (const change of changes.slice(start, start + slice)) this.route(change);
      }
    })();
  }

  private route(change: Change): void {
    if (!this.index.watches(change.key)) return;
    const waiting = this.fetching.get(change.key);
    if (waiting) waiting.push(change);
    else if (change.op === 'invalidate') {
      this.fetching.set(change.key, []);
      void this.fetchValue(change);
    } else
      this.deliver({
        key: change.key,
        value: change.op === 'set' ? change.value : null,
        version: change.version,
        op: change.op === 'set' ? 'SET' : 'DELETE',
        initial: false,
        expiresAt: change.op === 'set' ? change.expiresAt : null,
      });
  }

  /** An invalidation carries no value: one batched store read fetches it for every subscriber. */
  private async fetchValue(change: Change & { op: 'invalidate' }): Promise<void> {
    try {
      const answer = await this.reader.fetchFresh(change.key);
      if (answer.version === null) {
        // Gone before it could be read: it expired.
        this.deliver({ ...eventOf(change.key, answer, false), version: change.version, op: 'EXPIRE' });
      } else if (answer.version >= change.version) this.deliver(eventOf(change.key, answer, false));
      else log.warn('store answered older than an announced change', { key: change.key });
    } catch (error) {
      reportError('subscriptions', 'could not fetch an invalidated value', error, { key: change.key });
      for (const sub of this.index.matching(change.key))
        sub.fail(`the new value of ${JSON.stringify(change.key)} could not be read; subscribe again`);
    }
    const queued = this.fetching.get(change.key) ?? [];
    this.fetching.delete(change.key);
    for (const next of queued) this.route(next);
  }

  private deliver(event: ValueEvent): void {
    const now = this.clock.now();
    for (const sub of this.index.matching(event.key)) sub.offer(event, now);
    this.trackExpiry(event);
  }

  private trackExpiry(event: ValueEvent): void {
    const current = this.expiries.get(event.key);
    if (event.version === null || (current && current.version > event.version)) return;
    if (current) clearTimeout(current.timer);
    this.expiries.delete(event.key);
    if (event.op !== 'SET' || event.expiresAt === null) return;
    const { key, version, expiresAt } = event;
    const arm = (): void => {
      const timer = setTimeout(
        () => {
          // Redis drops a key once its clock is past the deadline, not at it: an EXPIRE sent at the deadline
          // itself could name a key that still reads back.
          if (Date.now() <= expiresAt) return arm();
          this.expiries.delete(key);
          if (this.index.watches(key))
            this.deliver({ key, value: null, version, op: 'EXPIRE', initial: false, expiresAt: null });
        },
        Math.min(Math.max(1, expiresAt + 1 - Date.now()), MAX_TIMER_MS),
      );
      timer.unref();
      this.expiries.set(key, { version, timer });
    };
    arm();
  }

  /**
   * The feed is trusted again after a loss: changes may have been missed. Every watched key is read from
   * the store; whatever is newer than what a subscriber was sent goes out (the version gate drops the rest).
   */
  private async resync(): Promise<void> {
    const keys = new Set<string>();
    for (const sub of this.open) for (const key of sub.keys()) keys.add(key);
    if (keys.size === 0) return;
    log.info('feed trusted again: re-synchronising subscriptions from the store', {
      subscriptions: this.open.size,
      keys: keys.size,
    });
    const list = [...keys];
    const answers = await Promise.allSettled(list.map((key) => this.reader.fetchFresh(key)));
    answers.forEach((answer, i) => {
      // allSettled answers one outcome per key of list, in its order.
      const key = list[i] as string;
      if (answer.status === 'rejected') {
        reportError('subscriptions', 'resync read failed', answer.reason, { key });
        for (const sub of this.index.matching(key))
          sub.fail(`${JSON.stringify(key)} could not be re-read after a feed loss; subscribe again`);
      } else if (answer.value.version !== null && !this.fetching.has(key)) {
        this.deliver(eventOf(key, answer.value, false));
      }
    });
  }
}

function eventOf(key: string, answer: Fetched, initial: boolean): ValueEvent {
  return {
    key,
    value: answer.value,
    version: answer.version,
    op: answer.value === null ? 'DELETE' : 'SET',
    initial,
    expiresAt: answer.value === null ? null : answer.expiresAt,
  };
}

type State = 'snapshot' | 'live' | 'ending' | 'done';

/** One subscription: its queue, and the async iterator a transport pulls events from. */
class LiveSubscription implements AsyncIterableIterator<Delivery> {
  private readonly queue: EventQueue;
  /** Live events that arrived while the snapshot was read: they go out after it. */
  private held: EventQueue | null = null;
  private state: State;
  private final: Ended | null = null;
  private waiter: ((result: IteratorResult<Delivery>) => void) | null = null;

  constructor(
    readonly watch: Watch,
    options: LiveOptions,
    private readonly clock: Clock,
    snapshot: boolean,
    private readonly hooks: {
      release(sub: LiveSubscription, reason: string): void;
      finished(sub: LiveSubscription): void;
    },
  ) {
    const limits = {
      capacity: options.bufferSize,
      maxFullMs: options.slowConsumerMs,
      rememberedKeys: options.rememberedKeys,
    };
    this.queue = new EventQueue(limits);
    if (snapshot) this.held = new EventQueue(limits);
    this.state = snapshot ? 'snapshot' : 'live';
  }

  get buffered(): number {
    return this.queue.length + (this.held?.length ?? 0);
  }

  get remembered(): number {
    return this.queue.remembered + (this.held?.remembered ?? 0);
  }

  /** Every key this subscription watches by name, and those under its prefix it was told about recently. */
  keys(): Set<string> {
    const keys = new Set(this.watch.keys);
    if (this.watch.prefix !== null) for (const key of this.queue.seenKeys()) keys.add(key);
    return keys;
  }

  offer(event: ValueEvent, now: number): void {
    if (this.state === 'ending' || this.state === 'done') return;
    const result = (this.held ?? this.queue).offer(event, now);
    if (result === 'coalesced') coalesced.inc();
    if (result === 'behind') this.slow();
    else if (result !== 'stale') this.wake();
  }

  finishSnapshot(initial: readonly ValueEvent[]): void {
    if (this.state !== 'snapshot') return;
    const now = this.clock.now();
    // Set when the subscription starts in 'snapshot', emptied only as it leaves that state (here, or ending).
    const held = this.held as EventQueue;
    this.held = null;
    this.state = 'live';
    for (const event of initial) if (this.queue.offer(event, now) === 'behind') return this.slow();
    for (let event = held.take(); event; event = held.take())
      if (this.queue.offer(event, now) === 'behind') return this.slow();
    this.wake();
  }

  /** Ends after the waiting events are taken (the process is stopping). */
  complete(): void {
    this.end(null, false);
  }

  fail(message: string): void {
    this.end({ ended: 'UNAVAILABLE', message }, true);
  }

  next(): Promise<IteratorResult<Delivery>> {
    const ready = this.poll();
    if (ready) return Promise.resolve(ready);
    return new Promise((resolve) => (this.waiter = resolve));
  }

  /** The client went away (or the transport stopped): release everything at once. */
  return(): Promise<IteratorResult<Delivery>> {
    this.queue.clear();
    this.held = null;
    if (this.state !== 'done') this.hooks.release(this, this.state === 'ending' ? 'complete' : 'client');
    this.state = 'done';
    this.hooks.finished(this);
    this.resolveWaiter({ value: undefined, done: true });
    return Promise.resolve({ value: undefined, done: true });
  }

  throw(): Promise<IteratorResult<Delivery>> {
    return this.return();
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<Delivery> {
    return this;
  }

  private slow(): void {
    this.end(
      {
        ended: 'SLOW_CONSUMER',
        message: `this subscription fell behind (${this.queue.length} events unread); it is closed, subscribe again (with includeInitial) to catch up`,
      },
      true,
    );
  }

  private end(final: Ended | null, dropWaiting: boolean): void {
    if (this.state === 'ending' || this.state === 'done') return;
    if (dropWaiting || this.state === 'snapshot') {
      this.queue.clear();
      this.held = null;
    }
    this.final = final;
    this.state = 'ending';
    // Out of the index at once: a slow or failed subscriber costs nothing more while its last event waits.
    this.hooks.release(this, final ? final.ended.toLowerCase() : 'complete');
    this.wake();
  }

  private poll(): IteratorResult<Delivery> | null {
    if (this.state === 'live' || this.state === 'ending') {
      const event = this.queue.take();
      if (event) {
        sentByOp[event.op].inc();
        if (!event.initial && event.version !== null && event.op !== 'EXPIRE') {
          const nowMicros = (performance.timeOrigin + performance.now()) * 1000;
          delivery.observe((nowMicros - Number(event.version)) / 1000);
        }
        return { value: event, done: false };
      }
    }
    if (this.state === 'ending') {
      this.state = 'done';
      this.hooks.finished(this);
      const final = this.final;
      this.final = null;
      if (final) return { value: final, done: false };
    }
    if (this.state === 'done') return { value: undefined, done: true };
    return null;
  }

  private wake(): void {
    if (!this.waiter) return;
    const ready = this.poll();
    if (ready) this.resolveWaiter(ready);
  }

  private resolveWaiter(result: IteratorResult<Delivery>): void {
    const waiter = this.waiter;
    this.waiter = null;
    waiter?.(result);
  }
}
