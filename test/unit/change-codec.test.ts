// The feed's message format: every change and sync marker comes back as it was encoded, and anything else is
// refused with the reason, so a consumer counts and skips it instead of feeding a reader half a change.
// (The Redis write script builds the same JSON in Lua: test/contract/store.contract.ts holds the two in step.)
import { describe, expect, it } from 'vitest';
import {
  decodeBusMessage,
  encodeChange,
  encodeSyncMarker,
  messageBytesOf,
} from '../../src/adapters/change-codec.js';
import type { Change } from '../../src/domain/entry.js';

/** The error decodeBusMessage throws for `text`. */
function refusal(text: string | Buffer | null): string {
  try {
    decodeBusMessage(text);
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error(`decoded ${String(text)}`);
}

describe('change codec', () => {
  it('round-trips every kind of change exactly, from a string or a Buffer', () => {
    const changes: Change[] = [
      { op: 'set', key: 'k', version: 1796000000000000n, value: 'v', expiresAt: null },
      { op: 'set', key: 'é"\n\u0000', version: 0n, value: '', expiresAt: 1796000000123 },
      { op: 'delete', key: 'gone', version: 18446744073709551617n },
      { op: 'invalidate', key: 'big', version: 7n, expiresAt: null },
      { op: 'invalidate', key: 'big', version: 8n, expiresAt: 12.5 },
    ];
    for (const change of changes) {
      const encoded = encodeChange(change);
      expect(decodeBusMessage(encoded)).toEqual({ kind: 'change', change });
      expect(decodeBusMessage(Buffer.from(encoded))).toEqual({ kind: 'change', change });
    }
    // The exact shape (the Lua script writes the same): field order and the version as a string.
    expect(encodeChange(changes[0]!)).toBe(
      '{"op":"set","key":"k","version":"1796000000000000","value":"v","expiresAt":null}',
    );
    expect(encodeChange(changes[2]!)).toBe('{"op":"delete","key":"gone","version":"18446744073709551617"}');
    expect(encodeChange(changes[3]!)).toBe('{"op":"invalidate","key":"big","version":"7","expiresAt":null}');
  });

  it('round-trips sync markers, and ignores fields it does not know', () => {
    const marker = { subscriber: 'reader-1', round: 3 };
    expect(encodeSyncMarker(marker)).toBe('{"op":"sync","subscriber":"reader-1","round":3}');
    expect(decodeBusMessage(encodeSyncMarker(marker))).toEqual({ kind: 'sync', ...marker });
    expect(decodeBusMessage('{"op":"sync","subscriber":"s","round":1,"extra":true}')).toEqual({
      kind: 'sync',
      subscriber: 's',
      round: 1,
    });
    expect(decodeBusMessage('{"op":"delete","key":"k","version":"5","more":[1]}')).toEqual({
      kind: 'change',
      change: { op: 'delete', key: 'k', version: 5n },
    });
  });

  it('refuses to encode an expiry JSON would turn into null ("never")', () => {
    for (const expiresAt of [NaN, Infinity, -Infinity]) {
      expect(() => encodeChange({ op: 'set', key: 'k', version: 1n, value: 'v', expiresAt })).toThrow(
        `cannot encode a change with expiresAt ${expiresAt}`,
      );
      expect(() => encodeChange({ op: 'invalidate', key: 'k', version: 1n, expiresAt })).toThrow(
        `cannot encode a change with expiresAt ${expiresAt}`,
      );
    }
  });

  it('refuses anything else, saying why and showing the start of it', () => {
    const cases: [string | null, string][] = [
      [null, 'undecodable bus message: no value'],
      ['{nope', 'undecodable bus message (not JSON): "{nope"'],
      ['[1]', 'undecodable bus message (not an object): "[1]"'],
      ['null', 'undecodable bus message (not an object): "null"'],
      ['"text"', 'undecodable bus message (not an object): "\\"text\\""'],
      ['{"op":"put","key":"k","version":"1"}', 'unknown op'],
      ['{"key":"k","version":"1"}', 'unknown op'],
      ['{"op":"sync","round":1}', 'sync marker without subscriber'],
      ['{"op":"sync","subscriber":"","round":1}', 'sync marker without subscriber'],
      ['{"op":"sync","subscriber":7,"round":1}', 'sync marker without subscriber'],
      ['{"op":"sync","subscriber":"s"}', 'sync marker without round'],
      ['{"op":"sync","subscriber":"s","round":0}', 'sync marker without round'],
      ['{"op":"sync","subscriber":"s","round":1.5}', 'sync marker without round'],
      ['{"op":"sync","subscriber":"s","round":"1"}', 'sync marker without round'],
      ['{"op":"sync","subscriber":"s","round":9007199254740992}', 'sync marker without round'],
      ['{"op":"delete","key":1,"version":"1"}', 'key is not a string'],
      ['{"op":"delete","version":"1"}', 'key is not a string'],
      ['{"op":"delete","key":"k","version":1}', 'version is not a decimal string'],
      ['{"op":"delete","key":"k","version":"01"}', 'version is not a decimal string'],
      ['{"op":"delete","key":"k","version":"-1"}', 'version is not a decimal string'],
      ['{"op":"delete","key":"k","version":"1x"}', 'version is not a decimal string'],
      ['{"op":"delete","key":"k","version":"x1"}', 'version is not a decimal string'],
      ['{"op":"delete","key":"k","version":""}', 'version is not a decimal string'],
      ['{"op":"set","key":"k","version":"1","value":"v"}', 'expiresAt is neither a number nor null'],
      ['{"op":"set","key":"k","version":"1","value":"v","expiresAt":"5"}', 'expiresAt is neither'],
      ['{"op":"invalidate","key":"k","version":"1","expiresAt":"5"}', 'expiresAt is neither'],
      ['{"op":"set","key":"k","version":"1","expiresAt":null}', 'set without a string value'],
      ['{"op":"set","key":"k","version":"1","value":5,"expiresAt":null}', 'set without a string value'],
    ];
    for (const [text, why] of cases) expect(refusal(text), String(text)).toContain(why);
    // 1e400 parses as Infinity: not a finite expiry.
    expect(refusal('{"op":"set","key":"k","version":"1","value":"v","expiresAt":1e400}')).toContain(
      'expiresAt is neither a number nor null',
    );
    // Long junk is shown cut to its first 120 characters.
    const long = `{"op":"nope","pad":"${'x'.repeat(200)}"}`;
    expect(refusal(long)).toBe(
      `undecodable bus message (unknown op): ${JSON.stringify(`${long.slice(0, 120)}…`)}`,
    );
    const exact = `{"op":"nope","pad":"${'x'.repeat(120 - 22)}"}`;
    expect(exact).toHaveLength(120);
    expect(refusal(exact)).toBe(`undecodable bus message (unknown op): ${JSON.stringify(exact)}`);
  });

  it('counts a message as its key and value bytes, in UTF-8', () => {
    expect(messageBytesOf('k', 'v')).toBe(2);
    expect(messageBytesOf('é', '€')).toBe(5);
    expect(messageBytesOf('', '')).toBe(0);
  });
});
