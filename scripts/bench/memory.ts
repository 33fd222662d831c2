// Memory per entry of the memory tier, filled the way the feed fills it: each change encoded as the bus
// carries it, decoded by the reader's codec (so every key and value is a string of its own, as from Kafka),
// and applied. RSS and V8 heap are read after a forced GC before the tier exists and once it is full; the
// difference per entry, minus the key and value bytes, is the tier's own overhead. Run in a process of its
// own (fresh heap, --expose-gc):
//
//   node --expose-gc --import tsx scripts/bench/memory.ts <entries> <keyBytes> <valueBytes>
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
}

function collect(): NodeJS.MemoryUsage {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with node --expose-gc');
  // Twice: the first pass can leave work (weak references, finalization) for the second.
  gc();
  gc();
  return process.memoryUsage();
}

function main(entries: number, keyBytes: number, valueBytes: number): MemoryResult {
  const before = collect();
  const tier = new MemoryTier({
    maxEntries: entries,
    maxBytes: Number.MAX_SAFE_INTEGER,
    ttlMs: 3_600_000,
    negativeTtlMs: 60_000,
  });
  // Versions like the store's: commit time in µs.
  const base = BigInt(Date.now()) * 1000n;
  for (let i = 0; i < entries; i++) {
    const key = `k${String(i).padStart(keyBytes - 1, '0')}`;
    const tag = `${i}:`;
    const value = tag + 'x'.repeat(valueBytes - tag.length);
    const message = decodeBusMessage(
      encodeChange({ op: 'set', key, version: base + BigInt(i), value, expiresAt: null }),
    );
    if (message.kind !== 'change') throw new Error('the codec decoded a change as something else');
    tier.apply(message.change);
  }
  const after = collect();
  if (tier.size !== entries) throw new Error(`the tier holds ${tier.size} of ${entries} entries`);
  const heap = (after.heapUsed + after.external - before.heapUsed - before.external) / entries;
  return {
    entries,
    keyBytes,
    valueBytes,
    rssBytesPerEntry: Math.round((after.rss - before.rss) / entries),
    heapBytesPerEntry: Math.round(heap),
    heapOverheadPerEntry: Math.round(heap - keyBytes - valueBytes),
    countedBytesPerEntry: Math.round(tier.bytes / entries),
  };
}

const [entries, keyBytes, valueBytes] = process.argv.slice(2).map(Number);
if (!entries || !keyBytes || !valueBytes || keyBytes < String(entries - 1).length + 1) {
  process.stderr.write('usage: memory.ts <entries> <keyBytes> <valueBytes> (keyBytes > digits of entries)\n');
  process.exit(2);
}
process.stdout.write(`${JSON.stringify(main(entries, keyBytes, valueBytes))}\n`);
