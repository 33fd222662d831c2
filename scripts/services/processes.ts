// The process and port plumbing every service shares: spawning detached servers, telling whether a recorded
// pid is still ours, stopping (or killing) it, waiting for it to answer, running one-off commands, and
// finding free loopback ports.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface Service {
  name: string;
  /** Text in the process's command line that proves a recorded pid is still ours and not a reused one. */
  marker: string;
  stopMs: number;
}

export function log(message: string): void {
  // stdout carries only the env lines, so that `eval "$(npm run -s services:up)"` works.
  process.stderr.write(`[services] ${message}\n`);
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export function readText(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

export function tail(file: string, lines = 40): string {
  const text = readText(file);
  return text === undefined ? '(no log written)' : text.trimEnd().split('\n').slice(-lines).join('\n');
}

/** Starts a server that outlives this process; its output goes to `logFile` (appended with `append`). */
export function spawnDetached(command: string, args: string[], logFile: string, append = false): number {
  const out = fs.openSync(logFile, append ? 'a' : 'w');
  try {
    // Detached with file stdio: the service outlives this process (npm run services:up returns at once)
    // and never blocks on a pipe nobody reads.
    const child = spawn(command, args, { cwd: ROOT, detached: true, stdio: ['ignore', out, out] });
    child.on('error', () => undefined); // reported below via the missing pid
    child.unref();
    if (child.pid === undefined) throw new Error(`could not start ${command}`);
    return child.pid;
  } finally {
    fs.closeSync(out);
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    // ESRCH: gone. EPERM: another user's process holds the pid now, which for us is as good as gone.
    return false;
  }
  // A zombie accepts signal 0 but is already dead; only its parent's wait() is pending.
  const stat = readText(`/proc/${pid}/stat`);
  const processState = stat ? /\) (\S)/.exec(stat)?.[1] : undefined;
  return processState !== 'Z' && processState !== 'X';
}

export function isOurProcess(service: Service, pid: number): boolean {
  if (!isAlive(pid)) return false;
  const cmdline = readText(`/proc/${pid}/cmdline`);
  // Without /proc (macOS) the pid alone must do.
  return cmdline === undefined ? true : cmdline.replaceAll('\0', ' ').includes(service.marker);
}

export async function stopPid(service: Service, pid: number): Promise<void> {
  if (!isOurProcess(service, pid)) {
    log(`${service.name} (pid ${pid}) is not running`);
    return;
  }
  log(`stopping ${service.name} (pid ${pid})`);
  process.kill(pid, 'SIGTERM');
  if (await waitForExit(pid, service.stopMs)) return;
  log(`${service.name} (pid ${pid}) ignored SIGTERM for ${service.stopMs} ms; killing it`);
  await killPid(service, pid);
}

/** SIGKILL, as a crash would: no shutdown, no flush. Only for a pid that is still ours. */
export async function killPid(service: Service, pid: number): Promise<void> {
  if (!isOurProcess(service, pid)) return;
  process.kill(pid, 'SIGKILL');
  if (!(await waitForExit(pid, 5_000))) throw new Error(`${service.name} (pid ${pid}) survived SIGKILL`);
}

export async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (isAlive(pid)) {
    if (Date.now() > deadline) return false;
    await sleep(100);
  }
  return true;
}

/** Retries `probe` until it succeeds, failing early with the log's tail if the process died. */
export async function waitUntil(
  service: Service,
  pid: number,
  timeoutMs: number,
  logFile: string,
  probe: () => Promise<void>,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    if (!isOurProcess(service, pid)) {
      throw new Error(
        `${service.name} (pid ${pid}) exited during start-up.\n--- tail of ${logFile} ---\n${tail(logFile)}`,
      );
    }
    try {
      await probe();
      return;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `${service.name} (pid ${pid}) did not answer within ${timeoutMs / 1000} s (last error: ` +
          `${errorMessage(lastError)}).\n--- tail of ${logFile} ---\n${tail(logFile)}`,
      );
    }
    await sleep(200);
  }
}

export async function answers(probe: () => Promise<void>): Promise<boolean> {
  try {
    await probe();
    return true;
  } catch {
    return false;
  }
}

export function commandWorks(command: string, args: string[]): boolean {
  const result = spawnSync(command, args, { stdio: 'ignore' });
  return !result.error && result.status === 0;
}

/** Runs a command to completion; its output goes to our stderr, or is captured when `capture` is set. */
export function run(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
  capture = false,
): string {
  const result = spawnSync(command, args, {
    cwd: ROOT,
    env,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    // Output to stderr keeps stdout for the env lines.
    stdio: capture ? ['ignore', 'pipe', 'pipe'] : ['ignore', 2, 2],
  });
  if (result.error) throw new Error(`could not run ${command}: ${result.error.message}`);
  const output = `${result.stdout ?? ''}${result.stderr ?? ''}`;
  if (result.status !== 0) {
    throw new Error(
      `\`${command} ${args.join(' ')}\` failed with ${result.signal ?? `exit code ${result.status}`}` +
        (capture ? `:\n${output}` : ' (output above)'),
    );
  }
  return output;
}

export function withTimeout<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}`)),
      Math.max(timeoutMs, 0),
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// ---------------------------------------------------------------------------------------------------------
// Ports

export async function freePorts(count: number): Promise<number[]> {
  // All held open at once, so the OS cannot hand out the same port twice.
  const servers: net.Server[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < count; i++) {
      const server = net.createServer();
      servers.push(server);
      ports.push(await listen(server, 0));
    }
    return ports;
  } finally {
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  }
}

export async function freePort(): Promise<number> {
  const [port] = await freePorts(1);
  if (port === undefined) throw new Error('could not get a free port');
  return port;
}

export async function isPortFree(port: number): Promise<boolean> {
  const server = net.createServer();
  try {
    await listen(server, port);
    return true;
  } catch {
    return false;
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
}

function listen(server: net.Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') reject(new Error('listening socket has no port'));
      else resolve(address.port);
    });
  });
}
