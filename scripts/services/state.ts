// Where the services live on disk and what `up` recorded about them: the paths under .services/, the state
// file (pids and ports), the env file, the lock that serialises concurrent up/down, and small file helpers.
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { isAlive, log, readText } from './processes.js';

export interface ServicesEnv {
  redisUrl: string;
  kafkaBrokers: string;
}

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const DIR = path.join(ROOT, '.services');
export const FILES = {
  lock: path.join(DIR, 'lock'),
  state: path.join(DIR, 'state.json'),
  env: path.join(DIR, 'env'),
  redisDir: path.join(DIR, 'redis'),
  /** One directory per node, named after its port. */
  redisClusterDir: path.join(DIR, 'redis-cluster'),
  kafkaDir: path.join(DIR, 'kafka'),
  /** The 3-node Kafka of `services:up --cluster`: one folder per node. */
  kafkaClusterDir: path.join(DIR, 'kafka-cluster'),
  /** The broker's jars, shared by every Kafka this project runs (the fault suite's too). */
  kafkaLib: path.join(DIR, 'kafka', 'lib'),
  kafkaStamp: path.join(DIR, 'kafka', 'lib', '.stamp'),
  pom: path.join(ROOT, 'scripts', 'kafka', 'pom.xml'),
};

// Cold starts include apt-get and Maven downloads, so a waiting `up` must be patient.
const LOCK_WAIT_MS = 20 * 60_000;

export interface RedisRecord {
  pid?: number;
  port: number;
}
export interface KafkaRecord {
  pid?: number;
  port: number;
  controllerPort: number;
}
/** A Redis Cluster's nodes (`npm run services:up -- --cluster`), each one redis-server of ours. */
export interface RedisClusterRecord {
  nodes: RedisRecord[];
}
export interface KafkaNodeRecord extends KafkaRecord {
  nodeId: number;
}
export interface KafkaClusterRecord {
  nodes: KafkaNodeRecord[];
}
export interface State {
  redis?: RedisRecord;
  kafka?: KafkaRecord;
  redisCluster?: RedisClusterRecord;
  /** The Kafka of `services:up --cluster`: its nodes, all or none. */
  kafkaCluster?: KafkaClusterRecord;
}

function isErrno(error: unknown, code: string): boolean {
  return error instanceof Error && (error as NodeJS.ErrnoException).code === code;
}

export function readState(): State {
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
    const cluster = parsed.redisCluster;
    if (isRecord(cluster) && Array.isArray(cluster.nodes)) {
      const nodes = cluster.nodes.filter(
        (node): node is Record<string, unknown> => isRecord(node) && isPort(node.port),
      );
      state.redisCluster = {
        nodes: nodes.map((node) => ({
          port: node.port as number,
          ...(isPid(node.pid) ? { pid: node.pid } : {}),
        })),
      };
    }
    const kafka = parsed.kafka;
    if (isRecord(kafka) && isPort(kafka.port) && isPort(kafka.controllerPort)) {
      state.kafka = {
        port: kafka.port,
        controllerPort: kafka.controllerPort,
        ...(isPid(kafka.pid) ? { pid: kafka.pid } : {}),
      };
    }
    const kafkaCluster = parsed.kafkaCluster;
    const nodes = isRecord(kafkaCluster) ? kafkaCluster.nodes : undefined;
    if (Array.isArray(nodes) && nodes.length > 0) {
      const valid = nodes.flatMap((n: unknown) =>
        isRecord(n) && isPort(n.port) && isPort(n.controllerPort) && isPid(n.nodeId)
          ? [
              {
                nodeId: n.nodeId,
                port: n.port,
                controllerPort: n.controllerPort,
                ...(isPid(n.pid) ? { pid: n.pid } : {}),
              },
            ]
          : [],
      );
      if (valid.length === nodes.length) state.kafkaCluster = { nodes: valid };
      else log(`ignoring the unreadable kafkaCluster record in ${FILES.state}`);
    }
  }
  return state;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}
// `as number` after the integer check: Number.isInteger narrows nothing in TypeScript's eyes.
function isPort(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) > 0 && (value as number) < 65536;
}
function isPid(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) > 0;
}

export function writeState(state: State): void {
  writeAtomically(FILES.state, `${JSON.stringify(state, null, 2)}\n`);
}

/** `.services/env`: the variables that point tiercache at the services that `up` runs, in this order. */
export function writeEnvFile(variables: Readonly<Record<string, string>>): void {
  writeAtomically(
    FILES.env,
    [
      '# Written by scripts/services for the services it runs. Load with: set -a; . .services/env; set +a',
      ...Object.entries(variables).map(([name, value]) => `${name}=${value}`),
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

export async function withLock<T>(action: () => Promise<T>): Promise<T> {
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
