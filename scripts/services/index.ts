// Starts and stops the real Redis and Kafka that integration tests and local runs need: our own processes
// on free loopback ports with their data under .services/, never the machine's system services.
//
//   npm run services:up                start (or reuse) both, write .services/env, print REDIS_URL / KAFKA_BROKERS
//   npm run services:up -- --cluster   a Redis Cluster (3 masters + 3 replicas) and a 3-node Kafka instead:
//                                      .services/env gets REDIS_CLUSTER_NODES and KAFKA_BROKERS (all brokers)
//   npm run services:down              stop exactly the processes `up` recorded, whichever are up
//
// With REDIS_URL and KAFKA_BROKERS both set, `up` (not `--cluster`) only checks that they answer and starts
// nothing. One file per concern beside this one: redis.ts, kafka.ts, kafka-cluster.ts, processes.ts (pids,
// signals, ports), state.ts.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describeKafka, ensureKafka, KAFKA } from './kafka.js';
import { ensureKafkaCluster, KAFKA_CLUSTER_NODES, stopKafkaCluster } from './kafka-cluster.js';
import { errorMessage, log, stopPid, type Service } from './processes.js';
import { ensureRedis, ensureRedisCluster, pingRedis, REDIS, stopRedisCluster } from './redis.js';
import {
  DIR,
  FILES,
  readState,
  withLock,
  writeEnvFile,
  writeState,
  type ServicesEnv,
  type State,
} from './state.js';

export type { ServicesEnv } from './state.js';

/** The set of services `up` provides: single nodes (what `npm test` uses) or the clusters. */
export type Scope = 'single' | 'cluster';

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
      writeEnvFile({ REDIS_URL: redisUrl, KAFKA_BROKERS: kafkaBrokers });
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

export interface ClusterUpResult {
  /** host:port of every Redis Cluster node, comma-separated (REDIS_CLUSTER_NODES). */
  redisClusterNodes: string;
  /** host:port of every Kafka broker, comma-separated (KAFKA_BROKERS). */
  kafkaBrokers: string;
  /** True when this call started either cluster: the caller then owns stopping them. */
  started: boolean;
}

/**
 * The clusters (`up --cluster`), always our own: REDIS_URL / KAFKA_BROKERS in the environment name single
 * nodes, often the ones `up` gave this very process. Both start at once: each takes a while.
 */
export async function clusterServicesUp(
  // The test setup and the bench leave .services/env alone: it names the single nodes other suites use
  // (the README's block loads it while the cluster project runs).
  options: { writeEnv?: boolean } = {},
): Promise<ClusterUpResult> {
  fs.mkdirSync(DIR, { recursive: true });
  return withLock(async () => {
    const state = readState();
    const startedPids: Array<{ service: Service; pid: number }> = [];
    try {
      const [redisClusterNodes, kafkaBrokers] = await Promise.all([
        ensureRedisCluster(state, (pid) => startedPids.push({ service: REDIS, pid })),
        ensureKafkaCluster(state, (pid) => startedPids.push({ service: KAFKA, pid })),
      ]);
      if (options.writeEnv !== false)
        writeEnvFile({
          REDIS_CLUSTER_NODES: redisClusterNodes,
          KAFKA_BROKERS: kafkaBrokers,
          KAFKA_REPLICATION_FACTOR: String(KAFKA_CLUSTER_NODES),
        });
      return { redisClusterNodes, kafkaBrokers, started: startedPids.length > 0 };
    } catch (error) {
      await Promise.allSettled(startedPids.map(({ service, pid }) => stopPid(service, pid)));
      if (state.redisCluster) delete state.redisCluster;
      for (const node of state.kafkaCluster?.nodes ?? []) delete node.pid;
      writeState(state);
      throw error;
    }
  });
}

/**
 * Stops what `up` recorded: everything, or only one scope's services (the test projects each stop only
 * what they started). Ports stay recorded so that the next `up` can reuse them and the Kafka data
 * formatted for them.
 */
export async function servicesDown(options: { only?: Scope } = {}): Promise<void> {
  if (!fs.existsSync(DIR)) {
    log('nothing to stop');
    return;
  }
  await withLock(async () => {
    const state = readState();
    const single = options.only !== 'cluster';
    const cluster = options.only !== 'single';
    if (!isAnythingUp(state, single, cluster)) log('nothing to stop');
    const results = await Promise.allSettled([
      single && state.redis?.pid !== undefined ? stopPid(REDIS, state.redis.pid) : undefined,
      single && state.kafka?.pid !== undefined ? stopPid(KAFKA, state.kafka.pid) : undefined,
      cluster && state.kafkaCluster ? stopKafkaCluster(state) : undefined,
      cluster && state.redisCluster ? stopRedisCluster(state) : undefined,
    ]);
    if (single) {
      delete state.redis?.pid;
      delete state.kafka?.pid;
    }
    writeState(state);
    if (!isAnythingUp(state, true, true)) fs.rmSync(FILES.env, { force: true });
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
  });
}

function isAnythingUp(state: State, single: boolean, cluster: boolean): boolean {
  return (
    (single && (state.redis?.pid !== undefined || state.kafka?.pid !== undefined)) ||
    (cluster &&
      ((state.kafkaCluster?.nodes.some((n) => n.pid !== undefined) ?? false) ||
        (state.redisCluster?.nodes.some((n) => n.pid !== undefined) ?? false)))
  );
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

async function main(command: string | undefined, flags: string[]): Promise<void> {
  const unknown = flags.filter((flag) => flag !== '--cluster');
  if (command === 'up' && unknown.length === 0) {
    if (flags.includes('--cluster')) {
      const { redisClusterNodes, kafkaBrokers } = await clusterServicesUp();
      process.stdout.write(
        `REDIS_CLUSTER_NODES=${redisClusterNodes}\nKAFKA_BROKERS=${kafkaBrokers}\n` +
          `KAFKA_REPLICATION_FACTOR=${KAFKA_CLUSTER_NODES}\n`,
      );
    } else {
      const { redisUrl, kafkaBrokers } = await servicesUp();
      process.stdout.write(`REDIS_URL=${redisUrl}\nKAFKA_BROKERS=${kafkaBrokers}\n`);
    }
  } else if (command === 'down' && flags.length === 0) {
    await servicesDown();
  } else {
    process.stderr.write('usage: tsx scripts/services/index.ts up [--cluster] | down\n');
    process.exitCode = 2;
  }
}

const invokedDirectly =
  process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (invokedDirectly) {
  main(process.argv[2], process.argv.slice(3)).then(
    // Explicit exit: a kafkajs or ioredis handle left behind must not keep a finished command alive.
    () => process.exit(),
    (error: unknown) => {
      process.stderr.write(`[services] ${process.argv[2] ?? ''} failed: ${errorMessage(error)}\n`);
      process.exit(1);
    },
  );
}
