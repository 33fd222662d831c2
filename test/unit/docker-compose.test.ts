// docker-compose.yml is for users; no Docker engine runs here. Where `docker compose` exists it validates the
// file; everywhere, the tiercache services' commands and environments must pass the real config loader.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadConfig } from '../../src/config.js';

interface Service {
  image?: string;
  profiles?: string[];
  entrypoint?: string[];
  build?: string;
  command?: string[];
  depends_on?: Record<string, { condition: string }>;
  environment?: Record<string, string | number>;
  ports?: string[];
}

// As docker compose reads it with none of the variables set: `${NAME:-default}` becomes the default.
const compose = parse(readFileSync('docker-compose.yml', 'utf8').replace(/\$\{[A-Z_]+:-([^}]*)\}/g, '$1'), {
  merge: true,
}) as {
  services: Record<string, Service>;
};

/** tiercache's services (built from this repository): on the single nodes, or (profile cluster) on the clusters. */
function tiercache(on: 'single' | 'cluster'): [string, Service][] {
  return Object.entries(compose.services).filter(
    ([, s]) => s.build && (s.profiles?.includes('cluster') ?? false) === (on === 'cluster'),
  );
}

/** The service's configuration as the real loader reads its command and environment. */
function configOf(s: Service) {
  const env = Object.fromEntries(Object.entries(s.environment ?? {}).map(([k, v]) => [k, String(v)]));
  return loadConfig(s.command ?? [], env);
}

function composeAvailable(): boolean {
  try {
    execFileSync('docker', ['compose', 'version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('docker-compose.yml', () => {
  it.runIf(composeAvailable())('is valid for docker compose', () => {
    execFileSync('docker', ['compose', 'config', '--quiet'], { stdio: 'pipe' });
  });

  it('pins every image and runs one writer and two readers per profile, every process on its own port', () => {
    const services = compose.services;
    for (const [name, s] of Object.entries(services)) {
      if (s.image) expect(s.image, name).toMatch(/:\d+\.\d+\.\d+/);
    }
    for (const on of ['single', 'cluster'] as const) {
      const modes = tiercache(on)
        .map(([, s]) => configOf(s).mode)
        .sort();
      expect(modes, on).toEqual(['reader', 'reader', 'writer']);
    }
    // `--profile cluster up` runs both sets at once.
    const all = [...tiercache('single'), ...tiercache('cluster')];
    expect(new Set(all.map(([, s]) => configOf(s).port)).size).toBe(6);
    expect(new Set(all.flatMap(([, s]) => s.ports ?? [])).size).toBe(6);
  });

  it('gives each tiercache service a configuration the service accepts, on the real backends', () => {
    for (const [name, s] of tiercache('single')) {
      const config = configOf(s);
      expect(config.redisUrl, name).toBe('redis://redis:6379');
      expect(config.kafkaBrokers, name).toEqual(['kafka:9092']);
      expect(config.host, name).toBe('0.0.0.0');
    }
    for (const [name, s] of tiercache('cluster')) {
      const config = configOf(s);
      expect(config.redisUrl, name).toBeNull();
      expect(config.redisClusterNodes, name).toEqual([1, 2, 3, 4, 5, 6].map((n) => `redis-${n}:6379`));
      expect(config.kafkaBrokers, name).toEqual([1, 2, 3].map((n) => `kafka-${n}:9092`));
      expect(config.kafkaReplicationFactor, name).toBe(3);
      expect(config.host, name).toBe('0.0.0.0');
      expect(Object.keys(s.depends_on ?? {}).sort(), name).toEqual([
        'kafka-1',
        'kafka-2',
        'kafka-3',
        'redis-cluster-create',
      ]);
    }
  });

  it('has a cluster profile: a Redis Cluster of 3 masters + 3 replicas and a 3-node Kafka replicating 3, min ISR 2', () => {
    const cluster = Object.entries(compose.services).filter(([, s]) => s.profiles?.includes('cluster'));
    const redis = cluster.filter(([, s]) => s.command?.[0] === 'redis-server');
    expect(redis).toHaveLength(6);
    for (const [name, s] of redis) {
      expect(s.command?.join(' '), name).toMatch(/--cluster-enabled yes .*--appendonly yes/);
    }
    const create = compose.services['redis-cluster-create'];
    const script = create?.command?.join(' ') ?? '';
    expect(script).toContain('--cluster create');
    expect(script).toContain('--cluster-replicas 1');
    expect(script).toMatch(/for n in 1 2 3 4 5 6; do/);
    expect(redis.map(([name]) => name).sort()).toEqual([1, 2, 3, 4, 5, 6].map((n) => `redis-${n}`));

    const kafka = cluster.filter(([, s]) => s.image?.startsWith('apache/kafka:'));
    expect(kafka).toHaveLength(3);
    for (const [name, s] of kafka) {
      const env = s.environment ?? {};
      const id = Number(env.KAFKA_NODE_ID);
      expect(env.KAFKA_CONTROLLER_QUORUM_VOTERS, name).toBe('1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093');
      expect(env.KAFKA_CONTROLLER_QUORUM_VOTERS, name).toContain(`${id}@${name}:9093`);
      expect(env.KAFKA_ADVERTISED_LISTENERS, name).toBe(`PLAINTEXT://${name}:9092`);
      expect(env.CLUSTER_ID, name).toMatch(/^[A-Za-z0-9_-]{22}$/);
      expect(Number(env.KAFKA_DEFAULT_REPLICATION_FACTOR), name).toBe(3);
      expect(Number(env.KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR), name).toBe(3);
      expect(Number(env.KAFKA_MIN_INSYNC_REPLICAS), name).toBe(2);
    }
    expect(new Set(kafka.map(([, s]) => s.environment?.CLUSTER_ID)).size).toBe(1);
    expect(new Set(kafka.map(([, s]) => s.environment?.KAFKA_NODE_ID)).size).toBe(3);
  });

  it('sets tokens: listening on every interface, no service takes anonymous writes or reads', () => {
    for (const [name, s] of [...tiercache('single'), ...tiercache('cluster')]) {
      const config = configOf(s);
      expect(config.writeTokens.length, name).toBeGreaterThan(0);
      expect(config.readTokens.length, name).toBeGreaterThan(0);
      expect(config.allowAnonymousWrites, name).toBe(false);
    }
  });
});
