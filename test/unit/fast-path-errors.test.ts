// An error the fast path meets is yoga's to answer: the fast path's own execution is provisional and yoga
// executes the request again. What the client is told is logged and counted once, for yoga's execution,
// whether the failure is a store outage or a fault of ours, and whether it came at once or after a wait.
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalBus } from '../../src/adapters/local-bus.js';
import { MemoryStore } from '../../src/adapters/memory-store.js';
import { httpOptions } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { createHttpServer } from '../../src/http/server.js';
import { internalErrors, metrics } from '../../src/observability.js';
import { Reader } from '../../src/reader/reader.js';
import { captureLogs, messages } from '../support/logs.js';

/** A store whose Redis is gone: every read fails as ioredis fails while it cannot reconnect. */
class DownStore extends MemoryStore {
  override read(): Promise<never> {
    return Promise.reject(new Error('Connection is closed.'));
  }
}

const open: { close(): Promise<unknown> }[] = [];

async function serve(store: MemoryStore, broken: boolean): Promise<string> {
  const bus = new LocalBus();
  const options = httpOptions(loadConfig(['--fast-path=true'], {}));
  const reader = await Reader.start(store, bus, {
    instanceId: 'r',
    memory: { maxEntries: 100, maxBytes: 1 << 20, ttlMs: 60_000, negativeTtlMs: 60_000 },
    maxBatch: 100,
    purgeIntervalMs: 60_000,
    feed: { syncIntervalMs: 50, maxLagMs: 5000 },
  });
  if (broken) {
    // A bug in the read path: answering from memory throws.
    reader.readHeld = () => {
      throw new TypeError('a bug in the read path');
    };
  }
  const { server } = createHttpServer({ roles: { reader, writer: null, live: null }, ...options });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  open.push({ close: () => new Promise((resolve) => server.close(resolve)) }, reader, bus);
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const query = (base: string, text: string) =>
  fetch(`${base}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query: text }),
  });

const fastAnswers = () => metrics.counter('tiercache_http_fast_path_total', '').value({ outcome: 'yoga' });

let down: string;
let broken: string;

beforeAll(async () => {
  down = await serve(new DownStore(), false);
  broken = await serve(new MemoryStore(), true);
});

afterAll(async () => {
  for (const o of open.reverse()) await o.close();
});

describe('an error met on the fast path', () => {
  it.each([
    ['a store outage, after a wait', () => down],
    ['a fault of ours, at once', () => broken],
  ])('is logged and counted once: %s', async (name, base) => {
    const text = `{ values(keys: [${JSON.stringify(name)}]) { key value } }`;
    // The first request for a query text is yoga's alone; the fast path takes the second.
    await (await query(base(), text)).text();
    const handed = await fastAnswers();
    const before = await internalErrors.value({ component: 'graphql' });
    const logs = captureLogs();
    const res = await query(base(), text);
    const body = (await res.json()) as { errors?: { path: string[] }[] };
    logs.restore();
    // Under vitest yoga loads graphql's CommonJS copy, whose GraphQLError is not ours: it masks the code and
    // logs the error once more as its own ("yoga error", component yoga). Real processes load one copy
    // (the e2e corpus checks their codes); what is tested here is the read path's own line and count.
    expect(body.errors?.[0]?.path).toEqual(['values']);
    // It did go through the fast path, which handed it to yoga.
    expect(await fastAnswers()).toBe(handed + 1);
    expect(messages(logs.lines, 'error').filter((msg) => msg !== 'yoga error')).toEqual(['values failed']);
    expect(await internalErrors.value({ component: 'graphql' })).toBe(before + 1);
  });
});
