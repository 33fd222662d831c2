// How long and how many client connections the HTTP server keeps: request and header timeouts in seconds
// (not Node's 300 s), a cap on open connections, and an idle keep-alive timeout that survives a stalled
// process.
//
// Why not Node's own keepAliveTimeout: its timer fires in the timers phase, before the event loop reads
// sockets. A process stalled longer than the timeout (SIGSTOP, a long GC, a loaded host) wakes with every
// idle timer expired and destroys connections whose next request is already waiting in the kernel; the
// clients see ECONNRESET for requests that were never read. Here the timer only proposes closing: the
// decision waits one turn (setImmediate runs after the poll phase), by which time a waiting request has
// been read and the connection is busy again.
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

export interface ConnectionLimits {
  requestTimeoutMs: number;
  headersTimeoutMs: number;
  keepAliveTimeoutMs: number;
  maxConnections: number;
}

interface Idle {
  busy: number;
  timer: NodeJS.Timeout | null;
}

export function limitConnections(server: Server, limits: ConnectionLimits): void {
  server.requestTimeout = limits.requestTimeoutMs;
  // Node requires headersTimeout <= requestTimeout.
  server.headersTimeout = Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs);
  server.maxConnections = limits.maxConnections;
  server.keepAliveTimeout = 0; // replaced below
  const idle = new WeakMap<Socket, Idle>();
  const hint = Math.floor(limits.keepAliveTimeoutMs / 1000);

  const arm = (socket: Socket, state: Idle): void => {
    if (state.timer) clearTimeout(state.timer);
    state.timer = setTimeout(() => {
      state.timer = null;
      setImmediate(() => {
        if (state.busy === 0 && state.timer === null && !socket.destroyed) socket.destroy();
      });
    }, limits.keepAliveTimeoutMs);
    state.timer.unref();
  };

  server.on('connection', (socket: Socket) => {
    const state: Idle = { busy: 0, timer: null };
    idle.set(socket, state);
    arm(socket, state);
    socket.once('close', () => {
      if (state.timer) clearTimeout(state.timer);
      state.timer = null;
    });
  });
  // Before the route handler, which may answer synchronously: the hint must be set before headers go out.
  server.prependListener('request', (req: IncomingMessage, res: ServerResponse) => {
    const state = idle.get(req.socket);
    if (!state) return;
    state.busy++;
    // The hint Node sends with its own timer: clients stop reusing a connection before we close it.
    if (hint > 0) res.setHeader('keep-alive', `timeout=${hint}`);
    if (state.timer) clearTimeout(state.timer);
    state.timer = null;
    res.once('close', () => {
      state.busy--;
      if (state.busy === 0 && !req.socket.destroyed) arm(req.socket, state);
    });
  });
  // An upgraded connection (WebSocket) belongs to whoever took the upgrade, and has its own liveness.
  // With no one else listening, Node would have refused the upgrade; so do we.
  server.prependListener('upgrade', (req: IncomingMessage, socket: Socket) => {
    const state = idle.get(socket);
    if (state?.timer) clearTimeout(state.timer);
    idle.delete(socket);
    if (server.listenerCount('upgrade') === 1) socket.destroy();
  });
}
