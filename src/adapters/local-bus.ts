// The embedded in-process change bus: broadcasts every published batch to every current subscriber, each of
// which drains its own queue in order, one handler call at a time. Not durable; for the single-process mode.
import type { Change } from '../domain/entry.js';
import { encodeChange, messageBytesOf } from './change-codec.js';
import { reportError } from '../observability.js';
import { sleepUnlessWoken, wakeAll } from '../wake.js';
import type { ChangeBus, ChangeHandler, Subscription } from '../ports.js';

export class LocalBus implements ChangeBus {
  private readonly subscriptions = new Map<string, LocalSubscription>();
  private closed = false;

  async publish(changes: readonly Change[]): Promise<void> {
    if (this.closed) throw new Error('LocalBus is closed');
    if (changes.length === 0) return;
    // A copy, so a caller reusing its array cannot rewrite what subscribers have yet to see.
    const batch = [...changes];
    for (const subscription of this.subscriptions.values()) subscription.enqueue(batch);
  }

  async subscribe(subscriberId: string, handler: ChangeHandler): Promise<Subscription> {
    if (this.closed) throw new Error('LocalBus is closed');
    // Same rule as Kafka, where one id means one consumer group and two members would split the feed.
    if (this.subscriptions.has(subscriberId))
      throw new Error(`subscriber ${subscriberId} is already subscribed`);
    const subscription = new LocalSubscription(subscriberId, handler, () =>
      this.subscriptions.delete(subscriberId),
    );
    this.subscriptions.set(subscriberId, subscription);
    return subscription;
  }

  /** Measured as Kafka would carry it, so that the relay behaves the same on either bus. */
  messageBytes(change: Change): number {
    return messageBytesOf(change.key, encodeChange(change));
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.subscriptions.values()].map((subscription) => subscription.close()));
  }
}

class LocalSubscription implements Subscription {
  private readonly queue: (readonly Change[])[] = [];
  /** Batches ever enqueued and batches whose handler call has settled: sync() compares the two. */
  private enqueued = 0;
  private settled = 0;
  private draining: Promise<void> | null = null;
  private closed = false;
  private readonly onProgress = new Set<() => void>();

  constructor(
    private readonly subscriberId: string,
    private readonly handler: ChangeHandler,
    private readonly release: () => void,
  ) {}

  enqueue(batch: readonly Change[]): void {
    if (this.closed) return;
    this.queue.push(batch);
    this.enqueued += 1;
    this.draining ??= this.drain();
  }

  async sync(timeoutMs: number): Promise<void> {
    const target = this.enqueued;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.closed) throw new Error(`subscription ${this.subscriberId} is closed`);
      if (this.settled >= target) return;
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(`sync of subscriber ${this.subscriberId} timed out after ${timeoutMs} ms`);
      await sleepUnlessWoken(this.onProgress, left);
    }
  }

  /** Resolves once no handler call is running; a handler must therefore not await its own close(). */
  async close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.queue.length = 0;
      this.release();
      wakeAll(this.onProgress);
    }
    await this.draining;
  }

  private async drain(): Promise<void> {
    // Deliver on a later turn: publish() must never run handler code on its caller's stack.
    await Promise.resolve();
    for (let batch = this.queue.shift(); batch && !this.closed; batch = this.queue.shift()) {
      try {
        await this.handler(batch);
      } catch (error) {
        reportError('local-bus', 'change handler failed; delivery goes on', error, {
          subscriber: this.subscriberId,
        });
      }
      this.settled += 1;
      wakeAll(this.onProgress);
    }
    this.draining = null;
  }
}
