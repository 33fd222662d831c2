// The HTTP server of one process: GraphQL at /graphql (yoga), the REST compatibility routes, readiness and
// Prometheus metrics; it enforces the request size limit before any body is read.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { readFileSync } from 'node:fs';
import { createSchema, createYoga } from 'graphql-yoga';
import type { Limits } from '../domain/limits.js';
import { createLoaders, type RequestContext, type Roles } from '../graphql/context.js';
import { createResolvers } from '../graphql/resolvers.js';
import { log, metrics, reportError } from '../observability.js';
import { handleRead, handleWrite, sendJson } from './rest.js';

// Two levels up from src/http or dist/http: the schema ships beside both.
const SCHEMA_PATH = new URL('../../schema/schema.graphql', import.meta.url);

export interface ServerOptions {
  roles: Roles;
  limits: Limits;
  maxRequestBytes: number;
}

const requests = metrics.counter('tiercache_http_requests_total', 'HTTP requests, by route');
// Bound once, and only for known routes: a label per unknown path would let any client grow the registry.
const requestsByRoute = new Map(
  ['/graphql', '/read', '/write', '/metrics', '/ready', '/health'].map((route) => [
    route,
    requests.bind({ route }),
  ]),
);
const otherRequests = requests.bind({ route: 'other' });

export function createHttpServer({ roles, limits, maxRequestBytes }: ServerOptions): Server {
  const yoga = createYoga<object, RequestContext>({
    schema: createSchema<RequestContext>({
      typeDefs: readFileSync(SCHEMA_PATH, 'utf8'),
      resolvers: createResolvers(limits),
    }),
    graphqlEndpoint: '/graphql',
    healthCheckEndpoint: '/health',
    landingPage: false,
    context: () => ({ ...roles, loaders: createLoaders(roles.reader) }),
    logging: {
      debug: (...args) => log.debug('yoga', { args }),
      info: (...args) => log.info('yoga', { args }),
      warn: (...args) => log.warn('yoga', { args }),
      error: (...args) => reportError('yoga', 'yoga error', args[0], { args: args.slice(1) }),
    },
  });

  const route = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    (requestsByRoute.get(url.pathname) ?? otherRequests).inc();
    if (req.method === 'POST' || req.method === 'PUT') {
      const length = req.headers['content-length'];
      if (length === undefined)
        return sendJson(res, 411, { error: 'a request body needs a Content-Length header' });
      if (Number(length) > maxRequestBytes) {
        res.setHeader('connection', 'close');
        return sendJson(res, 413, { error: `request body over ${maxRequestBytes} bytes` });
      }
    }
    if (url.pathname === '/read' && req.method === 'GET') return handleRead(url, res, roles, limits);
    if (url.pathname === '/write' && req.method === 'POST') return handleWrite(req, res, roles);
    if (url.pathname === '/metrics' && req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
      return void res.end(metrics.render());
    }
    if (url.pathname === '/ready' && req.method === 'GET') {
      const ready = roles.reader ? roles.reader.feedCurrent : true;
      return sendJson(res, ready ? 200 : 503, { ready });
    }
    await yoga.requestListener(req, res);
  };

  return createServer((req, res) => {
    route(req, res).catch((error: unknown) => {
      reportError('http', 'request failed', error, { url: req.url });
      if (!res.headersSent) sendJson(res, 500, { error: 'internal error' });
      else res.destroy();
    });
  });
}
