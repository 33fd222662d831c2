// Memory per entry of the memory tier, filled the way the feed fills it: each change encoded as the bus
// carries it, decoded by the reader's codec (so every key and value is a string of its own, as from Kafka),
// and applied. RSS and V8 heap are read after a forced GC before the tier exists and once it is full; the
// difference per entry held, minus the key and value bytes, is the tier's own overhead. Run in a process of
// its own (fresh heap, --expose-gc):
//
//   node --expose-gc --import tsx scripts/bench/memory.ts <entries> <keyBytes> <valueBytes>
//
// With `lookup`, it times instead what a hot read asks of the tier: 10 held keys looked up, each key a fresh
// string parsed from a request body as the reader gets it, for each tier module given, alternating between
// them in one process so that they share its conditions. Give modules compiled by tsc, as the reader runs
// them (tsx wraps every inner arrow function of a .ts file in a naming helper called on each call, which
// would be timed too), e.g. this tree's and an earlier commit's memory-tier.ts built side by side:
//
//   npx tsc -p tsconfig.json --outDir .services/ab
//   node --import tsx scripts/bench/memory.ts lookup .services/ab/domain/memory-tier.js <other.js>...
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { decodeBusMessage, encodeChange } from '../../src/adapters/change-codec.js';
import { MemoryTier } from '../../src/domain/memory-tier.js';

export interface MemoryResult {
  entries: number;
  keyBytes: number;
  valueBytes: number;
  rssBytesPerEntry: number;
  heapBytesPerEntry: number;
  /** Heap bytes per entry beyond its key and value (UTF-8 bytes, 1 per ASCII character). */
  heapOverheadPerEntry: number;
  /** What the tier itself counts (its maxBytes accounting) per entry. */
  countedBytesPerEntry: number;
  /** Entries let go of because another key found both its places taken; the figures above are per entry held. */
  collisions: number;
}

/** A memory tier of this or an earlier version: what filling and looking up need of it. */
type Tier = Pick<MemoryTier, 'apply' | 'lookup'>;
type TierClass<T extends Tier> = new (options: ConstructorParameters<typeof MemoryTier>[0]) => T;

function collect(): NodeJS.MemoryUsage {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with node --expose-gc');
  // Twice: the first pass can leave work (weak references, finalization) for the second.
  gc();
  gc();
  return process.memoryUsage();
}

const keyAt = (i: number, keyBytes: number): string => `k${String(i).padStart(keyBytes - 1, '0')}`;

/** A tier sized for `entries`, filled with them as the feed fills it. */
function filled<T extends Tier>(
  Tier: TierClass<T>,
  entries: number,
  keyBytes: number,
  valueBytes: number,
): T {
  const tier = new Tier({
    maxEntries: entries,
    maxBytes: Number.MAX_SAFE_INTEGER,
    ttlMs: 3_600_000,
    negativeTtlMs: 60_000,
  });
  // Versions like the store's: commit time in µs.
  const base = BigInt(Date.now()) * 1000n;
  for (let i = 0; i < entries; i++) {
    const key = keyAt(i, keyBytes);
    const tag = `${i}:`;
    const value = tag + 'x'.repeat(valueBytes - tag.length);
    const message = decodeBusMessage(
      encodeChange({ op: 'set', key, version: base + BigInt(i), value, expiresAt: null }),
    );
    if (message.kind !== 'change') throw new Error('the codec decoded a change as something else');
    tier.apply(message.change);
  }
  return tier;
}

function perEntry(entries: number, keyBytes: number, valueBytes: number): MemoryResult {
  const before = collect();
  const tier = filled(MemoryTier, entries, keyBytes, valueBytes);
  const after = collect();
  const held = tier.size;
  if (held + tier.collisions !== entries) {
    throw new Error(`the tier holds ${held} of ${entries} entries, ${tier.collisions} lost to collisions`);
  }
  const heap = (after.heapUsed + after.external - before.heapUsed - before.external) / held;
  return {
    entries,
    keyBytes,
    valueBytes,
    rssBytesPerEntry: Math.round((after.rss - before.rss) / held),
    heapBytesPerEntry: Math.round(heap),
    heapOverheadPerEntry: Math.round(heap - keyBytes - valueBytes),
    countedBytesPerEntry: Math.round(tier.bytes / held),
    collisions: tier.collisions,
  };
}

/** ns per hot request's 10 lookups, per module: the median of 15 alternating rounds, minus the parse alone. */
async function lookups(modules: string[]): Promise<Record<string, number>> {
  const entries = 100_000;
  const tiers = await Promise.all(
    modules.map(async (path) => {
      const module = (await import(pathToFileURL(path).href)) as { MemoryTier: TierClass<Tier> };
      return filled(module.MemoryTier, entries, 7, 100);
    }),
  );
  // 100 different hot sets of 10 keys, as request bodies; each round parses them anew, as a reader does.
  // Only keys every tier holds: a key let go of for a collision would be a miss, which is not a hot read.
  const held = Array.from({ length: 2000 }, (_, i) => keyAt((i * 7919) % entries, 7)).filter((key) =>
    tiers.every((tier) => tier.lookup(key) !== undefined),
  );
  const bodies = Array.from({ length: 100 }, (_, r) =>
    JSON.stringify(Array.from({ length: 10 }, (_, k) => held[(r * 997 + k * 101) % held.length])),
  );
  const requests = 50_000;
  const time = (lookUp: (key: string) => unknown): number => {
    const start = performance.now();
    for (let i = 0; i < requests; i++) {
      const keys = JSON.parse(bodies[i % bodies.length] as string) as string[];
      for (const key of keys) if (lookUp(key) === undefined) throw new Error(`a miss for ${key}`);
    }
    return ((performance.now() - start) * 1e6) / requests;
  };
  const rounds: number[][] = modules.map(() => []);
  const parse: number[] = [];
  for (let round = 0; round < 15; round++) {
    parse.push(time((key) => key));
    tiers.forEach((tier, i) => rounds[i]?.push(time((key) => tier.lookup(key))));
  }
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1] ?? NaN;
  const parsing = median(parse);
  return Object.fromEntries(modules.map((path, i) => [path, Math.round(median(rounds[i] ?? []) - parsing)]));
}

const args = process.argv.slice(2);
if (args[0] === 'lookup' && args.length > 1) {
  process.stdout.write(`${JSON.stringify(await lookups(args.slice(1)))}\n`);
} else {
  const [entries, keyBytes, valueBytes] = args.map(Number);
  if (!entries || !keyBytes || !valueBytes || keyBytes < String(entries - 1).length + 1) {
    process.stderr.write(
      'usage: memory.ts <entries> <keyBytes> <valueBytes> (keyBytes > digits of entries) | lookup <module>...\n',
    );
    process.exit(2);
  }
  process.stdout.write(`${JSON.stringify(perEntry(entries, keyBytes, valueBytes))}\n`);
}
