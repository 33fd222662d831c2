// A stop is quick and clean whatever Kafka does: SIGTERM / SIGINT end the process within SHUTDOWN_TIMEOUT_MS
// while the broker is stopped or hung (SIGSTOP), saying in one line what was left undone, and a second SIGINT
// ends it at once. The broker is this file's own (never the shared one), started under a temporary directory.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { brokersFor, KAFKA, spawnKafka } from '../../scripts/services/kafka.js';
import { freePorts, stopPid } from '../../scripts/services/processes.js';
import {
  startPrivateRedis,
  startTiercache,
  type Running,
  type RunningTiercache,
} from '../support/processes.js';

const SHUTDOWN_TIMEOUT_MS = 3000;
// Generous for a loaded machine, and far below what a stop took before it had a deadline (17 s with the
// broker stopped, 89 s with it hung).
const STOP_BOUND_MS = SHUTDOWN_TIMEOUT_MS + 7000;

let dir: string;
let kafkaPid: number | undefined;
let kafkaPorts: { port: number; controllerPort: number };
let redis: Running & { url: string };
const apps: RunningTiercache[] = [];

beforeAll(async () => {
  // A free port can be taken by another process before the broker binds it: then again, on new ports.
  for (let attempt = 1; ; attempt++) {
    dir = mkdtempSync(join(tmpdir(), 'tiercache-shutdown-'));
    const [port, controllerPort] = await freePorts(2);
    kafkaPorts = { port: port!, controllerPort: controllerPort! };
    try {
      await spawnKafka(dir, kafkaPorts, (pid) => (kafkaPid = pid));
      break;
    } catch (error) {
      rmSync(dir, { recursive: true, force: true });
      if (attempt >= 3 || !/Address already in use/.test(String(error))) throw error;
    }
  }
  redis = await startPrivateRedis();
}, 180_000);

afterAll(async () => {
  for (const app of apps) await app.stop();
  if (kafkaPid !== undefined) {
    process.kill(kafkaPid, 'SIGCONT');
    await stopPid(KAFKA, kafkaPid);
  }
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

async function startApp(): Promise<RunningTiercache> {
  const app = await startTiercache(['--mode=all', `--instance-id=shutdown-${apps.length}`], {
    REDIS_URL: redis.url,
    KAFKA_BROKERS: brokersFor(kafkaPorts),
    KAFKA_TOPIC: 'shutdown',
    SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS),
  });
  apps.push(app);
  return app;
}

/** Sends the signals, spaced by `gapMs`, and resolves with how long the process took to exit and its code. */
async function stopWith(app: RunningTiercache, signals: NodeJS.Signals[], gapMs = 300) {
  // An exit by signal (code null) means the signal met Node's default action, not tiercache's handler.
  const exited = new Promise<number | null>((resolve) =>
    app.process.once('exit', (code, signal) => {
      if (code === null) console.log(`[shutdown] ended by ${signal} without handling it:\n${app.output()}`);
      resolve(code);
    }),
  );
  const started = performance.now();
  for (const [i, signal] of signals.entries()) {
    if (i > 0) await new Promise((resolve) => setTimeout(resolve, gapMs));
    app.process.kill(signal);
  }
  const code = await exited;
  return { ms: performance.now() - started, code };
}

const lines = (app: RunningTiercache) => app.output().split('\n').filter(Boolean);

describe('stopping while Kafka misbehaves', () => {
  it('stops within the deadline while the broker is hung, naming what it left undone in one line', async () => {
    const app = await startApp();
    process.kill(kafkaPid!, 'SIGSTOP');
    try {
      const { ms, code } = await stopWith(app, ['SIGTERM']);
      expect(ms, `stop took ${Math.round(ms)} ms`).toBeLessThan(STOP_BOUND_MS);
      expect(code).toBe(1);
      const late = lines(app).filter((line) => line.includes('stop ran out of time'));
      expect(late).toHaveLength(1);
      expect(JSON.parse(late[0]!)).toMatchObject({
        level: 'error',
        notDone: expect.arrayContaining(['bus']),
      });
    } finally {
      process.kill(kafkaPid!, 'SIGCONT');
    }
  });

  it('exits at once on a second SIGINT', async () => {
    const app = await startApp();
    process.kill(kafkaPid!, 'SIGSTOP');
    try {
      const { ms, code } = await stopWith(app, ['SIGINT', 'SIGINT']);
      // The second signal comes 0.3 s after the first, well before the deadline would end the stop.
      expect(ms, `stop took ${Math.round(ms)} ms`).toBeLessThan(SHUTDOWN_TIMEOUT_MS);
      expect(code).toBe(130);
      expect(app.output()).toMatch(/^tiercache: SIGINT again: exiting now; not done: .*bus/m);
    } finally {
      process.kill(kafkaPid!, 'SIGCONT');
    }
  });

  it('stops within the deadline while the broker is down', async () => {
    const app = await startApp();
    await stopPid(KAFKA, kafkaPid!);
    kafkaPid = undefined;
    const { ms } = await stopWith(app, ['SIGINT']);
    expect(ms, `stop took ${Math.round(ms)} ms`).toBeLessThan(STOP_BOUND_MS);
    // No stack of kafkajs retries on the way out: its connection errors are one warning at most.
    expect(lines(app).filter((line) => line.includes('"level":"error"') && line.includes('kafkajs'))).toEqual(
      [],
    );
  });
});
