// A store whose reads can be held: Redis answers at once, the answer waits until the test releases it (a
// slow network, made exact). Forces a read to land after a write committed meanwhile, on the real Redis.
import type { StoredEntry } from '../../src/domain/entry.js';
import type { Store } from '../../src/ports.js';

export class HeldStore implements Store {
  private held: (() => void)[] = [];
  /** Only while true are answers held; other reads pass straight through. */
  holding = false;
  /** Store reads (one MGET each) so far. */
  fetched = 0;
  constructor(private readonly inner: Store) {}
  write = (...args: Parameters<Store['write']>) => this.inner.write(...args);
  get outbox() {
    return this.inner.outbox;
  }
  close = () => this.inner.close();
  async read(keys: readonly string[]): Promise<(StoredEntry | null)[]> {
    const answer = await this.inner.read(keys);
    this.fetched++;
    if (this.holding) await new Promise<void>((resolve) => this.held.push(resolve));
    return answer;
  }
  release(): void {
    this.holding = false;
    for (const resolve of this.held.splice(0)) resolve();
  }
}
