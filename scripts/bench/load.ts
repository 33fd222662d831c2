// The two load generators: autocannon for HTTP (keep-alive, N connections, fixed duration) and
// redis-benchmark for the raw store, each reduced to the same shape of result.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import autocannon from 'autocannon';
import { distribution, type Distribution } from './stats.js';

export interface LoadResult {
  /** Responses with a 2xx status. */
  ok: number;
  seconds: number;
  rps: number;
  latencyMs: Distribution;
  /** Non-2xx answers, connection errors and timeouts: any of them makes the figures suspect. */
  failed: number;
  /**
   * CPU time the server process (and its worker processes) spent per 2xx answer, in µs: what an answer
   * costs the server whatever else shares the cores, unlike req/s. Absent when the server's pid is unknown.
   */
  serverCpuUsPerRequest?: number;
}

/** CPU time (user + system) of a process and its direct children so far, in ms, from /proc (Linux). */
export function cpuMs(pid: number): number {
  const ticks = (p: number): number => {
    try {
      // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
      const stat = fs.readFileSync(`/proc/${p}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return Number(fields[11]) + Number(fields[12]);
    } catch {
      return 0;
    }
  };
  let children: number[] = [];
  try {
    children = fs
      .readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    // No children file: the process alone.
  }
  // Linux reports these in clock ticks of 1/100 s (USER_HZ) on every architecture it runs on.
  return [pid, ...children].reduce((sum, p) => sum + ticks(p), 0) * 10;
}

export interface HttpLoad {
  url: string;
  /** POST this body; without one, GET. */
  body?: string;
  connections: number;
  durationSeconds: number;
}

/** POSTs `body` (or GETs) over `connections` keep-alive connections, one request in flight on each, for the duration. */
export function httpLoad({ url, body, connections, durationSeconds }: HttpLoad): Promise<LoadResult> {
  // Latencies are taken from every response event, because autocannon's own histogram truncates to
  // whole milliseconds, too coarse for sub-millisecond answers.
  const latencies: number[] = [];
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url,
        connections,
        duration: durationSeconds,
        pipelining: 1,
        timeout: 10,
        ...(body === undefined
          ? { method: 'GET' as const }
          : { method: 'POST' as const, headers: { 'content-type': 'application/json' }, body }),
      },
      (error, result) => {
        if (error) return reject(error);
        resolve({
          ok: latencies.length,
          seconds: result.duration,
          rps: latencies.length / result.duration,
          latencyMs: distribution(latencies),
          failed: result.non2xx + result.errors + result.timeouts,
        });
      },
    );
    instance.on('response', (_client, statusCode, _bytes, responseTime) => {
      if (statusCode >= 200 && statusCode < 300) latencies.push(responseTime);
    });
  });
}

export interface RedisBenchmarkResult {
  command: string;
  requests: number;
  rps: number;
  /** redis-benchmark prints p50, p95 and p99, not p90. */
  latencyMs: { mean: number; p50: number; p95: number; p99: number; max: number };
}

/** Where redis-benchmark is (Debian's redis-tools, installed with redis-server), or undefined. */
export function findRedisBenchmark(): string | undefined {
  for (const candidate of ['redis-benchmark', '/usr/bin/redis-benchmark', '/usr/local/bin/redis-benchmark']) {
    const probe = spawnSync(candidate, ['--version'], { stdio: 'ignore' });
    if (!probe.error && probe.status === 0) return candidate;
  }
  return undefined;
}

/** Runs one command `requests` times over `clients` connections (no pipelining) and parses its CSV line. */
export function redisBenchmark(
  binary: string,
  redisUrl: string,
  clients: number,
  requests: number,
  command: string[],
): RedisBenchmarkResult {
  const url = new URL(redisUrl);
  const args = ['-h', url.hostname, '-p', url.port || '6379', '-c', String(clients), '-n', String(requests)];
  if (url.password) args.push('-a', decodeURIComponent(url.password));
  if (url.username) args.push('--user', decodeURIComponent(url.username));
  const run = spawnSync(binary, [...args, '--csv', ...command], { encoding: 'utf8', timeout: 120_000 });
  if (run.error || run.status !== 0) {
    throw new Error(`redis-benchmark failed: ${run.error?.message ?? `exit ${run.status}`}\n${run.stderr}`);
  }
  // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
  const line = run.stdout.trim().split('\n').pop() ?? '';
  const fields = [...line.matchAll(/"([^"]*)"/g)].map((m) => m[1] as string);
  const [, rps, mean, , p50, p95, p99, max] = fields.map(Number);
  if (fields.length !== 8 || [rps, mean, p50, p95, p99, max].some((n) => !Number.isFinite(n))) {
    throw new Error(`unexpected redis-benchmark output:\n${run.stdout}`);
  }
  return {
    command: `${command[0] ?? ''} of ${command.length - 1} keys`,
    requests,
    rps: rps as number,
    latencyMs: {
      mean: mean as number,
      p50: p50 as number,
      p95: p95 as number,
      p99: p99 as number,
      max: max as number,
    },
  };
}
