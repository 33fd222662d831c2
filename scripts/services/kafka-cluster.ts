// A 3-node Apache Kafka in KRaft mode on loopback (each node a broker and a controller, one JVM each) for
// `services:up --cluster` and the cluster tests: the same Maven jars as the single broker, replicated
// internal topics, min.insync.replicas 2, data under .services/. The nodes start in parallel: one JVM's
// start-up on a loaded 2-core machine is slow, three in a row would triple it.
import * as path from 'node:path';
import {
  formatKafkaStorage,
  KAFKA,
  kafkaLogFile,
  liveBrokers,
  newClusterId,
  prepareKafkaNode,
  proveRoundTrip,
  readClusterId,
  startKafkaProcess,
  type KafkaNode,
} from './kafka.js';
import {
  answers,
  errorMessage,
  freePorts,
  isOurProcess,
  isPortFree,
  log,
  stopPid,
  waitUntil,
} from './processes.js';
import { FILES, writeState, type KafkaNodeRecord, type State } from './state.js';

export const KAFKA_CLUSTER_NODES = 3;
/** Three JVMs starting at once on a loaded machine: far more patience than one broker needs. */
const CLUSTER_READY_MS = 300_000;
/** Modest heaps: three of them share the machine with everything else. */
const NODE_HEAP = '512m';

export function clusterBrokersFor(nodes: readonly KafkaNode[]): string {
  return nodes.map((n) => `127.0.0.1:${n.port}`).join(',');
}

export function nodeDir(dir: string, nodeId: number): string {
  return path.join(dir, `node-${nodeId}`);
}

/** New free loopback ports for a cluster of `count` nodes (a broker and a controller port each). */
export async function clusterPorts(count = KAFKA_CLUSTER_NODES): Promise<KafkaNode[]> {
  const ports = await freePorts(count * 2);
  return Array.from({ length: count }, (_, i) => {
    const port = ports[2 * i];
    const controllerPort = ports[2 * i + 1];
    if (port === undefined || controllerPort === undefined) throw new Error('could not get free ports');
    return { nodeId: i + 1, port, controllerPort };
  });
}

/**
 * Starts every node of `nodes` under `dir` (node-<id>/ each), formatted with one new cluster id unless
 * `keepData` and the data is there. `onSpawn` learns each pid before the wait, so a caller can stop nodes
 * that never answer. Resolves once every node is a live broker and a round trip on a topic replicated to
 * all of them works.
 */
export async function spawnKafkaCluster(
  dir: string,
  nodes: readonly KafkaNode[],
  onSpawn: (nodeId: number, pid: number) => void,
  options: { keepData?: boolean } = {},
): Promise<Map<number, number>> {
  for (const node of nodes) prepareKafkaNode(nodeDir(dir, node.nodeId), node, nodes);
  const formatted = nodes.map((n) => readClusterId(nodeDir(dir, n.nodeId)));
  const keep = options.keepData && formatted.every((id) => id !== undefined && id === formatted[0]);
  if (!keep) {
    const clusterId = newClusterId();
    for (const node of nodes) formatKafkaStorage(nodeDir(dir, node.nodeId), clusterId);
  }
  const deadline = Date.now() + CLUSTER_READY_MS;
  const pids = new Map<number, number>();
  for (const node of nodes) {
    const pid = startKafkaProcess(nodeDir(dir, node.nodeId), NODE_HEAP);
    pids.set(node.nodeId, pid);
    onSpawn(node.nodeId, pid);
  }
  await Promise.all(nodes.map((node) => waitForNode(dir, nodes, node, pids.get(node.nodeId)!, deadline)));
  await proveRoundTrip(
    clusterBrokersFor(nodes),
    nodes.length,
    deadline,
    `Kafka cluster (pids ${[...pids.values()].join(', ')})`,
    kafkaLogFile(nodeDir(dir, nodes[0]!.nodeId)),
  );
  return pids;
}

/**
 * Starts one node of a cluster whose data is already formatted (after a crash, say) and waits until the
 * others list it as a live broker again.
 */
export async function restartKafkaNode(
  dir: string,
  nodes: readonly KafkaNode[],
  nodeId: number,
  onSpawn: (pid: number) => void,
): Promise<number> {
  const node = nodes.find((n) => n.nodeId === nodeId);
  if (!node) throw new Error(`no Kafka node ${nodeId} in this cluster`);
  prepareKafkaNode(nodeDir(dir, nodeId), node, nodes);
  const pid = startKafkaProcess(nodeDir(dir, nodeId), NODE_HEAP);
  onSpawn(pid);
  await waitForNode(dir, nodes, node, pid, Date.now() + CLUSTER_READY_MS);
  return pid;
}

/** Waits until `node` answers metadata that lists every node of the cluster as a live broker. */
async function waitForNode(
  dir: string,
  nodes: readonly KafkaNode[],
  node: KafkaNode,
  pid: number,
  deadline: number,
): Promise<void> {
  const want = nodes.map((n) => n.nodeId).join(',');
  await waitUntil(KAFKA, pid, deadline - Date.now(), kafkaLogFile(nodeDir(dir, node.nodeId)), async () => {
    const live = await liveBrokers(`127.0.0.1:${node.port}`, 3_000);
    if (live.join(',') !== want) throw new Error(`node ${node.nodeId} sees brokers [${live.join(',')}]`);
  });
}

/**
 * The project's Kafka cluster (under .services/kafka-cluster): the recorded one if every node still runs and
 * answers, else a new one (on the recorded ports with the data kept, if they are all free).
 */
export async function ensureKafkaCluster(state: State, onSpawn: (pid: number) => void): Promise<string> {
  const recorded = state.kafkaCluster?.nodes;
  if (recorded) {
    const running = recorded.filter((n) => n.pid !== undefined && isOurProcess(KAFKA, n.pid));
    const brokers = clusterBrokersFor(recorded);
    if (
      running.length === recorded.length &&
      (await answers(async () => {
        const live = await liveBrokers(brokers, 5_000);
        if (live.length !== recorded.length) throw new Error('not every node is live');
      }))
    ) {
      log(`Kafka cluster already running (pids ${running.map((n) => n.pid).join(', ')})`);
      return brokers;
    }
    if (running.length > 0) log('the recorded Kafka cluster is not whole; restarting it');
    await stopKafkaCluster(state);
  }

  let nodes: KafkaNode[];
  const reuse =
    recorded !== undefined &&
    recorded.length === KAFKA_CLUSTER_NODES &&
    (await allFree(recorded.flatMap((n) => [n.port, n.controllerPort])));
  if (reuse) nodes = recorded.map(({ nodeId, port, controllerPort }) => ({ nodeId, port, controllerPort }));
  else nodes = await clusterPorts();
  const records: KafkaNodeRecord[] = nodes.map((n) => ({ ...n }));
  state.kafkaCluster = { nodes: records };
  writeState(state);
  const pids = await spawnKafkaCluster(
    FILES.kafkaClusterDir,
    nodes,
    (nodeId, pid) => {
      onSpawn(pid);
      const record = records.find((r) => r.nodeId === nodeId);
      if (record) record.pid = pid;
      writeState(state);
    },
    { keepData: reuse },
  );
  log(
    `Kafka cluster started (${nodes.map((n) => `node ${n.nodeId}: pid ${pids.get(n.nodeId)}, port ${n.port}`).join('; ')})`,
  );
  return clusterBrokersFor(nodes);
}

/** Stops every recorded node (in parallel: each takes seconds to shut down) and forgets the pids. */
export async function stopKafkaCluster(state: State): Promise<void> {
  const nodes = state.kafkaCluster?.nodes ?? [];
  const results = await Promise.allSettled(
    nodes.map((n) => (n.pid === undefined ? undefined : stopPid(KAFKA, n.pid))),
  );
  for (const node of nodes) delete node.pid;
  writeState(state);
  const failed = results.find((r) => r.status === 'rejected');
  if (failed) throw new Error(`could not stop a Kafka node: ${errorMessage(failed.reason)}`);
}

async function allFree(ports: number[]): Promise<boolean> {
  for (const port of ports) if (!(await isPortFree(port))) return false;
  return true;
}
