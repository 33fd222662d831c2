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
  return { batcher, fetches, events, endTurn };
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
});
