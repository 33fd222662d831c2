// A relay with quick retries and short waits, for tests that need announcements to flow.
import type { ChangeBus, Outbox } from '../../src/ports.js';
import { Relay, type RelayOptions } from '../../src/writer/relay.js';

export function startRelay(outbox: Outbox, bus: ChangeBus, options: Partial<RelayOptions> = {}): Relay {
  const relay = new Relay(outbox, bus, {
    relayId: 'test-relay',
    maxEntries: 100,
    // close() waits for the claim in hand, up to blockMs: at 100 ms it was most of each unit test's time,
    // and of each mutant's run in mutation testing.
    blockMs: 10,
    reclaimAfterMs: 10_000,
    maxBatch: 100,
    maxBatchBytes: 1 << 20,
    retryDelayMs: 5,
    maxRetryDelayMs: 100,
    ...options,
  });
  relay.start();
  return relay;
}
