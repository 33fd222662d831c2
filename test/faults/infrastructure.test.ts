// Faults of the services under tiercache, on a Redis and a Kafka of this file's own: Redis (append-only)
// killed with SIGKILL under write load and restarted; the Kafka broker killed with SIGKILL under write load,
// with a small outbox bound, and restarted. Judged by the observer (test/faults/observer.ts); figures in
// docs/reliability.md.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../support/processes.js';
import { allReady, BOUND_MS, cluster, metric, report, sleep, type Cluster } from './cluster.js';
import { startDedicated, type Dedicated } from './dedicated.js';
import { Observer } from './observer.js';

// Small enough that a few seconds of writes without Kafka reach it.
const OUTBOX_MAX_BYTES = 20_000;
let services: Dedicated;
let c: Cluster;
const observers: Observer[] = [];

beforeAll(async () => {
  services = await startDedicated(`infrastructure-${process.pid}`);
  c = cluster(services, { OUTBOX_MAX_BYTES: String(OUTBOX_MAX_BYTES) });
  await c.startWriter('w1');
  await Promise.all([c.startReader('r1'), c.startReader('r2')]);
}, 240_000);

afterAll(async () => {
  await Promise.all(observers.map((o) => o.close()));
  await c?.stopAll();
  await services?.close();
}, 120_000);

function observe(label: string): Observer {
  const keys = Array.from({ length: 20 }, (_, i) => `${label}-${i}`);
  const observer = new Observer(keys, BOUND_MS, { redisUrl: services.redisUrl }, c.prefix);
  observers.push(observer);
  return observer;
}

/** Waits until a write is acknowledged again after `since`. */
async function writesResume(o: Observer, since: number): Promise<void> {
  await eventually(
    'writes to be acknowledged again',
    async () => ([...o.acked.values()].some((acks) => acks.some((a) => a.at > since)) ? true : undefined),
    90_000,
  );
}

describe('fault: the services under tiercache', () => {
  it('kill -9 Redis (append-only) under write load, then restart it: nothing acknowledged is lost', async () => {
    const o = observe('redis');
    o.startSampling(() => c.readers);
    const stopLoad = o.load(() => c.writers, { loops: 4 });
    await sleep(3_000);
    await services.killRedis();
    await sleep(3_000);
    const refusedWhileDown = o.refusals.length;
    await services.startRedis();
    const restartedAt = Date.now();
    await writesResume(o, restartedAt);
    await sleep(2_000);
    await stopLoad();
    const recoveryMs = await o.converged(c.readers, restartedAt, 90_000);
    await allReady(c);
    await o.stopSampling();
    const figures = await o.figures('kill -9 Redis (AOF) under load, restart', recoveryMs);
    report(figures);
    expect(o.problems).toEqual([]);
    expect(figures).toMatchObject({ lost: 0, regressions: 0, staleBeyondBound: 0 });
    expect(refusedWhileDown).toBeGreaterThan(0);
  });

  it('kill -9 the Kafka broker under write load, then restart it: writes stop at the outbox bound and resume by themselves', async () => {
    const o = observe('kafka');
    const writer = c.writers[0]!;
    o.startSampling(() => c.readers);
    const stopLoad = o.load(() => c.writers, { loops: 4 });
    await sleep(3_000);
    await services.killKafka();
    const killedAt = Date.now();
    // Redis is the record: writes go on until the unannounced backlog reaches OUTBOX_MAX_BYTES, then are
    // refused with a message that says why.
    await eventually(
      'a write refused because the change feed is backed up',
      async () => (o.refusals.some((r) => /change feed is backed up/.test(r)) ? true : undefined),
      60_000,
    );
    const ackedDuringOutage = [...o.acked.values()].flat().filter((a) => a.at > killedAt).length;
    await eventually(
      'the backlog on /metrics',
      async () =>
        (await metric(writer.base, 'tiercache_outbox_backlog_bytes')) >= OUTBOX_MAX_BYTES ? true : undefined,
      10_000,
    );
    expect(await metric(writer.base, 'tiercache_outbox_oldest_age_seconds')).toBeGreaterThan(0);
    await services.startKafka();
    const restartedAt = Date.now();
    await writesResume(o, restartedAt);
    await sleep(2_000);
    await stopLoad();
    // Everything acknowledged during the outage reaches Kafka: the relay empties the outbox.
    await eventually(
      'the outbox to drain',
      async () => ((await o.outboxEntries()) === 0 ? true : undefined),
      90_000,
    );
    await allReady(c);
    const recoveryMs = await o.converged(c.readers, restartedAt, 90_000);
    await o.stopSampling();
    const figures = await o.figures('kill -9 Kafka under load (OUTBOX_MAX_BYTES 20000), restart', recoveryMs);
    report(figures);
    expect(o.problems).toEqual([]);
    expect(figures).toMatchObject({ lost: 0, regressions: 0, staleBeyondBound: 0 });
    expect(ackedDuringOutage).toBeGreaterThan(0);
  });
});
