// Coalesces the misses of every request in flight into one store read per event-loop turn.
//
// DataLoader batches within one request; this batches across requests. Keys asked for during a turn are
// queued and fetched together when the turn ends (split into chunks of at most `maxBatch`). A key already
// queued or already being fetched is not fetched again (single flight) — except by a fresh read, which may
// join a queued fetch (not yet sent, so it will see every write committed before it) but never one already
// sent, which could predate the caller's own write.

/** Runs `task` once the current turn's work is done. Injected so tests decide when a turn ends. */
export type Scheduler = (task: () => void) => void;

const endOfTurn: Scheduler = (task) => setImmediate(task);

export interface BatcherHooks<Fetched, Answer> {
  /** Reads a chunk of keys in one round trip, answering in key order. */
  fetch(keys: string[]): Promise<Fetched[]>;
  /** A key joined the queue: called once per fetch of it, before the fetch is sent. */
  queued(key: string): void;
  /** Turns one fetched item into the answer every caller waiting for that key receives. */
  settle(key: string, fetched: Fetched): Answer;
  /** The fetch for `key` failed; its callers are rejected with the error. */
  failed(key: string, error: unknown): void;
}

export interface BatcherOptions {
  /** Most keys in one fetch; larger turns are split into several fetches sent together. */
  maxBatch: number;
  schedule?: Scheduler;
}

interface Waiting<Answer> {
  readonly promise: Promise<Answer>;
  resolve(answer: Answer): void;
  reject(error: unknown): void;
}

export class Batcher<Fetched, Answer> {
  private queue = new Map<string, Waiting<Answer>>();
  private readonly sent = new Map<string, Promise<Answer>>();
  private flushScheduled = false;
  private readonly schedule: Scheduler;

  constructor(
    private readonly hooks: BatcherHooks<Fetched, Answer>,
    private readonly options: BatcherOptions,
  ) {
    if (!(options.maxBatch >= 1)) throw new RangeError('maxBatch must be at least 1');
    this.schedule = options.schedule ?? endOfTurn;
  }

  load(key: string, fresh = false): Promise<Answer> {
    const joined = this.queue.get(key)?.promise ?? (fresh ? undefined : this.sent.get(key));
    if (joined) return joined;
    const waiting = deferred<Answer>();
    this.queue.set(key, waiting);
    this.hooks.queued(key);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      this.schedule(() => this.flush());
    }
    return waiting.promise;
  }

  private flush(): void {
    this.flushScheduled = false;
    const batch = [...this.queue];
    this.queue = new Map();
    for (let start = 0; start < batch.length; start += this.options.maxBatch) {
      void this.send(batch.slice(start, start + this.options.maxBatch));
    }
  }

  private async send(chunk: [string, Waiting<Answer>][]): Promise<void> {
    for (const [key, waiting] of chunk) this.sent.set(key, waiting.promise);
    let fetched: Fetched[];
    try {
      fetched = await this.hooks.fetch(chunk.map(([key]) => key));
      if (fetched.length !== chunk.length) {
        throw new Error(`store answered ${fetched.length} items for ${chunk.length} keys`);
      }
    } catch (error) {
      for (const [key, waiting] of chunk) {
        this.forget(key, waiting);
        this.hooks.failed(key, error);
        waiting.reject(error);
      }
      return;
    }
    chunk.forEach(([key, waiting], i) => {
      this.forget(key, waiting);
      try {
        // fetched has one item per key of the chunk (checked above).
        waiting.resolve(this.hooks.settle(key, fetched[i] as Fetched));
      } catch (error) {
        waiting.reject(error);
      }
    });
  }

  private forget(key: string, waiting: Waiting<Answer>): void {
    // A fresh read may have sent a newer fetch of the same key meanwhile: leave that one in place.
    if (this.sent.get(key) === waiting.promise) this.sent.delete(key);
  }
}

function deferred<T>(): Waiting<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // Rejections are delivered to every caller; this keeps a fetch nobody awaits any more from crashing the process.
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}
