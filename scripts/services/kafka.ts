// Kafka for tests and local runs: Apache Kafka in KRaft mode (one process, broker and controller) from the
// Maven jars in .services/kafka/lib, on loopback ports, its data in a directory of ours.
import { createHash, randomUUID } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Kafka, Partitioners, logLevel } from 'kafkajs';
import {
  answers,
  commandWorks,
  errorMessage,
  freePorts,
  isOurProcess,
  isPortFree,
  log,
  readText,
  run,
  spawnDetached,
  stopPid,
  tail,
  waitUntil,
  withTimeout,
  type Service,
} from './processes.js';
import { FILES, ROOT, writeState, type State } from './state.js';

// Keep in step with scripts/kafka/pom.xml; it names the jar whose presence proves the lib folder complete.
const KAFKA_VERSION = '4.4.0';
const PROBE_TOPIC = 'tiercache.services.probe';
const KAFKA_READY_MS = 120_000;
// Kafka's controlled shutdown flushes logs and takes a few seconds; killing it early risks a slow recovery.
export const KAFKA: Service = { name: 'Kafka', marker: 'kafka.Kafka', stopMs: 30_000 };

export interface KafkaPorts {
  port: number;
  controllerPort: number;
}

export function brokersFor(ports: KafkaPorts): string {
  return `127.0.0.1:${ports.port}`;
}

/**
 * Starts a broker on `ports` with its config, data and log in `dir`. The data is formatted for those ports
 * unless it already is (then its topics survive: that is how a restart after a crash is tested). `onSpawn`
 * learns the pid before the wait. Resolves once a full produce/consume round trip works.
 */
export async function spawnKafka(
  dir: string,
  ports: KafkaPorts,
  onSpawn: (pid: number) => void,
  options: { reformat?: boolean } = {},
): Promise<number> {
  const node: KafkaNode = { nodeId: 1, ...ports };
  prepareKafkaNode(dir, node, [node]);
  if (options.reformat || readClusterId(dir) === undefined) formatKafkaStorage(dir, newClusterId());
  const pid = startKafkaProcess(dir, '1g');
  onSpawn(pid);
  const brokers = brokersFor(ports);
  const deadline = Date.now() + KAFKA_READY_MS;
  await waitUntil(KAFKA, pid, KAFKA_READY_MS, kafkaLogFile(dir), () => describeKafka(brokers, 3_000));
  await proveRoundTrip(brokers, 1, deadline, `Kafka (pid ${pid}, port ${ports.port})`, kafkaLogFile(dir));
  return pid;
}

/** One node of a KRaft quorum: a broker and a controller in one process. */
export interface KafkaNode extends KafkaPorts {
  nodeId: number;
}

/** Replicas of the internal topics (and of auto-created ones): all nodes, up to 3. */
function replicasFor(voters: readonly KafkaNode[]): number {
  return Math.min(voters.length, 3);
}

/** Writes the config of `node` (one of `voters`) into `dir`; the tools below need Java and the jars. */
export function prepareKafkaNode(dir: string, node: KafkaNode, voters: readonly KafkaNode[]): void {
  ensureJava();
  ensureKafkaJars();
  writeKafkaConfig(dir, node, voters);
}

export function kafkaLogFile(dir: string): string {
  return path.join(dir, 'broker.log');
}

/** Spawns the JVM of the node configured in `dir`; resolves nothing, the caller waits as it needs. */
export function startKafkaProcess(dir: string, heap: string): number {
  return spawnDetached(
    'java',
    [
      '-Xms128m',
      `-Xmx${heap}`,
      '-cp',
      path.join(FILES.kafkaLib, '*'),
      'kafka.Kafka',
      path.join(dir, 'server.properties'),
    ],
    kafkaLogFile(dir),
    true,
  );
}

/**
 * Metadata answering is not enough: the controller may not yet accept topics or the group coordinator may
 * not be loaded. One full produce/consume on a topic of `replicas` replicas proves what the tests rely on.
 */
export async function proveRoundTrip(
  brokers: string,
  replicas: number,
  deadline: number,
  what: string,
  logFile: string,
): Promise<void> {
  try {
    await withTimeout(
      kafkaRoundTrip(brokers, replicas),
      deadline - Date.now(),
      'the produce/consume round trip',
    );
  } catch (error) {
    throw new Error(
      `${what} started but failed a produce/consume round trip: ` +
        `${errorMessage(error)}\n--- tail of ${logFile} ---\n${tail(logFile)}`,
      { cause: error },
    );
  }
}

/** The project's Kafka (under .services/kafka): the recorded one if it still answers, else a new one. */
export async function ensureKafka(state: State, onSpawn: (pid: number) => void): Promise<string> {
  const recorded = state.kafka;
  if (recorded?.pid !== undefined && isOurProcess(KAFKA, recorded.pid)) {
    const brokers = brokersFor(recorded);
    if (await answers(() => describeKafka(brokers, 5_000))) {
      log(`Kafka already running (pid ${recorded.pid}, port ${recorded.port})`);
      return brokers;
    }
    log(`recorded Kafka (pid ${recorded.pid}) does not answer; restarting it`);
    await stopPid(KAFKA, recorded.pid);
  }

  // The data dir was formatted for one listener layout; keep it (and its topics) only if those ports are free.
  const dir = FILES.kafkaDir;
  let ports: KafkaPorts;
  if (
    readClusterId(dir) !== undefined &&
    recorded &&
    (await isPortFree(recorded.port)) &&
    (await isPortFree(recorded.controllerPort))
  ) {
    ports = { port: recorded.port, controllerPort: recorded.controllerPort };
  } else {
    const [port, controllerPort] = await freePorts(2);
    if (port === undefined || controllerPort === undefined) throw new Error('could not get two free ports');
    ports = { port, controllerPort };
  }
  const reformat = recorded?.port !== ports.port || recorded.controllerPort !== ports.controllerPort;
  const pid = await spawnKafka(
    dir,
    ports,
    (pid) => {
      onSpawn(pid);
      state.kafka = { pid, ...ports };
      writeState(state);
    },
    { reformat },
  );
  log(`Kafka started (pid ${pid}, port ${ports.port}, controller ${ports.controllerPort})`);
  return brokersFor(ports);
}

function ensureJava(): void {
  const result = spawnSync('java', ['-version'], { encoding: 'utf8' });
  if (result.error || result.status !== 0) {
    throw new Error(
      'Java is not installed; Kafka needs Java 17 or newer (Debian/Ubuntu: `apt-get install openjdk-17-jre-headless`).',
    );
  }
  const major = Number(/version "(\d+)/.exec(`${result.stderr}${result.stdout}`)?.[1]);
  if (Number.isFinite(major) && major < 17) {
    throw new Error(`Kafka ${KAFKA_VERSION} needs Java 17 or newer; \`java -version\` reports ${major}.`);
  }
}

function ensureKafkaJars(): void {
  // The stamp is the pom's hash: any change to versions there refetches, and nothing else does.
  const stamp = createHash('sha256').update(fs.readFileSync(FILES.pom)).digest('hex');
  const mainJar = path.join(FILES.kafkaLib, `kafka_2.13-${KAFKA_VERSION}.jar`);
  if (readText(FILES.kafkaStamp)?.trim() === stamp && fs.existsSync(mainJar)) return;
  if (!commandWorks('mvn', ['-v'])) {
    throw new Error(
      'Maven is not installed; it fetches the Kafka broker jars (Debian/Ubuntu: `apt-get install maven`).',
    );
  }
  log(`fetching Apache Kafka ${KAFKA_VERSION} jars with Maven into ${path.relative(ROOT, FILES.kafkaLib)}`);
  // Jars of an older version left beside new ones would put two Kafkas on the classpath.
  fs.rmSync(FILES.kafkaLib, { recursive: true, force: true });
  run(
    'mvn',
    [
      '-B',
      '-q',
      '-f',
      FILES.pom,
      'dependency:copy-dependencies',
      '-DincludeScope=runtime',
      `-DoutputDirectory=${FILES.kafkaLib}`,
    ],
    process.env,
    // Captured, shown only on failure: with -q a success prints nothing but Maven 3.8's stray colour codes.
    true,
  );
  if (!fs.existsSync(mainJar)) throw new Error(`Maven finished but ${mainJar} is missing`);
  fs.writeFileSync(FILES.kafkaStamp, `${stamp}\n`);
}

function writeKafkaConfig(dir: string, node: KafkaNode, voters: readonly KafkaNode[]): void {
  fs.mkdirSync(dir, { recursive: true });
  const replicas = replicasFor(voters);
  // With 3 replicas, 2 in sync: one node may be down and an acknowledged write is still on two.
  const minIsr = replicas >= 3 ? 2 : 1;
  const config = {
    'process.roles': 'broker,controller',
    'node.id': String(node.nodeId),
    'controller.quorum.voters': voters.map((v) => `${v.nodeId}@127.0.0.1:${v.controllerPort}`).join(','),
    listeners: `PLAINTEXT://127.0.0.1:${node.port},CONTROLLER://127.0.0.1:${node.controllerPort}`,
    'advertised.listeners': `PLAINTEXT://127.0.0.1:${node.port}`,
    'controller.listener.names': 'CONTROLLER',
    'listener.security.protocol.map': 'PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
    'inter.broker.listener.name': 'PLAINTEXT',
    'log.dirs': path.join(dir, 'data'),
    'offsets.topic.replication.factor': String(replicas),
    'transaction.state.log.replication.factor': String(replicas),
    'transaction.state.log.min.isr': String(minIsr),
    'default.replication.factor': String(replicas),
    'min.insync.replicas': String(minIsr),
    'group.initial.rebalance.delay.ms': '0',
    'num.partitions': '1',
    'auto.create.topics.enable': 'true',
  };
  const lines = Object.entries(config).map(([key, value]) => `${key}=${value}`);
  fs.writeFileSync(
    path.join(dir, 'server.properties'),
    ['# Generated by scripts/services/kafka.ts on every start; edits are overwritten.', ...lines, ''].join(
      '\n',
    ),
  );
}

export function readClusterId(dir: string): string | undefined {
  const meta = readText(path.join(dir, 'data', 'meta.properties'));
  return meta ? /^cluster\.id=(.+)$/m.exec(meta)?.[1]?.trim() : undefined;
}

/** A fresh KRaft cluster id; every node of one cluster is formatted with the same one. */
export function newClusterId(): string {
  const uuidRun = run(
    'java',
    ['-cp', path.join(FILES.kafkaLib, '*'), 'kafka.tools.StorageTool', 'random-uuid'],
    process.env,
    true,
  );
  // The tool logs to the same streams; the id is the one line that looks like a base64 UUID.
  const clusterId = uuidRun
    .split('\n')
    .map((line) => line.trim())
    .find((line) => /^[A-Za-z0-9_-]{22}$/.test(line));
  if (!clusterId) throw new Error(`kafka StorageTool random-uuid printed no cluster id:\n${uuidRun}`);
  return clusterId;
}

export function formatKafkaStorage(dir: string, clusterId: string): void {
  // Test data only: a fresh cluster is cheaper than migrating one to new listener ports.
  fs.rmSync(path.join(dir, 'data'), { recursive: true, force: true });
  run(
    'java',
    [
      '-cp',
      path.join(FILES.kafkaLib, '*'),
      'kafka.tools.StorageTool',
      'format',
      '-t',
      clusterId,
      '-c',
      path.join(dir, 'server.properties'),
    ],
    process.env,
    true,
  );
  log(`formatted Kafka storage in ${path.relative(ROOT, dir)} (cluster id ${clusterId})`);
}

function kafkaClient(brokers: string, retries: number, connectionTimeout = 3_000): Kafka {
  return new Kafka({
    clientId: 'tiercache-services',
    brokers: brokers.split(',').map((broker) => broker.trim()),
    // Errors reach us as rejected promises with context; kafkajs's own log lines would only add noise.
    logLevel: logLevel.NOTHING,
    connectionTimeout,
    retry: { retries, initialRetryTime: 100, maxRetryTime: 1_000 },
  });
}

export async function describeKafka(brokers: string, timeoutMs: number): Promise<void> {
  await liveBrokers(brokers, timeoutMs);
}

/** Node ids of the brokers the cluster's metadata lists as live, as `brokers` answer it. */
export async function liveBrokers(brokers: string, timeoutMs: number): Promise<number[]> {
  const admin = kafkaClient(brokers, 0, Math.min(timeoutMs, 3_000)).admin();
  try {
    return await withTimeout(
      (async () => {
        await admin.connect();
        const cluster = await admin.describeCluster();
        return cluster.brokers.map((b) => b.nodeId).sort((a, b) => a - b);
      })(),
      timeoutMs,
      `Kafka metadata from ${brokers}`,
    );
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

async function kafkaRoundTrip(brokers: string, replicas: number): Promise<void> {
  const kafka = kafkaClient(brokers, 10);
  const token = randomUUID();
  const groupId = `tiercache-services-probe-${token}`;
  const admin = kafka.admin();
  // Idempotent, like the service's writer: its InitProducerId fails while the broker still waits for its
  // first producer-id block from the controller, which plain sends would not notice.
  const producer = kafka.producer({
    idempotent: true,
    createPartitioner: Partitioners.DefaultPartitioner,
    allowAutoTopicCreation: false,
  });
  const consumer = kafka.consumer({ groupId, heartbeatInterval: 500, maxWaitTimeInMs: 250 });
  try {
    await admin.connect();
    await admin.createTopics({
      waitForLeaders: true,
      topics: [{ topic: PROBE_TOPIC, numPartitions: 1, replicationFactor: replicas }],
    });
    await producer.connect();
    await producer.send({ topic: PROBE_TOPIC, acks: -1, messages: [{ value: token }] });
    await consumer.connect();
    await consumer.subscribe({ topics: [PROBE_TOPIC], fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      // Retriable crashes (a group coordinator still loading after a restart) make kafkajs rejoin by itself.
      consumer.on(consumer.events.CRASH, (event) => {
        if (!event.payload.restart) reject(event.payload.error);
      });
      consumer
        .run({
          eachMessage: async ({ message }) => {
            if (message.value?.toString() === token) resolve();
          },
        })
        .catch(reject);
    });
  } finally {
    await consumer.disconnect().catch(() => undefined);
    await producer.disconnect().catch(() => undefined);
    // Each probe uses a fresh group; leaving them would clutter every later group listing.
    await admin.deleteGroups([groupId]).catch(() => undefined);
    await admin.disconnect().catch(() => undefined);
  }
}
