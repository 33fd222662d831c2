// The size rules every read and write must pass before any work is done, with errors that name the offender.
import { utf8Bytes } from './entry.js';

export interface Limits {
  /** Most keys in one read. */
  maxReadKeys: number;
  /** Most entries (or keys, for deletes) in one write. */
  maxWriteEntries: number;
  /** Longest key, in UTF-8 bytes; keys are at least 1 byte. */
  maxKeyBytes: number;
  /** Longest value, in UTF-8 bytes. */
  maxValueBytes: number;
  /** Longest ttlSeconds accepted on a write. */
  maxTtlSeconds: number;
}

/** A request the client must change: the GraphQL layer turns it into BAD_USER_INPUT. */
export class InvalidInput extends Error {
  override readonly name = 'InvalidInput';
  constructor(
    message: string,
    /** Where in the request: e.g. `entries[3].value`. */
    readonly path: string,
  ) {
    super(message);
  }
}

/** An answer that would carry more than the client may receive: the GraphQL layer says RESPONSE_TOO_LARGE. */
export class ResponseTooLarge extends Error {
  override readonly name = 'ResponseTooLarge';
}

// A UTF-16 unit is at most 3 bytes of UTF-8 (a surrogate pair, 2 units, is 4): a string this short is within
// a byte limit without measuring it. Measuring (Buffer.byteLength) cost about 0.6 µs per short string here,
// more than every other check of a key together.
const MAX_UTF8_BYTES_PER_UNIT = 3;
const surelyWithin = (text: string, maxBytes: number): boolean =>
  text.length * MAX_UTF8_BYTES_PER_UNIT <= maxBytes;

// For values (keys are checked by keyProblem's loop): in a /u pattern a surrogate range matches only
// unpaired halves.
const LONE_SURROGATE = /[\ud800-\udfff]/u;

/**
 * What is wrong with a key, or null: one pass over its UTF-16 units, no regular expression and no string
 * per key (a hot read checks every key it names). The first C0 control or DEL (invisible in logs and tools;
 * NUL ends strings in many clients) is reported before an unpaired surrogate anywhere (text no UTF-8
 * encoding can carry: it would be stored as U+FFFD, and two different keys would become one).
 */
function keyProblem(key: string, limits: Limits): string | null {
  if (key.length === 0) return 'a key must not be empty';
  let lone = false;
  for (let i = 0; i < key.length; i++) {
    const unit = key.charCodeAt(i);
    if (unit < 0x20 || unit === 0x7f) {
      const code = unit.toString(16).toUpperCase().padStart(4, '0');
      return `a key must not contain control characters (U+${code} at index ${i})`;
    }
    if (unit >= 0xd800 && unit <= 0xdfff) {
      const next = key.charCodeAt(i + 1);
      if (unit <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) i++;
      else lone = true;
    }
  }
  if (lone) return 'a key must be valid Unicode (it has an unpaired surrogate)';
  if (surelyWithin(key, limits.maxKeyBytes)) return null;
  const bytes = utf8Bytes(key);
  return bytes > limits.maxKeyBytes
    ? `key is ${bytes} bytes, more than the limit of ${limits.maxKeyBytes}`
    : null;
}

export function checkKey(key: string, path: string, limits: Limits): void {
  const problem = keyProblem(key, limits);
  if (problem !== null) throw new InvalidInput(`${path}: ${problem}`, path);
}

export function checkRead(keys: readonly string[], limits: Limits): void {
  if (keys.length > limits.maxReadKeys) {
    throw new InvalidInput(
      `keys: ${keys.length} keys asked, more than the limit of ${limits.maxReadKeys}`,
      'keys',
    );
  }
  checkKeys(keys, limits);
}

/** Each key checked; the path (`keys[3]`) is built only for the one refused. */
function checkKeys(keys: readonly string[], limits: Limits): void {
  for (let i = 0; i < keys.length; i++) {
    const problem = keyProblem(keys[i]!, limits); // i < keys.length
    if (problem !== null) throw new InvalidInput(`keys[${i}]: ${problem}`, `keys[${i}]`);
  }
}

/** A subscription's watch: keys (as a read), a prefix (as a key), at least one of the two. */
export function checkWatch(keys: readonly string[] | null, prefix: string | null, limits: Limits): void {
  if ((keys === null || keys.length === 0) && prefix === null)
    throw new InvalidInput('keys: give keys, a prefix, or both', 'keys');
  if (keys !== null) checkRead(keys, limits);
  if (prefix !== null) checkKey(prefix, 'prefix', limits);
}

export function checkWrite(
  entries: readonly { key: string; value: string }[],
  ttlSeconds: number | null,
  limits: Limits,
): void {
  if (entries.length > limits.maxWriteEntries) {
    throw new InvalidInput(
      `entries: ${entries.length} entries, more than the limit of ${limits.maxWriteEntries}`,
      'entries',
    );
  }
  if (
    ttlSeconds !== null &&
    !(Number.isInteger(ttlSeconds) && ttlSeconds >= 1 && ttlSeconds <= limits.maxTtlSeconds)
  ) {
    throw new InvalidInput(
      `ttlSeconds: must be a whole number from 1 to ${limits.maxTtlSeconds}`,
      'ttlSeconds',
    );
  }
  entries.forEach(({ key, value }, i) => {
    checkKey(key, `entries[${i}].key`, limits);
    if (LONE_SURROGATE.test(value)) {
      throw new InvalidInput(
        `entries[${i}].value: a value must be valid Unicode (it has an unpaired surrogate)`,
        `entries[${i}].value`,
      );
    }
    if (surelyWithin(value, limits.maxValueBytes)) return;
    const bytes = utf8Bytes(value);
    if (bytes > limits.maxValueBytes) {
      throw new InvalidInput(
        `entries[${i}].value (key ${JSON.stringify(key.slice(0, 64))}): value is ${bytes} bytes, more than the limit of ${limits.maxValueBytes}`,
        `entries[${i}].value`,
      );
    }
  });
}

export function checkDelete(keys: readonly string[], limits: Limits): void {
  if (keys.length > limits.maxWriteEntries) {
    throw new InvalidInput(
      `keys: ${keys.length} keys, more than the limit of ${limits.maxWriteEntries}`,
      'keys',
    );
  }
  checkKeys(keys, limits);
}

/**
 * The bytes one answer may carry, spent as results arrive and before anything is serialized: every key and
 * value (UTF-8) counted each time the answer repeats it (aliases, duplicate keys), so an answer that would
 * be too large is refused instead of built.
 */
// JSON writes a quote or a backslash as two characters and a control character as two (\n) or six
// (\u0001): a budget of raw bytes would let values of control characters make an answer six times its bound.
// eslint-disable-next-line no-control-regex -- the characters JSON escapes are the point
const ESCAPED = /["\\\u0000-\u001f]/;
// eslint-disable-next-line no-control-regex -- likewise
const ESCAPED_ALL = /["\\\u0000-\u001f]/g;
const SHORT_ESCAPES = '"\\\b\f\n\r\t';

/** UTF-8 bytes of `text` once written inside a JSON string (without its quotes). */
export function jsonStringBytes(text: string): number {
  const bytes = utf8Bytes(text);
  if (!ESCAPED.test(text)) return bytes;
  let extra = 0;
  for (const [char] of text.matchAll(ESCAPED_ALL)) extra += SHORT_ESCAPES.includes(char) ? 1 : 5;
  return bytes + extra;
}

type Answered = readonly { key: string; value: string | null }[];

// JSON writes one UTF-16 unit as at most 6 bytes (a control character as \u0001); a non-ASCII one is at most
// 3 bytes of UTF-8, a surrogate pair 4 for its two units.
const MAX_JSON_BYTES_PER_UNIT = 6;

export class ResponseBudget {
  /** Bytes measured exactly. */
  private measured = 0;
  /** An upper bound of the bytes of the results not measured yet. */
  private bounded = 0;
  /** Results counted by their bound only: measured if the bound ever passes the budget. */
  private unmeasured: Answered[] | null = null;
  constructor(private readonly maxBytes: number) {}

  spend(results: Answered): void {
    // Most answers are far below the budget: then a bound from the string lengths proves it, without
    // measuring every key and value as UTF-8 JSON (that measure showed in the hot reads' profile).
    let units = 0;
    for (const result of results)
      units += result.key.length + (result.value === null ? 0 : result.value.length);
    const bound = units * MAX_JSON_BYTES_PER_UNIT;
    if (this.measured + this.bounded + bound <= this.maxBytes) {
      this.bounded += bound;
      (this.unmeasured ??= []).push(results);
      return;
    }
    // Near or past the budget: everything is measured, what was only bounded so far first (it fits: its
    // bound did).
    for (const earlier of this.unmeasured ?? []) this.measure(earlier);
    this.unmeasured = null;
    this.bounded = 0;
    this.measure(results);
  }

  private measure(results: Answered): void {
    // Refused as soon as the budget is past: measuring stops after at most MAX_RESPONSE_BYTES of keys and
    // values (and one more), however often the request names the same large value.
    for (const result of results) {
      this.measured +=
        jsonStringBytes(result.key) + (result.value === null ? 0 : jsonStringBytes(result.value));
      if (this.measured > this.maxBytes) {
        throw new ResponseTooLarge(
          `the answer would carry more than ${this.maxBytes} bytes of keys and values as JSON (MAX_RESPONSE_BYTES); ask for fewer keys`,
        );
      }
    }
  }
}
