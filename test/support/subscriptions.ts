// Subscriptions through the official clients (graphql-sse, graphql-ws), as the end-to-end suites use them:
// a client of each kind on a tiercache process, and a subscription run with iterate() whose results are kept.
import { createClient as createSseClient, type Client as SseClient } from 'graphql-sse';
import { createClient as createWsClient, type Client as WsClient } from 'graphql-ws';
import WebSocket from 'ws';

export const SUBSCRIBE = `subscription($keys: [String!], $prefix: String, $initial: Boolean) {
  valueChanged(keys: $keys, prefix: $prefix, includeInitial: $initial) { key value exists version op initial }
}`;

export interface Change {
  key: string;
  value: string | null;
  exists: boolean;
  version: string | null;
  op: 'SET' | 'DELETE' | 'EXPIRE';
  initial: boolean;
}

export interface Result {
  data?: { valueChanged: Change } | null;
  errors?: { message: string; extensions?: Record<string, unknown> }[];
}

/** graphql-sse on `base` (distinct connections, or the single connection at /graphql/stream); no retries. */
export function sseClient(base: string, singleConnection = false): SseClient {
  return createSseClient({
    url: `${base}/graphql${singleConnection ? '/stream' : ''}`,
    singleConnection,
    retryAttempts: 0,
  });
}

/** graphql-ws on `base`'s /graphql; no retries. */
export function wsClient(base: string): WsClient {
  return createWsClient({
    url: `${base.replace('http', 'ws')}/graphql`,
    webSocketImpl: WebSocket,
    retryAttempts: 0,
  });
}

export type Subscribed = ReturnType<typeof subscribe>;

/** Runs a subscription with an official client's iterate(), collecting results until it ends. */
export function subscribe(client: SseClient | WsClient, variables: Record<string, unknown>) {
  const results: Result[] = [];
  const iterator = client.iterate({ query: SUBSCRIBE, variables }) as AsyncIterableIterator<Result>;
  let error: unknown;
  const ended = (async () => {
    try {
      for await (const result of iterator) results.push(result);
    } catch (e) {
      error = e;
    }
  })();
  return {
    results,
    ended,
    error: () => error,
    changes: () => results.flatMap((r) => (r.data?.valueChanged ? [r.data.valueChanged] : [])),
    stop: async () => {
      await iterator.return?.();
      await ended;
    },
  };
}
