import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';

describe('loadConfig', () => {
  it('gives the documented defaults with nothing set', () => {
    const c = loadConfig([], {});
    expect(c).toMatchObject({
      mode: 'all',
      host: '127.0.0.1',
      port: 4000,
      redisUrl: null,
      kafkaBrokers: null,
    });
    expect(c.kafkaTopic).toBe('tiercache.changes');
    expect(c.maxReadKeys).toBe(1000);
    expect(c.maxValueBytes).toBe(1024 * 1024);
    expect(c.instanceId).toMatch(/-4000$/);
  });

  it('takes flags over environment variables, in both flag forms', () => {
    const c = loadConfig(['--mode=reader', '--port', '4100', '--memory-max-entries=10'], {
      TIERCACHE_MODE: 'writer',
      PORT: '1',
      REDIS_URL: 'redis://127.0.0.1:6379',
      KAFKA_BROKERS: 'a:9092, b:9093',
    });
    expect(c).toMatchObject({ mode: 'reader', port: 4100, memoryMaxEntries: 10 });
    expect(c.kafkaBrokers).toEqual(['a:9092', 'b:9093']);
  });

  it('names every bad setting in one error', () => {
    let message = '';
    try {
      loadConfig(['--port=99999', '--nope=1'], {
        TIERCACHE_MODE: 'both',
        KAFKA_BROKERS: 'nohost',
        REDIS_URL: 'http://x',
      });
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      message = (error as Error).message;
    }
    expect(message).toContain('--port="99999"');
    expect(message).toContain('TIERCACHE_MODE="both": must be one of reader, writer, all');
    expect(message).toContain('KAFKA_BROKERS');
    expect(message).toContain('REDIS_URL');
    expect(message).toContain('--nope: unknown flag');
  });

  it('refuses a feed sync interval that could never prove the feed current', () => {
    expect(() => loadConfig(['--feed-sync-interval-ms=5000', '--feed-max-lag-ms=1000'], {})).toThrow(
      /FEED_SYNC_INTERVAL_MS/,
    );
  });

  it('refuses stray arguments and flags without a value', () => {
    expect(() => loadConfig(['reader'], {})).toThrow(ConfigError);
    expect(() => loadConfig(['--port'], {})).toThrow(/needs a value/);
  });
});
