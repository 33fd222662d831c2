// Key checks run on every key of every read: they are a loop over the key's code units now, and must
// accept and refuse exactly what the regular expressions they replaced did, with the same messages.
import { describe, expect, it } from 'vitest';
import { checkDelete, checkKey, checkRead, InvalidInput, type Limits } from '../../src/domain/limits.js';
import { utf8Bytes } from '../../src/domain/entry.js';

const limits: Limits = {
  maxReadKeys: 1000,
  maxWriteEntries: 1000,
  maxKeyBytes: 16,
  maxValueBytes: 64,
  maxTtlSeconds: 60,
};

/** The check as it was written before (two regular expressions), the reference. */
function before(key: string, path: string): string | null {
  if (key.length === 0) return `${path}: a key must not be empty`;
  // eslint-disable-next-line no-control-regex -- the reference's own pattern
  const control = /[\u0000-\u001f\u007f]/.exec(key);
  if (control) {
    const code = control[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, '0');
    return `${path}: a key must not contain control characters (U+${code} at index ${control.index})`;
  }
  if (/[\ud800-\udfff]/u.test(key))
    return `${path}: a key must be valid Unicode (it has an unpaired surrogate)`;
  const bytes = utf8Bytes(key);
  if (bytes > limits.maxKeyBytes)
    return `${path}: key is ${bytes} bytes, more than the limit of ${limits.maxKeyBytes}`;
  return null;
}

function now(key: string, path: string): string | null {
  try {
    checkKey(key, path, limits);
    return null;
  } catch (error) {
    if (!(error instanceof InvalidInput)) throw error;
    expect(error.path).toBe(path);
    return error.message;
  }
}

// Units around every boundary the checks draw, and each kind of surrogate sequence.
const UNITS = [
  0, 1, 0x1f, 0x20, 0x21, 0x7e, 0x7f, 0x80, 0xff, 0x100, 0x7ff, 0x800, 0xd7ff, 0xd800, 0xdbff, 0xdc00, 0xdfff,
  0xe000, 0xfffd, 0xffff,
];

function corpus(): string[] {
  const keys = [
    '',
    'a',
    'hot:1',
    'x'.repeat(16),
    'x'.repeat(17),
    'é'.repeat(8),
    'é'.repeat(9),
    '€'.repeat(5),
    '€'.repeat(6),
    '😀'.repeat(4),
    '😀'.repeat(5),
  ];
  const chars = UNITS.map((u) => String.fromCharCode(u));
  for (const a of chars) {
    keys.push(a, `k${a}`, `${a}k`);
    for (const b of chars) keys.push(`${a}${b}`, `k${a}${b}k`);
  }
  // A lone half before a control character, and after one: which is reported first.
  keys.push(
    '\ud800\u0001',
    '\u0001\ud800',
    'ab\udc00cd\u007f',
    '\ud83d\ude00\u0000',
    '\ud83d\ud83d\ude00',
    '\ude00\ud83d',
  );
  return keys;
}

describe('checkKey', () => {
  it('accepts and refuses what the regular expressions did, with the same message', () => {
    for (const key of corpus()) expect(now(key, 'keys[3]'), JSON.stringify(key)).toBe(before(key, 'keys[3]'));
  });

  it('names the refused key by its index in a read and a delete', () => {
    const keys = ['a', 'b', '', 'c'];
    expect(() => checkRead(keys, limits)).toThrow(
      new InvalidInput('keys[2]: a key must not be empty', 'keys[2]'),
    );
    expect(() => checkDelete(keys, limits)).toThrow('keys[2]: a key must not be empty');
    try {
      checkRead(['ok', 'x\u0007'], limits);
      expect.unreachable();
    } catch (error) {
      expect((error as InvalidInput).path).toBe('keys[1]');
      expect((error as InvalidInput).message).toBe(
        'keys[1]: a key must not contain control characters (U+0007 at index 1)',
      );
    }
  });
});
