// Proves, again and again, that every change committed up to a recent moment has reached this reader, and
// says when the memory tier may be trusted (bounded staleness, end to end) — at the moment that changes,
// whether or not anyone is reading.
//
// A proof is a function that resolves with the moment (on our clock) up to which every committed change is
// known to have been applied; the reader's proof checks the outbox, then passes a bus sync barrier (see
// Reader). A proof counts from that moment, never from when it arrived, so it ages while it is in flight.
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

/** Resolves with the moment every change committed before it is known to be applied; `timeoutMs` bounds it. */
export type Proof = (timeoutMs: number) => Promise<number>;

export class FeedMonitor {
  private provenAt: number | null = null;
  private trusted = false;
  private running = false;
  private loop: Promise<void> | null = null;
  private expiry: NodeJS.Timeout | null = null;
  /** The proof the expiry timer was armed for: re-armed only when a newer proof arrives (reads call check). */
  private armedFor: number | null = null;
  private readonly wakers = new Set<() => void>();

  constructor(
    private readonly prove: Proof,
    private readonly options: FeedMonitorOptions,
    /** Called with the new state each time trust changes, as it changes. */
    private readonly onTrustChange: (trusted: boolean, lagMs: number) => void,
  ) {}

  /** Records a proof obtained elsewhere (e.g. the subscription becoming live), covering up to `coveredUpTo`. */
  proven(coveredUpTo: number): void {
    if (this.provenAt === null || coveredUpTo > this.provenAt) this.provenAt = coveredUpTo;
    this.check();
  }

  /**
   * Whether the memory tier may be used. Trust is kept while the last proof is at most maxLagMs old, but
   * regained only with a proof at most maxLagMs / 2 old: a proof that arrives nearly expired would switch
   * trust on for a moment and off again, and every switch clears the tier.
   */
  get current(): boolean {
    this.check();
    return this.trusted;
  }

  /** How old the last proof is, in ms; Infinity before the first. */
  get lagMs(): number {
    return this.provenAt === null ? Infinity : this.options.clock.now() - this.provenAt;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.check();
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.expiry) clearTimeout(this.expiry);
    this.armedFor = null;
    wakeAll(this.wakers);
    await this.loop;
  }

  /** Re-evaluates trust now, reports a change, and arms a timer for the moment the last proof expires. */
  private check(): void {
    const lag = this.lagMs;
    const trusted = this.trusted ? lag <= this.options.maxLagMs : lag <= this.options.maxLagMs / 2;
    if (trusted !== this.trusted) {
      this.trusted = trusted;
      this.onTrustChange(trusted, lag);
    }
    if (!trusted || !this.running) {
      if (this.expiry) clearTimeout(this.expiry);
      this.expiry = null;
      this.armedFor = null;
    } else if (this.armedFor !== this.provenAt) {
      if (this.expiry) clearTimeout(this.expiry);
      this.armedFor = this.provenAt;
      // One ms past the bound, so that the check it fires sees the proof expired.
      this.expiry = setTimeout(
        () => {
          this.armedFor = null;
          this.check();
        },
        this.options.maxLagMs - lag + 1,
      );
      this.expiry.unref();
    }
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (this.running) {
      try {
        this.proven(await this.prove(this.options.maxLagMs));
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
