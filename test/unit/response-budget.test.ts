// The response budget proves most answers fit from their string lengths alone (at most 6 bytes of JSON per
// UTF-16 unit) and measures exactly only near its limit: the shortcut must never refuse what fits, nor let
// through what does not, however the answer's parts arrive.
import { describe, expect, it } from 'vitest';
import { ResponseBudget, ResponseTooLarge } from '../../src/domain/limits.js';

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
