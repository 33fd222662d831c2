// The REST routes are a drop-in for the service tiercache replaces: its clients parse these exact shapes.
// A missing key, a successful write and every kind of error are pinned here, on the embedded adapters.

import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalBus } from '../../src/adapters/local-bus.js';
import { MemoryStore } from '../../src/adapters/memory-store.js';
import { httpOptions } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { createHttpServer } from '../../src/http/server.js';
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

async function serve(store: MemoryStore, roles: 'reader' | 'writer' | 'all'): Promise<string> {
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
  const { server } = createHttpServer({ roles: { reader, writer, live: null }, ...options });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  open.push(
    { close: () => new Promise((resolve) => server.close(resolve)) },
    relay,
    ...(reader ? [reader] : []),
    bus,
  );
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
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

beforeAll(async () => {
  all = await serve(new MemoryStore(), 'all');
  down = await serve(new DownStore(), 'all');
  writerOnly = await serve(new MemoryStore(), 'writer');
  readerOnly = await serve(new MemoryStore(), 'reader');
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
