// The feed monitor decides when a reader may trust its memory tier: from proofs that count from the moment
// they cover, on its own timer (not only when someone reads), and without flapping on late proofs.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FeedMonitor } from '../../src/reader/feed-monitor.js';

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
});
