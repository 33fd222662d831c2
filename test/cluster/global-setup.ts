// Gives the cluster project its services once for all its files: the Redis Cluster and the 3-node Kafka of
// `services:up --cluster`, started unless already running and stopped afterwards only if this run started
// them. Nothing goes into process.env: the services project's setup, in this same process, puts its
// single-node addresses there (which is why tests point their processes at the cluster with redisEnv()).
import type { TestProject } from 'vitest/node';
import { clusterServicesUp, servicesDown } from '../../scripts/services/index.js';
import { stopOnSignals } from '../global-setup.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** host:port of every Redis Cluster node, comma-separated (REDIS_CLUSTER_NODES). */
    redisClusterNodes: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const cluster = await clusterServicesUp({ writeEnv: false });
  project.provide('kafkaBrokers', cluster.kafkaBrokers);
  project.provide('redisClusterNodes', cluster.redisClusterNodes);
  if (cluster.started) stopOnSignals();
  return async () => {
    if (cluster.started) await servicesDown({ only: 'cluster' });
  };
}
