// The Store port on Redis, the source of truth: one packed string per key under a prefix, versions assigned
// by a Lua script in the same atomic step that stores the values, reads answered by a single MGET.
import { Redis, type Cluster } from 'ioredis';
import { unpackEntry, type Change, type StoredEntry } from '../domain/entry.js';
import { log, metrics, reportError } from '../observability.js';
import {
  FeedBackedUp,
  type ClaimOptions,
  type Committed,
  type Outbox,
  type OutboxBacklog,
  type OutboxEntry,
  type Store,
  type WriteOp,
  type WriteOptions,
} from '../ports.js';
import { decodeBusMessage } from './change-codec.js';

/**
 * The write script. It validates everything before its first write because Redis does not roll a script
 * back when it fails half way: a bad argument or a foreign value found after a SET would leave half a batch.
 *
 * KEYS: the entries' keys in op order, then the outbox stream and the counter of its bytes. ARGV: ttlMs ('' for
 * none), tombstoneTtlMs, inlineValueMaxBytes, the outbox bounds (most entries, most bytes; 0 for none), then
 * per op its kind ('s' set, 'd' delete) and value ('' for deletes). An outbox at its bound refuses the batch
 * with `TCBACKLOG <entries> <bytes>` before any write. Returns, per op, the version and expiresAt ('' for none)
 * as decimal strings: Lua numbers are doubles, so integers are formatted with '%.0f' (tostring gives 1.7e+15)
 * and kept below 2^53, where doubles still count in ones.
 *
 * Appends one outbox entry whose field i is op i's entry key and the string it stored (OUTBOX_FORMAT below),
 * and adds the entry's bytes, names and values, to the counter (the acknowledgement script takes them off
 * again). The script builds no JSON: encoding the announcement in Lua cost Redis about 3 µs per change
 * (docs/benchmarks.md, "Fourth pass: writes"), on the one thread every reader and writer waits for.
 *
 * With Redis Cluster every key of one script must hash to one slot: src/adapters/redis-cluster-store.ts runs it
 * once per outbox shard, on keys that share the shard's hash tag.
 *
 * It mirrors TypeScript that the embedded store runs: nextVersion, packEntry and changeOf (src/domain/entry.ts).
 * What keeps the two in step: the Store contract
 * (test/contract/store.contract.ts: versions, outbox changes, inline limit in UTF-8 bytes), run against both
 * stores, and test/integration/redis-store.test.ts ("stores exactly the packed format", "carries a stored
 * version far above the clock forward by exactly one"). Change one side, change the other.
 */
const WRITE_SCRIPT = `
local EXACT = 9007199254740992
-- The last two keys are the outbox stream and its byte counter; the others are the entries, in op order.
local n = #KEYS - 2
local outbox = KEYS[n + 1]
local outboxBytes = KEYS[n + 2]
if #ARGV ~= 5 + 2 * n then
  return redis.error_reply('ERR tiercache write: expected ' .. (5 + 2 * n) .. ' arguments, got ' .. #ARGV)
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
local maxEntries = tonumber(ARGV[4])
local maxBytes = tonumber(ARGV[5])
if maxEntries == nil or maxEntries < 0 or maxBytes == nil or maxBytes < 0 then
  return redis.error_reply('ERR tiercache write: invalid outbox bounds ' .. ARGV[4] .. ' ' .. ARGV[5])
end

-- prev[key]: the version the key holds (false when it holds nothing), later the one this batch assigned.
local prev = {}
for i = 1, n do
  local key = KEYS[i]
  local kind = ARGV[2 * i + 4]
  if kind ~= 's' and kind ~= 'd' then
    return redis.error_reply('ERR tiercache write: invalid op kind for key ' .. key)
  end
  if key == outbox or key == outboxBytes then return redis.error_reply('ERR tiercache write: key ' .. key .. ' is the outbox') end
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

if maxEntries > 0 or maxBytes > 0 then
  local waiting = redis.call('XLEN', outbox)
  local waitingBytes = tonumber(redis.call('GET', outboxBytes) or '0')
  if (maxEntries > 0 and waiting >= maxEntries) or (maxBytes > 0 and waitingBytes >= maxBytes) then
    return redis.error_reply('TCBACKLOG ' .. waiting .. ' ' .. waitingBytes)
  end
end

local time = redis.call('TIME')
local nowMs = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local nowUs = tonumber(time[1]) * 1000000 + tonumber(time[2])
if ttl ~= nil and nowMs + ttl >= EXACT then return redis.error_reply('ERR tiercache write: ttlMs too large') end
if nowMs + tombstoneTtl >= EXACT then return redis.error_reply('ERR tiercache write: tombstoneTtlMs too large') end

local out = {}
local record = {}
local recordBytes = 0
for i = 1, n do
  local key = KEYS[i]
  local version = (prev[key] or 0) + 1
  if nowUs > version then version = nowUs end
  prev[key] = version
  local v = string.format('%.0f', version)
  local expiresAt = ''
  local value = ARGV[2 * i + 5]
  local packed
  if ARGV[2 * i + 4] == 's' then
    if ttl == nil then
      packed = 's' .. v .. '::' .. value
      redis.call('SET', key, packed)
    else
      expiresAt = string.format('%.0f', nowMs + ttl)
      packed = 's' .. v .. ':' .. expiresAt .. ':' .. value
      -- PXAT, the very expiresAt announced: a PX counted from the SET's own clock, later than TIME once a
      -- batch runs past a millisecond, kept the key after readers had told subscribers it expired.
      redis.call('SET', key, packed, 'PXAT', expiresAt)
    end
  else
    expiresAt = string.format('%.0f', nowMs + tombstoneTtl)
    packed = 'd' .. v .. ':' .. expiresAt .. ':'
    redis.call('SET', key, packed, 'PXAT', expiresAt)
  end
  out[2 * i - 1] = v
  out[2 * i] = expiresAt
  -- The announcement, field i of one stream entry: the entry's key and what it now stores, the same string,
  -- so no bytes are built for it (the relay encodes the bus message). A value too large to travel inline
  -- is announced as an invalidation: the header alone, marked 'i'.
  if string.len(value) > inlineMax then packed = 'i' .. v .. ':' .. expiresAt .. ':' end
  record[2 * i - 1] = key
  record[2 * i] = packed
  recordBytes = recordBytes + string.len(key) + string.len(packed)
end
redis.call('XADD', outbox, '*', unpack(record))
redis.call('INCRBY', outboxBytes, recordBytes)
return out
`;

/**
 * The acknowledgement: entries announced are removed, and their bytes taken off the counter the write script
 * added them to. KEYS: the outbox stream, its byte counter. ARGV: per entry its id and its bytes as the relay
 * counted them when it claimed the entry ('' when this process did not: the script then reads the entry to
 * count them, which copies the whole entry). An id already gone (acked by another relay after a takeover)
 * frees nothing; an empty outbox resets the counter, so it cannot drift.
 */
const ACK_SCRIPT = `
local ids = {}
for i = 1, #ARGV, 2 do ids[#ids + 1] = ARGV[i] end
-- 'relays' is RELAY_GROUP below.
redis.call('XACK', KEYS[1], 'relays', unpack(ids))
local freed = 0
for i = 1, #ARGV, 2 do
  local bytes = tonumber(ARGV[i + 1])
  if bytes == nil then
    bytes = 0
    local found = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])
    if #found > 0 then
      local fields = found[1][2]
      for j = 1, #fields do bytes = bytes + string.len(fields[j]) end
    end
  end
  if redis.call('XDEL', KEYS[1], ARGV[i]) == 1 then freed = freed + bytes end
end
if redis.call('XLEN', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[2])
elseif freed > 0 and redis.call('DECRBY', KEYS[2], freed) < 0 then
  redis.call('SET', KEYS[2], 0)
end
return freed
`;

const connectionErrors = metrics.counter(
  'tiercache_redis_connection_errors_total',
  'Errors on Redis connections, by connection',
);

// Long and specific so that defining them on a client the caller shares cannot clash with their own scripts.
const WRITE_COMMAND = 'tiercacheWriteBatch';
const ACK_COMMAND = 'tiercacheAckOutbox';

/** How long a command waits while Redis is unreachable before it fails (README "Running the roles"). */
export const REDIS_DOWN_FAIL_MS = 1000;
const RECONNECT_DELAY_MS = 200;

/**
 * A client for the store: connects at once, sends each command as it comes (one MGET is one round trip).
 * While Redis is unreachable a command fails within REDIS_DOWN_FAIL_MS, so a request answers UNAVAILABLE
 * instead of hanging: ioredis fails the queued commands each time a reconnection attempt fails
 * (maxRetriesPerRequest 0), and attempts come every RECONNECT_DELAY_MS, each given the rest of the second.
 */
export function connectRedis(url: string): Redis {
  const redis = new Redis(url, {
    lazyConnect: false,
    enableAutoPipelining: false,
    connectionName: 'tiercache',
    maxRetriesPerRequest: 0,
    retryStrategy: () => RECONNECT_DELAY_MS,
    connectTimeout: REDIS_DOWN_FAIL_MS - RECONNECT_DELAY_MS,
  });
  watchConnection(redis, 'tiercache');
  return redis;
}

/**
 * Counts a connection's errors and logs one line when it is lost and one when it is back, rather than one per
 * reconnection attempt; the commands that fail meanwhile are reported by their callers. Never connected is
 * not "lost": start-up says that itself.
 */
function watchConnection(redis: Redis, connection: string): void {
  let state: 'connecting' | 'ready' | 'lost' = 'connecting';
  redis.on('error', (error: Error) => {
    connectionErrors.inc({ connection });
    if (state === 'ready')
      log.warn('redis connection lost; reconnecting', { connection, error: error.message });
    if (state !== 'connecting') state = 'lost';
  });
  redis.on('ready', () => {
    if (state === 'lost') log.info('redis connection back', { connection });
    state = 'ready';
  });
}

/** Runs a script defined with defineCommand, which adds the method at run time where ioredis's types cannot see it. */
export async function callScript(
  redis: RedisClient,
  name: string,
  keys: string[],
  args: string[],
): Promise<unknown> {
  const command: unknown = Reflect.get(redis, name);
  if (typeof command !== 'function') throw new Error(`ioredis did not define ${name}`);
  return Reflect.apply(command, redis, [keys.length, keys, args]);
}

function isStrings(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string');
}

/** Either ioredis client: the scripts and stream commands below run the same on one node or a cluster. */
export type RedisClient = Redis | Cluster;

/** The keys of one outbox and its entries: a single node's only one, or one shard of a cluster's. */
export interface ShardKeys {
  /** Prepended to an entry's key. */
  readonly entryPrefix: string;
  /** The outbox stream. */
  readonly outbox: string;
  /** The count of the outbox's bytes. */
  readonly outboxBytes: string;
}

/** Makes the write and acknowledgement scripts callable on `redis` (once per client). */
export function defineScripts(redis: RedisClient): void {
  // ioredis sends the script body once per connection, EVALSHA after that, and EVAL again on NOSCRIPT
  // (after a SCRIPT FLUSH or a failover).
  redis.defineCommand(WRITE_COMMAND, { lua: WRITE_SCRIPT });
  redis.defineCommand(ACK_COMMAND, { lua: ACK_SCRIPT });
}

/** The write script's KEYS and ARGV for `ops`, all of them entries of `shard` (see WRITE_SCRIPT). */
export function writeCall(
  shard: ShardKeys,
  ops: readonly WriteOp[],
  options: WriteOptions,
): { name: string; keys: string[]; args: string[] } {
  const keys = ops.map((op) => shard.entryPrefix + op.key);
  keys.push(shard.outbox, shard.outboxBytes);
  const args = [
    options.ttlMs === null ? '' : String(options.ttlMs),
    String(options.tombstoneTtlMs),
    String(options.inlineValueMaxBytes),
    String(options.outboxLimit?.maxEntries ?? 0),
    String(options.outboxLimit?.maxBytes ?? 0),
  ];
  for (const op of ops) args.push(op.op === 'set' ? 's' : 'd', op.op === 'set' ? op.value : '');
  return { name: WRITE_COMMAND, keys, args };
}

/** The write script's refusal of a full outbox as FeedBackedUp; undefined for any other error. */
export function backlogRefusal(error: unknown): FeedBackedUp | undefined {
  const backlog = error instanceof Error ? /^TCBACKLOG (\d+) (\d+)/.exec(error.message) : null;
  return backlog ? new FeedBackedUp({ entries: Number(backlog[1]), bytes: Number(backlog[2]) }) : undefined;
}

/** The write script's reply, checked, as what it committed for each of `ops`. */
export function committedFrom(ops: readonly WriteOp[], reply: unknown): Committed[] {
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

/** An entry's stored string as the entry, saying which key holds a foreign value. */
export function unpackStored(text: string | null, redisKey: string): StoredEntry | null {
  if (text === null) return null;
  try {
    return unpackEntry(text);
  } catch (error) {
    // A foreign value under our prefix is a configuration fault: say where, rather than hide the key.
    throw new Error(`key ${JSON.stringify(redisKey)} does not hold a tiercache entry`, { cause: error });
  }
}

export interface RedisStoreOptions {
  readonly redis: Redis;
  /**
   * Prepended to every key the store touches, so that several caches (or test runs) share one Redis. Entries
   * live under `prefix + 'e:' + key`, the outbox stream at `prefix + 'outbox'` and the count of its bytes at
   * `prefix + 'outbox:bytes'`: no entry can collide with them.
   */
  readonly prefix: string;
  /** true hands the client to the store: close() then quits it. By default the caller owns and quits it. */
  readonly ownsClient?: boolean;
}

export class RedisStore implements Store {
  readonly outbox: RedisOutbox;
  private readonly redis: Redis;
  private readonly shard: ShardKeys;
  private readonly ownsClient: boolean;

  constructor(options: RedisStoreOptions) {
    this.redis = options.redis;
    this.shard = {
      entryPrefix: `${options.prefix}e:`,
      outbox: `${options.prefix}outbox`,
      outboxBytes: `${options.prefix}outbox:bytes`,
    };
    this.ownsClient = options.ownsClient ?? false;
    this.outbox = new RedisOutbox(
      this.redis,
      this.shard.outbox,
      this.shard.outboxBytes,
      this.shard.entryPrefix,
      () => connectBlocking(this.redis),
    );
    defineScripts(this.redis);
  }

  async write(ops: readonly WriteOp[], options: WriteOptions): Promise<Committed[]> {
    if (ops.length === 0) return [];
    const { keys, args } = writeCall(this.shard, ops, options);
    let reply: unknown;
    try {
      reply = await callScript(this.redis, WRITE_COMMAND, keys, args);
    } catch (error) {
      throw backlogRefusal(error) ?? error;
    }
    return committedFrom(ops, reply);
  }

  async read(keys: readonly string[]): Promise<(StoredEntry | null)[]> {
    if (keys.length === 0) return [];
    const redisKeys = keys.map((key) => this.shard.entryPrefix + key);
    const packed = await this.redis.mget(redisKeys);
    return packed.map((text, i) => unpackStored(text, redisKeys[i] ?? ''));
  }

  async close(): Promise<void> {
    this.outbox.close();
    if (!this.ownsClient || this.redis.status === 'end') return;
    // Nothing to flush without a connection, and quit() would wait for one.
    if (this.redis.status !== 'ready') return void this.redis.disconnect();
    // quit() settles on Redis's OK; the socket closes a moment later, and a clean shutdown waits for that.
    const ended = new Promise((resolve) => this.redis.once('end', resolve));
    await this.redis.quit();
    await ended;
  }
}

const RELAY_GROUP = 'relays';
const malformed = metrics.counter(
  'tiercache_outbox_malformed_total',
  'Times an outbox entry could not be decoded; it is kept (not announced, not acknowledged) for a person to see',
);

/**
 * The outbox as a Redis stream read by a consumer group: an entry stays pending until a relay acknowledges
 * it, and XAUTOCLAIM hands entries of a relay that died to another. Blocking reads get a connection of
 * their own, so they never hold up the store's commands.
 */
export class RedisOutbox implements Outbox {
  private blocking: Redis | null = null;
  private groupReady: Promise<void> | null = null;
  /** Per relay: each looks for abandoned entries at its own pace, whoever else claims on this client. */
  private readonly lastReclaimAt = new Map<string, number>();
  /**
   * Bytes of each entry claimed here and not yet acknowledged, counted from the claim's reply, so that the
   * acknowledgement need not read the entry again. At most what the relays of this process hold claimed.
   */
  private readonly claimedBytes = new Map<string, number>();

  constructor(
    private readonly redis: RedisClient,
    private readonly key: string,
    private readonly bytesKey: string,
    /** Prepended to the keys of this outbox's entries (ShardKeys.entryPrefix): the stream names them so. */
    private readonly entryPrefix: string,
    /** A connection for blocking reads; without one, every claim answers at once (blockMs is ignored). */
    private readonly connectBlocking: (() => Redis) | null = null,
  ) {}

  async claim(relayId: string, { max, blockMs, reclaimAfterMs }: ClaimOptions): Promise<OutboxEntry[]> {
    await this.ensureGroup();
    // Abandoned entries are rare (a relay died), so they are looked for a few times per reclaim period,
    // not on every claim: that would add a round trip to every announcement.
    const now = Date.now();
    const lookForAbandoned = now - (this.lastReclaimAt.get(relayId) ?? -Infinity) >= reclaimAfterMs / 4;
    if (lookForAbandoned) this.lastReclaimAt.set(relayId, now);
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
          this.entryPrefix,
          this.claimedBytes,
        );
    const room = max - abandoned.length;
    if (room <= 0) return abandoned;
    // BLOCK 0 would wait forever: a claim that must not wait sends no BLOCK at all.
    const wait = abandoned.length > 0 || blockMs <= 0 || !this.connectBlocking ? [] : ['BLOCK', blockMs];
    const client = this.connectBlocking ? (this.blocking ??= this.connectBlocking()) : this.redis;
    const reply = (await client.call(
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
    return [...abandoned, ...parseEntries(reply?.[0]?.[1], this.entryPrefix, this.claimedBytes)];
  }

  async ack(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    const args = ids.flatMap((id) => [id, String(this.claimedBytes.get(id) ?? '')]);
    await callScript(this.redis, ACK_COMMAND, [this.key, this.bytesKey], args);
    for (const id of ids) this.claimedBytes.delete(id);
  }

  async size(): Promise<number> {
    return this.redis.xlen(this.key);
  }

  /** Entries `relayId` claimed and has not acknowledged (XPENDING): what a relay dying now would leave. */
  async claimedBy(relayId: string): Promise<number> {
    // The summary form answers [count, first id, last id, [[consumer, count], ...]], or 0 and nils.
    // No group yet (no relay ever claimed here): nothing is claimed.
    const summary = await this.redis.xpending(this.key, RELAY_GROUP).catch((error: unknown) => {
      if (error instanceof Error && error.message.startsWith('NOGROUP')) return [0, null, null, null];
      throw error;
    });
    const [, , , consumers] = summary as [number, string | null, string | null, [string, string][] | null];
    return Number(consumers?.find(([consumer]) => consumer === relayId)?.[1] ?? 0);
  }

  async backlog(): Promise<OutboxBacklog> {
    // One transaction, so the oldest entry and the server's clock are read at the same moment. Stream ids
    // start with their commit time in ms on that clock: the age needs no clock of ours.
    const replies = await this.redis
      .multi()
      .xlen(this.key)
      .get(this.bytesKey)
      .xrange(this.key, '-', '+', 'COUNT', 1)
      .time()
      .exec();
    const failed = replies?.find(([error]) => error !== null)?.[0];
    if (!replies || failed) throw failed ?? new Error('the outbox backlog transaction was aborted');
    // exec() types every reply unknown; these are the four commands' replies in order (errors ruled out above).
    const [[, entries], [, bytes], [, oldest], [, time]] = replies as [
      [null, number],
      [null, string | null],
      [null, [string, string[]][]],
      [null, [string, string]],
    ];
    const nowMs = Number(time[0]) * 1000 + Math.floor(Number(time[1]) / 1000);
    const oldestId = oldest[0]?.[0];
    return {
      entries,
      bytes: Number(bytes ?? 0),
      oldestAgeMs: oldestId === undefined ? null : Math.max(0, nowMs - Number(oldestId.split('-')[0])),
    };
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

/** The outbox's own connection, named after the client's (`tiercache` → `tiercache-outbox`) in CLIENT LIST. */
function connectBlocking(redis: Redis): Redis {
  const name = `${redis.options.connectionName ?? 'tiercache'}-outbox`;
  const blocking = redis.duplicate({ connectionName: name });
  watchConnection(blocking, name);
  return blocking;
}

/**
 * What the write script puts in the outbox, per change: the field is the entry's Redis key, the value the
 * string the script stored under it (packEntry's format), or for a value too large to travel inline the same
 * header marked 'i' and no value. Entries written before this format (up to db250f1) have fields "1", "2", …
 * holding the bus message's JSON; they are still read, so an upgrade leaves nothing unannounced. No entry key
 * is a bare number: every one starts with entryPrefix, which ends in "e:".
 */
function changeOfField(name: string, stored: string, entryPrefix: string): Change {
  if (!name.startsWith(entryPrefix)) {
    const message = decodeBusMessage(stored);
    if (message.kind !== 'change') throw new Error('a sync marker in the outbox');
    return message.change;
  }
  const key = name.slice(entryPrefix.length);
  if (stored.startsWith('i')) {
    const { version, expiresAt } = unpackEntry(`s${stored.slice(1)}`);
    return { op: 'invalidate', key, version, expiresAt };
  }
  const { version, value, expiresAt } = unpackEntry(stored);
  return value === null ? { op: 'delete', key, version } : { op: 'set', key, version, value, expiresAt };
}

/**
 * Stream entries `[id, [field, value, …]]` → outbox entries, each one's bytes (fields' names and values, as
 * the write script counts them) recorded in `bytes`. An undecodable one is left out: never announced, never
 * acknowledged, so it stays in the stream (and in the backlog that readers' feed proofs count) for a person
 * to look at; it is logged and counted every time a relay claims it again.
 */
function parseEntries(raw: unknown, entryPrefix: string, bytes: Map<string, number>): OutboxEntry[] {
  if (!Array.isArray(raw)) return [];
  const entries: OutboxEntry[] = [];
  for (const item of raw) {
    // XAUTOCLAIM answers null for an entry deleted while pending.
    if (!Array.isArray(item) || typeof item[0] !== 'string') continue;
    // Checked to be an array starting with a string just above.
    const [id, fields] = item as [string, unknown];
    try {
      if (!Array.isArray(fields) || fields.length % 2 !== 0) throw new Error('no fields');
      const changes: Change[] = [];
      let size = 0;
      for (let i = 0; i < fields.length; i += 2) {
        const name = String(fields[i]);
        const stored = String(fields[i + 1]);
        changes.push(changeOfField(name, stored, entryPrefix));
        size += Buffer.byteLength(name) + Buffer.byteLength(stored);
      }
      bytes.set(id, size);
      entries.push({ id, changes });
    } catch (error) {
      malformed.inc();
      reportError('outbox', 'an outbox entry cannot be decoded; it stays in the outbox, unannounced', error, {
        id,
      });
    }
  }
  return entries;
}
