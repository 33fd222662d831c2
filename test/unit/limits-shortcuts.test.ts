// Byte limits proven from string lengths instead of measured: the response budget (at most 6 bytes of JSON
// per UTF-16 unit, measured exactly only near its limit) and key and value sizes (at most 3 bytes of UTF-8
// per unit). The shortcuts must never refuse what fits, nor let through what does not.
import { describe, expect, it } from 'vitest';
import { checkKey, checkWrite, ResponseBudget, ResponseTooLarge } from '../../src/domain/limits.js';

describe('ResponseBudget bound and measure', () => {
  it('takes parts whose bounds together pass the limit when their exact bytes fit', () => {
    const budget = new ResponseBudget(21);
    budget.spend([{ key: 'k', value: 'a'.repeat(9) }]); // 10 bytes, bound 60
    budget.spend([{ key: 'k', value: 'b'.repeat(9) }]); // 20 bytes
    budget.spend([{ key: 'k', value: null }]); // 21 bytes: exactly the limit
    expect(() => budget.spend([{ key: 'z', value: null }])).toThrow(ResponseTooLarge);
  });

  it('counts what it only bounded before, exactly, once the bound no longer proves the answer fits', () => {
    const escaped = { key: 'k', value: '\u0001'.repeat(10) }; // 1 + 60 bytes as JSON, bound 66
    const budget = new ResponseBudget(100);
    budget.spend([escaped]);
    // 61 + 40 = 101: over, though this part alone (40) fits.
    expect(() => budget.spend([{ key: 'k', value: 'c'.repeat(39) }])).toThrow(ResponseTooLarge);
    const again = new ResponseBudget(101);
    again.spend([escaped]);
    expect(() => again.spend([{ key: 'k', value: 'c'.repeat(39) }])).not.toThrow();
  });

  it('bounds every kind of text from above: escapes, multi-byte and surrogate pairs', () => {
    for (const value of [
      '\u0000'.repeat(50),
      '"\\'.repeat(25),
      'é'.repeat(50),
      '€'.repeat(50),
      '🦀'.repeat(25),
    ]) {
      const exact = Buffer.byteLength(JSON.stringify(value)) - 2 + 1; // and the key 'k'
      expect(() => new ResponseBudget(exact).spend([{ key: 'k', value }]), value).not.toThrow();
      expect(() => new ResponseBudget(exact - 1).spend([{ key: 'k', value }]), value).toThrow(
        ResponseTooLarge,
      );
    }
  });
});

describe('byte limits proven from string lengths', () => {
  const limits = {
    maxReadKeys: 10,
    maxWriteEntries: 10,
    maxKeyBytes: 10,
    maxValueBytes: 10,
    maxTtlSeconds: 60,
  };

  it('still measures keys and values whose length does not prove them within the limit', () => {
    // 4 UTF-16 units, 12 bytes of UTF-8: 4 × 2 would pass for within 10, 4 × 3 does not.
    expect(() => checkKey('€€€€', 'key', limits)).toThrow('key: key is 12 bytes, more than the limit of 10');
    expect(() => checkKey('€€€', 'key', limits)).not.toThrow();
    expect(() => checkKey('🦀🦀', 'key', { ...limits, maxKeyBytes: 7 })).toThrow('key is 8 bytes');
    expect(() => checkKey('🦀🦀', 'key', { ...limits, maxKeyBytes: 8 })).not.toThrow();
    expect(() => checkWrite([{ key: 'k', value: '€€€€' }], null, limits)).toThrow('value is 12 bytes');
    expect(() => checkWrite([{ key: 'k', value: '€€€' }], null, limits)).not.toThrow();
  });

  it('checks a short key for everything else all the same', () => {
    expect(() => checkKey('', 'key', limits)).toThrow('a key must not be empty');
    expect(() => checkKey('a\u0001', 'key', limits)).toThrow('control characters');
    expect(() => checkKey('a\ud800', 'key', limits)).toThrow('unpaired surrogate');
    expect(() => checkWrite([{ key: 'k', value: 'a\udc00' }], null, limits)).toThrow('unpaired surrogate');
  });
});
