// kafkajs 2.2.4 schedules a timer with a negative delay on every connection, and Node 24+ prints a
// TimeoutNegativeWarning for it. The Kafka adapter silences exactly that warning from that place: kafkajs's
// request queue is driven here as a connection drives it, and a negative timer of our own must still warn. Node 20 and 22 never print the warning, so there is nothing to see there.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

const major = Number(process.versions.node.split('.')[0]);

const script = `
  await import('./src/adapters/kafka-bus.ts');
  const { createRequire } = await import('node:module');
  const RequestQueue = createRequire(import.meta.url)('kafkajs/src/network/requestQueue/index.js');
  const queue = new RequestQueue({ maxInFlightRequests: 1, requestTimeout: 1000, clientId: 't', broker: 'b',
    logger: { debug() {}, info() {}, warn() {}, error() {} }, instrumentationEmitter: { emit() {} } });
  queue.scheduleCheckPendingRequests();
  clearTimeout(queue.throttleCheckTimeoutId);
`;
// Node warns once per process, so each case runs in a process of its own.
const ownTimer = `
  await import('./src/adapters/kafka-bus.ts');
  clearTimeout(setTimeout(() => {}, -5));
`;

function warningsOf(code: string): string[] {
  const run = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
    encoding: 'utf8',
  });
  expect(run.status, run.stderr).toBe(0);
  return run.stderr.split('\n').filter((line) => line.includes('TimeoutNegativeWarning'));
}

describe.skipIf(major < 23)('the TimeoutNegativeWarning of kafkajs on Node 24+', () => {
  it('is silenced for kafkajs’s request queue', () => {
    expect(warningsOf(script)).toEqual([]);
  });

  it('would be printed without the adapter (so the test would see it)', () => {
    expect(warningsOf(script.replace("await import('./src/adapters/kafka-bus.ts');", ''))).toHaveLength(1);
  });

  it('is still printed for a negative timer anywhere else', () => {
    expect(warningsOf(ownTimer)).toEqual([
      expect.stringContaining('TimeoutNegativeWarning: -5 is a negative'),
    ]);
  });
});
