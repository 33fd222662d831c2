// jsonString writes a string as JSON.stringify does, skipping JSON.stringify only for strings it would
// leave as they are: checked for every UTF-16 code unit alone and inside text, and for pairs.
import { describe, expect, it } from 'vitest';
import { jsonString } from '../../src/http/json-text.js';

describe('jsonString', () => {
  it('is JSON.stringify for each of the 65 536 code units, alone and between other text', () => {
    const differ: number[] = [];
    for (let unit = 0; unit <= 0xffff; unit++) {
      const c = String.fromCharCode(unit);
      for (const text of [c, `a${c}`, `${c}b`, `key:${c}:value`])
        if (jsonString(text) !== JSON.stringify(text)) differ.push(unit);
    }
    expect(differ).toEqual([]);
  });

  it('is JSON.stringify for surrogate pairs, reversed pairs, lone halves and long strings', () => {
    for (const text of [
      '',
      '😀',
      'pair 😀 𝄞 end',
      '\udc00\ud800',
      '\ud800',
      '\udfff',
      'x\ud83dy',
      'x'.repeat(5000),
      `${'x'.repeat(5000)}"`,
      '\u2028\u2029',
      '\u007f',
      '\ufeff',
    ])
      expect(jsonString(text)).toBe(JSON.stringify(text));
  });
});
