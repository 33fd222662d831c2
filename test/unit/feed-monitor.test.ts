// The feed monitor decides when a reader may trust its memory tier: from proofs that count from the moment
// they cover, on its own timer (not only when someone reads), and without flapping on late proofs.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FeedMonitor } from '../../src/reader/feed-monitor.js';
import { captureLogs } from '../support/logs.js';

const clock = { now: () => Date.now() };
const MAX_LAG = 5_000;
const INTERVAL = 1_000;
let monitor: FeedMonitor | null = null;
let pending: { resolve: (coveredUpTo: number) => void; reject: (error: Error) => void }[] = [];

beforeEach(() => {
  vi.useFakeTimers({ now: 1_800_000_000_000 });
});
afterEach(async () => {
  const stopping = monitor?.stop();
  // Proofs left hanging would hold stop(); a real proof is bounded by its timeout.
  for (const proof of pending.splice(0)) proof.reject(new Error('test over'));
  await vi.runOnlyPendingTimersAsync();
  await stopping;
  monitor = null;
  vi.useRealTimers();
});

/** A monitor whose proofs the test answers by hand, recording every trust change as it is reported. */
function setup() {
  pending = [];
  const changes: { at: number; trusted: boolean }[] = [];
  monitor = new FeedMonitor(
    () => new Promise<number>((resolve, reject) => pending.push({ resolve, reject })),
    { intervalMs: INTERVAL, maxLagMs: MAX_LAG, clock },
    (trusted) => changes.push({ at: Date.now(), trusted }),
  );
  return { monitor, pending, changes };
}

describe('FeedMonitor', () => {
  it('loses trust on its own when the last proof expires, with nobody reading', async () => {
    const { monitor, changes, pending } = setup();
    const start = Date.now();
    monitor.proven(start);
    monitor.start();
    expect(changes).toEqual([{ at: start, trusted: true }]);
    // Proofs hang (a dead relay, a broker away); nothing reads `current`.
    await vi.advanceTimersByTimeAsync(MAX_LAG + 10);
    expect(pending.length).toBeGreaterThan(0);
    expect(changes).toEqual([
      { at: start, trusted: true },
      { at: start + MAX_LAG + 1, trusted: false },
    ]);
  });

  it('counts a proof from the moment it covers, not from its arrival', async () => {
    const { monitor, pending } = setup();
    monitor.start();
    expect(monitor.current).toBe(false);
    const started = Date.now();
    await vi.advanceTimersByTimeAsync(1_000);
    pending.shift()!.resolve(started - 500);
    await vi.advanceTimersByTimeAsync(0);
    expect(monitor.lagMs).toBe(1_500);
    expect(monitor.current).toBe(true);
  });

  it('does not switch trust on for a proof that arrives nearly expired (no flapping)', async () => {
    const { monitor, pending, changes } = setup();
    monitor.start();
    const started = Date.now();
    await vi.advanceTimersByTimeAsync(MAX_LAG - 200);
    pending.shift()!.resolve(started);
    await vi.advanceTimersByTimeAsync(0);
    // 4.8 s old on arrival: it would expire 0.2 s later, so it is not enough to trust memory again.
    expect(monitor.current).toBe(false);
    expect(changes).toEqual([]);
    // A prompt proof regains trust; a later slow one keeps it while it lasts.
    await vi.advanceTimersByTimeAsync(INTERVAL);
    const second = Date.now();
    pending.shift()!.resolve(second);
    await vi.advanceTimersByTimeAsync(0);
    expect(monitor.current).toBe(true);
    await vi.advanceTimersByTimeAsync(INTERVAL);
    const third = Date.now();
    await vi.advanceTimersByTimeAsync(MAX_LAG - 2 * INTERVAL);
    pending.shift()!.resolve(third);
    await vi.advanceTimersByTimeAsync(0);
    expect(monitor.current).toBe(true);
    expect(changes.map((c) => c.trusted)).toEqual([true]);
  });

  it('regains trust as soon as a fresh proof arrives after a failure', async () => {
    const { monitor, pending, changes } = setup();
    monitor.proven(Date.now());
    monitor.start();
    pending.shift()!.reject(new Error('broker away (test)'));
    await vi.advanceTimersByTimeAsync(MAX_LAG + 1);
    expect(changes.map((c) => c.trusted)).toEqual([true, false]);
    const started = Date.now();
    pending.at(-1)!.resolve(started);
    await vi.advanceTimersByTimeAsync(0);
    expect(changes.map((c) => c.trusted)).toEqual([true, false, true]);
  });

  it('keeps trust while the last proof is at most maxLagMs old, and regains it with one at most half that', async () => {
    const { monitor, changes } = setup();
    const start = Date.now();
    // Exactly half the bound old: enough to regain trust.
    monitor.proven(start - MAX_LAG / 2);
    expect(monitor.current).toBe(true);
    // Exactly the bound old: still trusted; a ms more, not.
    await vi.advanceTimersByTimeAsync(MAX_LAG / 2);
    expect(monitor.lagMs).toBe(MAX_LAG);
    expect(monitor.current).toBe(true);
    await vi.advanceTimersByTimeAsync(1);
    expect(monitor.current).toBe(false);
    // A ms more than half the bound old: not enough to regain it.
    monitor.proven(Date.now() - MAX_LAG / 2 - 1);
    expect(monitor.current).toBe(false);
    expect(changes.map((c) => c.trusted)).toEqual([true, false]);
  });

  it('never moves its last proof back for an older one', () => {
    const { monitor } = setup();
    const start = Date.now();
    expect(monitor.lagMs).toBe(Infinity);
    monitor.proven(start - 100);
    monitor.proven(start - 300);
    expect(monitor.lagMs).toBe(100);
  });

  it('runs one proof loop however often it is started, and proves again every intervalMs', async () => {
    const { monitor, pending } = setup();
    monitor.start();
    monitor.start();
    expect(pending).toHaveLength(1);
    pending.shift()!.resolve(Date.now());
    await vi.advanceTimersByTimeAsync(INTERVAL - 1);
    expect(pending).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(pending).toHaveLength(1);
  });

  it('stops at once, even while waiting for the next proof, and arms no timer once stopped', async () => {
    const { monitor, pending, changes } = setup();
    monitor.start();
    pending.shift()!.resolve(Date.now());
    await vi.advanceTimersByTimeAsync(0);
    expect(changes.map((c) => c.trusted)).toEqual([true]);
    // Waiting out its interval: stop() wakes it rather than waiting.
    let stopped = false;
    void monitor.stop().then(() => (stopped = true));
    await vi.advanceTimersByTimeAsync(0);
    expect(stopped).toBe(true);
    expect(vi.getTimerCount()).toBe(0);
    // Proofs recorded after stopping change trust, but arm nothing.
    monitor.proven(Date.now());
    expect(vi.getTimerCount()).toBe(0);
  });

  it('logs the first failed proof and every tenth, and when proofs succeed again', async () => {
    const logs = captureLogs();
    try {
      const { monitor, pending } = setup();
      monitor.start();
      // A proof that succeeds with no failure before it is not news.
      pending.shift()!.resolve(Date.now());
      await vi.advanceTimersByTimeAsync(INTERVAL);
      for (let i = 0; i < 10; i++) {
        pending.shift()!.reject(new Error('broker away (test)'));
        await vi.advanceTimersByTimeAsync(INTERVAL);
      }
      pending.shift()!.resolve(Date.now());
      await vi.advanceTimersByTimeAsync(0);
      expect(
        logs.lines.map(({ level, msg, failures, afterFailures }) => ({
          level,
          msg,
          failures,
          afterFailures,
        })),
      ).toEqual([
        { level: 'warn', msg: 'change feed not proven current', failures: 1 },
        { level: 'warn', msg: 'change feed not proven current', failures: 10 },
        { level: 'info', msg: 'change feed proven current again', afterFailures: 10 },
      ]);
    } finally {
      logs.restore();
    }
  });
});
