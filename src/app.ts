// Assembles one process from its configuration: the store and bus adapters (real or embedded), the roles
// asked for, and the HTTP server; and takes them down again in order.
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Config } from './config.js';
import type { Limits } from './domain/limits.js';
import { createHttpServer } from './http/server.js';
import { log, reportError } from './observability.js';
import type { ChangeBus, Store } from './ports.js';
import { Reader } from './reader/reader.js';
import { Relay } from './writer/relay.js';
import { Writer } from './writer/writer.js';
import { MemoryStore } from './adapters/memory-store.js';
import { LocalBus } from './adapters/local-bus.js';
import { connectRedis, RedisStore } from './adapters/redis-store.js';
import { KafkaBus } from './adapters/kafka-bus.js';

export interface App {
  close(): Promise<void>;
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

async function connectBackends(config: Config): Promise<{ store: Store; bus: ChangeBus }> {
  const store: Store = config.redisUrl
    ? new RedisStore({
        redis: connectRedis(config.redisUrl),
        prefix: config.redisKeyPrefix,
        ownsClient: true,
      })
    : new MemoryStore();
  const bus: ChangeBus = config.kafkaBrokers
    ? await KafkaBus.create({
        brokers: config.kafkaBrokers,
        topic: config.kafkaTopic,
        clientId: `${config.kafkaClientId}-${config.instanceId}`,
        groupPrefix: config.kafkaGroupPrefix,
        partitions: config.kafkaPartitions,
        replicationFactor: config.kafkaReplicationFactor,
      })
    : new LocalBus();
  return { store, bus };
}

export async function startApp(config: Config): Promise<App> {
  const embedded = !config.redisUrl && !config.kafkaBrokers;
  if (!config.redisUrl !== !config.kafkaBrokers) {
    throw new Error(
      'REDIS_URL and KAFKA_BROKERS go together: set both (real services) or neither (embedded)',
    );
  }
  if (embedded && config.mode !== 'all') {
    throw new Error(
      `--mode=${config.mode} needs REDIS_URL and KAFKA_BROKERS: embedded backends live in one process`,
    );
  }
  if (embedded) {
    log.warn(
      'EMBEDDED MODE: in-memory store and in-process bus; nothing is durable and nothing is shared between processes',
    );
  }
  const backends = await connectBackends(config);
  const limits = limitsOf(config);
  const reader =
    config.mode === 'writer'
      ? null
      : await Reader.start(backends.store, backends.bus, {
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
  const writer =
    config.mode === 'reader'
      ? null
      : new Writer(backends.store, {
          limits,
          tombstoneTtlMs: config.tombstoneTtlMs,
          inlineValueMaxBytes: config.inlineValueMaxBytes,
          outboxLimit: { maxEntries: config.outboxMaxEntries, maxBytes: config.outboxMaxBytes },
        });
  const relay =
    config.mode === 'reader'
      ? null
      : new Relay(backends.store.outbox, backends.bus, {
          relayId: config.instanceId,
          maxEntries: 100,
          blockMs: 1000,
          reclaimAfterMs: config.outboxReclaimMs,
          maxBatch: 500,
          maxBatchBytes: 512 * 1024,
          retryDelayMs: 100,
          maxRetryDelayMs: 5000,
        });
  relay?.start();

  const server = createHttpServer({
    roles: { reader, writer },
    limits,
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
    connections: {
      requestTimeoutMs: config.httpRequestTimeoutMs,
      headersTimeoutMs: config.httpHeadersTimeoutMs,
      keepAliveTimeoutMs: config.httpKeepAliveTimeoutMs,
      maxConnections: config.maxConnections,
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, resolve);
  });
  // A server listening on a TCP port has an AddressInfo (a string is for pipes, null before listening).
  const { port } = server.address() as AddressInfo;
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  const url = `http://${host}:${port}/graphql`;
  log.info('tiercache listening', {
    url,
    mode: config.mode,
    instanceId: config.instanceId,
    store: config.redisUrl ? 'redis' : 'embedded',
    bus: config.kafkaBrokers ? 'kafka' : 'embedded',
  });

  return {
    close: () =>
      closeInOrder([
        // Stop taking requests first; what the relay has not announced stays in the outbox for the next one.
        ['HTTP server', () => closeServer(server)],
        ['relay', async () => relay?.close()],
        ['reader', async () => reader?.close()],
        ['bus', () => backends.bus.close()],
        ['store', () => backends.store.close()],
      ]),
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
