// A memory tier on a fake clock, with small defaults each test may override.
import { MemoryTier, type MemoryTierOptions } from '../../src/domain/memory-tier.js';

function fakeClock(start = 1_800_000_000_000) {
  let now = start;
  return { now: () => now, advance: (ms: number) => void (now += ms) };
}

export function tier(overrides: Partial<MemoryTierOptions> = {}) {
  const clock = fakeClock();
  const t = new MemoryTier({
    maxEntries: 1000,
    maxBytes: 1 << 20,
    ttlMs: 60_000,
    negativeTtlMs: 1000,
    clock,
    ...overrides,
  });
  return { t, clock };
}
