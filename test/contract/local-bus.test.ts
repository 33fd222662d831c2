// The in-process bus: the shared ChangeBus contract, then what only it promises — delivery never runs on the
// publisher's stack.
import { describe, expect, it } from 'vitest';
import { LocalBus } from '../../src/adapters/local-bus.js';
import { describeBusContract, manyChanges } from './bus.contract.js';

describeBusContract('LocalBus', async () => {
  const bus = new LocalBus();
  return { bus, cleanup: () => bus.close() };
});

describe('LocalBus', () => {
  it('hands changes over after publish returns, never inside it', async () => {
    const bus = new LocalBus();
    let delivered = 0;
    const subscription = await bus.subscribe('reader', (changes) => {
      delivered += changes.length;
    });
    const published = bus.publish(manyChanges(3, 3));
    expect(delivered).toBe(0);
    await published;
    await subscription.sync(1_000);
    expect(delivered).toBe(3);
    await bus.close();
  });

  it('times out a sync that a stuck handler holds up', async () => {
    const bus = new LocalBus();
    const subscription = await bus.subscribe('stuck', () => new Promise<void>(() => {}));
    await bus.publish(manyChanges(1, 1));
    await expect(subscription.sync(20)).rejects.toThrow(/timed out after 20 ms/);
  });
});
