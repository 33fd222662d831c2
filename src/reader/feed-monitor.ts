// Proves, again and again, that this reader's change feed is current; the reader trusts its memory tier
// only while the last proof is recent enough (bounded staleness).
//
// A proof is a bus sync barrier: when it resolves, every change announced before it was started has been
// applied. So "proven at t" means the memory tier lags the announcements by at most now − t.
import type { Clock } from '../domain/clock.js';
import { log, worthLogging } from '../observability.js';
import { sleepUnlessWoken, wakeAll } from '../wake.js';

export interface FeedMonitorOptions {
  /** Pause between two proofs. */
  intervalMs: number;
  /** How old the last proof may be before the memory tier stops being trusted. */
  maxLagMs: number;
  clock: Clock;
}

export class FeedMonitor {
  private provenAt: number | null = null;
  private running = false;
  private loop: Promise<void> | null = null;
  private readonly wakers = new Set<() => void>();

  constructor(
    private readonly sync: (timeoutMs: number) => Promise<void>,
    private readonly options: FeedMonitorOptions,
  ) {}

  /** Records a proof obtained elsewhere (e.g. the subscription becoming live), started at `startedAt`. */
  proven(startedAt: number): void {
    if (this.provenAt === null || startedAt > this.provenAt) this.provenAt = startedAt;
  }

  /** True while the last proof is at most maxLagMs old. */
  get current(): boolean {
    return this.provenAt !== null && this.options.clock.now() - this.provenAt <= this.options.maxLagMs;
  }

  /** How old the last proof is, in ms; Infinity before the first. */
  get lagMs(): number {
    return this.provenAt === null ? Infinity : this.options.clock.now() - this.provenAt;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    wakeAll(this.wakers);
    await this.loop;
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (this.running) {
      const startedAt = this.options.clock.now();
      try {
        await this.sync(this.options.maxLagMs);
        this.proven(startedAt);
        if (failures > 0) log.info('change feed proven current again', { afterFailures: failures });
        failures = 0;
      } catch (error) {
        failures++;
        if (worthLogging(failures)) log.warn('change feed not proven current', { error, failures });
      }
      await sleepUnlessWoken(this.wakers, this.options.intervalMs);
    }
  }
}
