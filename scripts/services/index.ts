// Starts and stops the real Redis and Kafka that integration tests and local runs need: our own processes
// on free loopback ports with their data under .services/, never the machine's system services.
//
//   npm run services:up     start (or reuse) both, write .services/env, print REDIS_URL / KAFKA_BROKERS
//   npm run services:down   stop exactly the processes `up` recorded
//
// With REDIS_URL and KAFKA_BROKERS both set, `up` only checks that they answer and starts nothing.
// One file per concern beside this one: redis.ts, kafka.ts, processes.ts (pids, signals, ports), state.ts.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describeKafka, ensureKafka, KAFKA } from './kafka.js';
import { errorMessage, log, stopPid, type Service } from './processes.js';
import { ensureRedis, pingRedis, REDIS, stopRedisCluster } from './redis.js';
import { DIR, FILES, readState, withLock, writeEnvFile, writeState, type ServicesEnv } from './state.js';

export type { ServicesEnv } from './state.js';

export interface ServicesUpResult extends ServicesEnv {
  /** True when this call started either service: the caller then owns stopping them (servicesDown). */
  started: boolean;
}

export async function servicesUp(): Promise<ServicesUpResult> {
  const given = givenEnv();
  if (given) {
    await verifyGiven(given);
    log('using REDIS_URL and KAFKA_BROKERS from the environment; starting nothing');
    return { ...given, started: false };
  }
  if (process.env.REDIS_URL || process.env.KAFKA_BROKERS) {
    log('only one of REDIS_URL / KAFKA_BROKERS is set; ignoring it and providing both here');
  }
  fs.mkdirSync(DIR, { recursive: true });
  return withLock(async () => {
    const state = readState();
    const startedPids: Array<{ service: Service; pid: number }> = [];
    try {
      const redisUrl = await ensureRedis(state, (pid) => startedPids.push({ service: REDIS, pid }));
      const kafkaBrokers = await ensureKafka(state, (pid) => startedPids.push({ service: KAFKA, pid }));
      const env = { redisUrl, kafkaBrokers };
      writeEnvFile(env);
      return { ...env, started: startedPids.length > 0 };
    } catch (error) {
      // A half-started set is worse than none: whoever called us cannot know to stop it.
      await Promise.allSettled(startedPids.map(({ service, pid }) => stopPid(service, pid)));
      if (state.redis && startedPids.some((s) => s.pid === state.redis?.pid)) delete state.redis.pid;
      if (state.kafka && startedPids.some((s) => s.pid === state.kafka?.pid)) delete state.kafka.pid;
      writeState(state);
      throw error;
    }
  });
}

export async function servicesDown(): Promise<void> {
  if (!fs.existsSync(DIR)) {
    log('nothing to stop');
    return;
  }
  await withLock(async () => {
    const state = readState();
    if (state.redis?.pid === undefined && state.kafka?.pid === undefined && !state.redisCluster) {
      log('nothing to stop');
    }
    await Promise.all([
      state.redis?.pid === undefined ? undefined : stopPid(REDIS, state.redis.pid),
      state.kafka?.pid === undefined ? undefined : stopPid(KAFKA, state.kafka.pid),
      state.redisCluster ? stopRedisCluster(state) : undefined,
    ]);
    // Ports stay recorded so that the next `up` can reuse them and the Kafka data formatted for them.
    delete state.redis?.pid;
    delete state.kafka?.pid;
    writeState(state);
    fs.rmSync(FILES.env, { force: true });
  });
}

function givenEnv(): ServicesEnv | undefined {
  const redisUrl = process.env.REDIS_URL;
  const kafkaBrokers = process.env.KAFKA_BROKERS;
  return redisUrl && kafkaBrokers ? { redisUrl, kafkaBrokers } : undefined;
}

async function verifyGiven({ redisUrl, kafkaBrokers }: ServicesEnv): Promise<void> {
  try {
    await pingRedis(redisUrl);
  } catch (error) {
    throw new Error(`REDIS_URL=${redisUrl} does not answer PING: ${errorMessage(error)}`, { cause: error });
  }
  try {
    await describeKafka(kafkaBrokers, 10_000);
  } catch (error) {
    throw new Error(`KAFKA_BROKERS=${kafkaBrokers} does not answer: ${errorMessage(error)}`, {
      cause: error,
    });
  }
}

async function main(command: string | undefined): Promise<void> {
  if (command === 'up') {
    const { redisUrl, kafkaBrokers } = await servicesUp();
    process.stdout.write(`REDIS_URL=${redisUrl}\nKAFKA_BROKERS=${kafkaBrokers}\n`);
  } else if (command === 'down') {
    await servicesDown();
  } else {
    process.stderr.write('usage: tsx scripts/services/index.ts up|down\n');
    process.exitCode = 2;
  }
}

const invokedDirectly =
  process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (invokedDirectly) {
  main(process.argv[2]).then(
    // Explicit exit: a kafkajs or ioredis handle left behind must not keep a finished command alive.
    () => process.exit(),
    (error: unknown) => {
      process.stderr.write(`[services] ${process.argv[2] ?? ''} failed: ${errorMessage(error)}\n`);
      process.exit(1);
    },
  );
}
