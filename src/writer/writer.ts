// The write side: validates a whole batch, then commits it to the store, which assigns the versions and
// records the batch's changes in its outbox in the same atomic step (the relay announces them from there).
import { checkDelete, checkWrite, type Limits } from '../domain/limits.js';
import { metrics } from '../observability.js';
import { callStore, type Committed, type Store, type WriteOp } from '../ports.js';

export interface WriterOptions {
  limits: Limits;
  /** How long a delete's tombstone stays in the store. */
  tombstoneTtlMs: number;
  /** Values larger than this travel as invalidations (version only); readers then refetch. */
  inlineValueMaxBytes: number;
}

const written = metrics.counter('tiercache_writer_ops_total', 'Committed write operations, by op');

export class Writer {
  constructor(
    private readonly store: Store,
    private readonly options: WriterOptions,
  ) {}

  /** Stores all entries or none; throws InvalidInput before touching the store if any entry is invalid. */
  async setValues(
    entries: readonly { key: string; value: string }[],
    ttlSeconds: number | null,
  ): Promise<Committed[]> {
    checkWrite(entries, ttlSeconds, this.options.limits);
    const ops: WriteOp[] = entries.map(({ key, value }) => ({ op: 'set', key, value }));
    return this.commit(ops, ttlSeconds === null ? null : ttlSeconds * 1000);
  }

  /** Deletes all keys or none, leaving versioned tombstones. */
  async deleteValues(keys: readonly string[]): Promise<Committed[]> {
    checkDelete(keys, this.options.limits);
    return this.commit(
      keys.map((key) => ({ op: 'delete', key })),
      null,
    );
  }

  private async commit(ops: WriteOp[], ttlMs: number | null): Promise<Committed[]> {
    if (ops.length === 0) return [];
    const committed = await callStore('write', () =>
      this.store.write(ops, {
        ttlMs,
        tombstoneTtlMs: this.options.tombstoneTtlMs,
        inlineValueMaxBytes: this.options.inlineValueMaxBytes,
      }),
    );
    written.inc({ op: ops[0]?.op ?? 'set' }, ops.length);
    return committed;
  }
}
