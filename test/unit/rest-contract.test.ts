// The REST routes are a drop-in for the service tiercache replaces: its clients parse these exact shapes.
// A missing key, a successful write and every kind of error are pinned here, on the embedded adapters.

import type { ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalBus } from '../../src/adapters/local-bus.js';
import { MemoryStore } from '../../src/adapters/memory-store.js';
import { httpOptions } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { createHttpServer } from '../../src/http/server.js';
import { ResponseBudget } from '../../src/domain/limits.js';
import { handleRead } from '../../src/http/rest.js';
import { routeOf } from '../../src/http/route-url.js';
import { Reader } from '../../src/reader/reader.js';
import { Writer } from '../../src/writer/writer.js';
import type { WriteOp, WriteOptions } from '../../src/ports.js';
import { captureLogs, messages } from '../support/logs.js';
import { startRelay } from '../support/relay.js';

// The settings a process would have, with small limits so that going past them is cheap.
const options = httpOptions(
  loadConfig(
    ['--max-read-keys=10', '--max-write-entries=10', '--max-value-bytes=1024', '--max-request-bytes=4096'],
    {},
  ),
);
const { limits } = options;

/** A store whose Redis is gone: every read and write fails as ioredis fails while it cannot reconnect. */
class DownStore extends MemoryStore {
  override read(): Promise<never> {
    return Promise.reject(new Error('Connection is closed.'));
  }
  override write(_ops: readonly WriteOp[], _options: WriteOptions): Promise<never> {
    return Promise.reject(new Error('Connection is closed.'));
  }
}

const open: { close(): Promise<unknown> }[] = [];

const readers = new Map<string, Reader>();

async function serve(
  store: MemoryStore,
  roles: 'reader' | 'writer' | 'all',
  maxResponseBytes = options.maxResponseBytes,
): Promise<string> {
  const bus = new LocalBus();
  const reader =
    roles === 'writer'
      ? null
      : await Reader.start(store, bus, {
          instanceId: 'r',
          memory: { maxEntries: 100, maxBytes: 1 << 20, ttlMs: 60_000, negativeTtlMs: 60_000 },
          maxBatch: 100,
          purgeIntervalMs: 60_000,
          feed: { syncIntervalMs: 50, maxLagMs: 5000 },
        });
  const writer =
    roles === 'reader'
      ? null
      : new Writer(store, { limits, tombstoneTtlMs: 60_000, inlineValueMaxBytes: 64 });
  const relay = startRelay(store.outbox, bus);
  const { server } = createHttpServer({
    roles: { reader, writer, live: null },
    ...options,
    maxResponseBytes,
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  open.push(
    { close: () => new Promise((resolve) => server.close(resolve)) },
    relay,
    ...(reader ? [reader] : []),
    bus,
  );
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  if (reader) readers.set(base, reader);
  return base;
}

const post = (base: string, body: string, headers: Record<string, string> = {}) =>
  fetch(`${base}/write`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body,
  });

let all: string;
let down: string;
let writerOnly: string;
let readerOnly: string;
let small: string;

beforeAll(async () => {
  all = await serve(new MemoryStore(), 'all');
  down = await serve(new DownStore(), 'all');
  writerOnly = await serve(new MemoryStore(), 'writer');
  readerOnly = await serve(new MemoryStore(), 'reader');
  small = await serve(new MemoryStore(), 'all', 300);
});

afterAll(async () => {
  for (const o of open.reverse()) await o.close();
});

describe('REST drop-in shapes', () => {
  it('answers a missing key as the replaced service did: empty value, source not_found', async () => {
    const res = await fetch(`${all}/read?keys=never-written`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      items: [{ key: 'never-written', value: '', source: 'not_found', exists: false }],
    });
  });

  it('answers a successful write with message "success" beside the written items, and reads it back', async () => {
    const res = await post(all, JSON.stringify({ items: [{ key: 'k', value: 'v' }] }));
    expect(res.status).toBe(200);
    const body = (await res.json()) as { message: string; items: { key: string; version: string }[] };
    expect(body).toEqual({
      message: 'success',
      items: [{ key: 'k', version: expect.stringMatching(/^\d+$/) }],
    });
    const read = (await (await fetch(`${all}/read?keys=k,gone`)).json()) as { items: unknown[] };
    expect(read.items).toEqual([
      { key: 'k', value: 'v', source: expect.stringMatching(/^(memory|redis)$/), exists: true },
      { key: 'gone', value: '', source: 'not_found', exists: false },
    ]);
  });

  it('gives every error an "error" field: 400 for bad input', async () => {
    const bad: [string, Promise<Response>][] = [
      ['no keys', fetch(`${all}/read`)],
      ['too many keys', fetch(`${all}/read?keys=${'x,'.repeat(20)}x`)],
      ['not JSON', post(all, '{')],
      ['no items', post(all, '{}')],
      ['value not a string', post(all, '{"items":[{"key":"a","value":1}]}')],
      ['empty key', post(all, '{"items":[{"key":"","value":"v"}]}')],
      ['ttl not a number', post(all, '{"items":[{"key":"a","value":"v"}],"ttlSeconds":"1"}')],
    ];
    for (const [what, pending] of bad) {
      const res = await pending;
      expect(res.status, what).toBe(400);
      expect(await res.json(), what).toMatchObject({ error: expect.any(String) });
    }
  });

  it('gives every error an "error" field: 5xx while the store is down, and logs the cause', async () => {
    const logs = captureLogs();
    for (const res of [
      await fetch(`${down}/read?keys=a`),
      await post(down, '{"items":[{"key":"a","value":"v"}]}'),
    ]) {
      expect(res.status).toBeGreaterThanOrEqual(500);
      expect(await res.json()).toMatchObject({ error: expect.any(String) });
    }
    logs.restore();
    expect(messages(logs.lines, 'error')).toEqual(['read failed', 'write failed']);
  });

  it('gives every error an "error" field: wrong role, wrong method, body too large', async () => {
    const cases: [number, Promise<Response>][] = [
      [404, fetch(`${writerOnly}/read?keys=a`)],
      [404, post(readerOnly, '{"items":[]}')],
      [405, fetch(`${all}/write`)],
      [
        405,
        fetch(`${all}/read?keys=a`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: '{}',
        }),
      ],
      [413, post(all, JSON.stringify({ items: [{ key: 'a', value: 'v'.repeat(5000) }] }))],
    ];
    for (const [status, pending] of cases) {
      const res = await pending;
      expect(res.status).toBe(status);
      expect(await res.json()).toMatchObject({ error: expect.any(String) });
    }
  });
});

// Keys and values a JSON writer gets wrong: quotes, backslashes, controls (values only), U+2028/2029, BOM,
// non-BMP pairs, NUL; keys travel percent-encoded.
const HARD: [string, string][] = [
  ['plain', 'v'],
  ['"quoted"', 'back\\slash \\" end'],
  ['back\\slash', '\u0000\u0001\u001f\u007f nul and controls\n\t\r'],
  ['é€中😀', 'line\u2028sep\u2029para \ufeffBOM 😀 𝄞'],
  ['</script>', ''],
];

/** What GET /read answered for these items, written as objects and JSON.stringify'd (the seed's shape). */
const seedBody = (items: { key: string; value: string | null; source: string }[]) =>
  JSON.stringify({
    items: items.map(({ key, value, source }) =>
      value === null
        ? { key, value: '', source: 'not_found', exists: false }
        : { key, value, source, exists: true },
    ),
  });

describe('GET /read answered from memory', () => {
  it('answers held keys byte for byte as before, hard strings and missing keys among them', async () => {
    const res = await post(all, JSON.stringify({ items: HARD.map(([key, value]) => ({ key, value })) }));
    expect(res.status).toBe(200);
    const url = `${all}/read?keys=${[...HARD.map(([key]) => key), 'never-written'].map(encodeURIComponent).join(',')}`;
    await (await fetch(url)).text(); // the first read fills memory with what the feed has not brought yet
    const answer = await fetch(url);
    expect(answer.status).toBe(200);
    expect(answer.headers.get('content-type')).toBe('application/json; charset=utf-8');
    const text = Buffer.from(await answer.arrayBuffer());
    const expected = seedBody([
      ...HARD.map(([key, value]) => ({ key, value, source: 'memory' })),
      { key: 'never-written', value: null, source: 'memory' },
    ]);
    expect(text.toString('utf8')).toBe(expected);
    expect(text.equals(Buffer.from(expected))).toBe(true);
    expect(answer.headers.get('content-length')).toBe(String(Buffer.byteLength(expected)));
  });

  it('answers in the same turn, without a promise, when memory holds every key', async () => {
    await post(all, JSON.stringify({ items: [{ key: 'turn', value: 'now' }] }));
    await (await fetch(`${all}/read?keys=turn`)).text();
    const written: string[] = [];
    const res = {
      writeHead: (status: number) => void written.push(String(status)),
      end: (body: string) => void written.push(body),
    } as unknown as ServerResponse;
    const reader = readers.get(all)!; // served above
    const roles = { reader, writer: null, live: null };
    const budget = new ResponseBudget(options.maxResponseBytes);
    const pending = handleRead(routeOf('/read?keys=turn,turn'), res, roles, limits, budget);
    expect(pending).toBeUndefined();
    const item = { key: 'turn', value: 'now', source: 'memory' };
    expect(written).toEqual(['200', seedBody([item, item])]);
    // A key memory does not hold waits for the store, and answers then.
    written.length = 0;
    const waiting = handleRead(routeOf('/read?keys=turn,cold'), res, roles, limits, budget);
    expect(waiting).toBeInstanceOf(Promise);
    expect(written).toEqual([]);
    await waiting;
    expect(written).toEqual(['200', seedBody([item, { key: 'cold', value: null, source: 'redis' }])]);
  });

  it('refuses an answer over MAX_RESPONSE_BYTES, from memory or not, with the same body', async () => {
    await post(small, JSON.stringify({ items: [{ key: 'big', value: 'y'.repeat(200) }] }));
    const bodies: string[] = [];
    for (const round of [1, 2]) {
      const res = await fetch(`${small}/read?keys=big,big`);
      expect(res.status, `round ${round}`).toBe(400);
      bodies.push(await res.text());
    }
    expect(bodies[1]).toBe(bodies[0]);
    expect(JSON.parse(bodies[0]!)).toEqual({
      error:
        'the answer would carry more than 300 bytes of keys and values as JSON (MAX_RESPONSE_BYTES); ask for fewer keys',
      code: 'RESPONSE_TOO_LARGE',
    });
  });

  it('answers a read on a writer with the wrong-role body', async () => {
    const res = await fetch(`${writerOnly}/read?keys=a`);
    expect(res.status).toBe(404);
    expect(await res.text()).toBe(
      JSON.stringify({ error: 'this process is a writer; send reads to a reader', code: 'WRONG_ROLE' }),
    );
  });
});
