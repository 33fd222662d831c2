// Logs are pino's JSON lines on stderr with the fields operators already parse (time, level, msg, the
// logger's bindings, the context, errors with message and stack); LOG_LEVEL leaves out what is less severe.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createLogger, setLogLevel } from '../../src/observability.js';
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
