// Logs are pino's JSON lines on stderr with the fields operators already parse (time, level, msg, the
// logger's bindings, the context, errors with message and stack); LOG_LEVEL leaves out what is less severe.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createLogger, Metrics, setLogLevel } from '../../src/observability.js';
import { captureLogs } from '../support/logs.js';

afterEach(() => {
  vi.restoreAllMocks();
  setLogLevel('info');
});

describe('logging', () => {
  it('writes one JSON line per event with time, level, msg, bindings, context and errors', () => {
    const { lines } = captureLogs();
    const cause = new Error('socket closed');
    createLogger({ component: 'test' })
      .child({ instance: 'r1' })
      .warn('something failed', { attempt: 2, error: new Error('outer', { cause }) });
    expect(lines).toHaveLength(1);
    const line = lines[0]!;
    expect(line).toMatchObject({
      level: 'warn',
      msg: 'something failed',
      component: 'test',
      instance: 'r1',
      attempt: 2,
      error: { message: expect.stringContaining('outer'), stack: expect.stringContaining('Error: outer') },
    });
    expect(new Date(String(line.time)).toISOString()).toBe(line.time);
  });

  it('leaves out what is less severe than the level set', () => {
    const { lines } = captureLogs();
    const logger = createLogger();
    setLogLevel('warn');
    logger.info('not written');
    logger.debug('not written');
    logger.error('written');
    setLogLevel('debug');
    logger.debug('written too');
    expect(lines.map((l) => l.msg)).toEqual(['written', 'written too']);
  });
});

describe('counters', () => {
  // Bound series count locally and reach prom-client when read: each read must show every increment once.
  it('shows bound increments on every read, once, beside unbound ones', async () => {
    const metrics = new Metrics();
    const counter = metrics.counter('test_bound_total', 'test');
    const hot = counter.bind({ route: 'hot' });
    hot.inc();
    hot.inc(2);
    counter.inc({ route: 'cold' });
    expect(await counter.value({ route: 'hot' })).toBe(3);
    expect(await counter.value({ route: 'hot' })).toBe(3);
    hot.inc();
    counter.inc({ route: 'hot' }, 10);
    expect(await metrics.render()).toContain('test_bound_total{route="hot"} 14');
    expect(await metrics.render()).toContain('test_bound_total{route="hot"} 14');
    expect(await counter.value({ route: 'cold' })).toBe(1);
  });
});
