// The write side: validates a whole batch, then commits it to the store, which assigns the versions and
// records the batch's changes in its outbox in the same atomic step (the relay announces them from there).
import { checkDelete, checkWrite, type Limits } from '../domain/limits.js';
import { metrics } from '../observability.js';
import { callStore, FeedBackedUp, type Committed, type Store, type WriteOp } from '../ports.js';

export interface WriterOptions {
  limits: Limits;
  /** How long a delete's tombstone stays in the store. */
  tombstoneTtlMs: number;
  /** Values larger than this travel as invalidations (version only); readers then refetch. */
  inlineValueMaxBytes: number;
  /** Writes are refused (FeedBackedUp) while this much waits unannounced in the outbox; 0: no bound. */
  outboxLimit?: { maxEntries: number; maxBytes: number };
}

const written = metrics.counter('tiercache_writer_ops_total', 'Committed write operations, by op');
const refused = metrics.counter(
  'tiercache_writer_backed_up_total',
  'Write batches refused because the outbox was at OUTBOX_MAX_BYTES / OUTBOX_MAX_ENTRIES',
);

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
    let committed: Committed[];
    try {
      committed = await callStore('write', () =>
        this.store.write(ops, {
          ttlMs,
          tombstoneTtlMs: this.options.tombstoneTtlMs,
          inlineValueMaxBytes: this.options.inlineValueMaxBytes,
          ...(this.options.outboxLimit ? { outboxLimit: this.options.outboxLimit } : {}),
        }),
      );
    } catch (error) {
      if (error instanceof FeedBackedUp) refused.inc();
      throw error;
    }
    written.inc({ op: ops[0]?.op ?? 'set' }, ops.length);
    return committed;
  }
}
