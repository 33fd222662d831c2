// --workers=N: N reader processes sharing one port through node:cluster (the primary accepts connections
// and hands them to workers in turn). Each worker is a whole reader — its own memory tier, its own consumer
// group (instance id suffixed -w1 … -wN), its own /metrics — so the feed reaches every one (invariant 3).
// The primary serves nothing: it starts the workers, stops them all together on SIGTERM / SIGINT, and
// stops them all if one dies, so a half-running set never looks healthy.
import cluster from 'node:cluster';
import { log } from './observability.js';

const WORKER_ENV = 'TIERCACHE_WORKER';

/** In a worker, its number (1 … N); undefined in the primary or in a process without workers. */
export function workerIndex(): number | undefined {
  if (cluster.isPrimary) return undefined;
  const index = Number(process.env[WORKER_ENV]);
  return Number.isInteger(index) && index > 0 ? index : undefined;
}

/** Runs the primary: forks `count` workers and exits once all have exited (1 if any failed). */
export function runPrimary(count: number): void {
  let alive = 0;
  let stopping = false;
  let exitCode = 0;
  const stopAll = (why: string): void => {
    if (stopping) return;
    stopping = true;
    log.info('stopping workers', { why, workers: alive });
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM');
  };
  cluster.on('exit', (worker, code, signal) => {
    alive--;
    if (!stopping || code !== 0) {
      log.error('worker exited', { pid: worker.process.pid, code, signal });
      exitCode = 1;
    }
    stopAll('a worker exited');
    if (alive === 0) {
      log.info('all workers stopped', { exitCode });
      process.exit(exitCode);
    }
  });
  for (let i = 1; i <= count; i++) {
    cluster.fork({ [WORKER_ENV]: String(i) });
    alive++;
  }
  log.info('workers started', { workers: count, pid: process.pid });
  process.on('SIGTERM', () => stopAll('SIGTERM'));
  process.on('SIGINT', () => stopAll('SIGINT'));
}
