// `npm start` with no REDIS_URL / KAFKA_BROKERS: one process, embedded store and bus, saying so first.
import { request } from 'node:http';
import { getIntrospectionQuery } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metrics } from '../../src/observability.js';
import { graphql, startTiercache, type RunningTiercache } from '../support/processes.js';

let app: RunningTiercache;

beforeAll(async () => {
  app = await startTiercache([], { REDIS_URL: '', KAFKA_BROKERS: '' });
}, 60_000);

afterAll(async () => {
  await app?.stop();
});

describe('the embedded default', () => {
  it('says in its first log line that it is embedded and not durable', () => {
    const first = JSON.parse(app.output().split('\n')[0]!) as { msg: string };
    expect(first.msg).toMatch(/EMBEDDED MODE.*nothing is durable/);
  });

  it('serves writes, reads from memory after the feed applied them, deletes, and health', async () => {
    const set = await graphql<{ setValues: { written: { key: string; version: string }[] } }>(
      app.base,
      `
        mutation {
          setValues(entries: [{ key: "a", value: "1" }, { key: "a", value: "2" }]) {
            written {
              key
              version
            }
          }
        }
      `,
    );
    const [first, second] = set.data!.setValues.written;
    expect(BigInt(second!.version)).toBeGreaterThan(BigInt(first!.version));
    const read = await graphql<{ values: { value: string; source: string; version: string }[] }>(
      app.base,
      `
        {
          values(keys: ["a", "a", "none"]) {
            value
            source
            version
          }
        }
      `,
    );
    expect(read.data!.values).toEqual([
      { value: '2', source: 'MEMORY', version: second!.version },
      { value: '2', source: 'MEMORY', version: second!.version },
      { value: null, source: 'NONE', version: null },
    ]);
    await graphql(
      app.base,
      `
        mutation {
          deleteValues(keys: ["a"]) {
            written {
              key
            }
          }
        }
      `,
    );
    const gone = await graphql<{ value: { exists: boolean } }>(
      app.base,
      `
        {
          value(key: "a") {
            exists
          }
        }
      `,
    );
    expect(gone.data!.value.exists).toBe(false);
    const health = await graphql<{ health: unknown }>(
      app.base,
      `
        {
          health {
            ok
            roles
            feedCurrent
          }
        }
      `,
    );
    expect(health.data!.health).toEqual({ ok: true, roles: ['reader', 'writer'], feedCurrent: true });
  });

  it('rejects an invalid batch whole, naming the entry, and writes nothing', async () => {
    const res = await graphql(
      app.base,
      `
        mutation ($e: [EntryInput!]!) {
          setValues(entries: $e) {
            written {
              key
            }
          }
        }
      `,
      {
        e: [
          { key: 'ok', value: 'x' },
          { key: 'k'.repeat(1025), value: 'y' },
        ],
      },
    );
    expect(res.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', argument: 'entries[1].key' });
    const read = await graphql<{ value: { exists: boolean } }>(
      app.base,
      `
        {
          value(key: "ok") {
            exists
          }
        }
      `,
    );
    expect(read.data!.value.exists).toBe(false);
  });

  it('enforces the read and write limits with BAD_USER_INPUT and keeps serving', async () => {
    const keys = Array.from({ length: 1001 }, (_, i) => `k${i}`);
    const tooMany = await graphql(
      app.base,
      `
        query ($k: [String!]!) {
          values(keys: $k) {
            key
          }
        }
      `,
      { k: keys },
    );
    expect(tooMany.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    const big = await graphql(
      app.base,
      `
        mutation ($v: String!) {
          setValues(entries: [{ key: "big", value: $v }]) {
            written {
              key
            }
          }
        }
      `,
      {
        v: 'x'.repeat(1024 * 1024 + 1),
      },
    );
    expect(big.errors?.[0]?.extensions).toMatchObject({
      code: 'BAD_USER_INPUT',
      argument: 'entries[0].value',
    });
    const ttl = await graphql(
      app.base,
      `
        mutation {
          setValues(entries: [{ key: "t", value: "v" }], ttlSeconds: 0) {
            written {
              key
            }
          }
        }
      `,
    );
    expect(ttl.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    const ok = await graphql<{ health: { ok: boolean } }>(
      app.base,
      `
        {
          health {
            ok
          }
        }
      `,
    );
    expect(ok.data!.health.ok).toBe(true);
  });

  it('refuses a body over MAX_REQUEST_BYTES (413) or without a Content-Length (411) before reading it', async () => {
    const status = (headers: Record<string, string | number>) =>
      new Promise<number>((resolve, reject) => {
        const req = request(`${app.base}/graphql`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...headers },
        });
        req.on('response', (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        // Headers only: the server must answer without waiting for a body it will not read.
        req.flushHeaders();
      });
    expect(await status({ 'content-length': 64 * 1024 * 1024 + 1 })).toBe(413);
    expect(await status({ 'transfer-encoding': 'chunked' })).toBe(411);
    const ok = await graphql<{ health: { ok: boolean } }>(
      app.base,
      `
        {
          health {
            ok
          }
        }
      `,
    );
    expect(ok.data!.health.ok).toBe(true);
  });

  it('counts requests to unknown paths under one label, so no client can grow the metrics', async () => {
    for (const path of ['/nope-1', '/nope-2', '/graphql/../x'])
      await (await fetch(`${app.base}${path}`)).text();
    const text = await (await fetch(`${app.base}/metrics`)).text();
    expect(text).not.toMatch(/nope/);
    expect(text).toMatch(/^tiercache_http_requests_total\{route="other"\} [3-9]\d*$/m);
    expect(text).toMatch(/^tiercache_http_requests_total\{route="\/graphql"\} [1-9]\d*$/m);
  });

  it('answers the standard introspection query within the default limits (introspection is on here)', async () => {
    const res = await graphql<{ __schema: { queryType: { name: string } } }>(
      app.base,
      getIntrospectionQuery({ descriptions: true, specifiedByUrl: true, inputValueDeprecation: true }),
    );
    expect(res.errors).toBeUndefined();
    expect(res.data!.__schema.queryType.name).toBe('Query');
  });

  it('serves prom-client metrics: the tiercache series beside the process and Node.js defaults', async () => {
    const res = await fetch(`${app.base}/metrics`);
    expect(res.headers.get('content-type')).toBe(metrics.contentType);
    const text = await res.text();
    for (const series of [
      'tiercache_reader_memory_entries',
      'tiercache_reader_changes_applied_total',
      'tiercache_writer_ops_total{op="set"}',
      'process_cpu_user_seconds_total',
      'process_resident_memory_bytes',
      'nodejs_eventloop_lag_seconds',
      'nodejs_heap_size_used_bytes',
      'nodejs_gc_duration_seconds_count',
    ])
      expect(text).toContain(`\n${series}`);
  });
});
