// A writer, its relay and one reader wired in-process over the real Redis and Kafka (each side with its own
// connection and bus client, as separate processes would have), for integration tests that follow a write
// from its commit to a reader's memory. Tests wrap the reader's store or bus to hold or count what passes.
import { KafkaBus } from '../../src/adapters/kafka-bus.js';
import { connectRedis, RedisStore } from '../../src/adapters/redis-store.js';
import type { ChangeBus, Store } from '../../src/ports.js';
import { Reader, type ReaderOptions } from '../../src/reader/reader.js';
import type { Relay, RelayOptions } from '../../src/writer/relay.js';
import { Writer } from '../../src/writer/writer.js';
import { startRelay } from './relay.js';
import { kafkaBrokers, redisUrl, uniqueName } from './services.js';

export interface PipelineOptions {
  /** Names the topic, the key prefix, the consumer groups and the clients. */
  name: string;
  reader: Omit<ReaderOptions, 'instanceId'>;
  /** Wraps the reader's store (e.g. to hold its fetches). */
  readerStore?: (store: RedisStore) => Store;
  /** Wraps the reader's bus (e.g. to count its subscriptions). */
  readerBus?: (bus: KafkaBus) => ChangeBus;
  relay?: Partial<RelayOptions>;
  inlineValueMaxBytes?: number;
}

export interface Pipeline {
  readonly prefix: string;
  readonly reader: Reader;
  readonly writer: Writer;
  readonly writerStore: RedisStore;
  readonly writerBus: KafkaBus;
  /** The relay running now; stopRelay() and startRelay() hold announcements back and let them go. */
  readonly relay: Relay;
  stopRelay(): Promise<void>;
  startRelay(): void;
  close(): Promise<void>;
}

export async function startPipeline(options: PipelineOptions): Promise<Pipeline> {
  const { name } = options;
  const topic = uniqueName(name);
  const prefix = `${uniqueName(name)}:`;
  const busOptions = {
    brokers: kafkaBrokers(),
    topic,
    groupPrefix: `${name}.`,
    partitions: 2,
    replicationFactor: 1,
  };
  const closers: (() => Promise<unknown>)[] = [];
  const close = async () => {
    for (const closer of closers.reverse()) await closer();
  };
  try {
    const readerRedis = connectRedis(redisUrl());
    const writerRedis = connectRedis(redisUrl());
    closers.push(
      async () => readerRedis.quit(),
      async () => writerRedis.quit(),
    );
    const readerBus = await KafkaBus.create({ ...busOptions, clientId: `${name}-reader` });
    closers.push(() => readerBus.close());
    const writerBus = await KafkaBus.create({ ...busOptions, clientId: `${name}-writer` });
    closers.push(() => writerBus.close());
    const readerStore = new RedisStore({ redis: readerRedis, prefix });
    const reader = await Reader.start(
      options.readerStore?.(readerStore) ?? readerStore,
      options.readerBus?.(readerBus) ?? readerBus,
      { ...options.reader, instanceId: uniqueName(`${name}-reader`) },
    );
    closers.push(() => reader.close());
    const writerStore = new RedisStore({ redis: writerRedis, prefix });
    closers.push(async () => writerStore.close());
    let relay: Relay | null = startRelay(writerStore.outbox, writerBus, options.relay);
    closers.push(async () => relay?.close());
    const writer = new Writer(writerStore, {
      limits: {
        maxReadKeys: 1000,
        maxWriteEntries: 1000,
        maxKeyBytes: 1024,
        maxValueBytes: 1 << 20,
        maxTtlSeconds: 60,
      },
      tombstoneTtlMs: 60_000,
      inlineValueMaxBytes: options.inlineValueMaxBytes ?? 65536,
    });
    return {
      prefix,
      reader,
      writer,
      writerStore,
      writerBus,
      get relay() {
        if (relay === null) throw new Error('the relay is stopped');
        return relay;
      },
      async stopRelay() {
        await relay?.close();
        relay = null;
      },
      startRelay() {
        relay ??= startRelay(writerStore.outbox, writerBus, options.relay);
      },
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}
