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

export function checkKey(key: string, path: string, limits: Limits): void {
  const bytes = utf8Bytes(key);
  if (bytes === 0) throw new InvalidInput(`${path}: a key must not be empty`, path);
  if (bytes > limits.maxKeyBytes) {
    throw new InvalidInput(
      `${path}: key is ${bytes} bytes, more than the limit of ${limits.maxKeyBytes}`,
      path,
    );
  }
}

export function checkRead(keys: readonly string[], limits: Limits): void {
  if (keys.length > limits.maxReadKeys) {
    throw new InvalidInput(
      `keys: ${keys.length} keys asked, more than the limit of ${limits.maxReadKeys}`,
      'keys',
    );
  }
  keys.forEach((key, i) => checkKey(key, `keys[${i}]`, limits));
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
  keys.forEach((key, i) => checkKey(key, `keys[${i}]`, limits));
}
