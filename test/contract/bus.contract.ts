// The ChangeBus contract, run against every adapter: broadcast to every subscriber, per-key order, the sync
// barrier, exact round trips, and what close and late subscription mean — whichever bus carries the changes.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Change } from '../../src/domain/entry.js';
import type { ChangeBus, ChangeHandler, Subscription } from '../../src/ports.js';
import { captureLogs, messages } from '../support/logs.js';
import { uniqueName } from '../support/services.js';

export interface BusFixture {
  bus: ChangeBus;
  cleanup(): Promise<void>;
}

// Generous: a real broker on a busy CI machine; the barrier normally answers in milliseconds.
const SYNC_MS = 20_000;

/** Collects what a subscription was handed, in delivery order. */
export class Received {
  readonly changes: Change[] = [];
  readonly handler: ChangeHandler = (changes) => {
    this.changes.push(...changes);
  };
  /** Delivery order per key: what the bus promises to keep. */
  byKey(): Map<string, Change[]> {
    return groupByKey(this.changes);
  }
}

export function groupByKey(changes: readonly Change[]): Map<string, Change[]> {
  const groups = new Map<string, Change[]>();
  for (const change of changes) groups.set(change.key, [...(groups.get(change.key) ?? []), change]);
  return groups;
}

/** `count` sets spread round-robin over `keys` keys, versions increasing per key. */
export function manyChanges(count: number, keys: number, label = 'k'): Change[] {
  return Array.from({ length: count }, (_, i) => ({
    op: 'set',
    key: `${label}${i % keys}`,
    version: BigInt(i + 1),
    value: `v${i}`,
    expiresAt: null,
  }));
}

export function describeBusContract(name: string, create: () => Promise<BusFixture>): void {
  describe(`ChangeBus contract: ${name}`, () => {
    let fixture: BusFixture;
    let bus: ChangeBus;
    beforeEach(async () => {
      fixture = await create();
      bus = fixture.bus;
    });
    afterEach(async () => {
      await fixture.cleanup();
    });

    async function subscribe(label: string): Promise<{ received: Received; subscription: Subscription }> {
      const received = new Received();
      const subscription = await bus.subscribe(uniqueName(label), received.handler);
      return { received, subscription };
    }

    it('hands every change to every subscriber, keeping each key in publish order', async () => {
      const [a, b] = await Promise.all([subscribe('a'), subscribe('b')]);
      const changes = manyChanges(100, 17);
      for (let i = 0; i < changes.length; i += 10) await bus.publish(changes.slice(i, i + 10));
      await Promise.all([a.subscription.sync(SYNC_MS), b.subscription.sync(SYNC_MS)]);
      for (const { received } of [a, b]) {
        expect(received.changes).toHaveLength(changes.length);
        expect(received.byKey()).toEqual(groupByKey(changes));
      }
    });

    it('keeps per-key order within one publish and across publishes', async () => {
      const { received, subscription } = await subscribe('order');
      const changes = manyChanges(60, 3);
      await bus.publish(changes.slice(0, 45));
      await bus.publish(changes.slice(45));
      await subscription.sync(SYNC_MS);
      expect(received.byKey()).toEqual(groupByKey(changes));
    });

    it('sync resolves only after every earlier publish reached the handler and the call settled', async () => {
      const settled: Change[] = [];
      const subscription = await bus.subscribe(uniqueName('barrier'), async (changes) => {
        await new Promise((resolve) => setImmediate(resolve));
        settled.push(...changes);
      });
      await subscription.sync(SYNC_MS);
      const changes = manyChanges(50, 7);
      for (const change of changes) await bus.publish([change]);
      await subscription.sync(SYNC_MS);
      expect(settled).toHaveLength(changes.length);
    });

    it('calls a handler once at a time', async () => {
      let running = 0;
      let most = 0;
      const subscription = await bus.subscribe(uniqueName('serial'), async () => {
        running += 1;
        most = Math.max(most, running);
        await new Promise((resolve) => setImmediate(resolve));
        running -= 1;
      });
      await Promise.all(manyChanges(40, 11).map((change) => bus.publish([change])));
      await subscription.sync(SYNC_MS);
      expect(most).toBe(1);
    });

    it('round-trips every kind of change exactly', async () => {
      const { received, subscription } = await subscribe('exact');
      const changes: Change[] = [
        { op: 'set', key: 'big', version: 9007199254740993n, value: 'x', expiresAt: null },
        { op: 'set', key: 'huge', version: 123456789012345678901234567890n, value: 'y', expiresAt: null },
        {
          op: 'set',
          key: 'ключ 🔑',
          version: 2n,
          value: 'zażółć 🎉 "q" \\ \n\t\u0000',
          expiresAt: 1_893_456_000_123,
        },
        { op: 'set', key: '', version: 3n, value: '', expiresAt: 0 },
        { op: 'set', key: 'json', version: 4n, value: '{"op":"sync","round":1}', expiresAt: null },
        { op: 'delete', key: 'gone', version: 9007199254740995n },
        { op: 'invalidate', key: 'large', version: 5n, expiresAt: null },
        { op: 'invalidate', key: 'large-ttl', version: 6n, expiresAt: 1_893_456_000_000 },
      ];
      await bus.publish(changes);
      await subscription.sync(SYNC_MS);
      // Distinct keys may arrive in any order across partitions; each change must arrive as it was sent.
      const byKey = (x: Change, y: Change): number => x.key.localeCompare(y.key);
      expect([...received.changes].sort(byKey)).toStrictEqual([...changes].sort(byKey));
    });

    it('goes on delivering after a handler throws', async () => {
      const received = new Received();
      let calls = 0;
      const logs = captureLogs();
      const subscription = await bus.subscribe(uniqueName('throws'), (changes) => {
        calls += 1;
        if (calls === 1) throw new Error('handler failure the bus must survive (expected in this test)');
        return received.handler(changes);
      });
      const [first, second] = manyChanges(2, 2);
      await bus.publish([first as Change]);
      await subscription.sync(SYNC_MS);
      await bus.publish([second as Change]);
      await subscription.sync(SYNC_MS);
      logs.restore();
      expect(calls).toBe(2);
      expect(received.changes).toEqual([second]);
      expect(messages(logs.lines, 'error')).toEqual(['change handler failed; delivery goes on']);
    });

    it('delivers nothing to a closed subscription, and its sync fails', async () => {
      const [closing, staying] = await Promise.all([subscribe('closing'), subscribe('staying')]);
      const [before, after] = manyChanges(2, 1);
      await bus.publish([before as Change]);
      await Promise.all([closing.subscription.sync(SYNC_MS), staying.subscription.sync(SYNC_MS)]);
      await closing.subscription.close();
      await bus.publish([after as Change]);
      await staying.subscription.sync(SYNC_MS);
      expect(staying.received.changes).toEqual([before, after]);
      expect(closing.received.changes).toEqual([before]);
      await expect(closing.subscription.sync(SYNC_MS)).rejects.toThrow(/closed/);
      await closing.subscription.close();
    });

    it('starts a new subscription at the latest change, not the oldest', async () => {
      const early = await subscribe('early');
      const [old, fresh] = manyChanges(2, 1);
      await bus.publish([old as Change]);
      await early.subscription.sync(SYNC_MS);
      const late = await subscribe('late');
      await bus.publish([fresh as Change]);
      await Promise.all([early.subscription.sync(SYNC_MS), late.subscription.sync(SYNC_MS)]);
      expect(early.received.changes).toEqual([old, fresh]);
      expect(late.received.changes).toEqual([fresh]);
    });

    it('refuses a second open subscription under the same id, and allows it again after close', async () => {
      const id = uniqueName('twice');
      const first = await bus.subscribe(id, () => {});
      await expect(bus.subscribe(id, () => {})).rejects.toThrow(/already subscribed/);
      await first.close();
      const received = new Received();
      const second = await bus.subscribe(id, received.handler);
      const changes = manyChanges(3, 3);
      await bus.publish(changes);
      await second.sync(SYNC_MS);
      expect(received.changes).toHaveLength(3);
    });

    it('answers a sync with nothing published, and accepts an empty publish', async () => {
      const { received, subscription } = await subscribe('idle');
      await bus.publish([]);
      await subscription.sync(SYNC_MS);
      expect(received.changes).toEqual([]);
    });

    it('stops everything on close', async () => {
      const { received, subscription } = await subscribe('bus-close');
      await bus.close();
      await expect(bus.publish(manyChanges(1, 1))).rejects.toThrow(/closed/);
      await expect(bus.subscribe(uniqueName('after'), () => {})).rejects.toThrow(/closed/);
      await expect(subscription.sync(SYNC_MS)).rejects.toThrow(/closed/);
      expect(received.changes).toEqual([]);
    });
  });
}
