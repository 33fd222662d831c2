// GET /read's body is built string by string (src/http/rest.ts, readItemsJson); it must be byte for byte what
// JSON.stringify gave for the same items as objects, the seed's shape its clients parse, for every string a
// key or value can hold.
import { describe, expect, it } from 'vitest';
import { readItemsJson } from '../../src/http/rest.js';
import type { ReadResult } from '../../src/reader/reader.js';

/** What GET /read answered before: the items as objects, then JSON.stringify. */
function asObjects(results: readonly ReadResult[]): string {
  return JSON.stringify({
    items: results.map((r) =>
      r.value === null
        ? { key: r.key, value: '', source: 'not_found', exists: false }
        : { key: r.key, value: r.value, source: r.origin, exists: true },
    ),
  });
}

const HARD = [
  '',
  'plain',
  '"quoted"',
  'back\\slash\\',
  '\\"',
  '/slash</script>',
  ...Array.from({ length: 0x20 }, (_, i) => `ctl${String.fromCharCode(i)}end`),
  '\u007f\u0080\u00ff',
  'line\u2028sep\u2029para',
  'lone high \ud800 surrogate',
  'lone low \udfff surrogate',
  '\udc00\ud800 reversed pair',
  'pair 😀 non-BMP 𝄞',
  '\ud83d',
  'é ü ñ 中文 عربي',
  '\ufeffBOM',
  '\u0000',
  'x'.repeat(5000),
];

describe('readItemsJson', () => {
  it('is byte-identical to JSON.stringify of the items, over hard keys and values, present and absent', () => {
    const results: ReadResult[] = [];
    HARD.forEach((s, i) => {
      const other = HARD[(i * 7 + 3) % HARD.length]!;
      results.push({ key: s, value: other, version: 1n, origin: 'memory' });
      results.push({ key: other, value: s, version: 2n, origin: 'redis' });
      results.push({ key: s, value: null, version: null, origin: i % 2 ? 'memory' : 'redis' });
    });
    // Each result alone, and all of them in one answer.
    for (const r of results) expect(readItemsJson([r])).toBe(asObjects([r]));
    const all = readItemsJson(results);
    expect(all).toBe(asObjects(results));
    expect(Buffer.from(all)).toEqual(Buffer.from(asObjects(results)));
  });

  it('answers an empty list as JSON.stringify does', () => {
    expect(readItemsJson([])).toBe(asObjects([]));
  });
});
