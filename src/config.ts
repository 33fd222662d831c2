// The one validated, typed configuration: every setting is an environment variable and a flag (the flag
// wins), checked at start-up with a message that names the bad setting. README's table is this list.
import { isIP } from 'node:net';
import { availableParallelism, hostname } from 'node:os';

export type Mode = 'reader' | 'writer' | 'all';

export interface Config {
  mode: Mode;
  host: string;
  port: number;
  /** Empty: embedded in-memory store (not durable). */
  redisUrl: string | null;
  /** Seeds of a Redis Cluster (host:port); set instead of redisUrl. */
  redisClusterNodes: string[] | null;
  /** Replicas a cluster write waits for (WAIT) before it is acknowledged; 0: none. */
  redisMinReplicasAck: number;
  redisKeyPrefix: string;
  /** Empty: in-process bus (single process only). */
  kafkaBrokers: string[] | null;
  kafkaTopic: string;
  kafkaPartitions: number;
  kafkaReplicationFactor: number;
  /** Replicas that must have a change before Kafka acknowledges it (acks=all); set on the topic we create. */
  kafkaMinInsyncReplicas: number;
  kafkaClientId: string;
  kafkaGroupPrefix: string;
  instanceId: string;
  memoryMaxEntries: number;
  memoryMaxBytes: number;
  memoryTtlMs: number;
  negativeTtlMs: number;
  purgeIntervalMs: number;
  tombstoneTtlMs: number;
  mgetChunkSize: number;
  maxReadKeys: number;
  maxWriteEntries: number;
  maxKeyBytes: number;
  maxValueBytes: number;
  maxTtlSeconds: number;
  maxRequestBytes: number;
  inlineValueMaxBytes: number;
  outboxReclaimMs: number;
  outboxMaxBytes: number;
  outboxMaxEntries: number;
  feedSyncIntervalMs: number;
  feedMaxLagMs: number;
  shutdownTimeoutMs: number;
  subscriptionBufferSize: number;
  subscriptionSlowConsumerMs: number;
  subscriptionRememberedKeys: number;
  subscriptionsPerConnection: number;
  subscriptionsPerProcess: number;
  logLevel: 'debug' | 'info' | 'warn' | 'error';
  /** Bearer tokens that may write; empty: anyone who can connect (refused off loopback, see below). */
  writeTokens: string[];
  /** Bearer tokens that may read (write tokens may too); empty: reads are open. */
  readTokens: string[];
  allowAnonymousWrites: boolean;
  /** Origins browsers may call from (CORS); empty: CORS off. */
  corsOrigins: string[];
  /** Default: on only in the embedded default (a development setup). */
  introspection: boolean;
  /** Plain POST application/json queries answered by the compiled fast path (src/http/fast-path.ts). */
  fastPath: boolean;
  /** Reader processes on one port (src/workers.ts); 1: this process serves. */
  workers: number;
  maxQueryTokens: number;
  maxQueryDepth: number;
  maxAliases: number;
  maxResponseBytes: number;
  httpRequestTimeoutMs: number;
  httpHeadersTimeoutMs: number;
  httpKeepAliveTimeoutMs: number;
  maxConnections: number;
}

type Parser<T> = (raw: string) => T;

interface Setting<K extends keyof Config> {
  key: K;
  env: string;
  flag: string;
  /** The default as the user would type it; null when the default is computed. */
  fallback: string | null;
  parse: Parser<Config[K]>;
  help: string;
  /** A secret: its value never appears in a message. */
  secret?: boolean;
  /** A switch: `--flag` alone means true. */
  boolean?: boolean;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

const int =
  (min: number, max = Number.MAX_SAFE_INTEGER): Parser<number> =>
  (raw) => {
    const n = Number(raw);
    if (!/^-?\d+$/.test(raw.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new Error(`must be a whole number from ${min} to ${max}`);
    }
    return n;
  };
const text: Parser<string> = (raw) => raw;
const nonEmpty: Parser<string> = (raw) => {
  if (raw.trim() === '') throw new Error('must not be empty');
  return raw.trim();
};
const optionalUrl: Parser<string | null> = (raw) => {
  if (raw.trim() === '') return null;
  const url = new URL(raw.trim());
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:')
    throw new Error('must be a redis:// or rediss:// URL');
  return raw.trim();
};
const brokers: Parser<string[] | null> = (raw) => {
  const list = raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (list.length === 0) return null;
  for (const b of list) if (!/^[^\s:]+:\d{1,5}$/.test(b)) throw new Error(`"${b}" is not host:port`);
  return list;
};
const oneOf =
  <T extends string>(...values: T[]): Parser<T> =>
  (raw) => {
    // includes() does not narrow: widening the list to string[] asks, and a match proves raw one of T.
    if (!(values as string[]).includes(raw)) throw new Error(`must be one of ${values.join(', ')}`);
    return raw as T;
  };

const workerCount: Parser<number> = (raw) =>
  raw.trim() === 'auto' ? availableParallelism() : int(1, 256)(raw);
const bool: Parser<boolean> = (raw) => {
  const v = raw.trim().toLowerCase();
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  throw new Error('must be true or false');
};
const list: Parser<string[]> = (raw) =>
  raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
// RFC 6750's token68 alphabet, so a token travels in `Authorization: Bearer …` unchanged.
const tokens: Parser<string[]> = (raw) => {
  const all = list(raw);
  if (all.some((t) => !/^[A-Za-z0-9\-._~+/]{16,}=*$/.test(t)))
    throw new Error('each token must be at least 16 characters of A-Z a-z 0-9 - . _ ~ + /');
  return all;
};
const origins: Parser<string[]> = (raw) => {
  const all = list(raw);
  for (const o of all) {
    if (o === '*') continue;
    const url = new URL(o);
    if (url.origin !== o) throw new Error(`"${o}" is not an origin like https://app.example.com`);
  }
  return all;
};

function setting<K extends keyof Config>(
  key: K,
  env: string,
  fallback: string | null,
  parse: Parser<Config[K]>,
  help: string,
  flag = env.toLowerCase().replace(/_/g, '-'),
  extra: { secret?: boolean; boolean?: boolean } = {},
): Setting<K> {
  return { key, env, flag, fallback, parse, help, ...extra };
}

const MiB = 1024 * 1024;

/** Every setting, in the order README lists them. */
export const SETTINGS = [
  // Not MODE: build tools (vite among them) set MODE in the environment of everything they start.
  setting(
    'mode',
    'TIERCACHE_MODE',
    'all',
    oneOf<Mode>('reader', 'writer', 'all'),
    'Roles this process serves: `reader`, `writer` or `all`',
    'mode',
  ),
  setting('host', 'HOST', '127.0.0.1', nonEmpty, 'Address to listen on (0.0.0.0 for all interfaces)'),
  setting('port', 'PORT', '4000', int(0, 65535), 'Port to listen on (0: any free port)'),
  setting(
    'redisUrl',
    'REDIS_URL',
    '',
    optionalUrl,
    'Redis URL; empty: embedded in-memory store, not durable',
  ),
  setting(
    'redisClusterNodes',
    'REDIS_CLUSTER_NODES',
    '',
    // The same shape as KAFKA_BROKERS: comma-separated host:port.
    brokers,
    'Comma-separated host:port seeds of a Redis Cluster, instead of `REDIS_URL`',
  ),
  setting(
    'redisMinReplicasAck',
    'REDIS_MIN_REPLICAS_ACK',
    '0',
    int(0, 16),
    'Redis Cluster: replicas that must have a write (`WAIT`, 1 s) before it is acknowledged; 0: none',
  ),
  setting('redisKeyPrefix', 'REDIS_KEY_PREFIX', 'tc:', text, 'Prefix of every Redis key tiercache writes'),
  setting(
    'kafkaBrokers',
    'KAFKA_BROKERS',
    '',
    brokers,
    'Comma-separated host:port list; empty: in-process bus',
  ),
  setting('kafkaTopic', 'KAFKA_TOPIC', 'tiercache.changes', nonEmpty, 'Topic of the change feed'),
  setting(
    'kafkaPartitions',
    'KAFKA_PARTITIONS',
    '6',
    int(1, 10_000),
    'Partitions when tiercache creates the topic',
  ),
  setting(
    'kafkaReplicationFactor',
    'KAFKA_REPLICATION_FACTOR',
    '1',
    int(1, 100),
    'Replication factor when tiercache creates the topic',
  ),
  setting(
    'kafkaMinInsyncReplicas',
    'KAFKA_MIN_INSYNC_REPLICAS',
    null,
    int(1, 100),
    "The created topic's min.insync.replicas: replicas holding a change before it is acknowledged",
  ),
  setting('kafkaClientId', 'KAFKA_CLIENT_ID', 'tiercache', nonEmpty, 'Kafka client id'),
  setting(
    'kafkaGroupPrefix',
    'KAFKA_GROUP_PREFIX',
    'tiercache.reader.',
    nonEmpty,
    "Prefix of each reader's own consumer group",
  ),
  setting('instanceId', 'INSTANCE_ID', null, nonEmpty, 'Stable id of this reader (its consumer group)'),
  setting('memoryMaxEntries', 'MEMORY_MAX_ENTRIES', '100000', int(1), 'Most entries in the memory tier'),
  setting(
    'memoryMaxBytes',
    'MEMORY_MAX_BYTES',
    String(256 * MiB),
    int(1024),
    'Most bytes in the memory tier',
  ),
  setting('memoryTtlMs', 'MEMORY_TTL_MS', '300000', int(1), 'Longest time a memory entry is kept'),
  setting(
    'negativeTtlMs',
    'NEGATIVE_TTL_MS',
    '5000',
    int(1),
    'How long an absent or deleted key is remembered in memory',
  ),
  setting(
    'purgeIntervalMs',
    'PURGE_INTERVAL_MS',
    '10000',
    int(10),
    'Interval of the job that removes expired memory entries',
  ),
  setting(
    'tombstoneTtlMs',
    'TOMBSTONE_TTL_MS',
    '600000',
    int(1000),
    "How long a delete's tombstone stays in Redis",
  ),
  setting('mgetChunkSize', 'MGET_CHUNK_SIZE', '500', int(1, 100_000), 'Most keys in one Redis MGET'),
  setting(
    'maxReadKeys',
    'MAX_READ_KEYS',
    '1000',
    int(1),
    'Most keys one request reads, across all its fields and aliases',
  ),
  setting(
    'maxWriteEntries',
    'MAX_WRITE_ENTRIES',
    '1000',
    int(1),
    'Most entries (or keys deleted) one request writes, across all its fields and aliases',
  ),
  setting('maxKeyBytes', 'MAX_KEY_BYTES', '1024', int(1), 'Longest key, UTF-8 bytes'),
  setting('maxValueBytes', 'MAX_VALUE_BYTES', String(MiB), int(0), 'Longest value, UTF-8 bytes'),
  setting('maxTtlSeconds', 'MAX_TTL_SECONDS', String(365 * 24 * 3600), int(1), 'Longest ttlSeconds accepted'),
  setting(
    'maxRequestBytes',
    'MAX_REQUEST_BYTES',
    String(64 * MiB),
    int(1024),
    'Largest HTTP request body, GraphQL and REST alike (a body needs a Content-Length)',
  ),
  setting(
    'inlineValueMaxBytes',
    'KAFKA_INLINE_VALUE_MAX_BYTES',
    '65536',
    // Below the relay's 512 KiB publish batches, themselves below Kafka's 1 MB default message size.
    int(0, 256 * 1024),
    'Larger values travel as invalidations (version only)',
  ),
  setting(
    'outboxReclaimMs',
    'OUTBOX_RECLAIM_MS',
    '10000',
    int(100),
    'A writer takes over outbox entries another writer claimed but did not announce for this long',
  ),
  setting(
    'outboxMaxBytes',
    'OUTBOX_MAX_BYTES',
    String(256 * MiB),
    int(0),
    'Writes are refused (`UNAVAILABLE`, "the change feed is backed up") while this many bytes of changes wait to be announced; 0: no bound',
  ),
  setting(
    'outboxMaxEntries',
    'OUTBOX_MAX_ENTRIES',
    '0',
    int(0),
    'Writes are refused (`UNAVAILABLE`) while this many committed batches wait to be announced; 0: no bound',
  ),
  setting(
    'feedSyncIntervalMs',
    'FEED_SYNC_INTERVAL_MS',
    '1000',
    int(10),
    'How often a reader proves its feed current',
  ),
  setting(
    'feedMaxLagMs',
    'FEED_MAX_LAG_MS',
    '5000',
    int(100),
    'Oldest proof (that every change committed up to then reached the reader) accepted before bypassing memory',
  ),
  setting(
    'shutdownTimeoutMs',
    'SHUTDOWN_TIMEOUT_MS',
    '5000',
    int(100, 600_000),
    'Longest a stop (SIGINT, SIGTERM) takes; what is not done by then is logged and skipped',
  ),
  setting(
    'subscriptionBufferSize',
    'SUBSCRIPTION_BUFFER_SIZE',
    '1000',
    int(1, 1_000_000),
    'Events waiting per subscription; past it, changes to a waiting key coalesce (newest version wins)',
  ),
  setting(
    'subscriptionSlowConsumerMs',
    'SUBSCRIPTION_SLOW_CONSUMER_MS',
    '10000',
    int(1),
    'A subscription whose buffer stays full this long, or holds twice its size, is closed (`SLOW_CONSUMER`)',
  ),
  setting(
    'subscriptionRememberedKeys',
    'SUBSCRIPTION_REMEMBERED_KEYS',
    '10000',
    int(1, 10_000_000),
    'Keys whose last sent version a subscription remembers (bounds a prefix subscription; a prefix resync covers them)',
  ),
  setting(
    'subscriptionsPerConnection',
    'SUBSCRIPTIONS_PER_CONNECTION',
    '100',
    int(1),
    'Most open subscriptions on one WebSocket or graphql-sse stream',
  ),
  setting(
    'subscriptionsPerProcess',
    'SUBSCRIPTIONS_PER_PROCESS',
    '20000',
    int(1),
    'Most open subscriptions on one reader',
  ),
  setting(
    'logLevel',
    'LOG_LEVEL',
    'info',
    oneOf('debug', 'info', 'warn', 'error'),
    'Least severe log level written (`debug`, `info`, `warn`, `error`)',
  ),
  setting(
    'writeTokens',
    'WRITE_TOKENS',
    '',
    tokens,
    'Comma-separated secrets; when set, writes need `Authorization: Bearer <one of them>`',
    'write-tokens',
    { secret: true },
  ),
  setting(
    'readTokens',
    'READ_TOKENS',
    '',
    tokens,
    'Comma-separated secrets; when set, reads, subscriptions and `/metrics` need one (or a write token)',
    'read-tokens',
    { secret: true },
  ),
  setting(
    'allowAnonymousWrites',
    'ALLOW_ANONYMOUS_WRITES',
    'false',
    bool,
    'Let a writer listen off loopback without `WRITE_TOKENS` (it refuses to start otherwise)',
    'allow-anonymous-writes',
    { boolean: true },
  ),
  setting(
    'corsOrigins',
    'CORS_ORIGINS',
    '',
    origins,
    'Comma-separated origins browsers may call from (`*`: any); empty: CORS off',
  ),
  setting(
    'introspection',
    'INTROSPECTION',
    null,
    bool,
    'Answer schema introspection; default: on only in the embedded default',
    'introspection',
    { boolean: true },
  ),
  setting(
    'workers',
    'WORKERS',
    '1',
    workerCount,
    'Reader processes sharing the port, each with its own memory tier and consumer group; auto: one per core',
  ),
  setting(
    'fastPath',
    'FAST_PATH',
    'true',
    bool,
    'Answer plain POST application/json queries with compiled GraphQL (graphql-jit); yoga answers the rest',
    'fast-path',
    { boolean: true },
  ),
  setting(
    'maxQueryTokens',
    'MAX_QUERY_TOKENS',
    '20000',
    int(100),
    'Most tokens in one GraphQL document (parsing stops there)',
  ),
  setting(
    'maxQueryDepth',
    'MAX_QUERY_DEPTH',
    '15',
    int(2, 1000),
    "Deepest field nesting in one operation (graphql-js's own introspection query nests 15)",
  ),
  setting('maxAliases', 'MAX_ALIASES', '30', int(0), 'Most aliased fields in one GraphQL document'),
  setting(
    'maxResponseBytes',
    'MAX_RESPONSE_BYTES',
    String(64 * MiB),
    int(1024),
    'Most key and value bytes one answer may carry, as UTF-8 JSON (escapes counted); `RESPONSE_TOO_LARGE` past it',
  ),
  setting(
    'httpRequestTimeoutMs',
    'HTTP_REQUEST_TIMEOUT_MS',
    '30000',
    int(1000),
    'Longest time to receive a whole request',
  ),
  setting(
    'httpHeadersTimeoutMs',
    'HTTP_HEADERS_TIMEOUT_MS',
    '10000',
    int(1000),
    "Longest time to receive a request's headers",
  ),
  setting(
    'httpKeepAliveTimeoutMs',
    'HTTP_KEEP_ALIVE_TIMEOUT_MS',
    '5000',
    int(100),
    'How long an idle keep-alive connection stays open',
  ),
  setting(
    'maxConnections',
    'MAX_CONNECTIONS',
    '10000',
    int(1),
    'Most open client connections (more are closed at once)',
  ),
] as const;

const BOOLEAN_FLAGS = new Set<string>(SETTINGS.filter((s) => 'boolean' in s && s.boolean).map((s) => s.flag));

/** Loopback only: localhost, 127.0.0.0/8, ::1 (and its IPv4-mapped form). */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost') return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  return h === '::1' || h.startsWith('::ffff:127.');
}

/** Defaults computed at start-up, as the README's table and --help describe them. */
const COMPUTED_DEFAULTS: Partial<Record<keyof Config, string>> = {
  instanceId: 'host-port',
  kafkaMinInsyncReplicas: '2 if RF ≥ 3, else 1',
  introspection: 'embedded only',
};

/** A setting's default as README's table shows it. */
export function shownDefault(s: (typeof SETTINGS)[number]): string {
  if (s.fallback === null) return COMPUTED_DEFAULTS[s.key] ?? '(computed)';
  return s.fallback === '' ? '(empty)' : s.fallback;
}

export function wantsHelp(argv: readonly string[]): boolean {
  return argv.includes('--help') || argv.includes('-h');
}

/** What --help prints: every flag with its variable, default and meaning, from the same list as README. */
export function usage(): string {
  const lines = SETTINGS.map((s) => {
    const value = shownDefault(s);
    return `  --${s.flag}=…  (${s.env}; default ${value.startsWith('(') ? value.slice(1, -1) : value})\n      ${s.help.replace(/`/g, '')}`;
  });
  return [
    'Usage: node dist/main.js [--flag=value …]   (or: npm start -- [--flag=value …])',
    '',
    'Serves tiercache: GraphQL at /graphql, REST /read and /write, /health, /ready, /metrics.',
    'Every setting is a flag or an environment variable (the flag wins). Without REDIS_URL and KAFKA_BROKERS',
    'it runs embedded: reader and writer in one process, in memory, nothing durable.',
    '',
    ...lines,
    '  --help, -h',
    '      Print this and exit',
    '',
  ].join('\n');
}

/** Builds the configuration from flags (`--name=value` or `--name value`) over environment variables. */
export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv): Config {
  const flags = parseFlags(argv);
  const config: Partial<Record<keyof Config, unknown>> = {};
  const problems: string[] = [];
  for (const s of SETTINGS) {
    const fromFlag = flags.get(s.flag);
    flags.delete(s.flag);
    const raw = fromFlag ?? env[s.env] ?? s.fallback;
    if (raw === null) continue;
    try {
      config[s.key] = s.parse(raw);
    } catch (error) {
      const where =
        fromFlag !== undefined ? `--${s.flag}` : env[s.env] !== undefined ? s.env : `default of ${s.env}`;
      const shown = 'secret' in s && s.secret ? '<redacted>' : JSON.stringify(raw);
      problems.push(`${where}=${shown}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  for (const unknown of flags.keys()) problems.push(`--${unknown}: unknown flag (see --help)`);
  config.instanceId ??= `${hostname()}-${String(config.port ?? 'x')}`;
  // Kafka's usual durable pair: with 3 replicas an acknowledged change is on 2, and one broker may be down.
  // A bad replication factor is already a problem; 1 only keeps this line from failing before it is told.
  const replicas = typeof config.kafkaReplicationFactor === 'number' ? config.kafkaReplicationFactor : 1;
  config.kafkaMinInsyncReplicas ??= replicas >= 3 ? 2 : 1;
  // Introspection helps development and maps the API for an attacker: on by default only when embedded.
  config.introspection ??= !config.redisUrl && !config.redisClusterNodes && !config.kafkaBrokers;
  // Every key of Config has a setting: parsed above (or a problem recorded), or, for instanceId,
  // kafkaMinInsyncReplicas and introspection (null by default), filled just above; config.test.ts checks
  // the whole shape.
  const result = config as Config;
  if (problems.length === 0) problems.push(...combinationProblems(result));
  if (problems.length > 0) throw new ConfigError(`invalid configuration: ${problems.join('; ')}`);
  return result;
}

/** Settings valid one by one that do not go together, each with the way out. */
function combinationProblems(config: Config): string[] {
  const problems: string[] = [];
  if (
    config.mode !== 'reader' &&
    config.writeTokens.length === 0 &&
    !config.allowAnonymousWrites &&
    !isLoopback(config.host)
  )
    problems.push(
      `HOST=${config.host} is reachable from other machines and this process takes writes (mode ${config.mode}), ` +
        'but WRITE_TOKENS is empty, so anyone who can connect could write: set WRITE_TOKENS, listen on ' +
        '127.0.0.1, or pass --allow-anonymous-writes to accept that',
    );
  if (config.workers > 1 && config.mode !== 'reader')
    problems.push(
      `WORKERS=${config.workers} needs --mode=reader: each worker is a reader of its own (a writer or the ` +
        'embedded default would split its state between processes)',
    );
  if (config.kafkaMinInsyncReplicas > config.kafkaReplicationFactor)
    problems.push(
      `KAFKA_MIN_INSYNC_REPLICAS=${config.kafkaMinInsyncReplicas} is above KAFKA_REPLICATION_FACTOR=` +
        `${config.kafkaReplicationFactor}: no write could ever be acknowledged; lower it or add replicas`,
    );
  if (config.feedSyncIntervalMs >= config.feedMaxLagMs)
    problems.push(
      'FEED_SYNC_INTERVAL_MS must be below FEED_MAX_LAG_MS, or the feed could never be proven current',
    );
  const redis = config.redisClusterNodes ? 'REDIS_CLUSTER_NODES' : 'REDIS_URL';
  if (config.redisUrl && config.redisClusterNodes)
    problems.push(
      'REDIS_URL and REDIS_CLUSTER_NODES are both set: set REDIS_URL for one Redis, or REDIS_CLUSTER_NODES ' +
        'for a Redis Cluster, not both',
    );
  else if (!hasRedis(config) !== !config.kafkaBrokers)
    problems.push(
      `${hasRedis(config) ? `${redis} is set without KAFKA_BROKERS` : 'KAFKA_BROKERS is set without REDIS_URL (or REDIS_CLUSTER_NODES)'}: ` +
        'set both (real services) or neither (embedded)',
    );
  else if (!hasRedis(config) && config.mode !== 'all')
    problems.push(
      `--mode=${config.mode} needs REDIS_URL and KAFKA_BROKERS: embedded backends live in one process (use --mode=all)`,
    );
  if (config.redisMinReplicasAck > 0 && !config.redisClusterNodes)
    problems.push(
      `REDIS_MIN_REPLICAS_ACK=${config.redisMinReplicasAck} needs REDIS_CLUSTER_NODES: it waits for the ` +
        "replicas of a Redis Cluster's masters",
    );
  return problems;
}

/** Real Redis (one server or a cluster) rather than the embedded store. */
export function hasRedis(config: Pick<Config, 'redisUrl' | 'redisClusterNodes'>): boolean {
  return config.redisUrl !== null || config.redisClusterNodes !== null;
}

function parseFlags(argv: readonly string[]): Map<string, string> {
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    // i < argv.length: present (noUncheckedIndexedAccess cannot tell).
    const arg = argv[i] as string;
    if (!arg.startsWith('--'))
      throw new ConfigError(
        `unexpected argument ${JSON.stringify(arg)}: flags look like --port=4000 (see --help)`,
      );
    const eq = arg.indexOf('=');
    if (eq > 0) flags.set(arg.slice(2, eq), arg.slice(eq + 1));
    else if (BOOLEAN_FLAGS.has(arg.slice(2))) flags.set(arg.slice(2), 'true');
    else {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('--'))
        throw new ConfigError(`${arg} needs a value, e.g. ${arg}=… (see --help)`);
      flags.set(arg.slice(2), next);
      i++;
    }
  }
  return flags;
}
