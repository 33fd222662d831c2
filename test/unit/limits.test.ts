// The size rules at their exact boundaries, and the messages that name what to change: a limit off by one
// or a message that lost its numbers would otherwise pass every other test.
import { describe, expect, it } from 'vitest';
import {
  checkDelete,
  checkKey,
  checkRead,
  checkWatch,
  checkWrite,
  InvalidInput,
  ResponseBudget,
  jsonStringBytes,
  ResponseTooLarge,
  type Limits,
} from '../../src/domain/limits.js';

const limits: Limits = {
  maxReadKeys: 3,
  maxWriteEntries: 2,
  maxKeyBytes: 4,
  maxValueBytes: 5,
  maxTtlSeconds: 60,
};
const keys = (n: number) => Array.from({ length: n }, (_, i) => `k${i}`);
const entries = (n: number) => keys(n).map((key) => ({ key, value: 'v' }));

/** The InvalidInput `fn` throws, as message and path. */
function refusal(fn: () => void): { name: string; message: string; path: string } {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidInput);
    const { name, message, path } = error as InvalidInput;
    return { name, message, path };
  }
  throw new Error('expected InvalidInput');
}

describe('limits at their boundaries', () => {
  it('accepts exactly maxReadKeys keys and refuses one more, saying how many', () => {
    expect(() => checkRead(keys(3), limits)).not.toThrow();
    expect(refusal(() => checkRead(keys(4), limits))).toEqual({
      name: 'InvalidInput',
      message: 'keys: 4 keys asked, more than the limit of 3',
      path: 'keys',
    });
  });

  it('accepts exactly maxWriteEntries entries or deleted keys and refuses one more', () => {
    expect(() => checkWrite(entries(2), null, limits)).not.toThrow();
    expect(refusal(() => checkWrite(entries(3), null, limits))).toMatchObject({
      message: 'entries: 3 entries, more than the limit of 2',
      path: 'entries',
    });
    expect(() => checkDelete(keys(2), limits)).not.toThrow();
    expect(refusal(() => checkDelete(keys(3), limits))).toMatchObject({
      message: 'keys: 3 keys, more than the limit of 2',
      path: 'keys',
    });
  });

  it('checks every deleted key and names it', () => {
    expect(refusal(() => checkDelete(['ok', ''], limits))).toEqual({
      name: 'InvalidInput',
      message: 'keys[1]: a key must not be empty',
      path: 'keys[1]',
    });
    expect(refusal(() => checkDelete(['ok', 'abcde'], limits)).path).toBe('keys[1]');
  });

  it('accepts a key of exactly maxKeyBytes and refuses one byte more, saying both numbers', () => {
    expect(() => checkKey('abcd', 'key', limits)).not.toThrow();
    expect(refusal(() => checkKey('abcé', 'key', limits))).toMatchObject({
      message: 'key: key is 5 bytes, more than the limit of 4',
      path: 'key',
    });
    expect(refusal(() => checkKey('', 'key', limits)).message).toBe('key: a key must not be empty');
  });

  it('takes a watch of keys, a prefix or both, checking each as a read and a key; refuses neither', () => {
    const neither = { name: 'InvalidInput', message: 'keys: give keys, a prefix, or both', path: 'keys' };
    expect(refusal(() => checkWatch(null, null, limits))).toEqual(neither);
    expect(refusal(() => checkWatch([], null, limits))).toEqual(neither);
    expect(() => checkWatch(['a'], null, limits)).not.toThrow();
    expect(() => checkWatch(null, 'p', limits)).not.toThrow();
    expect(() => checkWatch([], 'p', limits)).not.toThrow();
    expect(() => checkWatch(keys(3), 'abcd', limits)).not.toThrow();
    // The keys as a read: their count and each key, named by index.
    expect(refusal(() => checkWatch(keys(4), 'p', limits)).message).toBe(
      'keys: 4 keys asked, more than the limit of 3',
    );
    expect(refusal(() => checkWatch(['a', 'b\n'], null, limits)).path).toBe('keys[1]');
    // The prefix as a key, named "prefix", whether or not keys come with it.
    for (const keysToo of [null, ['a']]) {
      expect(refusal(() => checkWatch(keysToo, 'abcde', limits))).toEqual({
        name: 'InvalidInput',
        message: 'prefix: key is 5 bytes, more than the limit of 4',
        path: 'prefix',
      });
      expect(refusal(() => checkWatch(keysToo, '', limits)).path).toBe('prefix');
    }
  });

  it('accepts ttlSeconds from 1 to maxTtlSeconds, whole numbers only', () => {
    const one = [{ key: 'a', value: '' }];
    for (const ttl of [1, 60]) expect(() => checkWrite(one, ttl, limits)).not.toThrow();
    for (const ttl of [0, 0.5, 1.5, 61, -1]) {
      expect(refusal(() => checkWrite(one, ttl, limits))).toMatchObject({
        message: 'ttlSeconds: must be a whole number from 1 to 60',
        path: 'ttlSeconds',
      });
    }
  });

  it('names a too-large value by index and by its key, cut to 64 characters', () => {
    const longKey = 'k'.repeat(100);
    const refused = refusal(() =>
      checkWrite([{ key: longKey, value: 'abcdef' }], null, { ...limits, maxKeyBytes: 200 }),
    );
    expect(refused).toEqual({
      name: 'InvalidInput',
      message: `entries[0].value (key "${'k'.repeat(64)}"): value is 6 bytes, more than the limit of 5`,
      path: 'entries[0].value',
    });
    expect(() => checkWrite([{ key: 'a', value: 'abcde' }], null, limits)).not.toThrow();
  });

  it('names a control character by its code point and index, and an unpaired surrogate as such', () => {
    expect(refusal(() => checkKey('ab\n', 'keys[0]', limits)).message).toBe(
      'keys[0]: a key must not contain control characters (U+000A at index 2)',
    );
    expect(refusal(() => checkKey('\u001f', 'key', limits)).message).toBe(
      'key: a key must not contain control characters (U+001F at index 0)',
    );
    expect(refusal(() => checkKey('a\ud800', 'key', limits)).message).toBe(
      'key: a key must be valid Unicode (it has an unpaired surrogate)',
    );
    expect(refusal(() => checkWrite([{ key: 'a', value: '\udfff' }], null, limits))).toEqual({
      name: 'InvalidInput',
      message: 'entries[0].value: a value must be valid Unicode (it has an unpaired surrogate)',
      path: 'entries[0].value',
    });
  });

  it('refuses an answer over its budget with a ResponseTooLarge that says so', () => {
    const thrown = (() => {
      try {
        new ResponseBudget(1).spend([{ key: 'ab', value: null }]);
      } catch (error) {
        return error as Error;
      }
      throw new Error('expected ResponseTooLarge');
    })();
    expect(thrown.name).toBe('ResponseTooLarge');
  });
});

describe('jsonStringBytes', () => {
  it('counts what JSON.stringify writes between the quotes, escapes included', () => {
    for (const text of [
      '',
      'plain',
      'é🦀',
      '"',
      '\\',
      '\n\t\r\b\f',
      '\u0000\u0001\u001f',
      'a"b\u0002c\\',
      '\u007f',
    ]) {
      expect(jsonStringBytes(text), JSON.stringify(text)).toBe(Buffer.byteLength(JSON.stringify(text)) - 2);
    }
  });

  it('makes the response budget count control characters as the six bytes they become', () => {
    const value = '\u0001'.repeat(1000); // 1,000 bytes raw, 6,000 as JSON
    expect(() => new ResponseBudget(5_000).spend([{ key: 'k', value }])).toThrow(ResponseTooLarge);
    expect(() => new ResponseBudget(6_001).spend([{ key: 'k', value }])).not.toThrow();
  });
});
