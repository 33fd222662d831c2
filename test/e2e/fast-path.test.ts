// The compiled fast path must be indistinguishable from yoga: the same corpus (valid queries, variables,
// errors, limits, wrong roles, tokens, media types) goes to a reader with the fast path and to one without
// (real processes on one Redis and one Kafka topic, holding the same entries), and status, the headers a client acts on and the body must match byte for byte.
// The graphql-http server audit runs against the fast path too.
import { request } from 'node:http';
import { serverAudits } from 'graphql-http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startTiercache, type RunningTiercache } from '../support/processes.js';
import { kafkaBrokers, redisUrl, uniqueName } from '../support/services.js';

// Both readers: the same limits and tokens, small enough that the corpus can cross each of them.
const LIMITS = {
  READ_TOKENS: 'read-secret-0123456789',
  WRITE_TOKENS: 'write-secret-0123456789',
  CORS_ORIGINS: 'https://app.example',
  INTROSPECTION: 'false',
  MAX_QUERY_TOKENS: '300',
  MAX_QUERY_DEPTH: '4',
  MAX_ALIASES: '6',
  MAX_READ_KEYS: '20',
  MAX_KEY_BYTES: '64',
  MAX_RESPONSE_BYTES: '1024',
  NEGATIVE_TTL_MS: '600000',
};

interface Sent {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
}

interface Answer {
  status: number;
  headers: Record<string, string | undefined>;
  body: Buffer;
}

// What a client acts on; date, connection and keep-alive are node:http's own.
const COMPARED = [
  'content-type',
  'content-length',
  'www-authenticate',
  'access-control-allow-origin',
  'vary',
  'allow',
  'accept',
];

function send(base: string, s: Sent): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const body = s.body === undefined ? undefined : Buffer.from(s.body);
    const headers: Record<string, string | number> = { ...s.headers };
    if (body) headers['content-length'] = body.length;
    const req = request(`${base}${s.path ?? '/graphql'}`, { method: s.method ?? 'POST', headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: Object.fromEntries(COMPARED.map((h) => [h, res.headers[h]?.toString()])),
          body: Buffer.concat(chunks),
        }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

const READ = { authorization: 'Bearer read-secret-0123456789' };
const JSON_TYPE = { 'content-type': 'application/json' };
const post = (payload: unknown, headers: Record<string, string> = READ): Sent => ({
  headers: { ...JSON_TYPE, ...headers },
  body: JSON.stringify(payload),
});
const q = (query: string, extra: Record<string, unknown> = {}, headers?: Record<string, string>): Sent =>
  post({ query, ...extra }, headers);

const ENTRY = '{ key value exists source version }';
const manyKeys = (n: number) => JSON.stringify(Array.from({ length: n }, (_, i) => `k${i}`));

// Every C0 control, DEL, NUL, a quote, a backslash, U+2028/2029, a BOM and a non-BMP pair.
const CONTROLS = `${Array.from({ length: 0x20 }, (_, i) => String.fromCharCode(i)).join('')}\u007f"\\\u2028\u2029\ufeff😀`;

const TWO_OPS = 'query A { value(key: "a") { value } } query B { health { ok } }';

/** [name, request, whether the fast path should answer it itself]. */
const CORPUS: [string, Sent, boolean][] = [
  ['hot values', q(`{ values(keys: ["a", "b", "a"]) ${ENTRY} }`), true],
  ['one value', q(`{ value(key: "a") ${ENTRY} }`), true],
  ['absent and deleted keys', q(`{ values(keys: ["absent", "gone"]) ${ENTRY} }`), true],
  [
    'variables and operation name',
    q('query Q($k: [String!]!) { values(keys: $k) { key value } } query R { health { ok } }', {
      variables: { k: ['b', 'a'] },
      operationName: 'Q',
    }),
    true,
  ],
  ['null variables', q(`{ value(key: "b") { value } }`, { variables: null, operationName: null }), true],
  [
    'aliases and fragments',
    q(
      '{ x: value(key: "a") { ...F } y: value(key: "b") { ...F } } fragment F on Entry { key value __typename }',
    ),
    true,
  ],
  // One document, two operations: each name runs its own compiled operation, also after the other's.
  ['operation A of two', q(TWO_OPS, { operationName: 'A' }), true],
  ['operation B of two', q(TWO_OPS, { operationName: 'B' }), true],
  ['operation A of two, again', q(TWO_OPS, { operationName: 'A' }), true],
  ['health', q('{ health { ok roles feedCurrent } }'), true],
  // Values JSON must escape (controls, NUL, quotes, backslashes, U+2028, lone-free non-BMP pairs), held in
  // memory: the compiled query completes at once and the answer is written in the same turn.
  ['hard strings from memory', q(`{ values(keys: ["ctl", "a", "ctl"]) ${ENTRY} }`), true],
  // The fast path keeps the parameters of recent bodies: the same query text with other variables, the
  // same variables in other bytes, and a body sent again must each be answered for what they say.
  [
    'variables, once more with other keys',
    q('query Q($k: [String!]!) { values(keys: $k) { key value } } query R { health { ok } }', {
      variables: { k: ['ctl', 'absent'] },
      operationName: 'Q',
    }),
    true,
  ],
  [
    'the same variables in other bytes',
    {
      headers: { ...JSON_TYPE, ...READ },
      body: '{ "operationName":"Q", "variables": {"k":["b","a"]},\n "query":"query Q($k: [String!]!) { values(keys: $k) { key value } } query R { health { ok } }"}',
    },
    true,
  ],
  // Completion after a wait (a store read) rather than at once.
  ['one fresh value', q(`{ value(key: "ctl", fresh: true) ${ENTRY} }`), true],
  ['fresh read', q(`{ values(keys: ["a"], fresh: true) ${ENTRY} }`), true],
  [
    'a write token reads too',
    q(`{ value(key: "a") { value } }`, {}, { authorization: 'Bearer write-secret-0123456789' }),
    true,
  ],
  [
    'charset in the content type',
    {
      headers: { ...READ, 'content-type': 'application/json; charset=utf-8' },
      body: '{"query":"{ value(key: \\"a\\") { value } }"}',
    },
    true,
  ],
  [
    'graphql-response+json accepted',
    q(`{ value(key: "a") { value } }`, {}, { ...READ, accept: 'application/graphql-response+json' }),
    true,
  ],
  [
    'graphql-http client accept',
    q(
      `{ value(key: "a") { value } }`,
      {},
      { ...READ, accept: 'application/graphql-response+json, application/json' },
    ),
    true,
  ],
  [
    'allowed CORS origin',
    q(`{ value(key: "a") { value } }`, {}, { ...READ, origin: 'https://app.example' }),
    true,
  ],
  [
    'other CORS origin',
    q(`{ value(key: "a") { value } }`, {}, { ...READ, origin: 'https://evil.example' }),
    true,
  ],
  [
    'a query string on the path',
    { ...q(`{ values(keys: ["b", "a"]) { key version } }`), path: '/graphql?from=corpus' },
    true,
  ],
  // Everything below is yoga's (or the guard's) to answer; the fast path must step aside without a trace.
  ['no token', q(`{ value(key: "a") { value } }`, {}, {}), false],
  ['wrong token', q(`{ value(key: "a") { value } }`, {}, { authorization: 'Bearer nope' }), false],
  [
    'a mutation on a reader',
    q(
      'mutation { deleteValues(keys: ["a"]) { written { key } } }',
      {},
      { authorization: 'Bearer write-secret-0123456789' },
    ),
    false,
  ],
  ['a mutation with a read token', q('mutation { deleteValues(keys: ["a"]) { written { key } } }'), false],
  // 32 KB, under the fast path's 64 KiB: a body it parses but does not keep, and nothing of it may recurse
  // 16,000 levels deep (built by hand: JSON.stringify would).
  [
    'an unused variable nested 16,000 levels deep',
    {
      headers: { ...JSON_TYPE, ...READ },
      body: `{"query":"{ health { ok } }","variables":{"deep":${'['.repeat(16_000)}${']'.repeat(16_000)}}}`,
    },
    true,
  ],
  ['syntax error', q('{ values(keys: '), false],
  ['unknown field (no suggestion)', q('{ valuez(keys: ["a"]) { key } }'), false],
  ['too many keys', q(`{ values(keys: ${manyKeys(21)}) { key } }`), false],
  [
    'too many keys through variables',
    q('query ($k: [String!]!) { values(keys: $k) { key } }', {
      variables: { k: JSON.parse(manyKeys(21)) as string[] },
    }),
    false,
  ],
  [
    'too many aliases',
    q(`{ ${Array.from({ length: 7 }, (_, i) => `a${i}: value(key: "a") { key }`).join(' ')} }`),
    false,
  ],
  [
    'too many tokens',
    q(
      `{ values(keys: ${manyKeys(20)}) { key value key value key value key value key value } ${'__typename '.repeat(400)} }`,
    ),
    false,
  ],
  ['introspection off', q('{ __schema { types { name } } }'), false],
  ['empty key', q('{ value(key: "") { key } }'), false],
  ['response too large', q(`{ values(keys: ["big", "big", "big"]) { value } }`), false],
  // The budget is proven by a bound from string lengths and measured exactly only near the limit.
  ['response near its limit', q(`{ values(keys: ["big", "big"]) { key value } }`), true],
  [
    'response too large across fields',
    q(`{ x: values(keys: ["big", "big"]) { value } y: value(key: "big") { value } }`),
    false,
  ],
  // Each field within MAX_READ_KEYS, together over it: only the guard's execute check refuses this.
  [
    'too many keys across aliases',
    q(`{ x: values(keys: ${manyKeys(10)}) { key } y: values(keys: ${manyKeys(11)}) { key } }`),
    false,
  ],
  [
    'variable of the wrong type',
    q('query ($k: [String!]!) { values(keys: $k) { key } }', { variables: { k: 5 } }),
    false,
  ],
  ['variable missing', q('query ($k: [String!]!) { values(keys: $k) { key } }'), false],
  ['two operations, no name', q('query A { health { ok } } query B { health { ok } }'), false],
  ['unknown operation name', q('{ health { ok } }', { operationName: 'Nope' }), false],
  [
    'graphql-response+json and an error',
    q('{ nope }', {}, { ...READ, accept: 'application/graphql-response+json' }),
    false,
  ],
  ['an Accept yoga cannot answer', q('{ health { ok } }', {}, { ...READ, accept: 'text/html' }), false],
  ['extensions', q('{ health { ok } }', { extensions: { persistedQuery: { version: 1 } } }), false],
  ['an unknown body field', q('{ health { ok } }', { foo: 1 }), false],
  ['a batch (array body)', post([{ query: '{ health { ok } }' }]), false],
  ['not JSON', { headers: { ...JSON_TYPE, ...READ }, body: '{"query":' }, false],
  ['empty body', { headers: { ...JSON_TYPE, ...READ }, body: '' }, false],
  ['query not a string', post({ query: 5 }), false],
  [
    'invalid UTF-8',
    { headers: { ...JSON_TYPE, ...READ }, body: Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x7d]) },
    false,
  ],
  [
    'text/plain body',
    { headers: { ...READ, 'content-type': 'text/plain' }, body: '{"query":"{ health { ok } }"}' },
    false,
  ],
  [
    'GET',
    { method: 'GET', path: '/graphql?query=%7B%20health%20%7B%20ok%20%7D%20%7D', headers: READ },
    false,
  ],
];

let fast: RunningTiercache;
let plain: RunningTiercache;
let open: RunningTiercache;
let writer: RunningTiercache;

async function fastAnswered(): Promise<number> {
  const res = await fetch(`${fast.base}/metrics`, { headers: READ });
  const line = /^tiercache_http_fast_path_total\{outcome="answered"\} (\d+)$/m.exec(await res.text());
  return Number(line?.[1] ?? 0);
}

beforeAll(async () => {
  const env = {
    REDIS_URL: redisUrl(),
    REDIS_KEY_PREFIX: `${uniqueName('fast')}:`,
    KAFKA_BROKERS: kafkaBrokers().join(','),
    KAFKA_TOPIC: uniqueName('fast-path'),
  };
  const reader = (name: string, more: Record<string, string>) =>
    startTiercache(['--mode=reader', `--instance-id=${uniqueName(name)}`], { ...env, ...LIMITS, ...more });
  [writer, fast, plain, open] = await Promise.all([
    startTiercache(['--mode=writer'], { ...env, ...LIMITS }),
    reader('fast', { FAST_PATH: 'true' }),
    reader('plain', { FAST_PATH: 'false' }),
    // The audit asks for __type: introspection on, and no tokens (it sends none).
    reader('open', { FAST_PATH: 'true', READ_TOKENS: '', WRITE_TOKENS: '', INTROSPECTION: 'true' }),
  ]);
  const write = (query: string) =>
    fetch(`${writer.base}/graphql`, {
      method: 'POST',
      headers: { ...JSON_TYPE, authorization: 'Bearer write-secret-0123456789' },
      body: JSON.stringify({ query }),
    }).then(async (r) => expect(r.status, await r.text()).toBe(200));
  await write(
    `mutation { setValues(entries: [{ key: "a", value: ${JSON.stringify('alpha "quoted" \\ é€ \u2028')} }, { key: "b", value: "" }, { key: "gone", value: "x" }, { key: "big", value: "${'y'.repeat(450)}" }, { key: "ctl", value: ${JSON.stringify(CONTROLS)} }]) { written { key } } }`,
  );
  await write('mutation { deleteValues(keys: ["gone"]) { written { key } } }');
  // Both readers hold the same state before the corpus runs (a first read of a key would fill it).
  for (const r of [fast, plain]) {
    await eventually(
      `${r.base} holds the written keys`,
      async () => {
        const res = await fetch(`${r.base}/graphql`, {
          method: 'POST',
          headers: { ...JSON_TYPE, ...READ },
          body: JSON.stringify({
            query: '{ values(keys: ["a", "b", "big", "ctl", "gone", "absent"]) { source version } }',
          }),
        });
        const body = (await res.json()) as {
          data?: { values: { source: string; version: string | null }[] };
        };
        const v = body.data?.values;
        return (v?.slice(0, 4).every((e) => e.source === 'MEMORY') && v[4]?.version !== null) || undefined;
      },
      30_000,
    );
  }
}, 120_000);

afterAll(async () => {
  await Promise.all([fast, plain, open, writer].map((p) => p?.stop()));
});

describe('the compiled fast path', () => {
  it.each(CORPUS)('answers like yoga: %s', async (_name, sent, answeredFast) => {
    // The first request for a query text is yoga's (the fast path learns from it), the second the fast
    // path's when it takes that shape; both must be yoga's answer to the same request.
    for (const round of [1, 2]) {
      const before = await fastAnswered();
      const viaFast = await send(fast.base, sent);
      const byFast = (await fastAnswered()) - before;
      const viaYoga = await send(plain.base, sent);
      expect({ ...viaFast, body: viaFast.body.toString('utf8') }).toEqual({
        ...viaYoga,
        body: viaYoga.body.toString('utf8'),
      });
      expect(viaFast.body.equals(viaYoga.body)).toBe(true);
      // In round 1 a text an earlier case already taught may go fast too.
      if (round === 2 || !answeredFast) expect(byFast, `round ${round}`).toBe(answeredFast ? 1 : 0);
    }
  });

  it('passes the graphql-http server audit', async () => {
    // Twice: the second round meets query texts the fast path has learnt.
    const results = [];
    for (const round of [1, 2]) {
      for (const audit of serverAudits({ url: `${open.base}/graphql`, fetchFn: fetch })) {
        results.push({ name: `${audit.name} (round ${round})`, result: await audit.fn() });
      }
    }
    const failed = results.flatMap(({ name, result }) =>
      result.status === 'error' ? [`${name}: ${result.reason}`] : [],
    );
    expect(failed).toEqual([]);
    // The audit's queries went through the fast path, not only around it.
    const metricsText = await (await fetch(`${open.base}/metrics`)).text();
    expect(
      Number(/^tiercache_http_fast_path_total\{outcome="answered"\} (\d+)$/m.exec(metricsText)?.[1] ?? 0),
    ).toBeGreaterThan(0);
  });
});
