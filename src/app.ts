// Assembles one process from its configuration: the store and bus adapters (real or embedded), the roles
// asked for, and the HTTP server; and takes them down again in order.
import type { Server } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import type { Redis } from 'ioredis';
import { hasRedis, type Config } from './config.js';
import type { Limits } from './domain/limits.js';
import { createHttpServer, type ServerOptions } from './http/server.js';
import { log, reportError } from './observability.js';
import type { ChangeBus, Store } from './ports.js';
import { Reader } from './reader/reader.js';
import { LiveSubscriptions } from './reader/subscriptions.js';
import { Relay } from './writer/relay.js';
import { Writer } from './writer/writer.js';
import { MemoryStore } from './adapters/memory-store.js';
import { LocalBus } from './adapters/local-bus.js';
import { connectRedis, RedisStore } from './adapters/redis-store.js';
import { connectRedisCluster, RedisClusterStore, waitUntilReady } from './adapters/redis-cluster-store.js';
import { KafkaBus } from './adapters/kafka-bus.js';

export interface App {
  /** Stops everything, in order; a stuck step holds the ones after it (main bounds the wait). */
  close(): Promise<void>;
  /** The stopping steps not finished yet, for the line logged when a stop runs out of time. */
  pendingClose(): string[];
}

function limitsOf(config: Config): Limits {
  return {
    maxReadKeys: config.maxReadKeys,
    maxWriteEntries: config.maxWriteEntries,
    maxKeyBytes: config.maxKeyBytes,
    maxValueBytes: config.maxValueBytes,
    maxTtlSeconds: config.maxTtlSeconds,
  };
}

/** The HTTP server's settings, all but the roles it serves. */
export function httpOptions(config: Config): Omit<ServerOptions, 'roles'> {
  return {
    limits: limitsOf(config),
    maxRequestBytes: config.maxRequestBytes,
    maxResponseBytes: config.maxResponseBytes,
    security: {
      writeTokens: config.writeTokens,
      readTokens: config.readTokens,
      corsOrigins: config.corsOrigins,
      introspection: config.introspection,
      maxQueryTokens: config.maxQueryTokens,
      maxQueryDepth: config.maxQueryDepth,
      maxAliases: config.maxAliases,
      maxReadKeys: config.maxReadKeys,
      maxWriteEntries: config.maxWriteEntries,
    },
    fastPath: config.fastPath,
    connections: {
      requestTimeoutMs: config.httpRequestTimeoutMs,
      headersTimeoutMs: config.httpHeadersTimeoutMs,
      keepAliveTimeoutMs: config.httpKeepAliveTimeoutMs,
      maxConnections: config.maxConnections,
    },
  };
}

/** A start-up failure the operator can fix: its message names the cause and the fix, in one line. */
export class StartupError extends Error {
  override readonly name = 'StartupError';
}

/** The innermost message of an error and its causes (kafkajs wraps the refused connection in retries). */
function rootMessage(error: unknown): string {
  let current = error;
  for (let depth = 0; depth < 5; depth++) {
    const inner =
      current instanceof Error
        ? // kafkajs's retry errors keep the failure they wrap in originalError, a field Error does not declare.
          (current.cause ?? (current as { originalError?: unknown }).originalError)
        : null;
    if (!(inner instanceof Error)) break;
    current = inner;
  }
  return current instanceof Error ? current.message : String(current);
}

/**
 * Fails before anything joins Kafka if the port is taken, so a reader that cannot serve never leaves a
 * consumer group behind. The server binds for real later; a port taken in between fails there, and the
 * start-up undoes what it opened.
 */
async function checkPortFree(config: Config): Promise<void> {
  if (config.port === 0) return;
  const probe = createNetServer();
  await new Promise<void>((resolve, reject) => {
    probe.once('error', (error) => reject(listenError(error, config)));
    probe.listen(config.port, config.host, () => probe.close(() => resolve()));
  });
}

function listenError(error: Error, config: Config): Error {
  // server.listen fails with a system error (code EADDRINUSE, EACCES, ...); any other has no code: undefined.
  const code = (error as NodeJS.ErrnoException).code;
  const where = `port ${config.port} on ${config.host}`;
  if (code === 'EADDRINUSE')
    return new StartupError(
      `${where} is already in use: stop what listens there, or choose another port with --port (PORT)`,
    );
  if (code === 'EACCES')
    return new StartupError(`${where} needs privileges: choose a port above 1023 with --port (PORT)`);
  if (code === 'EADDRNOTAVAIL')
    return new StartupError(`${config.host} is not an address of this machine: fix --host (HOST)`);
  return error;
}

/** Resources opened so far, closed in reverse order if start-up fails half way. */
type Undo = { name: string; close(): Promise<unknown> };

async function connectStore(config: Config, url: string, undo: Undo[]): Promise<Store> {
  const redis = connectRedis(url);
  const store = new RedisStore({ redis, prefix: config.redisKeyPrefix, ownsClient: true });
  undo.push({ name: 'redis', close: () => store.close() });
  await reachable(redis, `Redis at ${url}`, 'REDIS_URL');
  return store;
}

/** How long start-up waits for the cluster's slot map: a few failed attempts, like a single Redis's PING. */
const CLUSTER_READY_MS = 5_000;

async function connectClusterStore(config: Config, seeds: string[], undo: Undo[]): Promise<Store> {
  const cluster = connectRedisCluster(seeds);
  const store = new RedisClusterStore({
    cluster,
    prefix: config.redisKeyPrefix,
    minReplicasAck: config.redisMinReplicasAck,
    ownsClient: true,
  });
  undo.push({ name: 'redis', close: () => store.close() });
  try {
    await waitUntilReady(cluster, CLUSTER_READY_MS);
  } catch (error) {
    throw new StartupError(
      `the Redis Cluster at ${seeds.join(',')} is unreachable (${rootMessage(error)}): start it, or fix REDIS_CLUSTER_NODES`,
      { cause: error },
    );
  }
  return store;
}

/** PINGs the store's client once, or fails start-up saying why and which setting to fix. */
async function reachable(redis: Redis, what: string, setting: string): Promise<void> {
  // The command's own error says only that it gave up; the connection's says why.
  const seen: { error?: Error } = {};
  const remember = (error: Error): void => void (seen.error = error);
  redis.on('error', remember);
  try {
    await redis.ping();
    redis.off('error', remember);
  } catch (error) {
    throw new StartupError(
      `${what} is unreachable (${seen.error?.message ?? rootMessage(error)}): start it, or fix ${setting}`,
      { cause: error },
    );
  }
}

async function connectBus(config: Config, brokers: string[], undo: Undo[]): Promise<ChangeBus> {
  try {
    const bus = await KafkaBus.create({
      brokers,
      topic: config.kafkaTopic,
      clientId: `${config.kafkaClientId}-${config.instanceId}`,
      groupPrefix: config.kafkaGroupPrefix,
      partitions: config.kafkaPartitions,
      replicationFactor: config.kafkaReplicationFactor,
      minInsyncReplicas: config.kafkaMinInsyncReplicas,
    });
    undo.push({ name: 'kafka', close: () => bus.close() });
    return bus;
  } catch (error) {
    throw new StartupError(
      `Kafka at ${brokers.join(',')} could not be used (${rootMessage(error)}): start it, or fix ` +
        'KAFKA_BROKERS (and KAFKA_TOPIC, KAFKA_PARTITIONS, KAFKA_REPLICATION_FACTOR, KAFKA_MIN_INSYNC_REPLICAS)',
      { cause: error },
    );
  }
}

export async function startApp(config: Config): Promise<App> {
  const undo: Undo[] = [];
  try {
    return await assemble(config, undo);
  } catch (error) {
    for (const step of undo.reverse()) {
      await step
        .close()
        .catch((closeError: unknown) =>
          log.warn('could not undo a start-up step', { step: step.name, error: closeError }),
        );
    }
    throw error;
  }
}

async function assemble(config: Config, undo: Undo[]): Promise<App> {
  if (!hasRedis(config)) {
    log.warn(
      'EMBEDDED MODE: in-memory store and in-process bus; nothing is durable and nothing is shared between processes',
    );
  }
  await checkPortFree(config);
  const store: Store = config.redisClusterNodes
    ? await connectClusterStore(config, config.redisClusterNodes, undo)
    : config.redisUrl
      ? await connectStore(config, config.redisUrl, undo)
      : new MemoryStore();
  const bus: ChangeBus = config.kafkaBrokers
    ? await connectBus(config, config.kafkaBrokers, undo)
    : new LocalBus();
  const limits = limitsOf(config);
  let reader: Reader | null = null;
  if (config.mode !== 'writer') {
    try {
      reader = await Reader.start(store, bus, {
        instanceId: config.instanceId,
        memory: {
          maxEntries: config.memoryMaxEntries,
          maxBytes: config.memoryMaxBytes,
          ttlMs: config.memoryTtlMs,
          negativeTtlMs: config.negativeTtlMs,
        },
        maxBatch: config.mgetChunkSize,
        purgeIntervalMs: config.purgeIntervalMs,
        feed: { syncIntervalMs: config.feedSyncIntervalMs, maxLagMs: config.feedMaxLagMs },
      });
    } catch (error) {
      throw new StartupError(
        `the reader could not join the change feed (${rootMessage(error)}): check that Kafka is healthy and ` +
          'that no other process runs with the same --instance-id',
        { cause: error },
      );
    }
    const started = reader;
    undo.push({ name: 'reader', close: () => started.close() });
  }
  const live = reader
    ? new LiveSubscriptions(reader, {
        bufferSize: config.subscriptionBufferSize,
        slowConsumerMs: config.subscriptionSlowConsumerMs,
        rememberedKeys: config.subscriptionRememberedKeys,
        maxPerConnection: config.subscriptionsPerConnection,
        maxPerProcess: config.subscriptionsPerProcess,
        maxSnapshotKeys: config.maxReadKeys,
      })
    : null;
  const writer =
    config.mode === 'reader'
      ? null
      : new Writer(store, {
          limits,
          tombstoneTtlMs: config.tombstoneTtlMs,
          inlineValueMaxBytes: config.inlineValueMaxBytes,
          outboxLimit: { maxEntries: config.outboxMaxEntries, maxBytes: config.outboxMaxBytes },
        });
  const relay =
    config.mode === 'reader'
      ? null
      : new Relay(store.outbox, bus, {
          relayId: config.instanceId,
          maxEntries: 100,
          blockMs: 1000,
          reclaimAfterMs: config.outboxReclaimMs,
          maxBatch: 500,
          maxBatchBytes: 512 * 1024,
          retryDelayMs: 100,
          maxRetryDelayMs: 5000,
        });

  const { server, websocket } = createHttpServer({ roles: { reader, writer, live }, ...httpOptions(config) });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error) => reject(listenError(error, config)));
    server.listen(config.port, config.host, resolve);
  });
  relay?.start();
  // A server listening on a TCP port has an AddressInfo (a string is for pipes, null before listening).
  const { port } = server.address() as AddressInfo;
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  const url = `http://${host}:${port}/graphql`;
  log.info('tiercache listening', {
    url,
    mode: config.mode,
    instanceId: config.instanceId,
    pid: process.pid,
    store: config.redisClusterNodes ? 'redis-cluster' : config.redisUrl ? 'redis' : 'embedded',
    bus: config.kafkaBrokers ? 'kafka' : 'embedded',
  });

  // In stopping order: stop taking requests first; what the relay has not announced stays in the outbox for
  // the next writer; the reader leaves (and deletes) its consumer group; then the clients close.
  const parts: [string, () => Promise<unknown>][] = [
    // Open subscriptions end with a complete message, which the transports send before sockets close.
    [
      'subscriptions',
      async () => {
        live?.completeAll();
        await live?.drained(2000);
      },
    ],
    ['WebSocket transport', () => websocket.close()],
    ['HTTP server', () => closeServer(server)],
    ['live subscriptions', async () => live?.close()],
    ['relay', async () => relay?.close()],
    ['reader (consumer group)', async () => reader?.close()],
    ['bus', () => bus.close()],
    ['store', () => store.close()],
  ];
  const pending = new Set(parts.map(([name]) => name));
  let closing: Promise<void> | null = null;
  return {
    pendingClose: () => [...pending],
    close: () =>
      (closing ??= closeInOrder(
        parts.map(([name, close]) => [name, () => close().finally(() => pending.delete(name))]),
      )),
  };
}

/**
 * Closes each part in turn, the next even when one fails (a failed relay must not keep Redis and Kafka
 * connections open); each failure is reported, and the whole rejects with all of them.
 */
export async function closeInOrder(parts: readonly [string, () => Promise<unknown>][]): Promise<void> {
  const failures: unknown[] = [];
  for (const [name, close] of parts) {
    try {
      await close();
    } catch (error) {
      failures.push(error);
      reportError('app', `closing the ${name} failed`, error);
    }
  }
  if (failures.length > 0) {
    throw new AggregateError(failures, `${failures.length} of ${parts.length} parts failed to close`);
  }
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
    // Streams (subscriptions) would hold close() forever.
    setTimeout(() => server.closeAllConnections(), 2000).unref();
  });
}
