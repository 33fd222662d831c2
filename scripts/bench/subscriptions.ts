// Phase 6 of `npm run bench`: N SSE subscribers on one reader, spread over a key space, while a writer
// writes at a fixed rate. Measures the delay from a write's acknowledgement (the mutation's answer) to each
// subscriber's event, the events delivered per second, and the reader's memory per open subscription.
import { request as httpRequest, Agent, type IncomingMessage } from 'node:http';
import { readFileSync } from 'node:fs';
import { eventually } from '../../test/support/processes.js';
import { setValues, valueOf } from './api.js';
import { scrape } from './http.js';
import {
  distribution,
  quantilesBetween,
  total,
  type Distribution,
  type Quantile,
  type Quantiles,
} from './stats.js';

export interface SubscriptionSetup {
  writer: string;
  reader: string;
  readerPid: number;
  subscribers: number;
  keys: number;
  /** Writes per second, one key each. */
  rate: number;
  durationSeconds: number;
  valueBytes: number;
}

export interface SubscriptionResult {
  subscribers: number;
  keys: number;
  rate: number;
  durationSeconds: number;
  valueBytes: number;
  /** Seconds to open every subscription (until the reader counted them all). */
  openSeconds: number;
  writesAcknowledged: number;
  eventsExpected: number;
  eventsReceived: number;
  /** Events received per second over the write window plus the drain. */
  eventsPerSecond: number;
  /** ms from the mutation's answer to the event's arrival at the subscriber (negative: event came first). */
  delayMs: Distribution;
  rssBeforeBytes: number;
  rssOpenBytes: number;
  rssAfterBytes: number;
  /** (RSS with every subscription open and idle − RSS before) / subscribers. */
  bytesPerSubscriber: number;
  /** The reader's CPU time over the write window, as a share of one core. */
  readerCpu: number;
  /** Subscriptions the reader closed on its own (SLOW_CONSUMER, ...) during the phase. */
  closedByServer: number;
  /**
   * Where the time goes, from the reader's own histograms over the window (ms from the commit, on the Redis
   * server's clock, to that stage on the reader's; same machine): the change applied from Kafka, and its
   * event taken by a subscription transport. What the client sees beyond the second is the transports'
   * writing and the client's reading.
   */
  stages: { applied: Quantiles; takenByTransport: Quantiles };
}

const SUBSCRIBE = 'subscription($k: [String!]) { valueChanged(keys: $k) { key value version } }';

function rss(pid: number): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) * 1024;
}

/** utime + stime of a process, in seconds. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  // After the command: state is field 3, utime 14, stime 15 (1-based in proc(5)); clock ticks of 1/100 s.
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

export async function measureSubscriptions(s: SubscriptionSetup): Promise<SubscriptionResult> {
  const keys = Array.from({ length: s.keys }, (_, i) => `sub:${i}`);
  const agent = new Agent({ keepAlive: false, maxSockets: Infinity });
  const responses: IncomingMessage[] = [];
  /** Per key: the ack time of each version written. */
  const acked = new Map<string, Map<string, number>>();
  /** Events that arrived before their write's ack: matched when the ack comes. */
  const early = new Map<string, number[]>();
  const delays: number[] = [];
  let received = 0;

  const onEvent = (key: string, version: string, at: number): void => {
    received++;
    const ackAt = acked.get(key)?.get(version);
    if (ackAt !== undefined) delays.push(at - ackAt);
    else {
      const list = early.get(`${key}@${version}`) ?? [];
      list.push(at);
      early.set(`${key}@${version}`, list);
    }
  };

  const open = (key: string): Promise<void> =>
    new Promise((resolve, reject) => {
      const body = JSON.stringify({ query: SUBSCRIBE, variables: { k: [key] } });
      const req = httpRequest(
        `${s.reader}/graphql`,
        {
          method: 'POST',
          agent,
          headers: {
            'content-type': 'application/json',
            accept: 'text/event-stream',
            'content-length': Buffer.byteLength(body),
          },
        },
        (res) => {
          if (res.statusCode !== 200) return reject(new Error(`subscribe answered ${res.statusCode}`));
          responses.push(res);
          let buffer = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            const at = performance.now();
            buffer += chunk;
            let end: number;
            while ((end = buffer.indexOf('\n\n')) >= 0) {
              const frame = buffer.slice(0, end);
              buffer = buffer.slice(end + 2);
              const data = /^data: (.*)$/m.exec(frame)?.[1];
              if (!data) continue;
              const change = (
                JSON.parse(data) as { data?: { valueChanged?: { key: string; version: string } } }
              ).data?.valueChanged;
              if (change) onEvent(change.key, change.version, at);
            }
          });
          resolve();
        },
      );
      req.on('error', reject);
      req.end(body);
    });

  const gauge = async (name: string): Promise<number> => total(await scrape(s.reader), name);
  const closedByReader = async (): Promise<number> => {
    const samples = await scrape(s.reader);
    const closed = (reason: string) => total(samples, 'tiercache_subscriptions_closed_total', { reason });
    return closed('slow_consumer') + closed('unavailable');
  };
  const closedBefore = await closedByReader();
  const rssBeforeBytes = rss(s.readerPid);
  const openStart = performance.now();
  for (let i = 0; i < s.subscribers; i += 200) {
    await Promise.all(
      Array.from({ length: Math.min(200, s.subscribers - i) }, (_, j) =>
        open(keys[(i + j) % s.keys] as string),
      ),
    );
  }
  await eventually(
    `${s.subscribers} subscriptions open on the reader`,
    async () => ((await gauge('tiercache_subscriptions_open')) >= s.subscribers ? true : undefined),
    120_000,
  );
  const openSeconds = (performance.now() - openStart) / 1000;
  // Let the allocations of opening settle before measuring what an idle subscription costs.
  await new Promise((r) => setTimeout(r, 2000));
  const rssOpenBytes = rss(s.readerPid);

  // Writes at the stated rate, one key each, round robin; each ack timestamped.
  const metricsBefore = await scrape(s.reader);
  const cpuStart = cpuSeconds(s.readerPid);
  const windowStart = performance.now();
  const writes = Math.round(s.rate * s.durationSeconds);
  const inFlight: Promise<void>[] = [];
  let acknowledged = 0;
  for (let n = 0; n < writes; n++) {
    const due = windowStart + (n * 1000) / s.rate;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const key = keys[n % s.keys] as string;
    inFlight.push(
      setValues(s.writer, [{ key, value: valueOf(`${n}:`, s.valueBytes) }]).then((versions) => {
        const at = performance.now();
        acknowledged++;
        const version = String(versions.get(key));
        let perKey = acked.get(key);
        if (!perKey) acked.set(key, (perKey = new Map()));
        perKey.set(version, at);
        for (const arrived of early.get(`${key}@${version}`) ?? []) delays.push(arrived - at);
        early.delete(`${key}@${version}`);
      }),
    );
  }
  await Promise.all(inFlight);
  const subscribersPerKey = s.subscribers / s.keys;
  const expected = Math.round(acknowledged * subscribersPerKey);
  // Drain: wait until every expected event arrived, or 30 s.
  const drainDeadline = performance.now() + 30_000;
  while (received < expected && performance.now() < drainDeadline)
    await new Promise((r) => setTimeout(r, 50));
  const windowSeconds = (performance.now() - windowStart) / 1000;
  const readerCpu = (cpuSeconds(s.readerPid) - cpuStart) / windowSeconds;
  const rssAfterBytes = rss(s.readerPid);
  const metricsAfter = await scrape(s.reader);
  const stages = {
    applied: quantilesBetween(metricsBefore, metricsAfter, 'tiercache_reader_propagation_ms'),
    takenByTransport: quantilesBetween(metricsBefore, metricsAfter, 'tiercache_subscription_delivery_ms'),
  };
  const closedByServer = (await closedByReader()) - closedBefore;

  for (const res of responses) res.destroy();
  agent.destroy();
  await eventually(
    'the subscriptions to be released',
    async () => ((await gauge('tiercache_subscriptions_open')) === 0 ? true : undefined),
    60_000,
  );

  return {
    subscribers: s.subscribers,
    keys: s.keys,
    rate: s.rate,
    durationSeconds: s.durationSeconds,
    valueBytes: s.valueBytes,
    openSeconds,
    writesAcknowledged: acknowledged,
    eventsExpected: expected,
    eventsReceived: received,
    eventsPerSecond: received / windowSeconds,
    delayMs: distribution(delays),
    rssBeforeBytes,
    rssOpenBytes,
    rssAfterBytes,
    bytesPerSubscriber: (rssOpenBytes - rssBeforeBytes) / s.subscribers,
    readerCpu,
    closedByServer,
    stages,
  };
}

export function renderSubscriptions(r: SubscriptionResult): string {
  const mib = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(0)} MiB`;
  const d = r.delayMs;
  return [
    `subscriptions: ${r.subscribers} SSE subscribers on one reader, ${r.keys} keys (${r.subscribers / r.keys} per key), ` +
      `${r.rate} writes/s for ${r.durationSeconds} s, ${r.valueBytes} B values`,
    `  opened in ${r.openSeconds.toFixed(1)} s; reader RSS ${mib(r.rssBeforeBytes)} before, ${mib(r.rssOpenBytes)} open, ` +
      `${mib(r.rssAfterBytes)} after the writes: ${(r.bytesPerSubscriber / 1024).toFixed(1)} KiB per idle subscriber`,
    `  events ${r.eventsReceived} of ${r.eventsExpected} expected (${r.writesAcknowledged} writes), ` +
      `${r.eventsPerSecond.toFixed(0)} events/s; reader CPU ${(r.readerCpu * 100).toFixed(0)}% of one core; ` +
      `closed by the server: ${r.closedByServer}`,
    `  delay write acknowledged → event received (ms): p50 ${d.p50.toFixed(1)}, p90 ${d.p90.toFixed(1)}, ` +
      `p99 ${d.p99.toFixed(1)}, max ${d.max.toFixed(1)} (${d.count} events)`,
    `  on the reader, commit → applied from Kafka (ms): ${quantiles(r.stages.applied)}`,
    `  on the reader, commit → event taken by its transport (ms): ${quantiles(r.stages.takenByTransport)}`,
    '',
  ].join('\n');
}

function quantiles(q: Quantiles): string {
  const show = ({ value, overflow }: Quantile): string => `${overflow ? '>' : ''}${value.toFixed(1)}`;
  return `p50 ${show(q.p50)}, p99 ${show(q.p99)} (${q.count} samples, from bucket bounds)`;
}
