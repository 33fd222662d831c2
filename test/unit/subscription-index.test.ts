// The subscription index finds watchers by key and prefix without looking at others; each subscriber's
// queue passes every version at most once, in order per key, coalesces while full and says when it is behind.
import { describe, expect, it } from 'vitest';
import {
  EventQueue,
  SubscriptionIndex,
  type ValueEvent,
  type ValueEventOp,
} from '../../src/domain/subscription-index.js';

const event = (
  key: string,
  version: bigint | null,
  op: ValueEventOp = 'SET',
  value = `v${version}`,
): ValueEvent => ({
  key,
  value: op === 'SET' ? value : null,
  version,
  op,
  initial: false,
  expiresAt: null,
});

function drain(queue: EventQueue): string[] {
  const out: string[] = [];
  for (let e = queue.take(); e; e = queue.take()) out.push(`${e.key}@${e.version}:${e.op}`);
  return out;
}

describe('SubscriptionIndex', () => {
  it('matches by key and by every prefix, each subscription once', () => {
    const index = new SubscriptionIndex<string>();
    index.add('byKey', { keys: ['user:1', 'other'], prefix: null });
    index.add('byPrefix', { keys: [], prefix: 'user:' });
    index.add('shortPrefix', { keys: [], prefix: 'u' });
    index.add('both', { keys: ['user:1'], prefix: 'user' });
    expect([...index.matching('user:1')].sort()).toEqual(['both', 'byKey', 'byPrefix', 'shortPrefix']);
    expect([...index.matching('user:2')].sort()).toEqual(['both', 'byPrefix', 'shortPrefix']);
    expect([...index.matching('other')]).toEqual(['byKey']);
    expect([...index.matching('x')]).toEqual([]);
    expect(index.watches('us')).toBe(true);
    expect(index.watches('x')).toBe(false);
  });

  it('holds no entry once every subscription is removed', () => {
    const index = new SubscriptionIndex<string>();
    const a = { keys: ['k', 'k', 'j'], prefix: 'p' };
    const b = { keys: ['k'], prefix: 'p' };
    index.add('a', a);
    index.add('b', b);
    expect(index.entries).toBe(5);
    index.remove('a', a);
    expect([...index.matching('k')]).toEqual(['b']);
    expect([...index.matching('pz')]).toEqual(['b']);
    index.remove('b', b);
    expect(index.entries).toBe(0);
    expect(index.watches('k')).toBe(false);
    expect(index.watches('pz')).toBe(false);
  });

  it('looks at a change’s key and prefixes only, not at subscriptions of other keys', () => {
    const index = new SubscriptionIndex<number>();
    for (let i = 0; i < 10_000; i++) index.add(i, { keys: [`k${i}`], prefix: null });
    // A Set of 10,000 would be built if matching scanned subscriptions; only the one watcher comes back.
    expect([...index.matching('k42')]).toEqual([42]);
  });
});

describe('EventQueue', () => {
  const limits = { capacity: 3, maxFullMs: 1000 };

  it('passes each version of a key once, in increasing order', () => {
    const q = new EventQueue(limits);
    expect(q.offer(event('a', 2n), 0)).toBe('queued');
    expect(q.offer(event('a', 2n), 0)).toBe('stale'); // a replay
    expect(q.offer(event('a', 1n), 0)).toBe('stale'); // late, older
    expect(q.offer(event('a', 3n, 'DELETE'), 0)).toBe('queued');
    expect(drain(q)).toEqual(['a@2:SET', 'a@3:DELETE']);
    expect(q.offer(event('a', 3n), 0)).toBe('stale'); // after it was taken, too
  });

  it('lets the EXPIRE of the current version through once, and nothing older after it', () => {
    const q = new EventQueue(limits);
    q.offer(event('a', 5n), 0);
    expect(q.offer(event('a', 5n, 'EXPIRE'), 0)).toBe('queued');
    expect(q.offer(event('a', 5n, 'EXPIRE'), 0)).toBe('stale');
    expect(q.offer(event('a', 5n), 0)).toBe('stale');
    expect(q.offer(event('a', 4n, 'EXPIRE'), 0)).toBe('stale');
    expect(drain(q)).toEqual(['a@5:SET', 'a@5:EXPIRE']);
  });

  it('an absent key (no version) is reported once, and any version follows it', () => {
    const q = new EventQueue(limits);
    expect(q.offer(event('a', null, 'DELETE'), 0)).toBe('queued');
    expect(q.offer(event('a', 1n), 0)).toBe('queued');
    expect(q.offer(event('a', null, 'DELETE'), 0)).toBe('stale');
  });

  it('while full, coalesces a waiting key to its newest version and keeps its place', () => {
    const q = new EventQueue(limits);
    q.offer(event('a', 1n), 0);
    q.offer(event('b', 1n), 0);
    q.offer(event('a', 2n), 0);
    expect(q.offer(event('a', 3n), 10)).toBe('coalesced');
    expect(q.offer(event('b', 2n), 10)).toBe('coalesced');
    expect(q.length).toBe(3);
    expect(drain(q)).toEqual(['a@1:SET', 'b@2:SET', 'a@3:SET']);
  });

  it('is behind when full and a new key arrives, or when full for longer than the limit', () => {
    const q = new EventQueue(limits);
    q.offer(event('a', 1n), 0);
    q.offer(event('b', 1n), 0);
    q.offer(event('c', 1n), 0);
    expect(q.offer(event('d', 1n), 0)).toBe('behind');
    expect(q.offer(event('a', 2n), 500)).toBe('coalesced');
    expect(q.offer(event('a', 3n), 1001)).toBe('behind');
    // Taking one makes room: the clock of "full" starts again.
    q.take();
    expect(q.offer(event('d', 1n), 5000)).toBe('queued');
    expect(q.offer(event('b', 2n), 5500)).toBe('coalesced');
  });

  it('keeps its order across many takes (compaction)', () => {
    const q = new EventQueue({ capacity: 5000, maxFullMs: 1000 });
    const seen: string[] = [];
    for (let i = 1; i <= 4000; i++) {
      q.offer(event(`k${i % 7}`, BigInt(i)), 0);
      if (i % 3 === 0) seen.push(`${q.take()?.version}`);
    }
    for (let e = q.take(); e; e = q.take()) seen.push(`${e.version}`);
    expect(seen).toEqual(Array.from({ length: 4000 }, (_, i) => `${i + 1}`));
    // Coalescing still finds the right slot after compaction.
    q.offer(event('z', 1n), 0);
    expect(q.length).toBe(1);
  });
});
