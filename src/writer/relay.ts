// Carries committed changes from the store's outbox to the bus: claims entries, publishes their changes, and
// only then acknowledges them, so an announcement is lost neither when Kafka is down nor when the writer dies.
//
// Every writer runs one relay; the outbox hands each entry to one of them and gives the entries of a relay
// that stopped answering to another after reclaimAfterMs. A change may therefore be published twice, or out
// of order across relays; readers' fill rule makes both harmless.
import type { Change } from '../domain/entry.js';
import { log, metrics, reportError, worthLogging } from '../observability.js';
import type { ChangeBus, Outbox, OutboxBacklog } from '../ports.js';

export interface RelayOptions {
  /** Stable per writer instance: names its claims in the outbox. */
  relayId: string;
  /** Most outbox entries (committed batches) claimed at once. */
  maxEntries: number;
  /** How long one claim waits for new entries; also bounds how long close() waits. */
  blockMs: number;
  /** Entries claimed by a relay that has not acknowledged them for this long are taken over. */
  reclaimAfterMs: number;
  /** Most changes in one publish call. */
  maxBatch: number;
  /**
   * Most bytes in one publish call, counted as the bus encodes them (ChangeBus.messageBytes). Kafka refuses
   * a record batch over the broker's message.max.bytes (1 MB by default), so batches stay well below it. A
   * change larger than this on its own is sent as an invalidation (version only; readers refetch the
   * value): whatever makes a change large, it must never stop the announcements behind it.
   */
  maxBatchBytes: number;
  /** First retry delay after a failure; doubles up to maxRetryDelayMs. */
  retryDelayMs: number;
  maxRetryDelayMs: number;
}

const announced = metrics.counter(
  'tiercache_writer_changes_announced_total',
  'Changes the relay put on the bus',
);
const tooLarge = metrics.counter(
  'tiercache_writer_changes_too_large_total',
  'Changes too large for one bus message, announced as invalidations instead',
);
const failures = metrics.counter(
  'tiercache_writer_relay_failures_total',
  'Relay steps that failed and were retried, by step',
);

// What the last look at the outbox found; the gauges read it when /metrics is rendered.
let backlog: OutboxBacklog = { entries: 0, bytes: 0, oldestAgeMs: null };
const BACKLOG_SAMPLE_MS = 1_000;
metrics.gauge(
  'tiercache_outbox_backlog_entries',
  'Committed batches waiting in the outbox to be announced (sampled by the relay each second)',
  () => backlog.entries,
);
metrics.gauge(
  'tiercache_outbox_backlog_bytes',
  'Bytes of the changes waiting in the outbox (OUTBOX_MAX_BYTES bounds it)',
  () => backlog.bytes,
);
metrics.gauge(
  'tiercache_outbox_oldest_age_seconds',
  'How long ago the oldest change waiting in the outbox was committed; 0 when none waits',
  () => (backlog.oldestAgeMs ?? 0) / 1000,
);

class Stopped extends Error {}

function ignoreStopped(error: unknown): void {
  if (!(error instanceof Stopped)) throw error;
}

export class Relay {
  private running = false;
  private loop: Promise<void> | null = null;
  private sampler: NodeJS.Timeout | null = null;

  constructor(
    private readonly outbox: Outbox,
    private readonly bus: ChangeBus,
    private readonly options: RelayOptions,
  ) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
    // Apart from the loop, which can spend minutes retrying a publish while Kafka is away: just when the
    // backlog matters most.
    this.sampler = setInterval(() => {
      this.outbox.backlog().then(
        (sampled) => (backlog = sampled),
        () => undefined, // Redis away: the claim and ack steps already report that.
      );
    }, BACKLOG_SAMPLE_MS);
    this.sampler.unref();
  }

  /** Stops after the step in hand; what is not acknowledged stays in the outbox for the next relay. */
  async close(): Promise<void> {
    this.running = false;
    if (this.sampler) clearInterval(this.sampler);
    await this.loop;
  }

  private async run(): Promise<void> {
    const { relayId, maxEntries, blockMs, reclaimAfterMs } = this.options;
    // The acknowledgement of one round overlaps the claim of the next (they use different connections): it
    // saves a Redis round trip per round, and an entry whose ack is lost is only published again.
    let acking: Promise<void> = Promise.resolve();
    while (this.running) {
      try {
        const entries = await this.retrying('claim', () =>
          this.outbox.claim(relayId, { max: maxEntries, blockMs, reclaimAfterMs }),
        );
        if (entries.length === 0) continue;
        for (const batch of this.batches(entries.flatMap((e) => e.changes))) {
          await this.retrying('publish', () => this.bus.publish(batch));
          announced.inc({}, batch.length);
        }
        await acking;
        acking = this.retrying('ack', () => this.outbox.ack(entries.map((e) => e.id))).catch(ignoreStopped);
      } catch (error) {
        ignoreStopped(error);
      }
    }
    await acking;
  }

  /** Runs `step` until it succeeds, backing off between failures; gives up once the relay is stopping. */
  private async retrying<T>(name: string, step: () => Promise<T>): Promise<T> {
    let delay = this.options.retryDelayMs;
    for (let attempt = 1; ; attempt++) {
      // A stopping relay still makes the first attempt, so the step in hand (an ack above all) completes.
      if (!this.running && attempt > 1) throw new Stopped();
      try {
        const result = await step();
        if (attempt > 1) log.info('relay step succeeded again', { step: name, attempts: attempt });
        return result;
      } catch (error) {
        failures.inc({ step: name });
        if (worthLogging(attempt)) {
          reportError('relay', `relay ${name} failed; retrying`, error, { attempt, retryInMs: delay });
        }
        await new Promise((resolve) => setTimeout(resolve, delay));
        delay = Math.min(delay * 2, this.options.maxRetryDelayMs);
      }
    }
  }

  private *batches(changes: readonly Change[]): Generator<Change[]> {
    let batch: Change[] = [];
    let bytes = 0;
    for (const original of changes) {
      let change = original;
      let size = this.bus.messageBytes(change);
      if (size > this.options.maxBatchBytes && change.op === 'set') {
        tooLarge.inc();
        log.warn('change too large for one bus message; announced as an invalidation', {
          key: change.key.slice(0, 200),
          bytes: size,
        });
        change = { op: 'invalidate', key: change.key, version: change.version, expiresAt: change.expiresAt };
        size = this.bus.messageBytes(change);
      }
      if (
        batch.length > 0 &&
        (batch.length >= this.options.maxBatch || bytes + size > this.options.maxBatchBytes)
      ) {
        yield batch;
        batch = [];
        bytes = 0;
      }
      batch.push(change);
      bytes += size;
    }
    if (batch.length > 0) yield batch;
  }
}
