import { availableParallelism } from 'node:os';
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

  it('takes a Redis Cluster instead of one Redis, never both, and waits for replicas only on a cluster', () => {
    const kafka = { KAFKA_BROKERS: 'k:9092' };
    const c = loadConfig(['--redis-cluster-nodes=a:7000, b:7001', '--redis-min-replicas-ack=1'], kafka);
    expect(c).toMatchObject({
      redisUrl: null,
      redisClusterNodes: ['a:7000', 'b:7001'],
      redisMinReplicasAck: 1,
    });
    expect(c.introspection).toBe(false);
    expect(loadConfig([], {}).redisMinReplicasAck).toBe(0);
    expect(() =>
      loadConfig([], { ...kafka, REDIS_URL: 'redis://x:6379', REDIS_CLUSTER_NODES: 'a:7000' }),
    ).toThrow(/REDIS_URL and REDIS_CLUSTER_NODES are both set/);
    expect(() => loadConfig([], { REDIS_CLUSTER_NODES: 'a:7000' })).toThrow(
      /REDIS_CLUSTER_NODES is set without KAFKA_BROKERS/,
    );
    expect(() => loadConfig([], { ...kafka, REDIS_CLUSTER_NODES: 'a' })).toThrow(
      /REDIS_CLUSTER_NODES="a": "a" is not host:port/,
    );
    expect(() =>
      loadConfig([], { ...kafka, REDIS_URL: 'redis://x:6379', REDIS_MIN_REPLICAS_ACK: '1' }),
    ).toThrow(/REDIS_MIN_REPLICAS_ACK=1 needs REDIS_CLUSTER_NODES/);
  });

  it('refuses a feed sync interval that could never prove the feed current', () => {
    expect(() => loadConfig(['--feed-sync-interval-ms=5000', '--feed-max-lag-ms=1000'], {})).toThrow(
      /FEED_SYNC_INTERVAL_MS/,
    );
  });

  it('asks two in-sync replicas of a topic of 3 or more, one below, and never more than the replicas', () => {
    expect(loadConfig([], {}).kafkaMinInsyncReplicas).toBe(1);
    expect(loadConfig(['--kafka-replication-factor=2'], {}).kafkaMinInsyncReplicas).toBe(1);
    expect(loadConfig([], { KAFKA_REPLICATION_FACTOR: '3' }).kafkaMinInsyncReplicas).toBe(2);
    expect(loadConfig([], { KAFKA_REPLICATION_FACTOR: '5' }).kafkaMinInsyncReplicas).toBe(2);
    expect(
      loadConfig(['--kafka-min-insync-replicas=3'], { KAFKA_REPLICATION_FACTOR: '3' }).kafkaMinInsyncReplicas,
    ).toBe(3);
    expect(() => loadConfig(['--kafka-min-insync-replicas=2'], {})).toThrow(
      /KAFKA_MIN_INSYNC_REPLICAS=2 is above KAFKA_REPLICATION_FACTOR=1/,
    );
    expect(() => loadConfig(['--kafka-min-insync-replicas=0'], {})).toThrow(/--kafka-min-insync-replicas/);
  });

  it('refuses stray arguments and flags without a value', () => {
    expect(() => loadConfig(['reader'], {})).toThrow(ConfigError);
    expect(() => loadConfig(['--port'], {})).toThrow(/needs a value/);
  });

  it('never shows a token in a message, and takes tokens only where a bearer header can carry them', () => {
    let message = '';
    try {
      loadConfig(['--write-tokens=s3cret-but-has space!'], { READ_TOKENS: 'short' });
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toContain('--write-tokens=<redacted>');
    expect(message).toContain('READ_TOKENS=<redacted>');
    expect(message).not.toContain('s3cret');
    expect(message).not.toContain('short');
    const c = loadConfig([], { WRITE_TOKENS: ' aaaaaaaaaaaaaaaa , bbbbbbbbbbbbbbbb== ' });
    expect(c.writeTokens).toEqual(['aaaaaaaaaaaaaaaa', 'bbbbbbbbbbbbbbbb==']);
  });

  it('refuses a writer reachable off loopback without write tokens, unless told to allow it', () => {
    for (const host of ['0.0.0.0', '::', '10.1.2.3', 'example.com']) {
      expect(() => loadConfig([`--host=${host}`], {}), host).toThrow(
        /WRITE_TOKENS.*--allow-anonymous-writes/s,
      );
      expect(() => loadConfig([`--host=${host}`, '--mode=writer'], {})).toThrow(ConfigError);
    }
    for (const host of ['127.0.0.1', '127.8.0.1', '::1', 'localhost'])
      expect(() => loadConfig([`--host=${host}`], {}), host).not.toThrow();
    expect(
      loadConfig(['--host=0.0.0.0', '--mode=reader'], {
        REDIS_URL: 'redis://r:6379',
        KAFKA_BROKERS: 'k:9092',
      }).mode,
    ).toBe('reader');
    expect(loadConfig(['--host=0.0.0.0', '--allow-anonymous-writes'], {}).allowAnonymousWrites).toBe(true);
    expect(loadConfig(['--host=0.0.0.0'], { ALLOW_ANONYMOUS_WRITES: 'true' }).allowAnonymousWrites).toBe(
      true,
    );
    expect(loadConfig(['--host=0.0.0.0'], { WRITE_TOKENS: 'x'.repeat(16) }).host).toBe('0.0.0.0');
  });

  it('answers introspection by default only in the embedded default, and parses CORS origins', () => {
    expect(loadConfig([], {}).introspection).toBe(true);
    const real = { REDIS_URL: 'redis://r:6379', KAFKA_BROKERS: 'k:9092' };
    expect(loadConfig([], real).introspection).toBe(false);
    expect(loadConfig(['--introspection'], real).introspection).toBe(true);
    expect(loadConfig(['--introspection=false'], {}).introspection).toBe(false);
    expect(loadConfig([], { CORS_ORIGINS: 'https://a.example, http://localhost:3000' }).corsOrigins).toEqual([
      'https://a.example',
      'http://localhost:3000',
    ]);
    expect(() => loadConfig([], { CORS_ORIGINS: 'https://a.example/path' })).toThrow(/CORS_ORIGINS/);
  });

  it('takes --workers as a count or auto (one per core), for readers only', () => {
    const services = { REDIS_URL: 'redis://127.0.0.1:6379', KAFKA_BROKERS: 'a:9092' };
    expect(loadConfig(['--mode=reader', '--workers=3'], services).workers).toBe(3);
    expect(loadConfig(['--mode=reader', '--workers=auto'], services).workers).toBe(availableParallelism());
    expect(loadConfig([], {}).workers).toBe(1);
    expect(() => loadConfig(['--workers=2'], services)).toThrow(/WORKERS=2 needs --mode=reader/);
    expect(() => loadConfig(['--mode=reader', '--workers=0'], services)).toThrow(/--workers/);
  });
});
