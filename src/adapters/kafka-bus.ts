// The Kafka change bus: publishes changes keyed by entry key, gives every subscriber its own consumer group
// (broadcast), and proves a subscriber current with sync markers. The only module that imports kafkajs, so
// another Kafka client can replace it here alone.
import { randomUUID } from 'node:crypto';
import {
  Kafka,
  logLevel,
  Partitioners,
  type Admin,
  type Consumer,
  type EachBatchPayload,
  type LogEntry,
  type Message,
  type PartitionMetadata,
  type Producer,
} from 'kafkajs';
import type { Change } from '../domain/entry.js';
import { log, metrics, reportError, type Logger } from '../observability.js';
import type { ChangeBus, ChangeHandler, Subscription } from '../ports.js';
import { sleepUnlessWoken, wakeAll } from '../wake.js';
import {
  decodeBusMessage,
  encodeChange,
  encodeSyncMarker,
  messageBytesOf,
  type BusMessage,
} from './change-codec.js';

export interface KafkaBusOptions {
  readonly brokers: readonly string[];
  readonly topic: string;
  readonly clientId: string;
  /** A subscription's consumer group is groupPrefix + subscriberId. */
  readonly groupPrefix: string;
  /** Used only when the topic has to be created; the defaults are the configuration's (src/config.ts). */
  readonly partitions: number;
  readonly replicationFactor: number;
  /**
   * The created topic's min.insync.replicas: with acks=all, a change is acknowledged only once this many
   * replicas hold it, so a broker lost right after cannot take it away. Default 1.
   */
  readonly minInsyncReplicas?: number;
  readonly logger?: Logger;
  /** How long subscribe() may take to prove the subscription live (group join included). */
  readonly liveTimeoutMs?: number;
  /** Pause between sync marker rounds while a sync is incomplete. */
  readonly syncRoundMs?: number;
  /**
   * How long an idle fetch waits on the broker. Closing a subscription waits for the fetch in flight, so
   * this bounds close(); data (changes, markers) ends the wait at once, so it never delays delivery.
   */
  readonly fetchMaxWaitMs?: number;
  /**
   * How long subscribe() waits for members already in the subscriber's consumer group to go before it
   * refuses (another reader with the same id); default: the session timeout.
   */
  readonly inUseWaitMs?: number;
}

const published = metrics.counter(
  'tiercache_bus_published_total',
  'Messages the Kafka bus produced, by kind (change, sync)',
);
const consumed = metrics.counter(
  'tiercache_bus_consumed_total',
  'Messages Kafka subscriptions read, by kind (change, sync)',
);
const skipped = metrics.counter(
  'tiercache_bus_skipped_total',
  'Undecodable messages Kafka subscriptions skipped',
);
const incompleteSends = metrics.counter(
  'tiercache_bus_incomplete_sends_total',
  'Sends kafkajs reported done without an answer for every partition they carried; failed, sent again',
);
const handlerErrors = metrics.counter(
  'tiercache_bus_handler_errors_total',
  'Change handler calls that failed; delivery went on',
);

// Kafka protocol error codes: coordinator loading (14), not available (15), not coordinator (16), group not
// empty (68), group id not found (69).
const GROUP_ID_NOT_FOUND = 69;
const GROUP_DELETE_RETRIABLE = new Set([14, 15, 16, 68]);
const GROUP_DELETE_ATTEMPTS = 5;
// A reader restarted after a crash rejoins its own group, and waits until the broker gives up on the dead
// member: a short session keeps that wait near 10 s instead of kafkajs's 30 s default.
const SESSION_TIMEOUT_MS = 10_000;

/** What a subscription needs from its bus; kept narrow so the bus's own state stays private. */
interface SubscriptionHost {
  readonly topic: string;
  readonly syncRoundMs: number;
  readonly logger: Logger;
  readonly kafkaLog: KafkaLog;
  partitions(): readonly number[];
  sendMarkers(subscriber: string, round: number): Promise<void>;
  deleteGroup(groupId: string): Promise<void>;
  release(subscriberId: string): void;
}

export class KafkaBus implements ChangeBus {
  private readonly subscriptions = new Map<string, KafkaSubscription>();
  private partitionIds: readonly number[] = [];
  /** The topic's partitions as the partitioner takes them: it needs only their number (keys hash modulo). */
  private partitionMetadata: PartitionMetadata[] = [];
  /** kafkajs's own default (Java-compatible murmur2), so keys land where they always did. */
  private readonly partitioner = Partitioners.DefaultPartitioner();
  private closing: Promise<void> | null = null;
  private readonly host: SubscriptionHost;
  /** Encodings made to measure a change, reused when the same change object is published. */
  private readonly encoded = new WeakMap<Change, string>();

  private constructor(
    private readonly kafka: Kafka,
    private readonly admin: Admin,
    private readonly producer: Producer,
    private readonly options: KafkaBusOptions,
    private readonly logger: Logger,
    private readonly kafkaLog: KafkaLog,
  ) {
    this.host = {
      topic: options.topic,
      syncRoundMs: options.syncRoundMs ?? 500,
      logger,
      kafkaLog,
      partitions: () => this.partitionIds,
      sendMarkers: (subscriber, round) => this.sendMarkers(subscriber, round),
      deleteGroup: (groupId) => this.deleteGroup(groupId),
      release: (subscriberId) => this.subscriptions.delete(subscriberId),
    };
  }

  /** Connects, creates the topic if it is missing, and learns its partitions. */
  static async create(options: KafkaBusOptions): Promise<KafkaBus> {
    const logger = (options.logger ?? log).child({ component: 'kafka-bus', topic: options.topic });
    const kafkaLog = new KafkaLog(logger);
    const kafka = new Kafka({
      clientId: options.clientId,
      brokers: [...options.brokers],
      logLevel: logLevel.WARN,
      logCreator: () => (entry) => kafkaLog.write(entry),
    });
    const bus = new KafkaBus(
      kafka,
      kafka.admin(),
      kafka.producer({
        idempotent: true,
        maxInFlightRequests: 1,
        createPartitioner: Partitioners.DefaultPartitioner,
      }),
      options,
      logger,
      kafkaLog,
    );
    try {
      await Promise.all([bus.admin.connect(), bus.producer.connect()]);
      await bus.ensureTopic();
      kafkaLog.answered();
    } catch (error) {
      await bus.disconnectClients();
      throw error;
    }
    return bus;
  }

  async publish(changes: readonly Change[]): Promise<void> {
    this.assertOpen();
    if (changes.length === 0) return;
    await this.send(
      changes.map((change) => ({
        key: change.key,
        value: this.encode(change),
        partition: this.partitioner({
          topic: this.options.topic,
          partitionMetadata: this.partitionMetadata,
          message: { key: change.key, value: null },
        }),
      })),
    );
    published.inc({ kind: 'change' }, changes.length);
  }

  /**
   * kafkajs 2.2.4 can report a send done while part of it was never written. When a broker dies with a
   * produce request in flight, its retry sends only to the brokers that have not answered yet: partitions
   * whose leadership moved to a broker that already answered are skipped, and the send resolves (seen on a
   * 3-broker cluster, test/cluster/kafka-bus.test.ts; its node_modules/kafkajs/src/producer/sendMessages.js).
   * So every message names its partition, and a send whose answer lacks one of them fails: the caller sends
   * it again (the relay retries), and readers' fill rule makes the copies already written harmless.
   */
  private async send(messages: Message[]): Promise<void> {
    const records = await this.producer.send({ topic: this.options.topic, acks: -1, messages });
    this.kafkaLog.answered();
    const answered = new Set(records.map((record) => record.partition));
    const unanswered = [...new Set(messages.map((m) => m.partition))].filter(
      (partition) => partition !== undefined && !answered.has(partition),
    );
    if (unanswered.length > 0) {
      incompleteSends.inc();
      throw new Error(
        `Kafka answered no write for partition(s) ${unanswered.join(', ')} of topic ${this.options.topic} ` +
          '(a broker failed during the send); not acknowledged',
      );
    }
  }

  messageBytes(change: Change): number {
    return messageBytesOf(change.key, this.encode(change));
  }

  private encode(change: Change): string {
    let value = this.encoded.get(change);
    if (value === undefined) this.encoded.set(change, (value = encodeChange(change)));
    return value;
  }

  async subscribe(subscriberId: string, handler: ChangeHandler): Promise<Subscription> {
    this.assertOpen();
    // One id is one consumer group: two members of it would split the feed instead of each getting all.
    if (this.subscriptions.has(subscriberId))
      throw new Error(`subscriber ${subscriberId} is already subscribed`);
    const groupId = this.options.groupPrefix + subscriberId;
    await this.refuseIfInUse(subscriberId, groupId);
    const consumer = this.kafka.consumer({
      groupId,
      allowAutoTopicCreation: false,
      sessionTimeout: SESSION_TIMEOUT_MS,
      heartbeatInterval: 1_000,
      maxWaitTimeInMs: this.options.fetchMaxWaitMs ?? 1_000,
    });
    const subscription = new KafkaSubscription(this.host, subscriberId, groupId, consumer, handler);
    this.subscriptions.set(subscriberId, subscription);
    const started = Date.now();
    try {
      await subscription.start();
      await subscription.sync(this.options.liveTimeoutMs ?? 30_000);
    } catch (error) {
      await subscription.close();
      throw new Error(`subscription ${subscriberId} did not become live`, { cause: error });
    }
    this.logger.info('subscription live', { subscriber: subscriberId, groupId, ms: Date.now() - started });
    return subscription;
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      await Promise.all([...this.subscriptions.values()].map((subscription) => subscription.close()));
      await this.disconnectClients();
    })();
    return this.closing;
  }

  private assertOpen(): void {
    if (this.closing) throw new Error('KafkaBus is closed');
  }

  /**
   * Two readers started with one instance id would share its consumer group and silently split the feed.
   * A live member keeps its membership by heartbeats; a crashed predecessor's expires within the session
   * timeout. So members still there after that long belong to another running reader: refuse to start.
   */
  private async refuseIfInUse(subscriberId: string, groupId: string): Promise<void> {
    const deadline = Date.now() + (this.options.inUseWaitMs ?? SESSION_TIMEOUT_MS);
    let announced = false;
    for (;;) {
      const { groups } = await this.admin.describeGroups([groupId]);
      const members = groups.find((g) => g.groupId === groupId)?.members.length ?? 0;
      if (members === 0) return;
      if (Date.now() >= deadline) {
        throw new Error(
          `instance id ${JSON.stringify(subscriberId)} is in use: consumer group ${groupId} has ${members} ` +
            'live member(s), another reader running with this INSTANCE_ID; give each reader its own --instance-id',
        );
      }
      if (!announced) {
        this.logger.info('consumer group has members; waiting for a crashed predecessor to expire', {
          groupId,
          members,
        });
        announced = true;
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }

  private async ensureTopic(): Promise<void> {
    const { topic, partitions, replicationFactor, minInsyncReplicas = 1 } = this.options;
    // Asked first because kafkajs logs creating an existing topic as an error: every process after the first
    // would start with one. createTopics() still answers false if another process created it meanwhile.
    const created =
      !(await this.admin.listTopics()).includes(topic) &&
      (await this.admin.createTopics({
        waitForLeaders: false,
        topics: [
          {
            topic,
            numPartitions: partitions,
            replicationFactor,
            configEntries: [{ name: 'min.insync.replicas', value: String(minInsyncReplicas) }],
          },
        ],
      }));
    // A topic just created (here or by another process) can take a loaded broker longer to serve than
    // kafkajs's own retries wait: it is not a failure until the start-up deadline.
    const deadline = Date.now() + (this.options.liveTimeoutMs ?? 30_000);
    for (;;) {
      try {
        await this.refreshPartitions();
        break;
      } catch (error) {
        if (Date.now() > deadline || !isTopicNotReady(error)) throw error;
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    }
    this.logger.info(created ? 'topic created' : 'topic found', { partitions: this.partitionIds.length });
  }

  // Re-read on every sync round so partitions added to the topic later are covered by the barrier too.
  private async refreshPartitions(): Promise<void> {
    const { topics } = await this.admin.fetchTopicMetadata({ topics: [this.options.topic] });
    const ids = topics
      .find((t) => t.name === this.options.topic)
      ?.partitions.map((p) => p.partitionId)
      .sort((a, b) => a - b);
    if (!ids?.length) throw new Error(`topic ${this.options.topic} has no partitions`);
    this.partitionIds = ids;
    if (this.partitionMetadata.length !== ids.length) {
      this.partitionMetadata = ids.map((partitionId) => ({
        partitionErrorCode: 0,
        partitionId,
        leader: 0,
        replicas: [],
        isr: [],
      }));
    }
  }

  private async sendMarkers(subscriber: string, round: number): Promise<void> {
    await this.refreshPartitions();
    const value = encodeSyncMarker({ subscriber, round });
    await this.send(this.partitionIds.map((partition) => ({ partition, value })));
    published.inc({ kind: 'sync' }, this.partitionIds.length);
  }

  private async deleteGroup(groupId: string): Promise<void> {
    for (let attempt = 1; ; attempt += 1) {
      try {
        await this.admin.deleteGroups([groupId]);
        return;
      } catch (error) {
        const codes = groupErrorCodes(error);
        if (codes.length > 0 && codes.every((code) => code === GROUP_ID_NOT_FOUND)) return;
        // Only a member the coordinator still counts, or a coordinator moving, is worth waiting for; anything
        // else (broker gone) would only hold up shutdown.
        const worthWaiting = codes.length > 0 && codes.every((code) => GROUP_DELETE_RETRIABLE.has(code));
        if (!worthWaiting || attempt >= GROUP_DELETE_ATTEMPTS) {
          this.logger.warn('could not delete consumer group; the broker will expire it', { groupId, error });
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, 100 * 2 ** attempt));
      }
    }
  }

  private async disconnectClients(): Promise<void> {
    const results = await Promise.allSettled([this.producer.disconnect(), this.admin.disconnect()]);
    for (const result of results) {
      if (result.status === 'rejected') this.logger.warn('disconnect failed', { error: result.reason });
    }
  }
}

class KafkaSubscription implements Subscription {
  /** Unique per subscription object: a restarted reader with the same id must not count its old markers. */
  private readonly marker: string;
  /** Highest own marker round read back, by partition. */
  private readonly seen = new Map<number, number>();
  private round = 0;
  private sending = false;
  private lastSendError: unknown = undefined;
  private readonly onProgress = new Set<() => void>();
  private closed = false;
  private closing: Promise<void> | null = null;
  private readonly logger: Logger;

  constructor(
    private readonly host: SubscriptionHost,
    private readonly subscriberId: string,
    private readonly groupId: string,
    private readonly consumer: Consumer,
    private readonly handler: ChangeHandler,
  ) {
    this.logger = host.logger.child({ subscriber: subscriberId, groupId });
    this.marker = `${groupId}/${randomUUID()}`;
  }

  async start(): Promise<void> {
    this.consumer.on(this.consumer.events.CRASH, ({ payload }) => {
      if (payload.restart) {
        const context = { groupId: this.groupId, error: payload.error };
        if (CONNECTION_TROUBLE.test(String(payload.error)))
          this.host.kafkaLog.trouble('consumer restarting after a connection error', context);
        else this.logger.warn('consumer restarting after an error', context);
      } else
        reportError('kafka-bus', 'consumer stopped after an error', payload.error, { groupId: this.groupId });
    });
    this.consumer.on(this.consumer.events.FETCH, () => this.host.kafkaLog.answered());
    await this.consumer.connect();
    await this.consumer.subscribe({ topics: [this.host.topic], fromBeginning: false });
    // Offsets are resolved by hand, only once the handler has had the messages, so stopping mid-batch
    // never marks undelivered messages as done.
    await this.consumer.run({ eachBatchAutoResolve: false, eachBatch: (payload) => this.consume(payload) });
  }

  /**
   * A marker of round n read back on a partition proves that everything appended to it before the marker
   * has been delivered. A new group resolves 'latest' only at its first fetch, so markers sent before then
   * can be skipped: rounds repeat until every partition has answered one of this call's rounds (a later
   * round answers for an earlier one, since each partition is read in order).
   */
  async sync(timeoutMs: number): Promise<void> {
    const first = this.round + 1;
    const deadline = Date.now() + timeoutMs;
    let nextRound = 0;
    for (;;) {
      if (this.closed) throw new Error(`subscription ${this.subscriberId} is closed`);
      if (this.host.partitions().every((p) => (this.seen.get(p) ?? 0) >= first)) return;
      const now = Date.now();
      if (now >= deadline) {
        const done = this.host.partitions().filter((p) => (this.seen.get(p) ?? 0) >= first).length;
        throw new Error(
          `sync of subscriber ${this.subscriberId} timed out after ${timeoutMs} ms: ` +
            `${done} of ${this.host.partitions().length} partitions confirmed`,
          { cause: this.lastSendError },
        );
      }
      if (now >= nextRound) {
        this.sendRound();
        nextRound = now + this.host.syncRoundMs;
      }
      await sleepUnlessWoken(this.onProgress, Math.min(deadline, nextRound) - now);
    }
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closed = true;
      wakeAll(this.onProgress);
      try {
        await this.consumer.disconnect();
      } catch (error) {
        this.logger.warn('consumer disconnect failed', { error });
      }
      await this.host.deleteGroup(this.groupId);
      this.host.release(this.subscriberId);
    })();
    return this.closing;
  }

  // Not awaited by sync(): a send stuck in the client's retries must not hold sync() past its deadline.
  private sendRound(): void {
    if (this.sending) return;
    this.sending = true;
    this.round += 1;
    this.host
      .sendMarkers(this.marker, this.round)
      .then(() => (this.lastSendError = undefined))
      .catch((error: unknown) => {
        this.lastSendError = error;
        this.logger.warn('sync marker send failed', { error });
      })
      .finally(() => (this.sending = false));
  }

  private async consume({
    batch,
    resolveOffset,
    commitOffsetsIfNecessary,
    uncommittedOffsets,
    heartbeat,
    isRunning,
    isStale,
  }: EachBatchPayload): Promise<void> {
    let changes: Change[] = [];
    let lastOffset: string | null = null;
    const handOver = async (): Promise<void> => {
      if (changes.length > 0) await this.deliver(changes);
      if (lastOffset !== null) resolveOffset(lastOffset);
      changes = [];
      lastOffset = null;
      await heartbeat();
    };
    for (const message of batch.messages) {
      // Unresolved messages are fetched again if consumption resumes, so dropping them here loses nothing.
      if (this.closed || !isRunning() || isStale()) return;
      lastOffset = message.offset;
      let decoded: BusMessage;
      try {
        decoded = decodeBusMessage(message.value);
      } catch (error) {
        skipped.inc();
        this.logger.warn('skipped an undecodable message', {
          partition: batch.partition,
          offset: message.offset,
          error,
        });
        continue;
      }
      consumed.inc({ kind: decoded.kind });
      if (decoded.kind === 'change') {
        changes.push(decoded.change);
      } else if (decoded.subscriber === this.marker) {
        await handOver();
        // Committed before it counts: a consumer restarted without a committed offset would resume at
        // 'latest' and silently skip whatever was published after the barrier said it was live.
        await commitOffsetsIfNecessary(uncommittedOffsets());
        if (decoded.round > (this.seen.get(batch.partition) ?? 0)) {
          this.seen.set(batch.partition, decoded.round);
        }
        wakeAll(this.onProgress);
      }
    }
    await handOver();
  }

  private async deliver(changes: readonly Change[]): Promise<void> {
    if (this.closed) return;
    try {
      await this.handler(changes);
    } catch (error) {
      handlerErrors.inc();
      reportError('kafka-bus', 'change handler failed; delivery goes on', error, {
        subscriber: this.subscriberId,
        changes: changes.length,
      });
    }
  }
}

// A broker that refuses, drops or times out connections, or hands leadership over while it stops: kafkajs
// logs every attempt, at ERROR.
const CONNECTION_TROUBLE =
  /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|EHOSTUNREACH|ENOTFOUND|Connection (error|timeout)|Closed connection|connection (closed|timed out)|Failed to connect|KafkaJSConnection|KafkaJSNumberOfRetriesExceeded|Restarting the consumer|Request .* timed out|No broker available|KafkaJSBrokerNotFound|not the leader|no leader|leader (is )?not available/i;

/**
 * kafkajs's own log, cut to what an operator needs. Connection trouble while a broker is down or restarting
 * is one warning when it starts and one line when it ends (kafkajs retries meanwhile, and callers report
 * what failed); an error response is debug, because kafkajs hands it to its caller, which reports or
 * handles it (an existing topic, a group that is gone). Everything else keeps kafkajs's level.
 */
class KafkaLog {
  /** null until the first successful exchange: start-up reports its own failure in one line. */
  private reachable: boolean | null = null;

  constructor(private readonly logger: Logger) {}

  write({ level, namespace, log: entry }: LogEntry): void {
    const { message, timestamp: _timestamp, ...extra } = entry;
    const text = String(message);
    const context: Record<string, unknown> = { source: 'kafkajs', namespace, ...extra };
    if (namespace === 'Connection' && text.startsWith('Response ')) {
      this.logger.debug(text, context);
    } else if (level <= logLevel.WARN && CONNECTION_TROUBLE.test(`${text} ${String(extra.error ?? '')}`)) {
      this.trouble(text, context);
    } else if (level <= logLevel.ERROR) this.logger.error(text, context);
    else if (level <= logLevel.WARN) this.logger.warn(text, context);
    else this.logger.debug(text, context);
  }

  /** A connection problem: the first since Kafka last answered is a warning, the rest debug. */
  trouble(text: string, context: Record<string, unknown>): void {
    if (this.reachable === true) {
      this.logger.warn('kafka unreachable; retrying (one line when it answers again)', {
        ...context,
        first: text,
      });
    } else this.logger.debug(text, context);
    if (this.reachable !== null) this.reachable = false;
  }

  /** Kafka answered: ends a stretch of connection trouble. */
  answered(): void {
    if (this.reachable === false) this.logger.info('kafka reachable again');
    this.reachable = true;
  }
}

/**
 * kafkajs 2.2.4 schedules its request-queue check with a negative delay (throttledUntil starts at -1), which
 * Node 24+ reports as a TimeoutNegativeWarning on every connection (tulios/kafkajs#1751, unreleased fix); the
 * delay is clamped to 1 ms, as kafkajs meant. Only that warning from that place is dropped.
 */
function silenceKafkajsNegativeTimeout(): void {
  const emit = process.emitWarning.bind(process);
  const filtered = (warning: string | Error, ...rest: unknown[]): void => {
    // emitWarning's second argument is the warning's type, or an options object that may carry it.
    const type = typeof rest[0] === 'string' ? rest[0] : (rest[0] as { type?: unknown } | undefined)?.type;
    const name = warning instanceof Error ? warning.name : type;
    if (
      name === 'TimeoutNegativeWarning' &&
      /kafkajs[\\/]src[\\/]network[\\/]requestQueue/.test(new Error().stack ?? '')
    )
      return;
    // emitWarning's overloads cannot be spelled with a rest parameter; the arguments pass through unchanged.
    (emit as (...args: unknown[]) => void)(warning, ...rest);
  };
  process.emitWarning = filtered as typeof process.emitWarning;
}
silenceKafkajsNegativeTimeout();

/** Whether kafkajs gave up because the topic or its leaders are not known yet (it is being created). */
function isTopicNotReady(error: unknown): boolean {
  for (let e = error, depth = 0; e instanceof Error && depth < 5; depth++) {
    // kafkajs's errors add fields Error does not declare: a protocol error's type, a retry error's
    // originalError. Each is only compared or followed, so any value (or none) is safe.
    const type = (e as { type?: unknown }).type;
    if (type === 'UNKNOWN_TOPIC_OR_PARTITION' || type === 'LEADER_NOT_AVAILABLE') return true;
    e = (e as { cause?: unknown; originalError?: unknown }).originalError ?? e.cause;
  }
  return false;
}

/** The per-group error codes of a failed deleteGroups; empty when the failure was not about the group. */
function groupErrorCodes(error: unknown): number[] {
  if (!(error instanceof Error) || !('groups' in error) || !Array.isArray(error.groups)) return [];
  return error.groups.map((group: unknown) =>
    typeof group === 'object' && group !== null && 'errorCode' in group && typeof group.errorCode === 'number'
      ? group.errorCode
      : -1,
  );
}
