// Starts and stops the real Redis and Kafka that integration tests and local runs need: our own processes
// on free loopback ports with their data under .services/, never the machine's system services.
//
//   npm run services:up     start (or reuse) both, write .services/env, print REDIS_URL / KAFKA_BROKERS
//   npm run services:down   stop exactly the processes `up` recorded
//
// With REDIS_URL and KAFKA_BROKERS both set, `up` only checks that they answer and starts nothing.
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { Kafka, Partitioners, logLevel } from 'kafkajs';

export interface ServicesEnv {
  redisUrl: string;
  kafkaBrokers: string;
}

export interface ServicesUpResult extends ServicesEnv {
  /** True when this call started either service: the caller then owns stopping them (servicesDown). */
  started: boolean;
}

// Keep in step with scripts/kafka/pom.xml; it names the jar whose presence proves the lib folder complete.
const KAFKA_VERSION = '4.4.0';
const PROBE_TOPIC = 'tiercache.services.probe';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DIR = path.join(ROOT, '.services');
const FILES = {
  lock: path.join(DIR, 'lock'),
  state: path.join(DIR, 'state.json'),
  env: path.join(DIR, 'env'),
  redisDir: path.join(DIR, 'redis'),
  redisConf: path.join(DIR, 'redis', 'redis.conf'),
  redisLog: path.join(DIR, 'redis', 'redis.log'),
  kafkaDir: path.join(DIR, 'kafka'),
  kafkaLib: path.join(DIR, 'kafka', 'lib'),
  kafkaStamp: path.join(DIR, 'kafka', 'lib', '.stamp'),
  kafkaData: path.join(DIR, 'kafka', 'data'),
  kafkaConf: path.join(DIR, 'kafka', 'server.properties'),
  kafkaLog: path.join(DIR, 'kafka', 'broker.log'),
  pom: path.join(ROOT, 'scripts', 'kafka', 'pom.xml'),
};

// Cold starts include apt-get and Maven downloads, so a waiting `up` must be patient.
const LOCK_WAIT_MS = 20 * 60_000;
const REDIS_READY_MS = 30_000;
const KAFKA_READY_MS = 120_000;
const REDIS_STOP_MS = 10_000;
// Kafka's controlled shutdown flushes logs and takes a few seconds; killing it early risks a slow recovery.
const KAFKA_STOP_MS = 30_000;

interface RedisRecord {
  pid?: number;
  port: number;
}
interface KafkaRecord {
  pid?: number;
  port: number;
  controllerPort: number;
}
interface State {
  redis?: RedisRecord;
  kafka?: KafkaRecord;
}

interface Service {
  name: string;
  /** Text in the process's command line that proves a recorded pid is still ours and not a reused one. */
  marker: string;
  stopMs: number;
}
const REDIS: Service = { name: 'Redis', marker: 'redis-server', stopMs: REDIS_STOP_MS };
const KAFKA: Service = { name: 'Kafka', marker: 'kafka.Kafka', stopMs: KAFKA_STOP_MS };

function log(message: string): void {
  // stdout carries only the env lines, so that `eval "$(npm run -s services:up)"` works.
  process.stderr.write(`[services] ${message}\n`);
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function isErrno(error: unknown, code: string): boolean {
  return error instanceof Error && (error as NodeJS.ErrnoException).code === code;
}

// ---------------------------------------------------------------------------------------------------------
// Public API

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
    if (state.redis?.pid === undefined && state.kafka?.pid === undefined) log('nothing to stop');
    await Promise.all([
      state.redis?.pid === undefined ? undefined : stopPid(REDIS, state.redis.pid),
      state.kafka?.pid === undefined ? undefined : stopPid(KAFKA, state.kafka.pid),
    ]);
    // Ports stay recorded so that the next `up` can reuse them and the Kafka data formatted for them.
    delete state.redis?.pid;
    delete state.kafka?.pid;
    writeState(state);
    fs.rmSync(FILES.env, { force: true });
  });
}

// ---------------------------------------------------------------------------------------------------------
// Given services

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

// ---------------------------------------------------------------------------------------------------------
// Redis

async function ensureRedis(state: State, onSpawn: (pid: number) => void): Promise<string> {
  const recorded = state.redis;
  if (recorded?.pid !== undefined && isOurProcess(REDIS, recorded.pid)) {
    const url = redisUrlFor(recorded.port);
    if (await answers(() => pingRedis(url))) {
      log(`Redis already running (pid ${recorded.pid}, port ${recorded.port})`);
      return url;
    }
    log(`recorded Redis (pid ${recorded.pid}) does not answer; restarting it`);
    await stopPid(REDIS, recorded.pid);
  }

  const binary = ensureRedisInstalled();
  fs.mkdirSync(FILES.redisDir, { recursive: true });
  let port = recorded && (await isPortFree(recorded.port)) ? recorded.port : await freePort();
  // A free port can be taken between asking the OS and redis binding it; a new port fixes that.
  for (let attempt = 1; ; attempt++) {
    fs.writeFileSync(
      FILES.redisConf,
      [
        '# Generated by scripts/services.ts on every start; edits are overwritten.',
        'bind 127.0.0.1',
        `port ${port}`,
        'daemonize no',
        // Quoted: redis splits config lines on spaces, and project paths may contain them.
        `dir "${FILES.redisDir}"`,
        'appendonly yes',
        '',
      ].join('\n'),
    );
    const pid = spawnDetached(binary, [FILES.redisConf], FILES.redisLog);
    onSpawn(pid);
    state.redis = { pid, port };
    writeState(state);
    const url = redisUrlFor(port);
    try {
      await waitUntil(REDIS, pid, REDIS_READY_MS, FILES.redisLog, () => pingRedis(url));
      log(`Redis started (pid ${pid}, port ${port})`);
      return url;
    } catch (error) {
      if (
        attempt < 3 &&
        !isOurProcess(REDIS, pid) &&
        tail(FILES.redisLog).includes('Address already in use')
      ) {
        log(`port ${port} was taken meanwhile; retrying on another`);
        port = await freePort();
        continue;
      }
      throw error;
    }
  }
}

function redisUrlFor(port: number): string {
  return `redis://127.0.0.1:${port}`;
}

function ensureRedisInstalled(): string {
  if (commandWorks('redis-server', ['--version'])) return 'redis-server';
  const isRoot = process.getuid?.() === 0;
  if (!isRoot || !commandWorks('apt-get', ['--version'])) {
    throw new Error(
      'redis-server is not installed. Install it (Debian/Ubuntu: `sudo apt-get install redis-server redis-tools`, ' +
        'macOS: `brew install redis`), or set REDIS_URL and KAFKA_BROKERS to services you run yourself.',
    );
  }
  log('redis-server is missing; installing it with apt-get (Debian packages redis-server, redis-tools)');
  // The package would start the system-wide redis on 6379; we run our own, so keep the system one down.
  const policy = '/usr/sbin/policy-rc.d';
  const ownPolicy = !fs.existsSync(policy);
  if (ownPolicy)
    fs.writeFileSync(policy, '#!/bin/sh\n# Temporary, from tiercache scripts/services.ts\nexit 101\n', {
      mode: 0o755,
    });
  try {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    run('apt-get', ['update'], env);
    run('apt-get', ['install', '-y', '--no-install-recommends', 'redis-server', 'redis-tools'], env);
  } finally {
    if (ownPolicy) fs.rmSync(policy, { force: true });
  }
  if (!commandWorks('redis-server', ['--version'])) {
    throw new Error('apt-get installed redis-server, but `redis-server --version` still fails');
  }
  return 'redis-server';
}

async function pingRedis(url: string): Promise<void> {
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: 2_000,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
  });
  // ioredis rejects with a bare "Connection is closed."; the socket's own error says why (ECONNREFUSED…).
  let socketError: Error | undefined;
  client.on('error', (error: Error) => {
    socketError ??= error;
  });
  try {
    await client.connect();
    const reply = await client.ping();
    if (reply !== 'PONG') throw new Error(`unexpected PING reply ${JSON.stringify(reply)}`);
  } catch (error) {
    throw socketError ?? error;
  } finally {
    client.disconnect();
  }
}

// ---------------------------------------------------------------------------------------------------------
// Kafka

async function ensureKafka(state: State, onSpawn: (pid: number) => void): Promise<string> {
  const recorded = state.kafka;
  if (recorded?.pid !== undefined && isOurProcess(KAFKA, recorded.pid)) {
    const brokers = `127.0.0.1:${recorded.port}`;
    if (await answers(() => describeKafka(brokers, 5_000))) {
      log(`Kafka already running (pid ${recorded.pid}, port ${recorded.port})`);
      return brokers;
    }
    log(`recorded Kafka (pid ${recorded.pid}) does not answer; restarting it`);
    await stopPid(KAFKA, recorded.pid);
  }

  ensureJava();
  ensureKafkaJars();

  // The data dir was formatted for one listener layout; keep it (and its topics) only if those ports are free.
  const formatted = readClusterId() !== undefined;
  let ports: { port: number; controllerPort: number };
  if (
    formatted &&
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
  writeKafkaConfig(ports.port, ports.controllerPort);
  if (!formatted || recorded?.port !== ports.port || recorded.controllerPort !== ports.controllerPort) {
    formatKafkaStorage();
  }

  const lib = path.join(FILES.kafkaLib, '*');
  const pid = spawnDetached(
    'java',
    ['-Xms256m', '-Xmx1g', '-cp', lib, 'kafka.Kafka', FILES.kafkaConf],
    FILES.kafkaLog,
  );
  onSpawn(pid);
  state.kafka = { pid, ...ports };
  writeState(state);
  const brokers = `127.0.0.1:${ports.port}`;
  const deadline = Date.now() + KAFKA_READY_MS;
  await waitUntil(KAFKA, pid, KAFKA_READY_MS, FILES.kafkaLog, () => describeKafka(brokers, 3_000));
  // Metadata answering is not enough: the controller may not yet accept topics or the group coordinator
  // may not be loaded. One full produce/consume proves what the tests will rely on.
  try {
    await withTimeout(kafkaRoundTrip(brokers), deadline - Date.now(), 'the produce/consume round trip');
  } catch (error) {
    throw new Error(
      `Kafka (pid ${pid}, port ${ports.port}) started but failed a produce/consume round trip: ` +
        `${errorMessage(error)}\n--- tail of ${FILES.kafkaLog} ---\n${tail(FILES.kafkaLog)}`,
      { cause: error },
    );
  }
  log(`Kafka started (pid ${pid}, port ${ports.port}, controller ${ports.controllerPort})`);
  return brokers;
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

function writeKafkaConfig(port: number, controllerPort: number): void {
  fs.mkdirSync(FILES.kafkaDir, { recursive: true });
  const config = {
    'process.roles': 'broker,controller',
    'node.id': '1',
    'controller.quorum.voters': `1@127.0.0.1:${controllerPort}`,
    listeners: `PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controllerPort}`,
    'advertised.listeners': `PLAINTEXT://127.0.0.1:${port}`,
    'controller.listener.names': 'CONTROLLER',
    'listener.security.protocol.map': 'PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
    'inter.broker.listener.name': 'PLAINTEXT',
    'log.dirs': FILES.kafkaData,
    'offsets.topic.replication.factor': '1',
    'transaction.state.log.replication.factor': '1',
    'transaction.state.log.min.isr': '1',
    'group.initial.rebalance.delay.ms': '0',
    'num.partitions': '1',
    'auto.create.topics.enable': 'true',
  };
  const lines = Object.entries(config).map(([key, value]) => `${key}=${value}`);
  fs.writeFileSync(
    FILES.kafkaConf,
    ['# Generated by scripts/services.ts on every start; edits are overwritten.', ...lines, ''].join('\n'),
  );
}

function readClusterId(): string | undefined {
  const meta = readText(path.join(FILES.kafkaData, 'meta.properties'));
  return meta ? /^cluster\.id=(.+)$/m.exec(meta)?.[1]?.trim() : undefined;
}

function formatKafkaStorage(): void {
  // Test data only: a fresh cluster is cheaper than migrating one to new listener ports.
  fs.rmSync(FILES.kafkaData, { recursive: true, force: true });
  const classpath = path.join(FILES.kafkaLib, '*');
  const uuidRun = run(
    'java',
    ['-cp', classpath, 'kafka.tools.StorageTool', 'random-uuid'],
    process.env,
    true,
  );
  // The tool logs to the same streams; the id is the one line that looks like a base64 UUID.
  const clusterId = uuidRun
    .split('\n')
    .map((line) => line.trim())
    .find((line) => /^[A-Za-z0-9_-]{22}$/.test(line));
  if (!clusterId) throw new Error(`kafka StorageTool random-uuid printed no cluster id:\n${uuidRun}`);
  run(
    'java',
    ['-cp', classpath, 'kafka.tools.StorageTool', 'format', '-t', clusterId, '-c', FILES.kafkaConf],
    process.env,
    true,
  );
  log(`formatted Kafka storage (cluster id ${clusterId})`);
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

async function describeKafka(brokers: string, timeoutMs: number): Promise<void> {
  const admin = kafkaClient(brokers, 0, Math.min(timeoutMs, 3_000)).admin();
  try {
    await withTimeout(
      (async () => {
        await admin.connect();
        await admin.describeCluster();
      })(),
      timeoutMs,
      `Kafka metadata from ${brokers}`,
    );
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

async function kafkaRoundTrip(brokers: string): Promise<void> {
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
      topics: [{ topic: PROBE_TOPIC, numPartitions: 1, replicationFactor: 1 }],
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

// ---------------------------------------------------------------------------------------------------------
// Processes

function spawnDetached(command: string, args: string[], logFile: string): number {
  const out = fs.openSync(logFile, 'w');
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

function isAlive(pid: number): boolean {
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

function isOurProcess(service: Service, pid: number): boolean {
  if (!isAlive(pid)) return false;
  const cmdline = readText(`/proc/${pid}/cmdline`);
  // Without /proc (macOS) the pid alone must do.
  return cmdline === undefined ? true : cmdline.replaceAll('\0', ' ').includes(service.marker);
}

async function stopPid(service: Service, pid: number): Promise<void> {
  if (!isOurProcess(service, pid)) {
    log(`${service.name} (pid ${pid}) is not running`);
    return;
  }
  log(`stopping ${service.name} (pid ${pid})`);
  process.kill(pid, 'SIGTERM');
  if (await waitForExit(pid, service.stopMs)) return;
  log(`${service.name} (pid ${pid}) ignored SIGTERM for ${service.stopMs} ms; killing it`);
  process.kill(pid, 'SIGKILL');
  if (!(await waitForExit(pid, 5_000))) throw new Error(`${service.name} (pid ${pid}) survived SIGKILL`);
}

async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (isAlive(pid)) {
    if (Date.now() > deadline) return false;
    await sleep(100);
  }
  return true;
}

/** Retries `probe` until it succeeds, failing early with the log's tail if the process died. */
async function waitUntil(
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

async function answers(probe: () => Promise<void>): Promise<boolean> {
  try {
    await probe();
    return true;
  } catch {
    return false;
  }
}

function commandWorks(command: string, args: string[]): boolean {
  const result = spawnSync(command, args, { stdio: 'ignore' });
  return !result.error && result.status === 0;
}

/** Runs a command to completion; its output goes to our stderr, or is captured when `capture` is set. */
function run(command: string, args: string[], env: NodeJS.ProcessEnv = process.env, capture = false): string {
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

// ---------------------------------------------------------------------------------------------------------
// Ports

async function freePorts(count: number): Promise<number[]> {
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

async function freePort(): Promise<number> {
  const [port] = await freePorts(1);
  if (port === undefined) throw new Error('could not get a free port');
  return port;
}

async function isPortFree(port: number): Promise<boolean> {
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

// ---------------------------------------------------------------------------------------------------------
// State, env file, lock

function readState(): State {
  const text = readText(FILES.state);
  if (text === undefined) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    log(`ignoring unreadable ${FILES.state}`);
    return {};
  }
  const state: State = {};
  if (isRecord(parsed)) {
    const redis = parsed.redis;
    if (isRecord(redis) && isPort(redis.port)) {
      state.redis = { port: redis.port, ...(isPid(redis.pid) ? { pid: redis.pid } : {}) };
    }
    const kafka = parsed.kafka;
    if (isRecord(kafka) && isPort(kafka.port) && isPort(kafka.controllerPort)) {
      state.kafka = {
        port: kafka.port,
        controllerPort: kafka.controllerPort,
        ...(isPid(kafka.pid) ? { pid: kafka.pid } : {}),
      };
    }
  }
  return state;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}
function isPort(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) > 0 && (value as number) < 65536;
}
function isPid(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) > 0;
}

function writeState(state: State): void {
  writeAtomically(FILES.state, `${JSON.stringify(state, null, 2)}\n`);
}

function writeEnvFile({ redisUrl, kafkaBrokers }: ServicesEnv): void {
  writeAtomically(
    FILES.env,
    [
      '# Written by scripts/services.ts for the services it runs. Load with: set -a; . .services/env; set +a',
      `REDIS_URL=${redisUrl}`,
      `KAFKA_BROKERS=${kafkaBrokers}`,
      '',
    ].join('\n'),
  );
}

function writeAtomically(file: string, content: string): void {
  // A reader (or a crash) must never see half a file.
  const temporary = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(temporary, content);
  fs.renameSync(temporary, file);
}

function readText(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

function tail(file: string, lines = 40): string {
  const text = readText(file);
  return text === undefined ? '(no log written)' : text.trimEnd().split('\n').slice(-lines).join('\n');
}

async function withLock<T>(action: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + LOCK_WAIT_MS;
  let announced = false;
  for (;;) {
    if (tryLock()) break;
    const owner = Number(readText(path.join(FILES.lock, 'owner')));
    if (Number.isInteger(owner) && owner > 0 && !isAlive(owner)) {
      log(`removing the lock left by pid ${owner}, which no longer runs`);
      breakStaleLock(owner);
      continue;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `another services up/down (pid ${owner}) still holds ${FILES.lock} after ${LOCK_WAIT_MS / 60_000} min; ` +
          'if no such process runs, remove that directory',
      );
    }
    if (!announced) log(`waiting for another services up/down (pid ${owner}) to finish`);
    announced = true;
    await sleep(250);
  }
  try {
    return await action();
  } finally {
    fs.rmSync(FILES.lock, { recursive: true, force: true });
  }
}

function tryLock(): boolean {
  // Built aside and renamed into place, so the lock never exists without its owner file.
  const staging = `${FILES.lock}.${process.pid}.${randomUUID()}`;
  fs.mkdirSync(staging);
  fs.writeFileSync(path.join(staging, 'owner'), String(process.pid));
  try {
    fs.renameSync(staging, FILES.lock);
    return true;
  } catch (error) {
    fs.rmSync(staging, { recursive: true, force: true });
    if (isErrno(error, 'ENOTEMPTY') || isErrno(error, 'EEXIST')) return false;
    throw error;
  }
}

function breakStaleLock(deadOwner: number): void {
  // Moved aside before deleting: two waiters that both saw the dead owner must not both remove a lock
  // that one of them has meanwhile taken. Whoever moved a live lock puts it back.
  const grave = `${FILES.lock}.stale.${process.pid}.${randomUUID()}`;
  try {
    fs.renameSync(FILES.lock, grave);
  } catch (error) {
    if (isErrno(error, 'ENOENT')) return;
    throw error;
  }
  const owner = Number(readText(path.join(grave, 'owner')));
  if (owner !== deadOwner) {
    try {
      fs.renameSync(grave, FILES.lock);
      return;
    } catch {
      throw new Error(`lost a race while clearing the stale lock ${FILES.lock}; run again`);
    }
  }
  fs.rmSync(grave, { recursive: true, force: true });
}

// ---------------------------------------------------------------------------------------------------------
// Helpers

function withTimeout<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
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
// Command line

async function main(command: string | undefined): Promise<void> {
  if (command === 'up') {
    const { redisUrl, kafkaBrokers } = await servicesUp();
    process.stdout.write(`REDIS_URL=${redisUrl}\nKAFKA_BROKERS=${kafkaBrokers}\n`);
  } else if (command === 'down') {
    await servicesDown();
  } else {
    process.stderr.write('usage: tsx scripts/services.ts up|down\n');
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
