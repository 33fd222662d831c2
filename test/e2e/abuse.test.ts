// Requests an attacker or a careless client would send, against a writer and a reader as real processes on
// a private redis-server and the real Kafka. For each: the error the client gets, no store or bus call
// (Redis INFO commandstats and key count, Kafka topic offsets unchanged), and another client served while
// it happens.
import { connect, type Socket } from 'node:net';
import { Agent, request as httpRequest } from 'node:http';
import { Redis } from 'ioredis';
import { Kafka, logLevel, type Admin } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisStore } from '../../src/adapters/redis-store.js';
import {
  commandCalls,
  eventually,
  startPrivateRedis,
  startTiercache,
  type Running,
  type RunningTiercache,
} from '../support/processes.js';
import { kafkaBrokers, uniqueName } from '../support/services.js';

const WRITE_TOKEN = 'abuse-write-token-0123456789';
const READ_TOKEN = 'abuse-read-token-0123456789';
const GOOD_ORIGIN = 'https://app.example';
const MAX_REQUEST_BYTES = 30_000_000; // above yoga's own default of 25,000,000
const MAX_RESPONSE_BYTES = 1_000_000;
const PREFIX = 'abuse:';
const BIG = 'x'.repeat(100_000);

let redisServer: Running & { url: string };
let redis: Redis;
let admin: Admin;
let writer: RunningTiercache;
let reader: RunningTiercache;
const writerTopic = uniqueName('abuse-writes');

beforeAll(async () => {
  redisServer = await startPrivateRedis();
  redis = new Redis(redisServer.url);
  await new RedisStore({ redis, prefix: PREFIX }).write([{ op: 'set', key: 'big', value: BIG }], {
    ttlMs: null,
    tombstoneTtlMs: 60_000,
    inlineValueMaxBytes: 65536,
  });
  const common = {
    REDIS_URL: redisServer.url,
    REDIS_KEY_PREFIX: PREFIX,
    KAFKA_BROKERS: kafkaBrokers().join(','),
    WRITE_TOKENS: WRITE_TOKEN,
    READ_TOKENS: READ_TOKEN,
    CORS_ORIGINS: GOOD_ORIGIN,
    MAX_REQUEST_BYTES: String(MAX_REQUEST_BYTES),
    MAX_RESPONSE_BYTES: String(MAX_RESPONSE_BYTES),
    HTTP_HEADERS_TIMEOUT_MS: '2000',
  };
  // Readers announce sync markers on their topic: the writer gets a topic of its own, so its offsets move
  // only when it publishes a write.
  [writer, reader] = await Promise.all([
    startTiercache(['--mode=writer'], { ...common, KAFKA_TOPIC: writerTopic, MAX_CONNECTIONS: '40' }),
    startTiercache(['--mode=reader', `--instance-id=${uniqueName('abuse-reader')}`], {
      ...common,
      KAFKA_TOPIC: uniqueName('abuse-reads'),
      INTROSPECTION: 'true',
      MAX_QUERY_DEPTH: '5',
    }),
  ]);
  admin = new Kafka({ brokers: kafkaBrokers(), logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  await eventually('reader ready', async () =>
    (await fetch(`${reader.base}/ready`)).status === 200 ? true : undefined,
  );
  // Into the reader's memory, so that reading it again needs no store call.
  const warm = await post(reader, { query: '{ value(key: "big") { source } }' }, { token: READ_TOKEN });
  expect(warm.status).toBe(200);
}, 120_000);

afterAll(async () => {
  await admin?.disconnect();
  await Promise.all([writer?.stop(), reader?.stop()]);
  redis?.disconnect();
  await redisServer?.stop();
});

interface Answer {
  status: number;
  headers: Headers;
  body: {
    data?: unknown;
    errors?: { message: string; extensions?: Record<string, unknown> }[];
    error?: string;
    code?: string;
  };
}

async function answer(res: Response): Promise<Answer> {
  const text = await res.text();
  let body: Answer['body'];
  try {
    body = JSON.parse(text) as Answer['body'];
  } catch {
    body = { error: text };
  }
  return { status: res.status, headers: res.headers, body };
}

async function post(
  target: RunningTiercache,
  payload: unknown,
  { token, path = '/graphql', type = 'application/json', headers = {} }: PostOptions = {},
): Promise<Answer> {
  const res = await fetch(`${target.base}${path}`, {
    method: 'POST',
    headers: {
      'content-type': type,
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...headers,
    },
    body:
      typeof payload === 'string'
        ? payload
        : Buffer.isBuffer(payload)
          ? new Uint8Array(payload)
          : JSON.stringify(payload),
  });
  return answer(res);
}
interface PostOptions {
  token?: string;
  path?: string;
  type?: string;
  headers?: Record<string, string>;
}

const get = async (target: RunningTiercache, path: string, token?: string): Promise<Answer> =>
  answer(
    await fetch(`${target.base}${path}`, token ? { headers: { authorization: `Bearer ${token}` } } : {}),
  );

/** Everything a request could have made the store or the bus do. */
interface Footprint {
  writes: number;
  reads: number;
  keys: number;
  published: number;
}
async function footprint(): Promise<Footprint> {
  const offsets = await admin.fetchTopicOffsets(writerTopic);
  return {
    // Lua scripts (writes, relay acknowledgements): EVALSHA, and EVAL when a client finds one not yet loaded.
    writes: (await commandCalls(redis, 'evalsha')) + (await commandCalls(redis, 'eval')),
    reads: await commandCalls(redis, 'mget'),
    keys: await redis.dbsize(),
    published: offsets.reduce((sum, p) => sum + Number(p.high), 0),
  };
}

/**
 * Runs the abuse while another client asks both processes something that needs no store: it must be
 * answered (within a generous bound, on a loaded machine), and the store and bus must not have moved.
 */
async function refusedWithoutWork<T>(abuse: () => Promise<T>): Promise<T> {
  const before = await footprint();
  const healthy = (target: RunningTiercache) =>
    fetch(`${target.base}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${WRITE_TOKEN}` },
      body: JSON.stringify({ query: '{ health { ok } }' }),
      signal: AbortSignal.timeout(15_000),
    }).then(async (res) => ((await res.json()) as { data?: { health?: { ok?: boolean } } }).data?.health?.ok);
  const [result, writerOk, readerOk] = await Promise.all([abuse(), healthy(writer), healthy(reader)]);
  expect([writerOk, readerOk]).toEqual([true, true]);
  expect(await footprint()).toEqual(before);
  return result;
}

const codeOf = (a: Answer) => a.body.errors?.[0]?.extensions?.code ?? a.body.code;
const SET = 'mutation ($e: [EntryInput!]!) { setValues(entries: $e) { written { key version } } }';

describe('only trusted clients write', () => {
  it('refuses a mutation without a valid write token, GraphQL and REST, writing nothing', async () => {
    const entries = { e: [{ key: 'k', value: 'v' }] };
    for (const token of [undefined, 'wrong-token-0123456789', READ_TOKEN]) {
      const gql = await refusedWithoutWork(() => post(writer, { query: SET, variables: entries }, { token }));
      expect(codeOf(gql), String(token)).toBe('UNAUTHENTICATED');
      expect(gql.status).toBe(401);
      expect(gql.body.data ?? null).toBeNull();
      const rest = await refusedWithoutWork(() =>
        post(writer, { items: [{ key: 'k', value: 'v' }] }, { token, path: '/write' }),
      );
      expect(rest.status).toBe(401);
      expect(rest.body).toMatchObject({ code: 'UNAUTHENTICATED', error: expect.stringMatching(/Bearer/) });
      expect(rest.headers.get('www-authenticate')).toBe('Bearer');
    }
  });

  it('writes with a write token (the control: the footprint does move)', async () => {
    const before = await footprint();
    const ok = await post(
      writer,
      { query: SET, variables: { e: [{ key: 'k', value: 'v' }] } },
      { token: WRITE_TOKEN },
    );
    expect(ok.body.errors).toBeUndefined();
    const rest = await post(
      writer,
      { items: [{ key: 'k2', value: 'v' }] },
      { token: WRITE_TOKEN, path: '/write' },
    );
    expect(rest.status).toBe(200);
    await eventually('both writes announced', async () => {
      const after = await footprint();
      // Scripts run for the two writes and for the relay's acknowledgements of them.
      return after.published === before.published + 2 && after.writes >= before.writes + 2 ? true : undefined;
    });
  });

  it('refuses reads, /read and /metrics without a read token; a read or write token reads', async () => {
    const read = await refusedWithoutWork(() => post(reader, { query: '{ value(key: "big") { key } }' }));
    expect(codeOf(read)).toBe('UNAUTHENTICATED');
    for (const path of ['/read?keys=big', '/metrics']) {
      const refused = await refusedWithoutWork(() => get(reader, path));
      expect(refused.status, path).toBe(401);
      expect(refused.body.code).toBe('UNAUTHENTICATED');
    }
    for (const token of [READ_TOKEN, WRITE_TOKEN]) {
      expect((await get(reader, '/metrics', token)).status).toBe(200);
      const ok = await post(reader, { query: '{ value(key: "big") { source } }' }, { token });
      expect(ok.body.data).toEqual({ value: { source: 'MEMORY' } });
    }
    expect((await get(reader, '/health')).status).toBe(200);
    expect((await get(reader, '/ready')).status).toBe(200);
  });

  it('never writes a token to its logs', () => {
    for (const p of [writer, reader]) {
      expect(p.output()).not.toContain(WRITE_TOKEN);
      expect(p.output()).not.toContain(READ_TOKEN);
    }
  });

  it('will not start a writer reachable from other machines without write tokens', async () => {
    const start = startTiercache(['--mode=writer', '--host=0.0.0.0'], {
      REDIS_URL: redisServer.url,
      KAFKA_BROKERS: kafkaBrokers().join(','),
      WRITE_TOKENS: '',
    });
    await expect(start).rejects.toThrow(/WRITE_TOKENS is empty.*--allow-anonymous-writes/s);
  });
});

describe('no cross-site writes', () => {
  const mutation = 'mutation { setValues(entries: [{key: "x", value: "y"}]) { written { key } } }';
  it('refuses form, multipart and text/plain bodies, GraphQL and REST, and mutations over GET', async () => {
    const form = new URLSearchParams({ query: mutation }).toString();
    const multipart = `--b\r\ncontent-disposition: form-data; name="operations"\r\n\r\n${JSON.stringify({ query: mutation })}\r\n--b--\r\n`;
    for (const [type, body] of [
      ['application/x-www-form-urlencoded', form],
      ['multipart/form-data; boundary=b', multipart],
      ['text/plain', JSON.stringify({ query: mutation })],
    ] as const) {
      const gql = await refusedWithoutWork(() => post(writer, body, { token: WRITE_TOKEN, type }));
      expect(gql.status, type).toBe(415);
      expect(codeOf(gql)).toBe('UNSUPPORTED_MEDIA_TYPE');
    }
    const rest = await refusedWithoutWork(() =>
      post(writer, JSON.stringify({ items: [{ key: 'x', value: 'y' }] }), {
        token: WRITE_TOKEN,
        path: '/write',
        type: 'text/plain',
      }),
    );
    expect(rest.status).toBe(415);
    const viaGet = await refusedWithoutWork(() =>
      get(writer, `/graphql?query=${encodeURIComponent(mutation)}`, WRITE_TOKEN),
    );
    expect(viaGet.status).toBe(405);
    expect(viaGet.body.data ?? null).toBeNull();
  });

  it('answers CORS only for the allowed origin, never with credentials', async () => {
    const preflight = (origin: string) =>
      fetch(`${writer.base}/graphql`, {
        method: 'OPTIONS',
        headers: {
          origin,
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'authorization, content-type',
        },
      });
    const evil = await refusedWithoutWork(() => preflight('https://evil.example'));
    expect(evil.headers.get('access-control-allow-origin')).toBeNull();
    expect(evil.headers.get('access-control-allow-methods')).toBeNull();
    const good = await preflight(GOOD_ORIGIN);
    expect(good.headers.get('access-control-allow-origin')).toBe(GOOD_ORIGIN);
    expect(good.headers.get('access-control-allow-headers')).toMatch(/authorization/);
    expect(good.headers.get('access-control-allow-credentials')).toBeNull();
    const simple = await fetch(`${reader.base}/health`, { headers: { origin: 'https://evil.example' } });
    expect(simple.headers.get('access-control-allow-origin')).toBeNull();
  });
});

describe('bounded cost per request', () => {
  const thousand = Array.from({ length: 1000 }, (_, i) => `key-${i}`);
  const aliased = (n: number) =>
    `query ($k: [String!]!) { ${Array.from({ length: n }, (_, i) => `a${i}: values(keys: $k) { key value }`).join(' ')} }`;

  it('refuses 100 aliases × 1,000 keys, and 2 × 1,000 keys, before any store call', async () => {
    const aliases = await refusedWithoutWork(() =>
      post(reader, { query: aliased(100), variables: { k: thousand } }, { token: READ_TOKEN }),
    );
    expect(aliases.body.errors?.[0]?.extensions).toMatchObject({
      code: 'QUERY_TOO_COMPLEX',
      limit: 'MAX_ALIASES',
    });
    const keys = await refusedWithoutWork(() =>
      post(reader, { query: aliased(2), variables: { k: thousand } }, { token: READ_TOKEN }),
    );
    expect(keys.body.errors?.[0]?.extensions).toMatchObject({
      code: 'BAD_USER_INPUT',
      argument: 'keys',
      limit: 'MAX_READ_KEYS',
    });
    expect(keys.body.data ?? null).toBeNull();
    // Fragments spread twice count twice.
    const spread = await refusedWithoutWork(() =>
      post(
        reader,
        {
          query:
            'query ($k: [String!]!) { ...F ...G } fragment F on Query { values(keys: $k) { key } } fragment G on Query { ...F }',
          variables: { k: thousand.slice(0, 600) },
        },
        { token: READ_TOKEN },
      ),
    );
    expect(codeOf(spread)).toBe('BAD_USER_INPUT');
    const writes = await refusedWithoutWork(() =>
      post(
        writer,
        {
          query:
            'mutation ($e: [EntryInput!]!) { a: setValues(entries: $e) { written { key } } b: setValues(entries: $e) { written { key } } }',
          variables: { e: thousand.slice(0, 600).map((key) => ({ key, value: 'v' })) },
        },
        { token: WRITE_TOKEN },
      ),
    );
    expect(writes.body.errors?.[0]?.extensions).toMatchObject({
      code: 'BAD_USER_INPUT',
      limit: 'MAX_WRITE_ENTRIES',
    });
  });

  it('stops parsing a 4 MB document of fields at MAX_QUERY_TOKENS', async () => {
    const query = `{ ${'health { ok } '.repeat(4_000_000 / 15)} }`;
    const huge = await refusedWithoutWork(() => post(reader, { query }, { token: READ_TOKEN }));
    expect(huge.body.errors?.[0]?.extensions).toMatchObject({
      code: 'QUERY_TOO_COMPLEX',
      limit: 'MAX_QUERY_TOKENS',
    });
  });

  it('refuses operations nested deeper than MAX_QUERY_DEPTH, and introspection where it is off', async () => {
    const deep = await refusedWithoutWork(() =>
      post(
        reader,
        { query: '{ __schema { types { fields { type { ofType { ofType { name } } } } } } }' },
        { token: READ_TOKEN },
      ),
    );
    expect(deep.body.errors?.[0]?.extensions).toMatchObject({
      code: 'QUERY_TOO_COMPLEX',
      limit: 'MAX_QUERY_DEPTH',
    });
    const shallow = await post(
      reader,
      { query: '{ __schema { queryType { name } } }' },
      { token: READ_TOKEN },
    );
    expect(shallow.body.data).toEqual({ __schema: { queryType: { name: 'Query' } } });
    // The writer runs on real services with the default: no introspection.
    const closed = await refusedWithoutWork(() =>
      post(writer, { query: '{ __schema { queryType { name } } }' }, { token: WRITE_TOKEN }),
    );
    expect(closed.body.errors?.[0]?.message).toMatch(/introspection/i);
  });

  it('suggests no field names', async () => {
    const typo = await refusedWithoutWork(() =>
      post(reader, { query: '{ valuez(keys: ["a"]) { key } }' }, { token: READ_TOKEN }),
    );
    expect(typo.body.errors?.[0]?.message).toMatch(/Cannot query field "valuez"/);
    expect(JSON.stringify(typo.body)).not.toMatch(/Did you mean/);
    const input = await refusedWithoutWork(() =>
      post(writer, { query: SET, variables: { e: [{ kee: 'a', value: 'b' }] } }, { token: WRITE_TOKEN }),
    );
    expect(input.body.errors?.length).toBeGreaterThan(0);
    expect(JSON.stringify(input.body)).not.toMatch(/Did you mean/);
  });

  it('answers RESPONSE_TOO_LARGE instead of building an answer over MAX_RESPONSE_BYTES, GraphQL and REST', async () => {
    const keys = Array.from({ length: 20 }, () => 'big'); // 20 × 100 kB from memory: 2 MB > 1 MB
    const gql = await refusedWithoutWork(() =>
      post(
        reader,
        {
          query: '{ values(keys: $k) { value } }'.replace('{ values', 'query ($k: [String!]!) { values'),
          variables: { k: keys },
        },
        { token: READ_TOKEN },
      ),
    );
    expect(codeOf(gql)).toBe('RESPONSE_TOO_LARGE');
    expect(gql.body.data ?? null).toBeNull();
    expect(JSON.stringify(gql.body).length).toBeLessThan(10_000);
    const rest = await refusedWithoutWork(() => get(reader, `/read?keys=${keys.join(',')}`, READ_TOKEN));
    expect(rest.status).toBe(400);
    expect(rest.body.code).toBe('RESPONSE_TOO_LARGE');
    const fits = await post(
      reader,
      { query: '{ a: value(key: "big") { value } b: value(key: "big") { value } }' },
      { token: READ_TOKEN },
    );
    expect(fits.body.errors).toBeUndefined();
  });

  it('counts each RESPONSE_TOO_LARGE answer once on /metrics, GraphQL (yoga and the fast path) and REST', async () => {
    const before = await refusedCount(reader, 'RESPONSE_TOO_LARGE');
    const query =
      '{ values(keys: ["big", "big", "big", "big", "big", "big", "big", "big", "big", "big", "big", "big"]) { value } }';
    // The second time the fast path knows the query: its execution fails and yoga answers, once.
    for (let i = 0; i < 2; i++) {
      const gql = await post(reader, { query }, { token: READ_TOKEN });
      expect(codeOf(gql)).toBe('RESPONSE_TOO_LARGE');
    }
    const rest = await get(
      reader,
      `/read?keys=${Array.from({ length: 12 }, () => 'big').join(',')}`,
      READ_TOKEN,
    );
    expect(rest.body.code).toBe('RESPONSE_TOO_LARGE');
    expect(await refusedCount(reader, 'RESPONSE_TOO_LARGE')).toBe(before + 3);
  });
});

describe('keys are text', () => {
  it('refuses control characters in keys on every path', async () => {
    for (const key of ['a\u0000b', 'tab\there', 'del\u007f']) {
      const read = await refusedWithoutWork(() =>
        post(
          reader,
          { query: 'query ($k: String!) { value(key: $k) { key } }', variables: { k: key } },
          { token: READ_TOKEN },
        ),
      );
      expect(read.body.errors?.[0]?.extensions, JSON.stringify(key)).toMatchObject({
        code: 'BAD_USER_INPUT',
        argument: 'key',
      });
      const write = await refusedWithoutWork(() =>
        post(writer, { query: SET, variables: { e: [{ key, value: 'v' }] } }, { token: WRITE_TOKEN }),
      );
      expect(write.body.errors?.[0]?.extensions).toMatchObject({
        code: 'BAD_USER_INPUT',
        argument: 'entries[0].key',
      });
      const rest = await refusedWithoutWork(() =>
        get(reader, `/read?keys=ok,${encodeURIComponent(key)}`, READ_TOKEN),
      );
      expect(rest.status).toBe(400);
      expect(rest.body.code).toBe('BAD_USER_INPUT');
      const restWrite = await refusedWithoutWork(() =>
        post(writer, { items: [{ key, value: 'v' }] }, { token: WRITE_TOKEN, path: '/write' }),
      );
      expect(restWrite.status).toBe(400);
    }
  });

  it('refuses invalid UTF-8 instead of turning it into U+FFFD, in URLs and bodies', async () => {
    const url = await refusedWithoutWork(() => get(reader, '/read?keys=a%FF', READ_TOKEN));
    expect(url).toMatchObject({ status: 400, body: { code: 'BAD_REQUEST' } });
    const gqlGet = await refusedWithoutWork(() =>
      get(
        reader,
        `/graphql?query=${encodeURIComponent('{ value(key: "a')}%FF${encodeURIComponent('") { key } }')}`,
        READ_TOKEN,
      ),
    );
    expect(gqlGet.status).toBe(400);
    // A raw byte 0xFF in the request line (Node reads it as latin-1 "ÿ").
    const raw = await refusedWithoutWork(() =>
      rawRequest(
        reader,
        Buffer.concat([
          Buffer.from('GET /read?keys=a'),
          Buffer.from([0xff]),
          Buffer.from(
            ` HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${READ_TOKEN}\r\nconnection: close\r\n\r\n`,
          ),
        ]),
      ),
    );
    expect(raw).toMatch(/^HTTP\/1\.1 400/);
    const bytes = (json: string) =>
      Buffer.concat([
        Buffer.from(json.split('@')[0]!),
        Buffer.from([0xc3, 0x28]),
        Buffer.from(json.split('@')[1]!),
      ]);
    const body = await refusedWithoutWork(() =>
      post(
        writer,
        bytes(
          '{"query":"mutation { setValues(entries: [{key: \\"a@\\", value: \\"v\\"}]) { written { key } } }"}',
        ),
        { token: WRITE_TOKEN },
      ),
    );
    expect(body).toMatchObject({ status: 400 });
    expect(codeOf(body)).toBe('BAD_REQUEST');
    const rest = await refusedWithoutWork(() =>
      post(writer, bytes('{"items":[{"key":"a@","value":"v"}]}'), { token: WRITE_TOKEN, path: '/write' }),
    );
    expect(rest).toMatchObject({ status: 400, body: { code: 'BAD_REQUEST' } });
  });
});

describe('what already held', () => {
  it('refuses malformed JSON and batched arrays', async () => {
    const malformed = await refusedWithoutWork(() =>
      post(writer, '{"query": "mutation {', { token: WRITE_TOKEN }),
    );
    expect(malformed.status).toBe(400);
    const rest = await refusedWithoutWork(() =>
      post(writer, '{"items": [', { token: WRITE_TOKEN, path: '/write' }),
    );
    expect(rest).toMatchObject({ status: 400, body: { code: 'BAD_USER_INPUT' } });
    const batch = await refusedWithoutWork(() =>
      post(writer, [{ query: SET, variables: { e: [{ key: 'b', value: 'v' }] } }], { token: WRITE_TOKEN }),
    );
    expect(batch.status).toBeGreaterThanOrEqual(400);
  });

  it('has one body limit for GraphQL and REST: MAX_REQUEST_BYTES', async () => {
    for (const path of ['/graphql', '/write']) {
      const reply = await refusedWithoutWork(() =>
        rawRequest(
          writer,
          `POST ${path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nauthorization: Bearer ${WRITE_TOKEN}\r\ncontent-length: ${MAX_REQUEST_BYTES + 1}\r\n\r\n{`,
        ),
      );
      expect(reply, path).toMatch(/^HTTP\/1\.1 413/);
    }
    // 26 MB: over yoga's own 25 MB default, under MAX_REQUEST_BYTES — GraphQL takes it as REST does.
    const entries = Array.from({ length: 26 }, (_, i) => ({ key: `large-${i}`, value: 'z'.repeat(999_000) }));
    const gql = await post(writer, { query: SET, variables: { e: entries } }, { token: WRITE_TOKEN });
    expect(gql.body.errors).toBeUndefined();
    expect((gql.body.data as { setValues: { written: unknown[] } }).setValues.written).toHaveLength(26);
  });
});

describe('connections', () => {
  it('serves requests that waited while the writer was stopped, instead of resetting them', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 10 });
    const ask = () =>
      new Promise<string>((resolve) => {
        const req = httpRequest(
          `${writer.base}/graphql`,
          {
            method: 'POST',
            agent,
            headers: { 'content-type': 'application/json', authorization: `Bearer ${WRITE_TOKEN}` },
          },
          (res) => {
            let text = '';
            res.on('data', (d: Buffer) => (text += d.toString()));
            // The keep-alive hint tells clients when to stop reusing the connection.
            res.on('end', () =>
              resolve(
                text.includes('"ok":true') && res.headers['keep-alive'] === 'timeout=5'
                  ? 'ok'
                  : `${res.headers['keep-alive']} ${text}`,
              ),
            );
          },
        );
        req.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
        req.end(JSON.stringify({ query: '{ health { ok } }' }));
      });
    try {
      expect(await Promise.all(Array.from({ length: 10 }, ask))).toEqual(Array(10).fill('ok'));
      writer.process.kill('SIGSTOP');
      const waiting = Promise.all(Array.from({ length: 10 }, ask));
      await new Promise((r) => setTimeout(r, 6000)); // past the 5 s keep-alive timeout
      writer.process.kill('SIGCONT');
      expect(await waiting).toEqual(Array(10).fill('ok'));
    } finally {
      writer.process.kill('SIGCONT');
      agent.destroy();
    }
  });

  it('caps open connections at MAX_CONNECTIONS and closes a connection that never finishes its headers', async () => {
    const sockets: Socket[] = [];
    const closed = new Set<Socket>();
    const answered = new Set<Socket>();
    const port = Number(new URL(writer.base).port);
    for (let i = 0; i < 60; i++) {
      const s = connect(port, '127.0.0.1');
      s.on('error', () => undefined);
      s.on('data', (d: Buffer) => {
        if (d.toString('latin1').startsWith('HTTP/1.1 408')) answered.add(s);
      });
      s.on('close', () => closed.add(s));
      // Half a request line: the header deadline (2 s here) ends every accepted connection with a 408.
      s.write('GET /health HTTP/1.1\r\nhost:');
      sockets.push(s);
    }
    await eventually('every connection closed', async () => (closed.size === 60 ? true : undefined), 30_000);
    // Over the cap of 40, a connection is closed on arrival, before it could be answered at all.
    expect(answered.size).toBeGreaterThan(0);
    expect(answered.size).toBeLessThanOrEqual(40);
    expect(60 - answered.size).toBeGreaterThanOrEqual(20);
    const ok = await post(writer, { query: '{ health { ok } }' }, { token: WRITE_TOKEN });
    expect(ok.body.data).toEqual({ health: { ok: true } });
  });
});

describe('what the operator sees', () => {
  it('counts refusals on /metrics by code', async () => {
    const count = refusedCount;
    const counts = async () => [
      await count(writer, 'UNAUTHENTICATED'),
      await count(writer, 'UNSUPPORTED_MEDIA_TYPE'),
      await count(reader, 'QUERY_TOO_COMPLEX'),
      await count(reader, 'BAD_USER_INPUT'),
    ];
    const before = await counts();
    await post(writer, { query: SET, variables: { e: [{ key: 'k', value: 'v' }] } });
    await post(writer, '{}', { token: WRITE_TOKEN, type: 'text/plain' });
    const keys = Array.from({ length: 1001 }, (_, i) => `k${i}`);
    // Twice: the second time the fast path knows the query, refuses it in its own execution, and yoga
    // answers; one refusal each time.
    for (let i = 0; i < 2; i++)
      await post(
        reader,
        { query: 'query ($k: [String!]!) { values(keys: $k) { key } }', variables: { k: keys } },
        { token: READ_TOKEN },
      );
    await post(reader, { query: `{ ${'health { ok } '.repeat(10_000)} }` }, { token: READ_TOKEN });
    expect(await counts()).toEqual([before[0]! + 1, before[1]! + 1, before[2]! + 1, before[3]! + 2]);
  });
});

/** tiercache_http_refused_total for one code, as /metrics shows it (0 before the first). */
async function refusedCount(target: RunningTiercache, code: string): Promise<number> {
  const res = await fetch(`${target.base}/metrics`, { headers: { authorization: `Bearer ${READ_TOKEN}` } });
  const match = new RegExp(`^tiercache_http_refused_total\\{code="${code}"\\} (\\d+)$`, 'm').exec(
    await res.text(),
  );
  return match ? Number(match[1]) : 0;
}

/** Sends raw bytes on a fresh connection; resolves with what came back until the server stopped talking. */
function rawRequest(target: RunningTiercache, bytes: string | Buffer): Promise<string> {
  const port = Number(new URL(target.base).port);
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let reply = '';
    const done = () => {
      socket.destroy();
      resolve(reply);
    };
    socket.on('data', (d: Buffer) => {
      reply += d.toString('latin1');
      if (/\r\n\r\n/.test(reply)) setTimeout(done, 50);
    });
    socket.on('error', done);
    socket.on('close', done);
    socket.write(bytes);
  });
}
