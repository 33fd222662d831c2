// The one rule for repeated failures (feed monitor, relay): the first is logged, then every tenth.
import { describe, expect, it } from 'vitest';
import { worthLogging } from '../../src/observability.js';

describe('worthLogging', () => {
  it('logs the first failure in a row, then every tenth', () => {
    const logged = Array.from({ length: 30 }, (_, i) => i + 1).filter(worthLogging);
    expect(logged).toEqual([1, 10, 20, 30]);
  });
});
