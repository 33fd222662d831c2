// The processes one benchmark run starts (tiercache from dist/, the baseline server): started on free
// loopback ports, found by the URL they log, and all stopped again, checked with ps, however the run ends.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export interface Started {
  readonly name: string;
  readonly pid: number;
  /** http://127.0.0.1:PORT, from the process's own "listening" log line. */
  readonly base: string;
  /** The last part of what it wrote (for error messages). */
  output(): string;
}

// dist/ and scripts/ are found from the project root, wherever `npm run bench` was started.
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const OUTPUT_KEEP = 64 * 1024;
const START_TIMEOUT_MS = 60_000;
const STOP_GRACE_MS = 15_000;

const children = new Map<number, ChildProcess>();
/** Every pid started, exited or not: the final ps check covers them all. */
const everStarted = new Set<number>();

/**
 * Spawns `node args…` and resolves once a line of its output matches `listening`, whose first group is
 * the base URL.
 */
export function startNode(
  name: string,
  args: string[],
  env: Record<string, string>,
  listening: RegExp,
): Promise<Started> {
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (child.pid === undefined) return Promise.reject(new Error(`could not start ${name}`));
  const pid = child.pid;
  children.set(pid, child);
  everStarted.add(pid);
  child.once('exit', () => children.delete(pid));
  let output = '';
  const append = (chunk: Buffer): void => {
    output = (output + chunk.toString('utf8')).slice(-OUTPUT_KEEP);
  };
  child.stdout.on('data', append);
  child.stderr.on('data', append);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => fail(`did not log its URL within ${START_TIMEOUT_MS / 1000} s`),
      START_TIMEOUT_MS,
    );
    const onData = (): void => {
      const base = listening.exec(output)?.[1];
      if (base === undefined) return;
      done();
      resolve({ name, pid, base, output: () => output });
    };
    const onExit = (code: number | null, signal: string | null): void =>
      fail(`exited (${signal ?? `code ${code}`}) before listening`);
    function done(): void {
      clearTimeout(timer);
      child.stdout.off('data', onData);
      child.stderr.off('data', onData);
      child.off('exit', onExit);
    }
    function fail(why: string): void {
      done();
      reject(new Error(`${name} ${why}:\n${output.slice(-4000)}`));
    }
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', onExit);
  });
}

/** The tiercache process from dist/, on any free port, as `npm start` would run it after a build. */
export function startTiercache(
  name: string,
  flags: string[],
  env: Record<string, string>,
  nodeFlags: string[] = [],
): Promise<Started> {
  return startNode(
    name,
    [...nodeFlags, 'dist/main.js', '--port=0', ...flags],
    env,
    /^(?=.*"msg":"tiercache listening").*"url":"(http:\/\/[^"]+)\/graphql"/m,
  );
}

/** SIGTERM (a clean stop: readers delete their consumer groups), SIGKILL after a grace period. */
export async function stop(pid: number): Promise<void> {
  const child = children.get(pid);
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const killer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
  await exited;
  clearTimeout(killer);
}

/** Stops every process started here and returns the pids that `ps` still lists afterwards (none, normally). */
export async function stopAll(): Promise<number[]> {
  await Promise.all([...children.keys()].map((pid) => stop(pid)));
  const pids = [...everStarted];
  if (pids.length === 0) return [];
  const ps = spawnSync('ps', ['-o', 'pid=', '-p', pids.join(',')], { encoding: 'utf8' });
  return ps.stdout
    .split('\n')
    .map((line) => Number(line.trim()))
    .filter((pid) => pid > 0);
}
