// READ_TOKENS on subscriptions, as clients meet them on a real reader (real Redis and Kafka): without a
// valid read token no transport starts a subscription (graphql-sse answers UNAUTHENTICATED, graphql-ws
// closes the socket with 4403); with one, the same clients receive the snapshot.
import { createClient as createSseClient } from 'graphql-sse';
import { createClient as createWsClient } from 'graphql-ws';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startTiercache, type RunningTiercache } from '../support/processes.js';
import { kafkaBrokers, redisUrl, uniqueName } from '../support/services.js';

const READ_TOKEN = 'read-secret-for-subscriptions';
const SUBSCRIBE = `subscription($keys: [String!]) {
  valueChanged(keys: $keys, includeInitial: true) { key exists initial }
}`;

interface Outcome {
  results: { data?: unknown; errors?: { extensions?: Record<string, unknown> }[] }[];
  error: unknown;
}

let reader: RunningTiercache;
const disposers: (() => void)[] = [];

/** The first result of a subscription (the snapshot), or how it was refused. */
async function firstOf(client: {
  iterate(payload: { query: string; variables: Record<string, unknown> }): AsyncIterableIterator<unknown>;
}): Promise<Outcome> {
  const outcome: Outcome = { results: [], error: undefined };
  const iterator = client.iterate({ query: SUBSCRIBE, variables: { keys: [uniqueName('auth')] } });
  try {
    for await (const result of iterator) {
      outcome.results.push(result as Outcome['results'][number]);
      break;
    }
  } catch (error) {
    outcome.error = error;
  }
  return outcome;
}

function sse(authorization?: string) {
  const client = createSseClient({
    url: `${reader.base}/graphql`,
    retryAttempts: 0,
    headers: authorization ? { authorization } : {},
  });
  disposers.push(() => client.dispose());
  return client;
}

function ws(authorization?: string) {
  const client = createWsClient({
    url: `${reader.base.replace('http', 'ws')}/graphql`,
    webSocketImpl: WebSocket,
    retryAttempts: 0,
    connectionParams: authorization ? { authorization } : {},
  });
  disposers.push(() => void client.dispose());
  return client;
}

/** graphql-sse reports a refused request as a NetworkError holding the response (an event stream). */
async function sseErrorCode(error: unknown): Promise<unknown> {
  const response = (error as { response?: Response } | undefined)?.response;
  if (!response) return undefined;
  const data = /^data: (.*)$/m.exec(await response.text());
  const body = data ? (JSON.parse(data[1]!) as Outcome['results'][number]) : undefined;
  return body?.errors?.[0]?.extensions?.code;
}

beforeAll(async () => {
  reader = await startTiercache(['--mode=reader', `--instance-id=${uniqueName('auth-reader')}`], {
    REDIS_URL: redisUrl(),
    KAFKA_BROKERS: kafkaBrokers().join(','),
    KAFKA_TOPIC: uniqueName('subs-auth'),
    REDIS_KEY_PREFIX: `${uniqueName('subs-auth')}:`,
    READ_TOKENS: READ_TOKEN,
  });
  await eventually('reader ready', async () =>
    (await fetch(`${reader.base}/ready`)).status === 200 ? true : undefined,
  );
}, 120_000);

afterAll(async () => {
  for (const dispose of disposers) dispose();
  await reader?.stop();
});

describe('READ_TOKENS on subscriptions', () => {
  it.each([
    ['no token', undefined],
    ['a wrong token', 'Bearer not-the-token'],
  ])('graphql-sse with %s: UNAUTHENTICATED, nothing delivered', async (_name, authorization) => {
    const outcome = await firstOf(sse(authorization));
    const code = outcome.results[0]?.errors?.[0]?.extensions?.code ?? (await sseErrorCode(outcome.error));
    expect(code).toBe('UNAUTHENTICATED');
    expect(outcome.results.some((r) => r.data)).toBe(false);
  });

  it.each([
    ['no token', undefined],
    ['a wrong token', 'Bearer not-the-token'],
  ])(
    'graphql-ws with %s: the socket is closed with 4403, nothing delivered',
    async (_name, authorization) => {
      const outcome = await firstOf(ws(authorization));
      expect((outcome.error as { code?: number } | undefined)?.code).toBe(4403);
      expect(outcome.results).toEqual([]);
    },
  );

  it.each([
    ['graphql-sse', () => sse(`Bearer ${READ_TOKEN}`)],
    ['graphql-ws', () => ws(`Bearer ${READ_TOKEN}`)],
  ])('%s with the read token: the snapshot arrives', async (_name, makeClient) => {
    const outcome = await firstOf(makeClient());
    expect(outcome.error).toBeUndefined();
    expect(outcome.results[0]?.data).toMatchObject({ valueChanged: { exists: false, initial: true } });
  });
});
