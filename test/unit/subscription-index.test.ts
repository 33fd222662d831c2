// The subscription index finds watchers by key and prefix without looking at others; each subscriber's
// queue passes every version at most once, in order per key, coalesces while full and says when it is behind.
import { afterEach, describe, expect, it, vi } from 'vitest';
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

  it('matches a prefix as long as the key itself, and never one longer', () => {
    const index = new SubscriptionIndex<string>();
    index.add('exact', { keys: [], prefix: 'user' });
    index.add('longer', { keys: [], prefix: 'users' });
    expect([...index.matching('user')]).toEqual(['exact']);
    expect(index.watches('user')).toBe(true);
    expect(index.watches('use')).toBe(false);
    expect([...index.matching('use')]).toEqual([]);
  });

  it('keeps matching a prefix while another subscription or another prefix of its length remains', () => {
    const index = new SubscriptionIndex<string>();
    index.add('a', { keys: [], prefix: 'pa' });
    index.add('b', { keys: [], prefix: 'pb' });
    index.add('c', { keys: [], prefix: 'pb' });
    index.remove('a', { keys: [], prefix: 'pa' });
    expect([...index.matching('pb1')].sort()).toEqual(['b', 'c']);
    index.remove('b', { keys: [], prefix: 'pb' });
    expect([...index.matching('pb1')]).toEqual(['c']);
    expect(index.watches('pb1')).toBe(true);
    expect(index.watches('pa1')).toBe(false);
    // Removing what was never added changes nothing.
    index.remove('z', { keys: ['pb1'], prefix: 'pb' });
    expect([...index.matching('pb1')]).toEqual(['c']);
    expect(index.entries).toBe(1);
  });

  describe('looks a key up once per prefix length in use, and forgets a length no prefix has', () => {
    afterEach(() => vi.restoreAllMocks());
    /** How many prefixes of `key` one matching() and one watches() look up. */
    const lookups = (index: SubscriptionIndex<string>, key: string): number[] => {
      const slice = vi.spyOn(String.prototype, 'slice');
      index.matching(key);
      const matching = slice.mock.calls.length;
      slice.mockClear();
      index.watches(key);
      const watches = slice.mock.calls.length;
      slice.mockRestore();
      return [matching, watches];
    };

    it('counts each length once, however many prefixes and subscriptions share it', () => {
      const index = new SubscriptionIndex<string>();
      const watches = [
        ['s1', 'ab'],
        ['s2', 'ab'],
        ['s3', 'xy'],
        ['s4', 'abc'],
      ] as const;
      for (const [sub, prefix] of watches) index.add(sub, { keys: [], prefix });
      // Two lengths in use (2 and 3); watches() stops at the first match, "ab" at length 2.
      expect(lookups(index, 'abcd')).toEqual([2, 1]);
      expect(lookups(index, 'zz')).toEqual([1, 1]); // length 3 is longer than the key: not looked up
      for (const [sub, prefix] of watches.slice(0, 3)) index.remove(sub, { keys: [], prefix });
      // Length 2 has no prefix left: only length 3 is looked up.
      expect(lookups(index, 'abcd')).toEqual([1, 1]);
      index.remove('s4', { keys: [], prefix: 'abc' });
      expect(lookups(index, 'abcd')).toEqual([0, 0]);
      // Added again after being forgotten, a length counts again.
      index.add('s5', { keys: [], prefix: 'q' });
      expect(lookups(index, 'abcd')).toEqual([1, 1]);
    });
  });

  it('counts a subscription added twice for the same key or prefix once', () => {
    const index = new SubscriptionIndex<string>();
    const watch = { keys: ['k'], prefix: 'p' };
    index.add('a', watch);
    index.add('a', watch);
    expect(index.entries).toBe(2);
    index.remove('a', watch);
    expect(index.entries).toBe(0);
  });

  it('looks at a change’s key and prefixes only, not at subscriptions of other keys', () => {
    const index = new SubscriptionIndex<number>();
    for (let i = 0; i < 10_000; i++) index.add(i, { keys: [`k${i}`], prefix: null });
    // A Set of 10,000 would be built if matching scanned subscriptions; only the one watcher comes back.
    expect([...index.matching('k42')]).toEqual([42]);
  });
});

describe('EventQueue', () => {
  const limits = { capacity: 3, maxFullMs: 1000, rememberedKeys: 100 };

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
    // The EXPIRE of an older version is stale while the newer one is not expired either.
    q.offer(event('b', 5n), 0);
    expect(q.offer(event('b', 4n, 'EXPIRE'), 0)).toBe('stale');
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
    // The coalesced version passed the gate: the same one again is a replay.
    expect(q.offer(event('a', 3n), 10)).toBe('stale');
    expect(q.offer(event('b', 2n), 10)).toBe('coalesced');
    expect(q.length).toBe(3);
    expect(drain(q)).toEqual(['a@1:SET', 'b@2:SET', 'a@3:SET']);
  });

  it('takes a burst of new keys past its capacity, up to twice it, and is behind when more comes unread', () => {
    const q = new EventQueue(limits);
    // One feed batch can bring more keys than the buffer holds: a client that reads promptly takes them.
    for (const key of ['a', 'b', 'c', 'd', 'e', 'f']) expect(q.offer(event(key, 1n), 0)).toBe('queued');
    expect(q.offer(event('a', 2n), 0)).toBe('coalesced');
    expect(q.offer(event('g', 1n), 0)).toBe('behind');
    expect(q.length).toBe(6);
    expect(drain(q)).toEqual(['a@2:SET', 'b@1:SET', 'c@1:SET', 'd@1:SET', 'e@1:SET', 'f@1:SET']);
  });

  it('is behind when it stays full for longer than the limit, however little comes', () => {
    const q = new EventQueue(limits);
    q.offer(event('a', 1n), 0);
    q.offer(event('b', 1n), 0);
    q.offer(event('c', 1n), 0);
    expect(q.offer(event('a', 2n), 500)).toBe('coalesced');
    expect(q.offer(event('a', 3n), 1001)).toBe('behind');
    // Taking one makes room: the clock of "full" starts again.
    q.take();
    expect(q.offer(event('d', 1n), 5000)).toBe('queued');
    expect(q.offer(event('b', 2n), 5500)).toBe('coalesced');
    expect(q.offer(event('e', 1n), 5900)).toBe('queued');
    expect(q.offer(event('f', 1n), 6001)).toBe('behind');
  });

  it('keeps the clock of "full" running through a take that leaves it still full', () => {
    const q = new EventQueue(limits);
    // Past its capacity of 3 (a burst): full since 0.
    for (const key of ['a', 'b', 'c', 'd', 'e']) q.offer(event(key, 1n), 0);
    q.take();
    expect(q.length).toBe(4);
    expect(q.offer(event('e', 2n), 1001)).toBe('behind');
    // Taken down to exactly its capacity, it is still full: the clock still runs.
    const r = new EventQueue(limits);
    for (const key of ['a', 'b', 'c', 'd']) r.offer(event(key, 1n), 0);
    r.take();
    expect(r.length).toBe(3);
    expect(r.offer(event('d', 2n), 1001)).toBe('behind');
  });

  it('passes the first event of a key at any version, 0 included, while it has forgotten none', () => {
    const q = new EventQueue(limits);
    expect(q.offer(event('a', 0n), 0)).toBe('queued');
  });

  it('drops the replay of a forgotten key at version 0', () => {
    const q = new EventQueue({ ...limits, rememberedKeys: 1 });
    q.offer(event('a', 0n), 0);
    q.offer(event('b', 1n), 0); // forgets a: floor 0
    expect(q.offer(event('a', 0n), 0)).toBe('stale');
  });

  it('is behind only once full for longer than maxFullMs, not at exactly maxFullMs', () => {
    const q = new EventQueue(limits);
    for (const key of ['a', 'b', 'c']) q.offer(event(key, 1n), 200);
    expect(q.offer(event('a', 2n), 200)).toBe('coalesced'); // full since 200
    expect(q.offer(event('a', 3n), 1200)).toBe('coalesced');
    expect(q.offer(event('a', 4n), 1201)).toBe('behind');
    // A behind answer leaves the queue as it was.
    expect(drain(q)).toEqual(['a@3:SET', 'b@1:SET', 'c@1:SET']);
  });

  it('keeps coalescing into a key’s later waiting event after an earlier one of it is taken', () => {
    const q = new EventQueue(limits);
    q.offer(event('a', 1n), 0);
    q.offer(event('b', 1n), 0);
    q.offer(event('a', 2n), 0);
    expect(q.take()?.version).toBe(1n);
    q.offer(event('c', 1n), 0);
    expect(q.offer(event('a', 3n), 0)).toBe('coalesced');
    expect(drain(q)).toEqual(['b@1:SET', 'a@3:SET', 'c@1:SET']);
  });

  it('does not coalesce into the slot of an event already taken', () => {
    const q = new EventQueue({ ...limits, capacity: 2 });
    q.offer(event('a', 1n), 0);
    q.offer(event('b', 1n), 0);
    expect(q.take()?.key).toBe('a');
    q.offer(event('c', 1n), 0);
    // "a" no longer waits: while full, a change to it is a new key, not one to coalesce.
    expect(q.offer(event('a', 2n), 0)).not.toBe('coalesced');
    expect(drain(q).slice(0, 2)).toEqual(['b@1:SET', 'c@1:SET']);
  });

  it('empties on clear: nothing waits, and no later event coalesces into a cleared slot', () => {
    const q = new EventQueue({ ...limits, capacity: 2 });
    q.offer(event('a', 1n), 0);
    q.offer(event('b', 1n), 0);
    q.clear();
    expect(q.length).toBe(0);
    expect(q.take()).toBeUndefined();
    expect(q.offer(event('c', 1n), 0)).toBe('queued');
    expect(q.offer(event('d', 1n), 0)).toBe('queued');
    expect(q.offer(event('a', 2n), 0)).not.toBe('coalesced');
    expect(drain(q).slice(0, 2)).toEqual(['c@1:SET', 'd@1:SET']);
  });

  it('remembers the newest version passed per key, whether it was an EXPIRE, and every key seen', () => {
    const q = new EventQueue({ ...limits, capacity: 10 });
    q.offer(event('absent', null, 'DELETE'), 0);
    // A key reported absent has no version to remember; it is not "seen" with one either.
    expect(q.lastVersion('absent')).toBeUndefined();
    q.offer(event('a', 5n), 0);
    expect(q.lastVersion('a')).toEqual({ version: 5n, expired: false });
    q.offer(event('a', 5n, 'EXPIRE'), 0);
    expect(q.lastVersion('a')).toEqual({ version: 5n, expired: true });
    q.offer(event('a', 4n), 0); // stale: changes nothing
    expect(q.lastVersion('a')).toEqual({ version: 5n, expired: true });
    q.offer(event('b', 1n, 'DELETE'), 0);
    expect([...q.seenKeys()].sort()).toEqual(['a', 'b']);
    drain(q);
    // Taking events does not forget what passed.
    expect(q.lastVersion('b')).toEqual({ version: 1n, expired: false });
  });

  it('keeps its order across many takes (compaction)', () => {
    const q = new EventQueue({ capacity: 5000, maxFullMs: 1000, rememberedKeys: 100 });
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

  describe('compaction', () => {
    afterEach(() => vi.restoreAllMocks());

    it('drops the taken part of its array once 1,024 are taken and they are at least half of it', () => {
      // Half taken exactly: 2,048 offered, 1,024 taken.
      // Every key remembered: they all share version 1, which a bounded gate's floor would refuse.
      const q = new EventQueue({ ...limits, capacity: 4096, rememberedKeys: 10_000 });
      for (let i = 0; i < 2048; i++) q.offer(event(`k${i}`, 1n), 0);
      const slice = vi.spyOn(Array.prototype, 'slice');
      for (let i = 0; i < 1023; i++) q.take();
      expect(slice).not.toHaveBeenCalled();
      q.take();
      expect(slice).toHaveBeenCalledTimes(1);
      // Not again until 1,024 more are taken.
      for (let i = 0; i < 1023; i++) q.take();
      expect(slice).toHaveBeenCalledTimes(1);
      slice.mockRestore();
      // Under half taken: 1,024 taken of 3,000, no compaction.
      const r = new EventQueue({ ...limits, capacity: 4096, rememberedKeys: 10_000 });
      for (let i = 0; i < 3000; i++) r.offer(event(`k${i}`, 1n), 0);
      const later = vi.spyOn(Array.prototype, 'slice');
      for (let i = 0; i < 1024; i++) r.take();
      expect(later).not.toHaveBeenCalled();
    });
  });

  it('coalesces into the right slot after compaction', () => {
    // Every key at version 1: a gate that forgot some would take the later ones for replays.
    const q = new EventQueue({ ...limits, rememberedKeys: 10_000 });
    // Two events always waiting: the 1,024th take compacts the queue under them.
    for (let i = 1; i <= 1026; i++) {
      q.offer(event(`k${i}`, 1n), 0);
      if (i > 2) q.take();
    }
    expect(q.length).toBe(2);
    q.offer(event('z', 1n), 0);
    expect(q.offer(event('k1026', 2n), 0)).toBe('coalesced');
    expect(q.offer(event('k1025', 2n), 0)).toBe('coalesced');
    expect(drain(q)).toEqual(['k1025@2:SET', 'k1026@2:SET', 'z@1:SET']);
  });
});

describe('EventQueue memory', () => {
  it('remembers a bounded number of keys however many distinct keys pass, and still passes no replay', () => {
    const q = new EventQueue({ capacity: 10, maxFullMs: 1000, rememberedKeys: 100 });
    for (let i = 1; i <= 10_000; i++) {
      expect(q.offer(event(`k${i}`, BigInt(i)), 0)).toBe('queued');
      q.take();
    }
    expect(q.remembered).toBeLessThanOrEqual(100);
    expect([...q.seenKeys()].length).toBe(q.remembered);
    // Forgotten long ago, k1's version is still not sent again, nor an older one of any forgotten key.
    expect(q.offer(event('k1', 1n), 0)).toBe('stale');
    expect(q.offer(event('k5', 2n), 0)).toBe('stale');
    // A remembered key keeps its exact gate.
    expect(q.offer(event('k10000', 10_000n), 0)).toBe('stale');
    expect(q.offer(event('k10000', 10_001n), 0)).toBe('queued');
    // A forgotten key's newer version passes, and then only newer ones.
    expect(q.offer(event('k1', 20_000n), 0)).toBe('queued');
    expect(q.offer(event('k1', 20_000n), 0)).toBe('stale');
    // The expiry of a value sent long ago must not go missing: it passes for a forgotten key.
    expect(q.offer(event('k2', 2n, 'EXPIRE'), 0)).toBe('queued');
    // A snapshot's first answer for a key is sent whatever the forgotten versions.
    expect(q.offer({ ...event('k3', 3n), initial: true }, 0)).toBe('queued');
    expect(q.remembered).toBeLessThanOrEqual(100);
  });

  describe('forgetting keys (rememberedKeys)', () => {
    const small = { capacity: 100, maxFullMs: 1000, rememberedKeys: 2 };

    it('holds exactly rememberedKeys keys, and forgets the least recently passed first', () => {
      const q = new EventQueue(small);
      q.offer(event('a', 1n), 0);
      q.offer(event('b', 2n), 0);
      expect(q.remembered).toBe(2);
      q.offer(event('a', 3n), 0); // a passes again: b is now the least recent
      q.offer(event('c', 4n), 0);
      expect([...q.seenKeys()].sort()).toEqual(['a', 'c']);
      expect(q.lastVersion('a')?.version).toBe(3n);
      expect(q.lastVersion('b')).toBeUndefined();
    });

    it('never lowers its floor, and still lets an EXPIRE of a forgotten key through', () => {
      const q = new EventQueue({ ...small, rememberedKeys: 1 });
      q.offer(event('a', 10n), 0);
      q.offer(event('b', 5n), 0); // forgets a: floor 10
      q.offer(event('c', 20n), 0); // forgets b (5): the floor stays 10
      expect(q.offer(event('a', 7n), 0)).toBe('stale');
      expect(q.offer(event('a', 10n), 0)).toBe('stale');
      expect(q.offer(event('b', 10n, 'EXPIRE'), 0)).toBe('queued');
    });
  });

  it('starts the clock of "full" when the queue fills, not when its first event arrived', () => {
    const q = new EventQueue({ capacity: 2, maxFullMs: 100, rememberedKeys: 100 });
    q.offer(event('a', 1n), 0);
    q.offer(event('b', 1n), 500); // full from now
    expect(q.offer(event('b', 2n), 550)).toBe('coalesced');
    expect(q.offer(event('b', 3n), 601)).toBe('behind');
  });
});
