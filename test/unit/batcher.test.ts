import { describe, expect, it } from 'vitest';
import { Batcher, type BatcherHooks } from '../../src/domain/batcher.js';

/** A batcher whose turns end only when the test says so, over a fetch the test answers by hand. */
function harness(maxBatch = 100) {
  const turns: (() => void)[] = [];
  const fetches: { keys: string[]; answer(values: string[]): void; fail(e: Error): void }[] = [];
  const events: string[] = [];
  const hooks: BatcherHooks<string, string> = {
    fetch: (keys) => new Promise((resolve, reject) => fetches.push({ keys, answer: resolve, fail: reject })),
    queued: (key) => events.push(`queued:${key}`),
    settle: (key, fetched) => (events.push(`settle:${key}`), `${key}=${fetched}`),
    failed: (key) => events.push(`failed:${key}`),
  };
  const batcher = new Batcher(hooks, { maxBatch, schedule: (task) => turns.push(task) });
  const endTurn = () => turns.splice(0).forEach((t) => t());
  return { batcher, fetches, events, endTurn, turns, hooks };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('Batcher', () => {
  it('coalesces every key asked for in one turn into one fetch, each key once', async () => {
    const { batcher, fetches, endTurn } = harness();
    const a = Promise.all([batcher.load('a'), batcher.load('b')]);
    const b = Promise.all([batcher.load('b'), batcher.load('c')]);
    expect(fetches).toHaveLength(0);
    endTurn();
    expect(fetches.map((f) => f.keys)).toEqual([['a', 'b', 'c']]);
    fetches[0]!.answer(['1', '2', '3']);
    expect(await a).toEqual(['a=1', 'b=2']);
    expect(await b).toEqual(['b=2', 'c=3']);
  });

  it('splits a large turn into chunks of maxBatch, sent together', () => {
    const { batcher, fetches, endTurn } = harness(2);
    for (const k of ['a', 'b', 'c', 'd', 'e']) void batcher.load(k);
    endTurn();
    expect(fetches.map((f) => f.keys)).toEqual([['a', 'b'], ['c', 'd'], ['e']]);
  });

  it('single flight: a key already being fetched joins that fetch', async () => {
    const { batcher, fetches, endTurn } = harness();
    const first = batcher.load('k');
    endTurn();
    const second = batcher.load('k');
    endTurn();
    expect(fetches).toHaveLength(1);
    fetches[0]!.answer(['v']);
    expect(await Promise.all([first, second])).toEqual(['k=v', 'k=v']);
  });

  it('a fresh read never joins a fetch already sent, but does join one still queued', async () => {
    const { batcher, fetches, endTurn } = harness();
    const old = batcher.load('k');
    endTurn();
    const fresh = batcher.load('k', true);
    const freshToo = batcher.load('k', true);
    const plain = batcher.load('k');
    endTurn();
    expect(fetches.map((f) => f.keys)).toEqual([['k'], ['k']]);
    fetches[1]!.answer(['new']);
    fetches[0]!.answer(['old']);
    expect(await old).toBe('k=old');
    expect(await Promise.all([fresh, freshToo, plain])).toEqual(['k=new', 'k=new', 'k=new']);
  });

  it('calls queued before the fetch is sent and settle once per fetched key', async () => {
    const { batcher, fetches, events, endTurn } = harness();
    void batcher.load('a');
    void batcher.load('a');
    expect(events).toEqual(['queued:a']);
    endTurn();
    fetches[0]!.answer(['1']);
    await tick();
    expect(events).toEqual(['queued:a', 'settle:a']);
  });

  it('a failed fetch rejects its callers, reports each key, and does not poison later loads', async () => {
    const { batcher, fetches, events, endTurn } = harness();
    const p = batcher.load('a');
    endTurn();
    fetches[0]!.fail(new Error('store down'));
    await expect(p).rejects.toThrow('store down');
    expect(events).toContain('failed:a');
    const again = batcher.load('a');
    endTurn();
    fetches[1]!.answer(['back']);
    expect(await again).toBe('a=back');
  });

  it('rejects when the store answers the wrong number of items', async () => {
    const { batcher, fetches, endTurn } = harness();
    const p = batcher.load('a');
    endTurn();
    fetches[0]!.answer([]);
    await expect(p).rejects.toThrow(/answered 0 items for 1 keys/);
  });

  it('refuses a maxBatch below 1 (or not a number) and accepts 1', () => {
    const { hooks } = harness();
    for (const maxBatch of [0, -1, NaN]) {
      expect(() => new Batcher(hooks, { maxBatch })).toThrow(new RangeError('maxBatch must be at least 1'));
    }
    expect(() => new Batcher(hooks, { maxBatch: 1 })).not.toThrow();
  });

  it('schedules one flush per turn, however many keys join it', () => {
    const { batcher, turns, endTurn } = harness();
    for (const k of ['a', 'b', 'c']) void batcher.load(k);
    expect(turns).toHaveLength(1);
    endTurn();
    void batcher.load('d');
    expect(turns).toHaveLength(1);
  });

  it('splits a turn of exactly n × maxBatch keys into n fetches, no empty one', () => {
    const { batcher, fetches, endTurn } = harness(2);
    for (const k of ['a', 'b', 'c', 'd']) void batcher.load(k);
    endTurn();
    expect(fetches.map((f) => f.keys)).toEqual([
      ['a', 'b'],
      ['c', 'd'],
    ]);
  });

  it('forgets a settled fetch: a later load of the key fetches again (no stale single flight)', async () => {
    const { batcher, fetches, endTurn } = harness();
    const first = batcher.load('k');
    endTurn();
    fetches[0]!.answer(['old']);
    expect(await first).toBe('k=old');
    const later = batcher.load('k');
    endTurn();
    expect(fetches).toHaveLength(2);
    fetches[1]!.answer(['new']);
    expect(await later).toBe('k=new');
  });

  it('an older fetch settling leaves the newer fetch of a fresh read joinable', async () => {
    const { batcher, fetches, endTurn } = harness();
    const old = batcher.load('k');
    endTurn();
    const fresh = batcher.load('k', true);
    endTurn();
    fetches[0]!.answer(['old']);
    await old;
    // The fresh read's fetch is still in flight: a plain load joins it rather than fetching a third time.
    const plain = batcher.load('k');
    endTurn();
    expect(fetches).toHaveLength(2);
    fetches[1]!.answer(['new']);
    expect(await Promise.all([fresh, plain])).toEqual(['k=new', 'k=new']);
  });

  it('rejects the callers of a key whose settle throws, and answers the other keys', async () => {
    const { hooks } = harness();
    const fetches: ((values: string[]) => void)[] = [];
    const turns: (() => void)[] = [];
    const batcher = new Batcher<string, string>(
      {
        ...hooks,
        fetch: () => new Promise((resolve) => fetches.push(resolve)),
        settle: (key, fetched) => {
          if (key === 'bad') throw new Error('settle failed');
          return `${key}=${fetched}`;
        },
      },
      { maxBatch: 10, schedule: (task) => turns.push(task) },
    );
    const bad = batcher.load('bad');
    const good = batcher.load('good');
    turns.splice(0).forEach((t) => t());
    fetches[0]!(['1', '2']);
    await expect(bad).rejects.toThrow('settle failed');
    expect(await good).toBe('good=2');
  });

  it('a failed fetch nobody awaits is no unhandled rejection', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      const { batcher, fetches, endTurn } = harness();
      void batcher.load('a');
      endTurn();
      fetches[0]!.fail(new Error('store down'));
      // Node reports unhandled rejections once the microtask queue has drained.
      await new Promise((r) => setTimeout(r, 0));
      await tick();
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });
});
