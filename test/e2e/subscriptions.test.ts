// Subscriptions as clients see them, on real processes (a writer, a reader) over the real Redis and Kafka,
// through the official clients: graphql-sse (distinct connections, and single connection at
// /graphql/stream) and graphql-ws on /graphql. Errors and limits, cleanup seen on /metrics, a client that
// never reads while 10,000 changes flow, and SIGTERM ending subscriptions with a complete.
import { request } from 'node:http';
import { readFileSync } from 'node:fs';
import type { Client as SseClient } from 'graphql-sse';
import type { Client as WsClient } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, graphql, startTiercache, type RunningTiercache } from '../support/processes.js';
import { kafkaBrokers, redisUrl, uniqueName } from '../support/services.js';
import {
  SUBSCRIBE,
  sseClient,
  subscribe,
  wsClient,
  type Result,
  type Subscribed,
} from '../support/subscriptions.js';

const SET = `mutation($entries: [EntryInput!]!) { setValues(entries: $entries) { written { key version } } }`;

const BUFFER = 200;
const PER_CONNECTION = 3;
const PER_PROCESS = 12;
let writer: RunningTiercache;
let reader: RunningTiercache;
let env: Record<string, string>;
const clients: { dispose(): void }[] = [];

function sse(base: string, singleConnection = false): SseClient {
  const client = sseClient(base, singleConnection);
  clients.push(client);
  return client;
}

function ws(base: string): WsClient {
  const client = wsClient(base);
  clients.push(client);
  return client;
}

/**
 * The errors a subscription ended with, however the client reports them: a last result with errors, the
 * errors array (graphql-ws's error message), or a refused HTTP response (graphql-sse's NetworkError).
 */
async function errorsOf(sub: Subscribed): Promise<Result['errors']> {
  await sub.ended;
  const last = sub.results.at(-1)?.errors;
  if (last) return last;
  const error = sub.error() as { response?: Response } | Result['errors'] | undefined;
  if (Array.isArray(error)) return error;
  if (error?.response) {
    // Refused before it started (e.g. by the request guard): the body is an event stream of one result.
    const data = /^data: (.*)$/m.exec(await error.response.text());
    if (data) return (JSON.parse(data[1]!) as Result).errors;
  }
  throw new Error(`the subscription ended without errors: ${String(error)}`);
}

async function write(entries: { key: string; value: string }[]): Promise<string[]> {
  const res = await graphql<{ setValues: { written: { version: string }[] } }>(writer.base, SET, { entries });
  if (!res.data) throw new Error(JSON.stringify(res.errors));
  return res.data.setValues.written.map((w) => w.version);
}

async function gauge(base: string, name: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const match = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
  if (!match) throw new Error(`no ${name} on /metrics`);
  return Number(match[1]);
}

async function until(what: string, check: () => boolean, timeoutMs = 30_000): Promise<void> {
  await eventually(what, async () => (check() ? true : undefined), timeoutMs);
}

beforeAll(async () => {
  env = {
    REDIS_URL: redisUrl(),
    KAFKA_BROKERS: kafkaBrokers().join(','),
    KAFKA_TOPIC: uniqueName('subs-e2e'),
    REDIS_KEY_PREFIX: `${uniqueName('subs-e2e')}:`,
    FEED_SYNC_INTERVAL_MS: '200',
    SUBSCRIPTION_BUFFER_SIZE: String(BUFFER),
    SUBSCRIPTION_SLOW_CONSUMER_MS: '1000',
    SUBSCRIPTIONS_PER_CONNECTION: String(PER_CONNECTION),
    SUBSCRIPTIONS_PER_PROCESS: String(PER_PROCESS),
  };
  [writer, reader] = await Promise.all([
    startTiercache(['--mode=writer'], env),
    startTiercache(['--mode=reader', `--instance-id=${uniqueName('subs-reader')}`], env),
  ]);
  await eventually('reader ready', async () =>
    (await fetch(`${reader.base}/ready`)).status === 200 ? true : undefined,
  );
}, 120_000);

afterAll(async () => {
  for (const client of clients) client.dispose();
  await Promise.all([writer, reader].filter(Boolean).map((p) => p.stop()));
});

describe('the official clients', () => {
  it.each([
    ['graphql-sse, distinct connections', () => sse(reader.base)],
    ['graphql-sse, single connection', () => sse(reader.base, true)],
    ['graphql-ws', () => ws(reader.base)],
  ])('%s: a snapshot, then each write as it happens', async (_name, makeClient) => {
    const key = uniqueName('k');
    const [v1] = await write([{ key, value: 'one' }]);
    const sub = subscribe(makeClient(), { keys: [key, `${key}-absent`], initial: true });
    await until('the snapshot', () => sub.changes().length === 2);
    const [v2] = await write([{ key, value: 'two' }]);
    await until('the write', () => sub.changes().length === 3);
    expect(sub.changes()).toEqual([
      { key, value: 'one', exists: true, version: v1, op: 'SET', initial: true },
      { key: `${key}-absent`, value: null, exists: false, version: null, op: 'DELETE', initial: true },
      { key, value: 'two', exists: true, version: v2, op: 'SET', initial: false },
    ]);
    await sub.stop();
  });
});

describe('errors', () => {
  it.each([
    [{}, 'keys'],
    [{ keys: [] }, 'keys'],
    [{ prefix: '' }, 'prefix'],
    [{ keys: ['ok', ''] }, 'keys[1]'],
    [{ keys: Array.from({ length: 1001 }, (_, i) => `k${i}`) }, 'keys'],
  ])('%j is BAD_USER_INPUT naming %s', async (variables, argument) => {
    const errors = await errorsOf(subscribe(sse(reader.base), variables));
    expect(errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', argument });
  });

  it('a writer-only process answers WRONG_ROLE, over SSE and WebSocket', async () => {
    for (const client of [sse(writer.base), ws(writer.base)]) {
      const errors = await errorsOf(subscribe(client, { keys: ['k'] }));
      expect(errors?.[0]?.extensions).toMatchObject({ code: 'WRONG_ROLE' });
    }
  });
});

describe('limits and cleanup', () => {
  it('refuses more subscriptions than a connection or the process may hold, and forgets closed ones at once', async () => {
    const client = ws(reader.base);
    const open = Array.from({ length: PER_CONNECTION }, (_, i) =>
      subscribe(client, { keys: [`limit-${i}`], prefix: 'limit-', initial: true }),
    );
    await until('the first subscriptions', () => open.every((s) => s.changes().length > 0));
    const errors = await errorsOf(subscribe(client, { keys: ['limit-x'] }));
    expect(errors?.[0]?.extensions).toMatchObject({ code: 'TOO_MANY_SUBSCRIPTIONS' });
    expect(errors?.[0]?.message).toMatch(/SUBSCRIPTIONS_PER_CONNECTION/);

    // Per process: fill the rest from other connections.
    const others = Array.from({ length: PER_PROCESS - PER_CONNECTION }, () =>
      subscribe(sse(reader.base), { keys: ['limit-y'], initial: true }),
    );
    await until('the others', () => others.every((s) => s.changes().length > 0));
    expect(await gauge(reader.base, 'tiercache_subscriptions_open')).toBe(PER_PROCESS);
    const overProcess = await errorsOf(subscribe(sse(reader.base), { keys: ['limit-z'] }));
    expect(overProcess?.[0]).toMatchObject({
      extensions: { code: 'TOO_MANY_SUBSCRIPTIONS' },
      message: expect.stringMatching(/SUBSCRIPTIONS_PER_PROCESS/),
    });
    expect(await gauge(reader.base, 'tiercache_subscription_index_entries')).toBeGreaterThan(0);

    // Clients going away, each its own way: unsubscribing, and closing the whole connection.
    for (const s of others) await s.stop();
    await open[0]!.stop();
    client.dispose();
    await eventually('every subscription to be released', async () =>
      (await gauge(reader.base, 'tiercache_subscriptions_open')) === 0 ? true : undefined,
    );
    expect(await gauge(reader.base, 'tiercache_subscription_index_entries')).toBe(0);
    expect(await gauge(reader.base, 'tiercache_subscription_buffered_events')).toBe(0);
  });
});

/** VmRSS of a process, in bytes. */
function rss(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match![1]) * 1024;
}

describe('a client that never reads', () => {
  it('is closed with SLOW_CONSUMER while 10,000 changes flow; memory stays bounded and others keep receiving', async () => {
    const base = `${uniqueName('slow')}:`;
    const keys = Array.from({ length: 100 }, (_, i) => `${base}${i}`);
    // A raw SSE request whose socket is never read after the headers.
    const body = JSON.stringify({ query: SUBSCRIBE, variables: { prefix: base } });
    let slowText = '';
    const slowResponse = await new Promise<import('node:http').IncomingMessage>((resolve, reject) => {
      const req = request(
        `${reader.base}/graphql`,
        {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            accept: 'text/event-stream',
            'content-length': Buffer.byteLength(body),
          },
        },
        (res) => {
          // From now on nothing is read: the socket's buffers fill, then the server's.
          res.pause();
          resolve(res);
        },
      );
      req.on('error', reject);
      req.end(body);
    });
    const watched = keys.slice(0, 10);
    const watcher = subscribe(sse(reader.base), { keys: watched });
    await eventually('both subscriptions open', async () =>
      (await gauge(reader.base, 'tiercache_subscriptions_open')) === 2 ? true : undefined,
    );
    const rssBefore = rss(reader.process.pid!);
    const value = 'v'.repeat(1000);
    let last: string[] = [];
    let changes = 0;
    let maxBuffered = 0;
    const slowClosed = async () =>
      (await (await fetch(`${reader.base}/metrics`)).text()).includes(
        'tiercache_subscriptions_closed_total{reason="slow_consumer"} 1',
      );
    while (changes < 10_000 || !(await slowClosed())) {
      last = await write(keys.map((key, i) => ({ key, value: `${changes + i}:${value}` })));
      changes += keys.length;
      if (changes % 1000 === 0)
        maxBuffered = Math.max(
          maxBuffered,
          await gauge(reader.base, 'tiercache_subscription_buffered_events'),
        );
      if (changes > 100_000) throw new Error('the slow client was never closed');
    }
    // The one that reads ends with every key's last version, in order per key.
    await until('the reading client to catch up', () => {
      const latest = new Map(watcher.changes().map((c) => [c.key, c.version]));
      return watched.every((key, i) => latest.get(key) === last[i]);
    });
    const seen = new Map<string, bigint>();
    for (const c of watcher.changes()) {
      expect(BigInt(c.version!) > (seen.get(c.key) ?? 0n)).toBe(true);
      seen.set(c.key, BigInt(c.version!));
    }
    expect(changes).toBeGreaterThanOrEqual(10_000);
    // At most two buffers' worth waiting at any sample; nothing once the slow one is gone.
    expect(maxBuffered).toBeLessThanOrEqual(2 * BUFFER);
    expect(await gauge(reader.base, 'tiercache_subscription_buffered_events')).toBeLessThanOrEqual(BUFFER);
    // ≥ 10 MB of values went by; the reader kept well under that for the client that never read.
    expect(rss(reader.process.pid!) - rssBefore).toBeLessThan(64 * 1024 * 1024);
    // What the slow client finally reads: the events that fit its socket, then the reason it was closed.
    slowResponse.on('data', (chunk: Buffer) => (slowText += chunk.toString()));
    slowResponse.resume();
    await eventually('the slow client’s last event', async () => {
      const tail = slowText.slice(-2000);
      return /"code":"SLOW_CONSUMER"/.test(tail) ? true : undefined;
    });
    await watcher.stop();
  }, 180_000);
});

describe('SIGTERM', () => {
  it('ends open subscriptions with a complete before the process exits', async () => {
    const stopping = await startTiercache(['--mode=reader', `--instance-id=${uniqueName('sigterm')}`], env);
    const subs = [
      subscribe(sse(stopping.base), { keys: ['bye'], initial: true }),
      subscribe(sse(stopping.base, true), { keys: ['bye'], initial: true }),
      subscribe(ws(stopping.base), { keys: ['bye'], initial: true }),
    ];
    await until('the snapshots', () => subs.every((s) => s.changes().length === 1));
    const exited = new Promise<number | null>((resolve) => stopping.process.once('exit', resolve));
    stopping.process.kill('SIGTERM');
    // iterate() ends without an error only when the server completed the subscription.
    await Promise.all(subs.map((s) => s.ended));
    for (const s of subs) expect(s.error()).toBeUndefined();
    expect(await exited).toBe(0);
  });
});
