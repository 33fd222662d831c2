// The cluster project's Kafka as tests need it: its recorded nodes (scripts/services state), one node
// killed with SIGKILL and started again on its data, a topic's replicas and in-sync replicas as the cluster
// reports them, and every change a topic holds, read back from the start.
import { randomUUID } from 'node:crypto';
import { Kafka, logLevel, type ConfigResourceTypes } from 'kafkajs';
import { decodeBusMessage } from '../../src/adapters/change-codec.js';
import { eventually } from '../support/processes.js';
import { restartKafkaNode } from '../../scripts/services/kafka-cluster.js';
import { KAFKA } from '../../scripts/services/kafka.js';
import { isOurProcess, killPid } from '../../scripts/services/processes.js';
import { FILES, readState, writeState, type KafkaNodeRecord } from '../../scripts/services/state.js';

export function recordedNodes(): KafkaNodeRecord[] {
  const nodes = readState().kafkaCluster?.nodes;
  if (!nodes?.length) throw new Error('no Kafka cluster recorded: the cluster project setup starts one');
  return nodes;
}

/** kill -9 of one node, as a crash: no controlled shutdown, no leadership handed over. */
export async function killNode(nodeId: number): Promise<void> {
  const node = recordedNodes().find((n) => n.nodeId === nodeId);
  if (node?.pid === undefined) throw new Error(`Kafka node ${nodeId} is not running`);
  await killPid(KAFKA, node.pid);
}

/** Starts the node again on its ports and data, recording its pid so that services:down stops it. */
export async function restartNode(nodeId: number): Promise<void> {
  const nodes = recordedNodes();
  await restartKafkaNode(FILES.kafkaClusterDir, nodes, nodeId, (pid) => {
    const state = readState();
    const record = state.kafkaCluster?.nodes.find((n) => n.nodeId === nodeId);
    if (record) record.pid = pid;
    writeState(state);
  });
}

/** Starts again every recorded node that is not running: a later file must find the cluster whole. */
export async function restartDownNodes(): Promise<void> {
  for (const node of recordedNodes()) {
    if (node.pid === undefined || !isOurProcess(KAFKA, node.pid)) await restartNode(node.nodeId);
  }
}

/** Waits until every partition of `topic` has all its replicas in sync again; resolves with how long it took. */
export async function fullIsr(brokers: string, topic: string, timeoutMs = 180_000): Promise<number> {
  const started = Date.now();
  await eventually(
    `every replica of ${topic} in sync`,
    async () =>
      (await topicState(brokers, topic)).partitions.every((p) => p.isr.length === p.replicas.length)
        ? true
        : undefined,
    timeoutMs,
  );
  return Date.now() - started;
}

function admin(brokers: string) {
  return new Kafka({
    clientId: 'tiercache-cluster-test',
    brokers: brokers.split(','),
    logLevel: logLevel.NOTHING,
    retry: { retries: 3 },
  }).admin();
}

export interface PartitionState {
  partitionId: number;
  leader: number;
  replicas: number[];
  isr: number[];
}

/** The topic's partitions as the cluster's metadata has them now, and its min.insync.replicas. */
export async function topicState(
  brokers: string,
  topic: string,
): Promise<{ partitions: PartitionState[]; minInsyncReplicas: string | undefined }> {
  const client = admin(brokers);
  await client.connect();
  try {
    const { topics } = await client.fetchTopicMetadata({ topics: [topic] });
    const partitions = (topics[0]?.partitions ?? []).map((p) => ({
      partitionId: p.partitionId,
      leader: p.leader,
      replicas: [...p.replicas].sort(),
      isr: [...p.isr].sort(),
    }));
    const configs = await client.describeConfigs({
      // 2 is ConfigResourceTypes.TOPIC: a value Node's import of kafkajs's CommonJS does not find by name.
      resources: [{ type: 2 as ConfigResourceTypes, name: topic, configNames: ['min.insync.replicas'] }],
      includeSynonyms: false,
    });
    const minInsyncReplicas = configs.resources[0]?.configEntries.find(
      (e) => e.configName === 'min.insync.replicas',
    )?.configValue;
    return { partitions: partitions.sort((a, b) => a.partitionId - b.partitionId), minInsyncReplicas };
  } finally {
    await client.disconnect();
  }
}

/** Every change on the topic, from its first offset to its end as the cluster reports it now. */
export async function changesOnTopic(
  brokers: string,
  topic: string,
): Promise<{ key: string; version: bigint }[]> {
  const kafka = new Kafka({
    clientId: 'tiercache-cluster-test',
    brokers: brokers.split(','),
    logLevel: logLevel.NOTHING,
  });
  const client = kafka.admin();
  await client.connect();
  const ends = await client.fetchTopicOffsets(topic);
  await client.disconnect();
  const remaining = new Map(ends.filter((e) => e.high !== e.low).map((e) => [e.partition, BigInt(e.high)]));
  const changes: { key: string; version: bigint }[] = [];
  if (remaining.size === 0) return changes;
  const groupId = `tiercache-cluster-test-${randomUUID()}`;
  const consumer = kafka.consumer({ groupId });
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      consumer
        .run({
          eachMessage: async ({ partition, message }) => {
            const decoded = decodeBusMessage(message.value);
            if (decoded.kind === 'change') {
              changes.push({ key: decoded.change.key, version: decoded.change.version });
            }
            const end = remaining.get(partition);
            if (end !== undefined && BigInt(message.offset) + 1n >= end) remaining.delete(partition);
            if (remaining.size === 0) resolve();
          },
        })
        .catch(reject);
    });
  } finally {
    await consumer.disconnect();
    const cleanup = kafka.admin();
    await cleanup.connect();
    await cleanup.deleteGroups([groupId]).catch(() => undefined);
    await cleanup.disconnect();
  }
  return changes;
}
