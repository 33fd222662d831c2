// What clients are told when a request fails: their own mistakes by name, a store outage as worth a retry,
// and anything else (a bug of ours) as INTERNAL, never dressed up as an outage.
import { GraphQLError } from 'graphql';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { closeInOrder } from '../../src/app.js';
import { LocalBus } from '../../src/adapters/local-bus.js';
import { MemoryStore } from '../../src/adapters/memory-store.js';
import { InvalidInput } from '../../src/domain/limits.js';
import { toClientError, wrongRole } from '../../src/graphql/errors.js';
import { internalErrors } from '../../src/observability.js';
import { FeedBackedUp, PartialWrite, ReplicasNotConfirmed, StoreFailure } from '../../src/ports.js';
import { Reader } from '../../src/reader/reader.js';
import { Writer } from '../../src/writer/writer.js';

const limits = {
  maxReadKeys: 10,
  maxWriteEntries: 10,
  maxKeyBytes: 64,
  maxValueBytes: 64,
  maxTtlSeconds: 60,
};

afterEach(() => {
  vi.restoreAllMocks();
});

/** Keeps the error log lines these tests provoke off the test output, and returns them. */
function captureStderr(): string[] {
  const lines: string[] = [];
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
    lines.push(String(chunk));
    return true;
  });
  return lines;
}

describe('toClientError', () => {
  it('tells a batch written in part which keys were written (with versions) and which not, hiding the cause', () => {
    const lines = captureStderr();
    const committed = [{ key: 'a', op: 'set' as const, version: 17n, expiresAt: null }];
    const error = toClientError(
      new PartialWrite(committed, ['b', 'c'], new Error('connect ECONNREFUSED 10.0.0.7:7001')),
      'setValues',
    );
    expect(error.extensions).toEqual({
      code: 'PARTIAL_WRITE',
      written: [{ key: 'a', version: '17' }],
      notWritten: ['b', 'c'],
    });
    expect(error.message).toMatch(/1 of 3 operations are committed.*writing the whole batch again is safe/);
    expect(error.message).not.toContain('10.0.0.7');
    expect(lines.join('')).toContain('10.0.0.7');
    const backedUp = new PartialWrite(committed, ['b'], new FeedBackedUp({ entries: 1, bytes: 2 }));
    expect(toClientError(backedUp, 'setValues').message).toContain('the change feed is backed up');
  });

  it('says a write its replicas did not confirm is committed but unconfirmed (UNAVAILABLE)', () => {
    const error = toClientError(new ReplicasNotConfirmed(1, 0, 1000), 'setValues');
    expect(error.extensions).toEqual({ code: 'UNAVAILABLE' });
    expect(error.message).toMatch(/committed, but only 0 of the 1 replicas .* within 1000 ms/);
  });

  it('names the argument of invalid input', () => {
    const error = toClientError(new InvalidInput('too long', 'entries[3].value'), 'setValues');
    expect(error.extensions).toEqual({ code: 'BAD_USER_INPUT', argument: 'entries[3].value' });
    expect(error.message).toBe('too long');
  });

  it('passes a client error through as it is', () => {
    const given = wrongRole('writer');
    expect(toClientError(given, 'setValues')).toBe(given);
  });

  it('answers UNAVAILABLE for a failing store, logging and counting the cause', async () => {
    const lines = captureStderr();
    const store = new MemoryStore();
    vi.spyOn(store, 'write').mockRejectedValue(new Error('connection refused'));
    const writer = new Writer(store, { limits, tombstoneTtlMs: 1000, inlineValueMaxBytes: 64 });
    const thrown = await writer.setValues([{ key: 'k', value: 'v' }], null).catch((e: unknown) => e);
    expect(thrown).toBeInstanceOf(StoreFailure);
    const before = await internalErrors.value({ component: 'graphql' });
    const error = toClientError(thrown, 'setValues');
    expect(error.extensions.code).toBe('UNAVAILABLE');
    expect(error.message).not.toContain('connection refused');
    expect(await internalErrors.value({ component: 'graphql' })).toBe(before + 1);
    expect(lines.join('')).toContain('connection refused');
  });

  it('knows a failing store read as a StoreFailure too', async () => {
    const store = new MemoryStore();
    vi.spyOn(store, 'read').mockRejectedValue(new Error('connection refused'));
    const bus = new LocalBus();
    const reader = await Reader.start(store, bus, {
      instanceId: 'r1',
      memory: { maxEntries: 10, maxBytes: 1 << 20, ttlMs: 60_000, negativeTtlMs: 60_000 },
      maxBatch: 10,
      purgeIntervalMs: 60_000,
      feed: { syncIntervalMs: 60_000, maxLagMs: 60_000 },
    });
    try {
      await expect(reader.read(['k'], true)).rejects.toBeInstanceOf(StoreFailure);
    } finally {
      await reader.close();
      await bus.close();
    }
  });

  it('answers INTERNAL, not UNAVAILABLE, for what is not the store (a bug)', () => {
    const lines = captureStderr();
    const error = toClientError(new TypeError("Cannot read properties of undefined (reading 'x')"), 'values');
    expect(error).toBeInstanceOf(GraphQLError);
    expect(error.extensions.code).toBe('INTERNAL');
    expect(error.message).not.toContain('Cannot read');
    expect(lines.join('')).toContain('Cannot read');
  });
});

describe('wrongRole', () => {
  it('tells the client where to send the request instead', () => {
    expect(wrongRole('reader').message).toBe('this process is a writer; send reads to a reader');
    expect(wrongRole('writer').message).toBe('this process is a reader; send writes to a writer');
    expect(wrongRole('reader').extensions.code).toBe('WRONG_ROLE');
  });
});

describe('closeInOrder', () => {
  it('closes every part in order even when some fail, then rejects with all their errors', async () => {
    const lines = captureStderr();
    const closed: string[] = [];
    const part = (name: string, failure?: Error): [string, () => Promise<void>] => [
      name,
      async () => {
        closed.push(name);
        if (failure) throw failure;
      },
    ];
    const relayFailure = new Error('relay stuck');
    const busFailure = new Error('bus stuck');
    const thrown = await closeInOrder([
      part('server'),
      part('relay', relayFailure),
      part('reader'),
      part('bus', busFailure),
      part('store'),
    ]).catch((e: unknown) => e);
    expect(closed).toEqual(['server', 'relay', 'reader', 'bus', 'store']);
    expect(thrown).toBeInstanceOf(AggregateError);
    expect((thrown as AggregateError).errors).toEqual([relayFailure, busFailure]);
    expect(lines.join('')).toContain('closing the relay failed');
    expect(lines.join('')).toContain('closing the bus failed');
  });

  it('resolves when every part closes', async () => {
    await expect(closeInOrder([['a', async () => undefined]])).resolves.toBeUndefined();
  });
});
