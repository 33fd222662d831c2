// REST compatibility for the seed's clients: GET /read?keys=a,b,c and POST /write, in the seed's JSON
// shapes (a missing key reads as value "" with source "not_found"; a write answers "message":"success"; every
// error has an "error" field), served by the same loaders and the same write path as GraphQL.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { checkRead, InvalidInput, type Limits, type ResponseBudget } from '../domain/limits.js';
import type { Roles } from '../graphql/context.js';
import { toClientError, wrongRole } from '../graphql/errors.js';
import { createLoaders, readAll } from '../reader/loaders.js';
import type { ReadResult } from '../reader/reader.js';
import { decodeUtf8, Refusal } from './guard.js';
import { jsonString } from './json-text.js';
import { queryParam, type RouteUrl } from './route-url.js';

const STATUS: Record<string, number> = {
  BAD_USER_INPUT: 400,
  RESPONSE_TOO_LARGE: 400,
  WRONG_ROLE: 404,
  UNAVAILABLE: 503,
  PARTIAL_WRITE: 503,
  INTERNAL: 500,
};

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  sendJsonText(res, status, JSON.stringify(body));
}

/** JSON text already serialized; the headers as one flat list (no header object for Node to walk). */
export function sendJsonText(res: ServerResponse, status: number, text: string): void {
  sendBody(res, status, JSON_TYPE, text);
}

/**
 * A body as a string: Node writes the header block and a string body as one string. (As a Buffer the body
 * cost more CPU per hot answer, measured: one more allocation, and the header written as a chunk of its own.)
 */
export function sendBody(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, ['content-type', type, 'content-length', String(Buffer.byteLength(body))]);
  res.end(body);
}

const JSON_TYPE = 'application/json; charset=utf-8';

function sendError(res: ServerResponse, error: unknown, operation: string): void {
  if (error instanceof Refusal)
    return sendJson(res, error.status, { error: error.message, code: error.code });
  const gqlError = toClientError(error, operation);
  const code = String(gqlError.extensions.code ?? 'INTERNAL');
  sendJson(res, STATUS[code] ?? 500, { error: gqlError.message, code });
}

/**
 * GET /read. Synchronous when the memory tier holds every key (no loader, no promise); else it waits for
 * the request's loader, and the returned promise settles once the answer is sent.
 */
export function handleRead(
  url: RouteUrl,
  res: ServerResponse,
  roles: Roles,
  limits: Limits,
  budget: ResponseBudget,
): void | Promise<void> {
  try {
    if (!roles.reader) throw wrongRole('reader');
    const param = queryParam(url, 'keys');
    if (param === null) throw new InvalidInput('keys: missing, e.g. /read?keys=a,b,c', 'keys');
    const keys = param.split(',');
    checkRead(keys, limits);
    const results = readAll(roles.reader, createLoaders(roles.reader), keys, false);
    if (Array.isArray(results)) return answerRead(res, results, budget);
    return results.then(
      (r) => answerRead(res, r, budget),
      (error: unknown) => sendError(res, error, 'read'),
    );
  } catch (error) {
    sendError(res, error, 'read');
  }
}

function answerRead(res: ServerResponse, results: readonly ReadResult[], budget: ResponseBudget): void {
  try {
    budget.spend(results);
  } catch (error) {
    return sendError(res, error, 'read');
  }
  sendJsonText(res, 200, readItemsJson(results));
}

/**
 * The body of a read: what JSON.stringify gives for `{ items }`, each item `{key, value, source, exists}`
 * (the seed told a missing key by exists:false alone; its clients expect a string value all the same), built
 * without the objects. Every string is written as JSON.stringify writes it (jsonString, json-text.ts), so its
 * escaping is JSON.stringify's (test/unit/rest-serialization.test.ts compares both over hard strings).
 */
export function readItemsJson(results: readonly ReadResult[]): string {
  let text = '{"items":[';
  for (let i = 0; i < results.length; i++) {
    const r = results[i]!; // i < results.length
    if (i > 0) text += ',';
    text +=
      r.value === null
        ? `{"key":${jsonString(r.key)},"value":"","source":"not_found","exists":false}`
        : `{"key":${jsonString(r.key)},"value":${jsonString(r.value)},"source":${SOURCE[r.origin]},"exists":true}`;
  }
  return `${text}]}`;
}

const SOURCE: Record<ReadResult['origin'], string> = {
  memory: JSON.stringify('memory'),
  redis: JSON.stringify('redis'),
};

export async function handleWrite(req: IncomingMessage, res: ServerResponse, roles: Roles): Promise<void> {
  try {
    if (!roles.writer) throw wrongRole('writer');
    const body = await readJson(req);
    // JSON.parse answers unknown: each field read here is checked before use.
    const items = (body as { items?: unknown } | null)?.items;
    if (!Array.isArray(items))
      throw new InvalidInput('body: expected {"items":[{"key":…,"value":…}]}', 'items');
    const entries = items.map((item: unknown, i) => {
      // Checked on the next line.
      const { key, value } = (item ?? {}) as { key?: unknown; value?: unknown };
      if (typeof key !== 'string' || typeof value !== 'string') {
        throw new InvalidInput(`items[${i}]: key and value must be strings`, `items[${i}]`);
      }
      return { key, value };
    });
    // body has items (checked above): an object, whose ttlSeconds is checked on the next line.
    const ttl = (body as { ttlSeconds?: unknown }).ttlSeconds;
    if (ttl !== undefined && typeof ttl !== 'number')
      throw new InvalidInput('ttlSeconds: must be a number', 'ttlSeconds');
    const committed = await roles.writer.setValues(entries, ttl ?? null);
    sendJson(res, 200, {
      message: 'success',
      items: committed.map(({ key, version }) => ({ key, version: version.toString() })),
    });
  } catch (error) {
    sendError(res, error, 'write');
  }
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  // A request stream without setEncoding() yields Buffers; its type says any.
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const text = decodeUtf8(Buffer.concat(chunks), 'body');
  try {
    return JSON.parse(text);
  } catch {
    throw new InvalidInput('body: not valid JSON', 'body');
  }
}
