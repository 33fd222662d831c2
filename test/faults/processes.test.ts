// Faults of tiercache's own processes, on real Redis and Kafka of this file's own: writers killed with
// SIGKILL mid-batch (with and without another writer), the only writer killed right after it acknowledged
// a large batch and left down, a reader stopped past the staleness bound, the poison write, a second reader
// with a live instance id, and a randomized run of writers and readers. Every scenario is judged by the
// observer (test/faults/observer.ts) and its figures reported (docs/reliability.md).
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startTiercache } from '../support/processes.js';
import { BOUND_MS, cluster, report, sleep, type Cluster } from './cluster.js';
import { startDedicated, type Dedicated } from './dedicated.js';
import { Observer, type Endpoint } from './observer.js';

let services: Dedicated;
let c: Cluster;
const observers: Observer[] = [];

beforeAll(async () => {
  services = await startDedicated(`processes-${process.pid}`);
  c = cluster(services);
  await Promise.all([c.startWriter('w1'), c.startWriter('w2')]);
  await Promise.all([c.startReader('r1'), c.startReader('r2')]);
}, 240_000);

afterAll(async () => {
  await Promise.all(observers.map((o) => o.close()));
  await c?.stopAll();
  await services?.close();
}, 120_000);

function observe(label: string, count: number): Observer {
  const keys = Array.from({ length: count }, (_, i) => `${label}-${i}`);
  const observer = new Observer(keys, BOUND_MS, { redisUrl: services.redisUrl }, c.prefix);
  observers.push(observer);
  return observer;
}

const alive = <T extends Endpoint & { process: ChildProcess }>(list: readonly T[]): T[] =>
  list.filter((p) => p.process.exitCode === null && p.process.signalCode === null);

function expectKept(figures: Awaited<ReturnType<Observer['figures']>>, observer: Observer): void {
  expect(observer.problems).toEqual([]);
  expect(figures.lost).toBe(0);
  expect(figures.regressions).toBe(0);
  expect(figures.staleBeyondBound).toBe(0);
  expect(figures.writesAcknowledged).toBeGreaterThan(0);
}

describe('fault: tiercache processes', () => {
  it('kill -9 a writer mid-batch while a second writer runs: its claims are taken over', async () => {
    const o = observe('two-writers', 20);
    o.startSampling(() => c.readers);
    const stopLoad = o.load(() => alive(c.writers), { loops: 4 });
    await sleep(3_000);
    const victim = c.writers.find((w) => w.name === 'w1')!;
    victim.process.kill('SIGKILL');
    const killedAt = Date.now();
    await sleep(4_000);
    await stopLoad();
    const recoveryMs = await o.converged(c.readers, killedAt);
    await sleep(BOUND_MS);
    await o.stopSampling();
    const figures = await o.figures('kill -9 a writer mid-batch, second writer running', recoveryMs);
    report(figures);
    expectKept(figures, o);
  });

  it('kill -9 the only writer right after it acknowledged a large batch; it stays down', async () => {
    const o = observe('only-writer', 300);
    // One writer only (after the scenario above, only w2 is left; alone, this stops the others).
    for (const other of alive(c.writers).slice(1)) await other.stop();
    const writer = alive(c.writers)[0]!;
    o.startSampling(() => c.readers);
    const stopLoad = o.load(() => alive(c.writers), { loops: 2 });
    await sleep(2_000);
    // Every reader holds the keys in memory before the large batch.
    await o.converged(c.readers, Date.now());
    const big = o.keys.map((key) => ({ key, value: `${key}:${'v'.repeat(2_000)}` }));
    expect(await o.set(writer, big)).toBe(true);
    writer.process.kill('SIGKILL');
    const killedAt = Date.now();
    await stopLoad();
    // With no writer left, nothing announces the batch: readers must stop trusting memory and answer the
    // acknowledged versions from Redis within the bound; the observer judges every answer meanwhile.
    await sleep(BOUND_MS + 2_000);
    const recoveryMs = await o.converged(c.readers, killedAt);
    await o.stopSampling();
    const figures = await o.figures('kill -9 the only writer after a large batch, left down', recoveryMs);
    report(figures);
    expectKept(figures, o);
    expect(alive(c.writers)).toHaveLength(0);
    // Writers for the scenarios after this one; the new relay announces what the dead one left.
    await Promise.all([c.startWriter('w3'), c.startWriter('w4')]);
  });

  it('the poison write (16 values of 60,000 × U+0001) does not stop the announcements after it', async () => {
    const o = observe('poison', 17);
    const [k, ...poisoned] = o.keys as [string, ...string[]];
    const writer = alive(c.writers)[0]!;
    expect(await o.set(writer, [{ key: k, value: 'old' }])).toBe(true);
    await o.converged(c.readers, Date.now());
    o.startSampling(() => c.readers);
    const poisonAt = Date.now();
    expect(
      await o.set(
        writer,
        poisoned.map((key) => ({ key, value: '\u0001'.repeat(60_000) })),
      ),
    ).toBe(true);
    expect(await o.set(writer, [{ key: k, value: 'new' }])).toBe(true);
    await sleep(BOUND_MS + 1_000);
    // Readers falling back to Redis would keep the answers right even with announcements stuck: that they
    // flow is shown by the outbox draining.
    await eventually('the outbox to drain', async () => ((await o.outboxEntries()) === 0 ? true : undefined));
    const recoveryMs = await o.converged(c.readers, poisonAt);
    await o.stopSampling();
    const figures = await o.figures('poison write', recoveryMs);
    report(figures);
    expectKept(figures, o);
  });

  it('SIGSTOP a reader past the staleness bound, then SIGCONT: it never serves what it missed', async () => {
    const o = observe('paused', 20);
    o.startSampling(() => c.readers);
    const stopLoad = o.load(() => alive(c.writers), { loops: 3 });
    await sleep(2_000);
    const paused = c.readers[0]!;
    paused.process.kill('SIGSTOP');
    await sleep(BOUND_MS + 2_000);
    paused.process.kill('SIGCONT');
    const resumedAt = Date.now();
    await sleep(3_000);
    await stopLoad();
    const recoveryMs = await o.converged(c.readers, resumedAt);
    await o.stopSampling();
    const figures = await o.figures('SIGSTOP a reader past the bound, then SIGCONT', recoveryMs);
    report(figures);
    expectKept(figures, o);
  });

  it('a second reader with a live instance id refuses to start within 15 s, naming the id', async () => {
    const started = Date.now();
    const failure = await startTiercache(['--mode=reader', '--instance-id=r2'], c.env).then(
      async (twin) => {
        await twin.stop();
        return 'started';
      },
      (error: unknown) => String(error),
    );
    // Counted from tiercache's first log line: on this loaded 2-core machine, starting Node and compiling
    // the sources with tsx alone takes seconds that a deployed build does not spend.
    const firstLine = /"time":"([^"]+)"/.exec(failure)?.[1];
    const from = firstLine === undefined ? started : Date.parse(firstLine);
    console.log(
      `[faults] duplicate instance id refused ${Date.now() - from} ms after tiercache's first line, ${Date.now() - started} ms after spawn`,
    );
    expect(Date.now() - from).toBeLessThan(15_000);
    // As a log line (JSON escapes the quotes) or as the one-line start-up message.
    expect(failure).toMatch(/instance id \\?"r2\\?" is in use/);
  });

  it('randomized: writers and readers, random sets and deletes on a small key space', async () => {
    const o = observe('random', 8);
    o.startSampling(() => c.readers);
    const stopLoad = o.load(() => alive(c.writers), { loops: 6, deletes: true });
    await sleep(15_000);
    await stopLoad();
    const stoppedAt = Date.now();
    const recoveryMs = await o.converged(c.readers, stoppedAt);
    await o.stopSampling();
    const figures = await o.figures('randomized sets and deletes, 2 writers, 2 readers', recoveryMs);
    report(figures);
    expectKept(figures, o);
    expect(figures.reads).toBeGreaterThan(10);
  });
});
