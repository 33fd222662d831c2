// GraphQL over WebSocket (the graphql-ws protocol) on the HTTP server's own port and /graphql path: every
// operation goes through yoga's envelope (parse, validate, context, execute, subscribe), so it meets the
// same schema, guard plugin and resolvers as HTTP; each socket is one Connection for the per-connection
// limit, and its token (the upgrade's Authorization header, or connection_init's `authorization`) is
// checked by the guard when the socket opens.
import type { Server } from 'node:http';
import type { ExecutionArgs } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer, type WebSocket } from 'ws';
import type { YogaServerInstance } from 'graphql-yoga';
import { log } from '../observability.js';
import { Connection } from '../reader/subscriptions.js';
import type { RequestContext } from '../graphql/context.js';
import type { Access, Guard } from './guard.js';

/** What yoga's envelope hands each operation, kept on the args so execute/subscribe use its own. */
interface Enveloped {
  execute(args: ExecutionArgs): unknown;
  subscribe(args: ExecutionArgs): unknown;
}

export interface WebSocketTransport {
  /** Closes every socket (1001, going away) and stops accepting new ones. */
  close(): Promise<void>;
}

export function attachWebSocket(
  server: Server,
  yoga: YogaServerInstance<object, RequestContext>,
  guard: Guard,
): WebSocketTransport {
  const wss = new WebSocketServer({ server, path: yoga.graphqlEndpoint });
  const sockets = new WeakMap<WebSocket, { access: Access; connection: Connection }>();
  useServer(
    {
      // The read check, once per socket: a refused socket closes with 4403 Forbidden.
      onConnect: (ctx) => {
        const param = ctx.connectionParams?.authorization;
        const authorization =
          typeof param === 'string' ? param : (ctx.extra.request.headers.authorization ?? null);
        const access = guard.access(authorization);
        if (guard.refuseReader(access)) return false;
        sockets.set(ctx.extra.socket, { access, connection: new Connection() });
        return true;
      },
      // Both run the enveloped executor that onSubscribe put on the root value.
      execute: (args) => (args.rootValue as Enveloped).execute(args) as never,
      subscribe: (args) => (args.rootValue as Enveloped).subscribe(args) as never,
      onSubscribe: async (ctx, _id, payload) => {
        const socket = sockets.get(ctx.extra.socket);
        if (!socket) throw new Error('operation on a socket that was not accepted');
        const { schema, execute, subscribe, contextFactory, parse, validate } = yoga.getEnveloped({
          ...ctx,
          req: ctx.extra.request,
          socket: ctx.extra.socket,
          params: payload,
          access: socket.access,
          connection: socket.connection,
        });
        const args: ExecutionArgs = {
          schema,
          operationName: payload.operationName ?? null,
          document: parse(payload.query),
          variableValues: payload.variables ?? null,
          contextValue: await contextFactory(),
          rootValue: { execute, subscribe } satisfies Enveloped,
        };
        const errors = validate(args.schema, args.document);
        return errors.length > 0 ? errors : args;
      },
    },
    wss,
  );
  wss.on('error', (error) => log.warn('websocket server error', { error }));
  return {
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of wss.clients) socket.close(1001, 'server stopping');
        wss.close(() => resolve());
        // Sockets that do not answer the close handshake are cut.
        setTimeout(() => {
          for (const socket of wss.clients) socket.terminate();
        }, 1000).unref();
      }),
  };
}
