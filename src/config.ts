// The one validated, typed configuration: every setting is an environment variable and a flag (the flag
// wins), checked at start-up with a message that names the bad setting. README's table is this list.
import { hostname } from 'node:os';

export type Mode = 'reader' | 'writer' | 'all';

export interface Config {
  mode: Mode;
  host: string;
  port: number;
  /** Empty: embedded in-memory store (not durable). */
  redisUrl: string | null;
  redisKeyPrefix: string;
  /** Empty: in-process bus (single process only). */
  kafkaBrokers: string[] | null;
  kafkaTopic: string;
  kafkaPartitions: number;
  kafkaReplicationFactor: number;
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
  feedSyncIntervalMs: number;
  feedMaxLagMs: number;
  logLevel: 'debug' | 'info' | 'warn' | 'error';
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
    if (!(values as string[]).includes(raw)) throw new Error(`must be one of ${values.join(', ')}`);
    return raw as T;
  };

function setting<K extends keyof Config>(
  key: K,
  env: string,
  fallback: string | null,
  parse: Parser<Config[K]>,
  help: string,
  flag = env.toLowerCase().replace(/_/g, '-'),
): Setting<K> {
  return { key, env, flag, fallback, parse, help };
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
    'Roles this process serves',
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
  setting('kafkaClientId', 'KAFKA_CLIENT_ID', 'tiercache', nonEmpty, 'Kafka client id'),
  setting(
    'kafkaGroupPrefix',
    'KAFKA_GROUP_PREFIX',
    'tiercache.reader.',
    nonEmpty,
    'Prefix of each reader’s own consumer group',
  ),
  setting(
    'instanceId',
    'INSTANCE_ID',
    null,
    nonEmpty,
    'Stable id of this reader (its consumer group); default host-port',
  ),
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
    'How long a delete’s tombstone stays in Redis',
  ),
  setting('mgetChunkSize', 'MGET_CHUNK_SIZE', '500', int(1, 100_000), 'Most keys in one Redis MGET'),
  setting('maxReadKeys', 'MAX_READ_KEYS', '1000', int(1), 'Most keys in one read'),
  setting('maxWriteEntries', 'MAX_WRITE_ENTRIES', '1000', int(1), 'Most entries in one write'),
  setting('maxKeyBytes', 'MAX_KEY_BYTES', '1024', int(1), 'Longest key, UTF-8 bytes'),
  setting('maxValueBytes', 'MAX_VALUE_BYTES', String(MiB), int(0), 'Longest value, UTF-8 bytes'),
  setting('maxTtlSeconds', 'MAX_TTL_SECONDS', String(365 * 24 * 3600), int(1), 'Longest ttlSeconds accepted'),
  setting('maxRequestBytes', 'MAX_REQUEST_BYTES', String(64 * MiB), int(1024), 'Largest HTTP request body'),
  setting(
    'inlineValueMaxBytes',
    'KAFKA_INLINE_VALUE_MAX_BYTES',
    '65536',
    // Below the relay's 512 KiB publish batches, themselves below Kafka's 1 MB default message size.
    int(0, 256 * 1024),
    'Larger values travel as invalidations',
  ),
  setting(
    'outboxReclaimMs',
    'OUTBOX_RECLAIM_MS',
    '10000',
    int(100),
    'A writer takes over outbox entries another writer claimed but did not announce for this long',
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
    'Oldest proof a reader accepts before bypassing memory',
  ),
  setting(
    'logLevel',
    'LOG_LEVEL',
    'info',
    oneOf('debug', 'info', 'warn', 'error'),
    'Least severe log level written',
  ),
] as const;

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
      problems.push(`${where}=${JSON.stringify(raw)}: ${(error as Error).message}`);
    }
  }
  for (const unknown of flags.keys())
    problems.push(`--${unknown}: unknown flag (see README "Configuration")`);
  config.instanceId ??= `${hostname()}-${String(config.port ?? 'x')}`;
  const result = config as Config;
  if (problems.length === 0 && result.feedSyncIntervalMs >= result.feedMaxLagMs) {
    problems.push(
      'FEED_SYNC_INTERVAL_MS must be below FEED_MAX_LAG_MS, or the feed could never be proven current',
    );
  }
  if (problems.length > 0) throw new ConfigError(`invalid configuration:\n  ${problems.join('\n  ')}`);
  return result;
}

function parseFlags(argv: readonly string[]): Map<string, string> {
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (!arg.startsWith('--'))
      throw new ConfigError(`unexpected argument ${JSON.stringify(arg)}: flags look like --port=4000`);
    const eq = arg.indexOf('=');
    if (eq > 0) flags.set(arg.slice(2, eq), arg.slice(eq + 1));
    else {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('--')) throw new ConfigError(`${arg} needs a value`);
      flags.set(arg.slice(2), next);
      i++;
    }
  }
  return flags;
}
