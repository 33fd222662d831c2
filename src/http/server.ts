// The HTTP server of one process: GraphQL at /graphql (yoga), the REST compatibility routes, readiness and
// Prometheus metrics; the request guard and the size limit run before any body is read.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { readFileSync } from 'node:fs';
import { createSchema, createYoga } from 'graphql-yoga';
import { ResponseBudget, type Limits } from '../domain/limits.js';
import type { RequestContext, Roles } from '../graphql/context.js';
import { createLoaders } from '../reader/loaders.js';
import { createResolvers } from '../graphql/resolvers.js';
import { countRefusal, log, metrics, reportError } from '../observability.js';
import { limitConnections, type ConnectionLimits } from './connections.js';
import { Guard, type Access, type GuardOptions, type Refusal } from './guard.js';
import { useGraphQLSSE } from '@graphql-yoga/plugin-graphql-sse';
import { renderGraphiQL } from '@graphql-yoga/render-graphiql';
import { Connection } from '../reader/subscriptions.js';
import { servePage } from './pages.js';
import { handleRead, handleWrite, sendJson } from './rest.js';
import { attachWebSocket, type WebSocketTransport } from './websocket.js';
import { FastPath } from './fast-path.js';
import { ROUTES, routeOf } from './route-url.js';

// Two levels up from src/http or dist/http: the schema ships beside both.
const SCHEMA_PATH = new URL('../../schema/schema.graphql', import.meta.url);

export interface ServerOptions {
  roles: Roles;
  limits: Limits;
  /** One body limit for every route, GraphQL included. */
  maxRequestBytes: number;
  maxResponseBytes: number;
  security: GuardOptions;
  connections: ConnectionLimits;
  /** Answer plain POST application/json queries with the compiled fast path (fast-path.ts); yoga does the rest. */
  fastPath: boolean;
}

const requests = metrics.counter('tiercache_http_requests_total', 'HTTP requests, by route');
// Bound once, and only for known routes: a label per unknown path would let any client grow the registry.
const requestsByRoute = new Map<string, ReturnType<typeof requests.bind>>(
  ROUTES.map((route) => [route, requests.bind({ route })]),
);
const otherRequests = requests.bind({ route: 'other' });

export interface HttpServer {
  readonly server: Server;
  /** GraphQL over WebSocket on the same port and path. */
  readonly websocket: WebSocketTransport;
}

/** What yoga's context factory is handed: an HTTP request, or a WebSocket operation's own context. */
interface YogaInitial {
  request: Request;
  access?: Access;
  connection?: Connection;
}

// The single-connection mode of the graphql-sse protocol: one stream per token, many operations on it.
const STREAM_TOKEN_HEADER = 'x-graphql-event-stream-token';

/** GraphQL clients get the GraphQL error shape; REST clients their `{"error": …}`. */
function sendRefusal(res: ServerResponse, route: string, refusal: Refusal): void {
  countRefusal(refusal.code);
  for (const [name, value] of Object.entries(refusal.headers)) res.setHeader(name, value);
  const body =
    route === '/graphql'
      ? { errors: [{ message: refusal.message, extensions: { code: refusal.code, ...refusal.extensions } }] }
      : { error: refusal.message, code: refusal.code };
  sendJson(res, refusal.status, body);
}

export function createHttpServer({
  roles,
  limits,
  maxRequestBytes,
  maxResponseBytes,
  security,
  connections,
  fastPath,
}: ServerOptions): HttpServer {
  const guard = new Guard(security);
  // An SSE request is its own connection, except in single-connection mode, where the token is.
  const streams = new Map<string, Connection>();
  const connectionOf = (request: Request): Connection => {
    const token = request.headers.get(STREAM_TOKEN_HEADER) ?? new URL(request.url).searchParams.get('token');
    if (token === null) return new Connection();
    let connection = streams.get(token);
    if (!connection) {
      const created = (connection = new Connection(() => streams.delete(token)));
      streams.set(token, created);
    }
    return connection;
  };
  const contextFor = (access: Access, connection: Connection, provisional = false): RequestContext => ({
    // Named one by one: a spread of `roles` costs a property walk per request.
    reader: roles.reader,
    writer: roles.writer,
    live: roles.live,
    loaders: createLoaders(roles.reader),
    budget: new ResponseBudget(maxResponseBytes),
    access,
    connection,
    provisional,
  });
  const schema = createSchema<RequestContext>({
    typeDefs: readFileSync(SCHEMA_PATH, 'utf8'),
    resolvers: createResolvers(limits),
  });
  // Queries only: a fast-path request never subscribes, so its connection never counts a subscription and
  // one serves them all.
  const fastConnection = new Connection();
  const guardPlugin = guard.plugin();
  const fast = fastPath
    ? new FastPath(schema, (authorization) => contextFor(guard.access(authorization), fastConnection, true), {
        plugin: guardPlugin,
        check: (document, operationName, variables, context) =>
          guard.checkOperation(document, operationName, variables, context),
      })
    : null;
  const yoga = createYoga<object, RequestContext>({
    schema,
    graphqlEndpoint: '/graphql',
    healthCheckEndpoint: '/health',
    landingPage: false,
    // GraphiQL for browsers at /graphql, its assets bundled (no CDN); subscriptions over yoga's SSE.
    graphiql: {
      title: 'tiercache',
      defaultQuery:
        'subscription {\n  valueChanged(keys: ["hello"], includeInitial: true) {\n    key value version op initial\n  }\n}\n',
    },
    renderGraphiQL,
    // The guard answers CORS for every route; yoga's own default would echo any origin.
    cors: false,
    maxRequestBodySize: maxRequestBytes,
    plugins: [guardPlugin, useGraphQLSSE({ endpoint: '/graphql/stream' }), ...(fast ? [fast.plugin()] : [])],
    // Operations over WebSocket arrive with their socket's access and connection (src/http/websocket.ts).
    context: ({ request, access, connection }: YogaInitial) =>
      contextFor(
        access ?? guard.access(request.headers.get('authorization')),
        connection ?? connectionOf(request),
      ),
    logging: {
      debug: (...args) => log.debug('yoga', { args }),
      info: (...args) => log.info('yoga', { args }),
      warn: (...args) => log.warn('yoga', { args }),
      error: (...args) => reportError('yoga', 'yoga error', args[0], { args: args.slice(1) }),
    },
  });

  /** The graphql route: the compiled fast path when the request is its shape, yoga for the rest. */
  const graphqlRoute = (req: IncomingMessage, res: ServerResponse): void | Promise<void> => {
    if (!fast || !FastPath.accepts(req)) return yoga.requestListener(req, res);
    // The body is read through stream events and answered from its end, without a promise: what follows
    // completes at once when memory holds every key.
    readBody(
      req,
      (body) => {
        const answered = fast.answer(yoga, req, res, body);
        if (answered === true) return;
        if (answered === false) return toYoga(req, res, body);
        return answered.then((done) => (done ? undefined : toYoga(req, res, body)));
      },
      (error) => failed(req, res, error),
    );
  };

  const toYoga = (req: IncomingMessage, res: ServerResponse, body: Buffer): void | Promise<void> => {
    // whatwg-node takes a body read beforehand from `req.body` (as behind body-parsing frameworks), as an
    // async iterable: a Buffer there would be enumerated key by key.
    Object.assign(req, {
      body: {
        bytes: body.length,
        async *[Symbol.asyncIterator]() {
          yield body;
        },
      },
    });
    return yoga.requestListener(req, res);
  };

  /** Routes a request; a promise only for the routes that wait (a hot read from memory does not). */
  const route = (req: IncomingMessage, res: ServerResponse): void | Promise<void> => {
    const url = routeOf(req.url ?? '/');
    (requestsByRoute.get(url.pathname) ?? otherRequests).inc();
    if (guard.cors(req, res)) return;
    if (req.method === 'POST' || req.method === 'PUT') {
      const length = req.headers['content-length'];
      if (length === undefined)
        return sendJson(res, 411, { error: 'a request body needs a Content-Length header' });
      if (Number(length) > maxRequestBytes) {
        res.setHeader('connection', 'close');
        return sendJson(res, 413, {
          error: `request body over ${maxRequestBytes} bytes (MAX_REQUEST_BYTES)`,
          code: 'REQUEST_ENTITY_TOO_LARGE',
        });
      }
    }
    const refusal = guard.checkHttp(req, url.pathname);
    if (refusal) return sendRefusal(res, url.pathname, refusal);
    if (url.pathname === '/read' && req.method === 'GET')
      return handleRead(url, res, roles, limits, new ResponseBudget(maxResponseBytes));
    if (url.pathname === '/write' && req.method === 'POST') return handleWrite(req, res, roles);
    if (url.pathname === '/read' || url.pathname === '/write') {
      const allowed = url.pathname === '/read' ? 'GET' : 'POST';
      res.setHeader('allow', allowed);
      return sendJson(res, 405, { error: `${url.pathname} answers ${allowed} only` });
    }
    if (url.pathname === '/metrics' && req.method === 'GET') return sendMetrics(res);
    if (url.pathname === '/live' && req.method === 'GET') return servePage(url, res);
    if (url.pathname === '/ready' && req.method === 'GET') {
      const ready = roles.reader ? roles.reader.feedCurrent : true;
      return sendJson(res, ready ? 200 : 503, { ready });
    }
    if (url.pathname === '/graphql') return graphqlRoute(req, res);
    return yoga.requestListener(req, res);
  };

  const failed = (req: IncomingMessage, res: ServerResponse, error: unknown): void => {
    reportError('http', 'request failed', error, { url: req.url });
    if (!res.headersSent) sendJson(res, 500, { error: 'internal error' });
    else res.destroy();
  };

  // Node checks header and request deadlines on this interval (30 s by default, longer than the deadlines).
  const server = createServer({ connectionsCheckingInterval: 1000 }, (req, res) => {
    try {
      const pending = route(req, res);
      if (pending) pending.catch((error: unknown) => failed(req, res, error));
    } catch (error) {
      failed(req, res, error);
    }
  });
  limitConnections(server, connections);
  return { server, websocket: attachWebSocket(server, yoga, guard) };
}

async function sendMetrics(res: ServerResponse): Promise<void> {
  const text = await metrics.render();
  res.writeHead(200, { 'content-type': metrics.contentType });
  res.end(text);
}

/**
 * The whole body, handed to `then` (whose promise, if it returns one, is watched too); its length was
 * checked against MAX_REQUEST_BYTES from Content-Length before. Whatever fails goes to `fail`.
 */
function readBody(
  req: IncomingMessage,
  then: (body: Buffer) => void | Promise<void>,
  fail: (error: unknown) => void,
): void {
  // Stream events rather than an async iterator or a promise: nothing per chunk or per request to settle.
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.once('end', () => {
    try {
      const pending = then(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)); // the one chunk is there
      if (pending) pending.catch(fail);
    } catch (error) {
      fail(error);
    }
  });
  req.once('error', fail);
}
