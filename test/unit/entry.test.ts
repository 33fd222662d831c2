import { describe, expect, it } from 'vitest';
import { nextVersion, packEntry, unpackEntry } from '../../src/domain/entry.js';
import {
  checkDelete,
  checkRead,
  checkWrite,
  InvalidInput,
  ResponseBudget,
  ResponseTooLarge,
  type Limits,
} from '../../src/domain/limits.js';

describe('packed entries', () => {
  it('round-trip values, tombstones and expiries exactly, whatever the value holds', () => {
    for (const entry of [
      { version: 1n, value: 'plain', expiresAt: null },
      { version: 9_007_199_254_740_993n, value: 'a:b:c::', expiresAt: 1_800_000_000_123 },
      { version: 2n, value: '', expiresAt: null },
      { version: 3n, value: '🦀 漢字\n', expiresAt: null },
      { version: 4n, value: null, expiresAt: 1_800_000_000_000 },
    ]) {
      expect(unpackEntry(packEntry(entry))).toEqual(entry);
    }
    expect(packEntry({ version: 7n, value: 'x', expiresAt: null })).toBe('s7::x');
    expect(packEntry({ version: 8n, value: null, expiresAt: 5 })).toBe('d8:5:');
  });

  it('refuses strings it did not write', () => {
    expect(() => unpackEntry('hello')).toThrow(/not a tiercache entry/);
    expect(() => unpackEntry('s12x:')).toThrow();
  });
});

describe('nextVersion', () => {
  it('is max(previous + 1, now in µs)', () => {
    expect(nextVersion(null, 1000n)).toBe(1000n);
    expect(nextVersion(5n, 1000n)).toBe(1000n);
    expect(nextVersion(2000n, 1000n)).toBe(2001n);
    expect(nextVersion(null, 0n)).toBe(1n);
  });
});

describe('limits', () => {
  const limits: Limits = {
    maxReadKeys: 3,
    maxWriteEntries: 2,
    maxKeyBytes: 4,
    maxValueBytes: 5,
    maxTtlSeconds: 60,
  };
  const invalid = (fn: () => void) => {
    try {
      fn();
    } catch (error) {
      expect(error).toBeInstanceOf(InvalidInput);
      return (error as InvalidInput).path;
    }
    throw new Error('expected InvalidInput');
  };

  it('counts UTF-8 bytes, not characters, and names the offending entry', () => {
    expect(
      invalid(() =>
        checkWrite(
          [
            { key: 'ok', value: 'ok' },
            { key: 'ü', value: 'ééé' },
          ],
          null,
          limits,
        ),
      ),
    ).toBe('entries[1].value');
    expect(
      invalid(() =>
        checkWrite(
          [
            { key: '🦀', value: '' },
            { key: '🦀x', value: '' },
          ],
          null,
          limits,
        ),
      ),
    ).toBe('entries[1].key');
    expect(invalid(() => checkRead(['a', ''], limits))).toBe('keys[1]');
  });

  it('bounds batch sizes and ttlSeconds', () => {
    expect(invalid(() => checkRead(['a', 'b', 'c', 'd'], limits))).toBe('keys');
    expect(
      invalid(() =>
        checkWrite(
          [
            { key: 'a', value: '' },
            { key: 'b', value: '' },
            { key: 'c', value: '' },
          ],
          null,
          limits,
        ),
      ),
    ).toBe('entries');
    expect(invalid(() => checkWrite([{ key: 'a', value: '' }], 0, limits))).toBe('ttlSeconds');
    expect(invalid(() => checkWrite([{ key: 'a', value: '' }], 61, limits))).toBe('ttlSeconds');
    expect(() => checkWrite([{ key: 'abcd', value: 'abcde' }], 60, limits)).not.toThrow();
  });

  it('refuses keys with control characters or unpaired surrogates on every path, and names them', () => {
    for (const key of ['a\u0000', '\u001f', 'x\u007f', 'a\nb', '\ud800', 'a\udfff']) {
      expect(
        invalid(() => checkRead(['ok', key], limits)),
        JSON.stringify(key),
      ).toBe('keys[1]');
      expect(invalid(() => checkDelete([key], limits))).toBe('keys[0]');
      expect(invalid(() => checkWrite([{ key, value: '' }], null, limits))).toBe('entries[0].key');
    }
    expect(invalid(() => checkWrite([{ key: 'a', value: 'x\ud800' }], null, limits))).toBe(
      'entries[0].value',
    );
    // Paired surrogates, DEL's neighbours and U+FFFD itself are ordinary text.
    expect(() => checkRead(['🦀', '\u0080', '~', '\ufffd'], { ...limits, maxReadKeys: 4 })).not.toThrow();
    expect(() => checkWrite([{ key: 'a', value: 'tab\there\u0000' }], null, limits)).toThrow(/5/);
  });
});

describe('ResponseBudget', () => {
  it('counts every repetition of keys and values in UTF-8 bytes and refuses past the limit', () => {
    const shared = { key: 'k', value: 'éé' }; // 1 + 4 bytes
    const budget = new ResponseBudget(12);
    budget.spend([shared, shared]);
    budget.spend([{ key: 'ab', value: null }]);
    expect(() => budget.spend([{ key: 'z', value: null }])).toThrow(ResponseTooLarge);
    expect(() => new ResponseBudget(10).spend([shared, shared])).not.toThrow();
    expect(() => new ResponseBudget(14).spend([shared, shared, shared])).toThrow(/MAX_RESPONSE_BYTES/);
  });

  it('adds up what it only bounded across calls: parts that fit alone still refuse together', () => {
    // 10 UTF-16 units (bound 60 bytes), 55 bytes as JSON: one fits 100 by its bound, two are 110.
    const part = [{ key: 'k', value: '\u0001'.repeat(9) }];
    const budget = new ResponseBudget(100);
    budget.spend(part);
    expect(() => budget.spend(part)).toThrow(ResponseTooLarge);
  });
});

describe('unpackEntry refusals', () => {
  it('matches the header only at the start, and quotes at most 40 characters of what it refuses', () => {
    expect(() => unpackEntry('xs1::v')).toThrow(/not a tiercache entry/);
    const long = 'y'.repeat(100);
    expect(() => unpackEntry(long)).toThrow(`not a tiercache entry: "${'y'.repeat(40)}"`);
  });
});
