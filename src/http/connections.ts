// How long and how many client connections the HTTP server keeps: request and header timeouts in seconds
// (not Node's 300 s), a cap on open connections, and an idle keep-alive timeout that survives a stalled
// process.
//
// The idle timeout is Node's own keep-alive timer (it also sends the `Keep-Alive: timeout=N` hint), with one
// change: Node destroys a connection as soon as that timer fires, in the timers phase, before the event loop
// reads sockets. A process stalled longer than the timeout (SIGSTOP, a long GC, a loaded host) would wake
// with every idle timer expired and destroy connections whose next request is already waiting in the
// kernel; the clients would see ECONNRESET for requests that were never read. Here the timeout only
// proposes closing: the decision waits one turn (setImmediate runs after the poll phase), and a connection
// that received bytes meanwhile stays (Node arms its timer again after that request's response).
// Nothing of this runs per request: per-request bookkeeping (a timer and a listener each) cost about 9 µs of
// a hot read's CPU.
import type { Server } from 'node:http';
import type { Socket } from 'node:net';

export interface ConnectionLimits {
  requestTimeoutMs: number;
  headersTimeoutMs: number;
  keepAliveTimeoutMs: number;
  maxConnections: number;
}

export function limitConnections(server: Server, limits: ConnectionLimits): void {
  server.requestTimeout = limits.requestTimeoutMs;
  // Node requires headersTimeout <= requestTimeout.
  server.headersTimeout = Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs);
  server.maxConnections = limits.maxConnections;
  server.keepAliveTimeout = limits.keepAliveTimeoutMs;
  // With a listener here Node no longer destroys a connection whose (keep-alive) timer fired; we do, a turn
  // later, unless it was read from meanwhile.
  server.on('timeout', (socket: Socket) => {
    const read = socket.bytesRead;
    setImmediate(() => {
      if (socket.bytesRead === read && !socket.destroyed) socket.destroy();
    });
  });
}
