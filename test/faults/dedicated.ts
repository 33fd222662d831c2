// Redis and Kafka of one fault-test file's own, to kill and restart at will: never the shared services of the
// other suites, never another worktree's. Data, config and logs under .services/faults/<label>/, removed
// on close; every pid is recorded here and only those are signalled.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { brokersFor, KAFKA, spawnKafka, type KafkaPorts } from '../../scripts/services/kafka.js';
import { freePorts, isOurProcess, killPid, stopPid } from '../../scripts/services/processes.js';
import { REDIS, redisUrlFor, spawnRedis } from '../../scripts/services/redis.js';
import { DIR } from '../../scripts/services/state.js';

export interface Dedicated {
  readonly redisUrl: string;
  readonly brokers: string;
  /** kill -9, as a crash: no shutdown, no flush beyond what the server already wrote. */
  killRedis(): Promise<void>;
  /** Starts it again on the same port with the same data (append-only file). */
  startRedis(): Promise<void>;
  killKafka(): Promise<void>;
  startKafka(): Promise<void>;
  close(): Promise<void>;
}

export async function startDedicated(label: string): Promise<Dedicated> {
  const dir = path.join(DIR, 'faults', label);
  fs.rmSync(dir, { recursive: true, force: true });
  const [redisPort, kafkaPort, controllerPort] = await freePorts(3);
  if (redisPort === undefined || kafkaPort === undefined || controllerPort === undefined) {
    throw new Error('no free ports for the dedicated services');
  }
  const kafkaPorts: KafkaPorts = { port: kafkaPort, controllerPort };
  const pids: { redis?: number; kafka?: number } = {};
  const startRedis = async (): Promise<void> => {
    await spawnRedis(path.join(dir, 'redis'), redisPort, (pid) => (pids.redis = pid));
  };
  const startKafka = async (): Promise<void> => {
    await spawnKafka(path.join(dir, 'kafka'), kafkaPorts, (pid) => (pids.kafka = pid));
  };
  const close = async (): Promise<void> => {
    await Promise.allSettled([
      pids.redis !== undefined && isOurProcess(REDIS, pids.redis) ? stopPid(REDIS, pids.redis) : undefined,
      pids.kafka !== undefined && isOurProcess(KAFKA, pids.kafka) ? killPid(KAFKA, pids.kafka) : undefined,
    ]);
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    await Promise.all([startRedis(), startKafka()]);
  } catch (error) {
    await close();
    throw error;
  }
  return {
    redisUrl: redisUrlFor(redisPort),
    brokers: brokersFor(kafkaPorts),
    killRedis: async () => {
      if (pids.redis !== undefined) await killPid(REDIS, pids.redis);
    },
    startRedis,
    killKafka: async () => {
      if (pids.kafka !== undefined) await killPid(KAFKA, pids.kafka);
    },
    startKafka,
    close,
  };
}
