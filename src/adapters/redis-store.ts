// The Store port on Redis, the source of truth: one packed string per key under a prefix, versions assigned
// by a Lua script in the same atomic step that stores the values, reads answered by a single MGET.
import { Redis } from 'ioredis';
import { unpackEntry, type StoredEntry } from '../domain/entry.js';
import { log, metrics } from '../observability.js';
import type { ClaimOptions, Committed, Outbox, OutboxEntry, Store, WriteOp, WriteOptions } from '../ports.js';
import { decodeBusMessage } from './change-codec.js';

/**
 * The write script. It validates everything before its first write because Redis does not roll a script
 * back when it fails half way: a bad argument or a foreign value found after a SET would leave half a batch.
 *
 * KEYS: the entries' keys in op order, then the outbox stream. ARGV: ttlMs ('' for none), tombstoneTtlMs,
 * inlineValueMaxBytes, the byte length of the entries' key prefix, then per op its kind ('s' set, 'd' delete)
 * and value ('' for deletes). Returns, per op, the version and expiresAt ('' for none) as decimal strings:
 * Lua numbers are doubles, so integers are formatted with '%.0f' (tostring gives 1.7e+15) and kept below
 * 2^53, where doubles still count in ones. Appends one outbox entry whose field i is op i's change.
 *
 * With Redis Cluster every key of one script must hash to one slot; cluster support is a later issue.
 *
 * It mirrors TypeScript that the embedded store runs: nextVersion and packEntry (src/domain/entry.ts),
 * changeOf and encodeChange (src/adapters/change-codec.ts). What keeps the two in step: the Store contract
 * (test/contract/store.contract.ts: versions, outbox changes, inline limit in UTF-8 bytes), run against both
 * stores, and test/integration/redis-store.test.ts ("stores exactly the packed format", "carries a stored
 * version far above the clock forward by exactly one"). Change one side, change the other.
 */
const WRITE_SCRIPT = `
local EXACT = 9007199254740992
-- The last key is the outbox stream; the others are the entries, in op order.
local n = #KEYS - 1
local outbox = KEYS[n + 1]
if #ARGV ~= 4 + 2 * n then
  return redis.error_reply('ERR tiercache write: expected ' .. (4 + 2 * n) .. ' arguments, got ' .. #ARGV)
end

local function count(text)
  local v = tonumber(text)
  if v == nil or v < 1 or v >= EXACT or v ~= math.floor(v) then return nil end
  return v
end
local ttl = nil
if ARGV[1] ~= '' then
  ttl = count(ARGV[1])
  if ttl == nil then return redis.error_reply('ERR tiercache write: invalid ttlMs ' .. ARGV[1]) end
end
local tombstoneTtl = count(ARGV[2])
if tombstoneTtl == nil then return redis.error_reply('ERR tiercache write: invalid tombstoneTtlMs ' .. ARGV[2]) end
local inlineMax = tonumber(ARGV[3])
if inlineMax == nil or inlineMax < 0 then return redis.error_reply('ERR tiercache write: invalid inlineValueMaxBytes ' .. ARGV[3]) end
local prefixLength = tonumber(ARGV[4])

-- prev[key]: the version the key holds (false when it holds nothing), later the one this batch assigned.
local prev = {}
for i = 1, n do
  local key = KEYS[i]
  local kind = ARGV[2 * i + 3]
  if kind ~= 's' and kind ~= 'd' then
    return redis.error_reply('ERR tiercache write: invalid op kind for key ' .. key)
  end
  if key == outbox then return redis.error_reply('ERR tiercache write: key ' .. key .. ' is the outbox') end
  if prev[key] == nil then
    -- The header fits in 64 bytes, so a 1 MiB value costs no more to check than a small one.
    local head = redis.pcall('GETRANGE', key, 0, 63)
    if type(head) == 'table' then
      return redis.error_reply('ERR tiercache write: key ' .. key .. ' holds a ' .. redis.call('TYPE', key).ok .. ', not a tiercache entry')
    end
    if head == '' and redis.call('EXISTS', key) == 0 then
      prev[key] = false
    else
      local digits = string.match(head, '^[sd](%d+):%d*:')
      if digits == nil then
        return redis.error_reply('ERR tiercache write: key ' .. key .. ' holds a string that is not a tiercache entry')
      end
      local version = tonumber(digits)
      if version >= EXACT - 1 then
        return redis.error_reply('ERR tiercache write: key ' .. key .. ' holds version ' .. digits .. ', too large to count on')
      end
      prev[key] = version
    end
  end
end

local time = redis.call('TIME')
local nowMs = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local nowUs = tonumber(time[1]) * 1000000 + tonumber(time[2])
if ttl ~= nil and nowMs + ttl >= EXACT then return redis.error_reply('ERR tiercache write: ttlMs too large') end
if nowMs + tombstoneTtl >= EXACT then return redis.error_reply('ERR tiercache write: tombstoneTtlMs too large') end

local out = {}
local record = {}
for i = 1, n do
  local key = KEYS[i]
  local version = (prev[key] or 0) + 1
  if nowUs > version then version = nowUs end
  prev[key] = version
  local v = string.format('%.0f', version)
  local expiresAt = ''
  local value = ARGV[2 * i + 4]
  if ARGV[2 * i + 3] == 's' then
    if ttl == nil then
      redis.call('SET', key, 's' .. v .. '::' .. value)
    else
      expiresAt = string.format('%.0f', nowMs + ttl)
      redis.call('SET', key, 's' .. v .. ':' .. expiresAt .. ':' .. value, 'PX', string.format('%.0f', ttl))
    end
  else
    expiresAt = string.format('%.0f', nowMs + tombstoneTtl)
    redis.call('SET', key, 'd' .. v .. ':' .. expiresAt .. ':', 'PX', string.format('%.0f', tombstoneTtl))
  end
  out[2 * i - 1] = v
  out[2 * i] = expiresAt
  -- The announcement, in the bus's own JSON (src/adapters/change-codec.ts), field i of one stream entry.
  local name = string.sub(key, prefixLength + 1)
  local head = '{"key":' .. cjson.encode(name) .. ',"version":"' .. v .. '"'
  local expiry = expiresAt == '' and 'null' or expiresAt
  if ARGV[2 * i + 3] == 'd' then
    record[2 * i] = head .. ',"op":"delete"}'
  elseif string.len(value) > inlineMax then
    record[2 * i] = head .. ',"op":"invalidate","expiresAt":' .. expiry .. '}'
  else
    record[2 * i] = head .. ',"op":"set","value":' .. cjson.encode(value) .. ',"expiresAt":' .. expiry .. '}'
  end
  record[2 * i - 1] = tostring(i)
end
redis.call('XADD', outbox, '*', unpack(record))
return out
`;

const connectionErrors = metrics.counter(
  'tiercache_redis_connection_errors_total',
  'Errors on Redis connections, by connection',
);

// Long and specific so that defining it on a client the caller shares cannot clash with their own scripts.
const WRITE_COMMAND = 'tiercacheWriteBatch';

/**
 * A client for the store: connects at once, sends each command as it comes (one MGET is one round trip).
 * While Redis is unreachable a command is retried over a few reconnections (~0.3 s) and then fails, so a
 * request answers UNAVAILABLE instead of hanging; the client keeps reconnecting in the background.
 */
export function connectRedis(url: string): Redis {
  const redis = new Redis(url, {
    lazyConnect: false,
    enableAutoPipelining: false,
    connectionName: 'tiercache',
    maxRetriesPerRequest: 3,
    connectTimeout: 2000,
  });
  watchConnection(redis, 'tiercache');
  return redis;
}

/**
 * Counts a connection's errors and logs one line when it is lost and one when it is back, rather than one per
 * reconnection attempt; the commands that fail meanwhile are reported by their callers.
 */
function watchConnection(redis: Redis, connection: string): void {
  let healthy = true;
  redis.on('error', (error: Error) => {
    connectionErrors.inc({ connection });
    if (healthy) log.warn('redis connection lost; reconnecting', { connection, error: error.message });
    healthy = false;
  });
  redis.on('ready', () => {
    if (!healthy) log.info('redis connection back', { connection });
    healthy = true;
  });
}

function isStrings(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string');
}

export interface RedisStoreOptions {
  readonly redis: Redis;
  /**
   * Prepended to every key the store touches, so that several caches (or test runs) share one Redis. Entries
   * live under `prefix + 'e:' + key`, the outbox stream at `prefix + 'outbox'`: no entry can collide with it.
   */
  readonly prefix: string;
  /** true hands the client to the store: close() then quits it. By default the caller owns and quits it. */
  readonly ownsClient?: boolean;
}

export class RedisStore implements Store {
  readonly outbox: RedisOutbox;
  private readonly redis: Redis;
  private readonly entryPrefix: string;
  private readonly outboxKey: string;
  private readonly ownsClient: boolean;

  constructor(options: RedisStoreOptions) {
    this.redis = options.redis;
    this.entryPrefix = `${options.prefix}e:`;
    this.outboxKey = `${options.prefix}outbox`;
    this.ownsClient = options.ownsClient ?? false;
    this.outbox = new RedisOutbox(this.redis, this.outboxKey);
    // ioredis sends the script body once per connection, EVALSHA after that, and EVAL again on NOSCRIPT
    // (after a SCRIPT FLUSH or a failover).
    this.redis.defineCommand(WRITE_COMMAND, { lua: WRITE_SCRIPT });
  }

  async write(ops: readonly WriteOp[], options: WriteOptions): Promise<Committed[]> {
    if (ops.length === 0) return [];
    const keys = ops.map((op) => this.entryPrefix + op.key);
    keys.push(this.outboxKey);
    const args = [
      options.ttlMs === null ? '' : String(options.ttlMs),
      String(options.tombstoneTtlMs),
      String(options.inlineValueMaxBytes),
      String(Buffer.byteLength(this.entryPrefix)),
    ];
    for (const op of ops) args.push(op.op === 'set' ? 's' : 'd', op.op === 'set' ? op.value : '');
    // defineCommand adds the method at run time; ioredis's types cannot know it.
    const command: unknown = Reflect.get(this.redis, WRITE_COMMAND);
    if (typeof command !== 'function') throw new Error(`ioredis did not define ${WRITE_COMMAND}`);
    const reply: unknown = await Reflect.apply(command, this.redis, [keys.length, keys, args]);
    if (!isStrings(reply) || reply.length !== 2 * ops.length) {
      throw new Error(`unexpected reply from the write script: ${JSON.stringify(reply).slice(0, 200)}`);
    }
    return ops.map((op, i) => {
      const expiresAt = reply[2 * i + 1];
      return {
        key: op.key,
        op: op.op,
        version: BigInt(String(reply[2 * i])),
        expiresAt: expiresAt ? Number(expiresAt) : null,
      };
    });
  }

  async read(keys: readonly string[]): Promise<(StoredEntry | null)[]> {
    if (keys.length === 0) return [];
    const packed = await this.redis.mget(keys.map((key) => this.entryPrefix + key));
    return packed.map((text, i) => {
      if (text === null) return null;
      try {
        return unpackEntry(text);
      } catch (error) {
        // A foreign value under our prefix is a configuration fault: say where, rather than hide the key.
        throw new Error(`key ${JSON.stringify(this.entryPrefix + keys[i])} does not hold a tiercache entry`, {
          cause: error,
        });
      }
    });
  }

  async close(): Promise<void> {
    this.outbox.close();
    if (!this.ownsClient || this.redis.status === 'end') return;
    // quit() settles on Redis's OK; the socket closes a moment later, and a clean shutdown waits for that.
    const ended = new Promise((resolve) => this.redis.once('end', resolve));
    await this.redis.quit();
    await ended;
  }
}

const RELAY_GROUP = 'relays';
const malformed = metrics.counter(
  'tiercache_outbox_malformed_total',
  'Outbox entries that could not be decoded and were dropped',
);

/**
 * The outbox as a Redis stream read by a consumer group: an entry stays pending until a relay acknowledges
 * it, and XAUTOCLAIM hands entries of a relay that died to another. Blocking reads get a connection of
 * their own, so they never hold up the store's commands.
 */
export class RedisOutbox implements Outbox {
  private blocking: Redis | null = null;
  private groupReady: Promise<void> | null = null;
  private lastReclaimAt = -Infinity;

  constructor(
    private readonly redis: Redis,
    private readonly key: string,
  ) {}

  async claim(relayId: string, { max, blockMs, reclaimAfterMs }: ClaimOptions): Promise<OutboxEntry[]> {
    await this.ensureGroup();
    // Abandoned entries are rare (a relay died), so they are looked for a few times per reclaim period,
    // not on every claim: that would add a round trip to every announcement.
    const now = Date.now();
    const lookForAbandoned = now - this.lastReclaimAt >= reclaimAfterMs / 4;
    if (lookForAbandoned) this.lastReclaimAt = now;
    // redis.call() answers unknown; the reply shapes are Redis's (XAUTOCLAIM: [cursor, entries, deleted];
    // XREADGROUP: [[stream, entries]] or null), and parseEntries checks each entry.
    const abandoned = !lookForAbandoned
      ? []
      : parseEntries(
          (
            (await this.redis.call(
              'XAUTOCLAIM',
              this.key,
              RELAY_GROUP,
              relayId,
              reclaimAfterMs,
              '0-0',
              'COUNT',
              max,
            )) as unknown[]
          )[1],
        );
    const room = max - abandoned.length;
    if (room <= 0) return abandoned;
    this.blocking ??= connectBlocking(this.redis);
    // BLOCK 0 would wait forever: a claim that must not wait sends no BLOCK at all.
    const wait = abandoned.length > 0 || blockMs <= 0 ? [] : ['BLOCK', blockMs];
    const reply = (await this.blocking.call(
      'XREADGROUP',
      'GROUP',
      RELAY_GROUP,
      relayId,
      'COUNT',
      room,
      ...wait,
      'STREAMS',
      this.key,
      '>',
    )) as [string, unknown][] | null;
    return [...abandoned, ...parseEntries(reply?.[0]?.[1])];
  }

  async ack(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    await this.redis
      .multi()
      .xack(this.key, RELAY_GROUP, ...ids)
      .xdel(this.key, ...ids)
      .exec();
  }

  async size(): Promise<number> {
    return this.redis.xlen(this.key);
  }

  close(): void {
    // A blocked XREADGROUP would hold quit() until it times out; nothing in flight on it needs an answer.
    this.blocking?.disconnect();
    this.blocking = null;
  }

  private ensureGroup(): Promise<void> {
    // From the stream's start: entries committed before any relay ever ran must be announced too.
    this.groupReady ??= this.redis.xgroup('CREATE', this.key, RELAY_GROUP, '0', 'MKSTREAM').then(
      () => undefined,
      (error: unknown) => {
        if (!(error instanceof Error && error.message.startsWith('BUSYGROUP'))) {
          this.groupReady = null;
          throw error;
        }
      },
    );
    return this.groupReady;
  }
}

function connectBlocking(redis: Redis): Redis {
  const blocking = redis.duplicate({ connectionName: 'tiercache-outbox' });
  watchConnection(blocking, 'tiercache-outbox');
  return blocking;
}

/** Stream entries `[id, [field, value, …]]` → outbox entries; an undecodable one is dropped with a log line. */
function parseEntries(raw: unknown): OutboxEntry[] {
  if (!Array.isArray(raw)) return [];
  const entries: OutboxEntry[] = [];
  for (const item of raw) {
    // XAUTOCLAIM answers null for an entry deleted while pending.
    if (!Array.isArray(item) || typeof item[0] !== 'string') continue;
    // Checked to be an array starting with a string just above.
    const [id, fields] = item as [string, unknown];
    try {
      if (!Array.isArray(fields)) throw new Error('no fields');
      const changes = fields
        .filter((_, i) => i % 2 === 1)
        .map((value: unknown) => {
          const message = decodeBusMessage(String(value));
          if (message.kind !== 'change') throw new Error('a sync marker in the outbox');
          return message.change;
        });
      entries.push({ id, changes });
    } catch (error) {
      malformed.inc();
      log.error('dropping an undecodable outbox entry', { id, error });
      entries.push({ id, changes: [] });
    }
  }
  return entries;
}
