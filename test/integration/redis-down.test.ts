// README promises that while Redis is down a write fails within a second (UNAVAILABLE) instead of hanging,
// for as long as the outage lasts, and that the store works again once Redis is back. Tried on a
// redis-server of this test's own, stopped and started again on the same port.
import { afterAll, describe, expect, it } from 'vitest';
import { connectRedis, REDIS_DOWN_FAIL_MS, RedisStore } from '../../src/adapters/redis-store.js';
import { captureLogs, messages } from '../support/logs.js';
import { eventually, startPrivateRedis } from '../support/processes.js';

const WRITE = { ttlMs: null, tombstoneTtlMs: 60_000, inlineValueMaxBytes: 1024 } as const;
// Generous against the promise (a loaded machine): the backoff this replaced took 0.3, 1.1, 1.9, 2.7, 3.5 s
// and more, so attempts after the fourth would exceed it.
const BOUND_MS = 3 * REDIS_DOWN_FAIL_MS;
const ATTEMPTS = 8;

const cleanup: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const step of cleanup.reverse()) await step();
});

describe('a store whose Redis goes down', () => {
  it('fails every write and read quickly, however long the outage, and works again when Redis is back', async () => {
    let server = await startPrivateRedis();
    cleanup.push(() => server.stop());
    const port = Number(new URL(server.url).port);
    const store = new RedisStore({ redis: connectRedis(server.url), prefix: 'down:', ownsClient: true });
    cleanup.push(() => store.close());
    expect(await store.write([{ op: 'set', key: 'a', value: '1' }], WRITE)).toHaveLength(1);

    const logs = captureLogs();
    await server.stop();
    const took: number[] = [];
    for (let i = 0; i < ATTEMPTS; i++) {
      const started = performance.now();
      const attempt =
        i % 2 === 0 ? store.write([{ op: 'set', key: 'a', value: '2' }], WRITE) : store.read(['a']);
      await expect(attempt).rejects.toThrow();
      took.push(Math.round(performance.now() - started));
    }
    expect(
      took.filter((ms) => ms > BOUND_MS),
      `attempts took ${took.join(', ')} ms`,
    ).toEqual([]);

    server = await startPrivateRedis(port);
    const written = await eventually('a write after Redis is back', async () =>
      store.write([{ op: 'set', key: 'a', value: '3' }], WRITE).catch(() => undefined),
    );
    expect(written).toHaveLength(1);
    expect((await store.read(['a']))[0]?.value).toBe('3');
    logs.restore();
    // One line when the connection is lost and one when it is back, not one per reconnection attempt.
    expect(messages(logs.lines, 'warn')).toEqual(['redis connection lost; reconnecting']);
    expect(messages(logs.lines, 'info')).toEqual(['redis connection back']);
  });
});
