// Announces committed changes on the bus, in commit order, retrying until the bus accepts them.
//
// The write path answers as soon as the store has committed, so announcing must never fail a write: a bus
// outage delays announcements (readers then stop trusting their memory, see FeedMonitor) instead of losing
// writes. The queue lives in this process: a crash before the bus accepted a change loses its announcement,
// and readers holding that key stay stale until their memory TTL. A durable outbox closes that gap
// (docs/architecture.md, "Known gaps").
import { utf8Bytes, type Change } from '../domain/entry.js';
import { log, metrics, reportError } from '../observability.js';
import type { ChangeBus } from '../ports.js';

export interface AnnouncerOptions {
  /** Most changes in one publish call. */
  maxBatch: number;
  /**
   * Most value bytes in one publish call (one change always goes, whatever its size). Kafka refuses a record
   * batch over the broker's message.max.bytes (1 MB by default), so batches stay well below it.
   */
  maxBatchBytes: number;
  /** First retry delay after a failed publish; doubles up to maxRetryDelayMs. */
  retryDelayMs: number;
  maxRetryDelayMs: number;
}

const published = metrics.counter('tiercache_writer_changes_announced_total', 'Changes accepted by the bus');
const failures = metrics.counter(
  'tiercache_writer_announce_failures_total',
  'Publish attempts the bus refused',
);

export class Announcer {
  private readonly queue: Change[] = [];
  private pumping: Promise<void> | null = null;
  private idle: (() => void)[] = [];
  private closed = false;

  constructor(
    private readonly bus: ChangeBus,
    private readonly options: AnnouncerOptions,
  ) {
    metrics.gauge(
      'tiercache_writer_announce_queue',
      'Committed changes not yet accepted by the bus',
      () => this.queue.length,
    );
  }

  /** Queues changes for announcement; returns at once. */
  announce(changes: readonly Change[]): void {
    if (changes.length === 0) return;
    this.queue.push(...changes);
    this.pumping ??= this.pump().finally(() => {
      this.pumping = null;
      for (const resolve of this.idle.splice(0)) resolve();
    });
  }

  /** Resolves once every change queued so far has been accepted by the bus (or the announcer was closed). */
  drained(): Promise<void> {
    if (!this.pumping) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  /** Waits up to `timeoutMs` for the queue to drain, then stops retrying; returns how many were left. */
  async close(timeoutMs: number): Promise<number> {
    await Promise.race([this.drained(), new Promise((resolve) => setTimeout(resolve, timeoutMs).unref())]);
    this.closed = true;
    const left = this.queue.length;
    if (left > 0) log.error('announcer closed with changes not announced', { left });
    return left;
  }

  private nextBatch(): Change[] {
    let bytes = 0;
    let count = 0;
    for (const change of this.queue) {
      bytes += utf8Bytes(change.key) + (change.op === 'set' ? utf8Bytes(change.value) : 0);
      if (count > 0 && (count >= this.options.maxBatch || bytes > this.options.maxBatchBytes)) break;
      count++;
    }
    return this.queue.slice(0, count);
  }

  private async pump(): Promise<void> {
    let delay = this.options.retryDelayMs;
    while (this.queue.length > 0 && !this.closed) {
      const batch = this.nextBatch();
      try {
        await this.bus.publish(batch);
        this.queue.splice(0, batch.length);
        published.inc({}, batch.length);
        delay = this.options.retryDelayMs;
      } catch (error) {
        failures.inc();
        reportError('announcer', 'publishing changes failed; retrying', error, {
          changes: batch.length,
          retryInMs: delay,
        });
        await new Promise((resolve) => setTimeout(resolve, delay));
        delay = Math.min(delay * 2, this.options.maxRetryDelayMs);
      }
    }
  }
}
