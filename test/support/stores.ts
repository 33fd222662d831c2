// Which Redis a test's tiercache processes run on — one server (REDIS_URL) or a Redis Cluster
// (REDIS_CLUSTER_NODES) — and the project's own Store adapter on the same one, so that a test reads what the
// processes wrote through the same key layout they use, whichever it is.
import {
  connectRedisCluster,
  RedisClusterStore,
  waitUntilReady,
} from '../../src/adapters/redis-cluster-store.js';
import { connectRedis, RedisStore } from '../../src/adapters/redis-store.js';

export type RedisTarget = { readonly redisUrl: string } | { readonly redisClusterNodes: string };

/** The environment that points tiercache at `target`. */
export function redisEnv(target: RedisTarget): Record<string, string> {
  return 'redisUrl' in target
    ? { REDIS_URL: target.redisUrl }
    : // Empty is unset: a REDIS_URL inherited from the services project's setup must not come along.
      { REDIS_CLUSTER_NODES: target.redisClusterNodes, REDIS_URL: '' };
}

export function onCluster(target: RedisTarget): target is { readonly redisClusterNodes: string } {
  return 'redisClusterNodes' in target;
}

/** The store tiercache uses for `target` and REDIS_KEY_PREFIX `prefix`, on a client of its own (close() quits it). */
export async function openStore(
  target: RedisTarget,
  prefix: string,
): Promise<RedisStore | RedisClusterStore> {
  if ('redisUrl' in target)
    return new RedisStore({ redis: connectRedis(target.redisUrl), prefix, ownsClient: true });
  const cluster = connectRedisCluster(target.redisClusterNodes.split(','));
  const store = new RedisClusterStore({ cluster, prefix, ownsClient: true });
  try {
    await waitUntilReady(cluster, 10_000);
  } catch (error) {
    await store.close();
    throw error;
  }
  return store;
}
