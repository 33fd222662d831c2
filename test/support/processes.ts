// Real processes for end-to-end tests: tiercache itself (as `npm start` would run it, from source) and a
// private redis-server whose command counters no other test file can disturb.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';

export interface Running {
  readonly process: ChildProcess;
  /** Everything it wrote to stderr so far (tiercache logs there). */
  readonly output: () => string;
  stop(): Promise<void>;
}

export interface RunningTiercache extends Running {
  /** http://127.0.0.1:PORT — /graphql, /read, /write, /ready, /metrics hang below it. */
  readonly base: string;
}

function track(child: ChildProcess): Running {
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    process: child,
    output: () => output,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(killer);
    },
  };
}

/** Starts `src/main.ts` with the given flags and environment; resolves once it listens. */
export async function startTiercache(args: string[], env: Record<string, string>): Promise<RunningTiercache> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', '--port=0', ...args], {
    env: { ...process.env, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const running = track(child);
  const base = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`tiercache did not start in 60 s:\n${running.output()}`)),
      60_000,
    );
    const onData = () => {
      const match = /^(?=.*"msg":"tiercache listening").*"url":"(http:\/\/[^"]+)\/graphql"/m.exec(
        running.output(),
      );
      if (match) {
        clearTimeout(timer);
        child.stderr?.off('data', onData);
        resolve(match[1] as string);
      }
    };
    child.stderr?.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`tiercache exited with ${code} before listening:\n${running.output()}`));
    });
  });
  return { ...running, base };
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/**
 * A redis-server of this test's own, on loopback, without persistence; the binary services:up installed. A
 * port given starts it again where an earlier one ran.
 */
export async function startPrivateRedis(port?: number): Promise<Running & { url: string }> {
  port ??= await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'tiercache-redis-'));
  const child = spawn(
    'redis-server',
    ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no', '--dir', dir],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const running = track(child);
  const url = `redis://127.0.0.1:${port}`;
  const deadline = Date.now() + 10_000;
  for (;;) {
    const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    // Refused connections are expected until the server listens; the loop below reports if it never does.
    probe.on('error', () => undefined);
    try {
      await probe.connect();
      await probe.ping();
      probe.disconnect();
      return { ...running, url };
    } catch (error) {
      probe.disconnect();
      if (Date.now() > deadline) {
        throw new Error(`private redis-server did not answer\n${running.output()}`, { cause: error });
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** Calls of one Redis command on that server so far (INFO commandstats). */
export async function commandCalls(redis: Redis, command: string): Promise<number> {
  const info = await redis.info('commandstats');
  const match = new RegExp(`^cmdstat_${command}:calls=(\\d+)`, 'm').exec(info);
  return match ? Number(match[1]) : 0;
}

export interface GraphQLResponse<T> {
  data?: T;
  errors?: { message: string; extensions?: { code?: string } & Record<string, unknown> }[];
}

export async function graphql<T = Record<string, unknown>>(
  base: string,
  query: string,
  variables: Record<string, unknown> = {},
): Promise<GraphQLResponse<T>> {
  const res = await fetch(`${base}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query, variables }),
  });
  return (await res.json()) as GraphQLResponse<T>;
}

/** Polls `probe` until it returns a value (not undefined), or fails after `timeoutMs` saying what it waited for. */
export async function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
