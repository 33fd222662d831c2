// --workers=N on real processes, Redis and Kafka: N readers on one port, each its own memory tier and
// consumer group (so every change reaches every one), all stopped together by one SIGTERM.
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startTiercache, type RunningTiercache } from '../support/processes.js';
import { kafkaBrokers, redisUrl, uniqueName } from '../support/services.js';

let writer: RunningTiercache;
let readers: RunningTiercache;
let instanceId: string;

/** One GraphQL POST on a connection of its own, so that the cluster may hand it to any worker. */
function post(base: string, query: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify({ query });
    const req = request(
      `${base}/graphql`,
      {
        method: 'POST',
        agent: false,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString('utf8')));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

interface Listening {
  url: string;
  instanceId: string;
  pid: number;
}

function listening(output: string): Listening[] {
  return output
    .split('\n')
    .filter((line) => line.includes('"msg":"tiercache listening"'))
    .map((line) => JSON.parse(line) as Listening);
}

const KEYS = Array.from({ length: 12 }, (_, i) => `w${i}`);
const write = async (value: string) => {
  const entries = KEYS.map((key) => `{ key: "${key}", value: "${value}" }`).join(', ');
  const res = await post(writer.base, `mutation { setValues(entries: [${entries}]) { written { key } } }`);
  expect(res.status, res.body).toBe(200);
};
const readAll = async () => {
  const res = await post(readers.base, `{ values(keys: ${JSON.stringify(KEYS)}) { value source } }`);
  expect(res.status, res.body).toBe(200);
  return (JSON.parse(res.body) as { data: { values: { value: string; source: string }[] } }).data.values;
};

beforeAll(async () => {
  const env = {
    REDIS_URL: redisUrl(),
    REDIS_KEY_PREFIX: `${uniqueName('workers')}:`,
    KAFKA_BROKERS: kafkaBrokers().join(','),
    KAFKA_TOPIC: uniqueName('workers'),
  };
  instanceId = uniqueName('workers');
  [writer, readers] = await Promise.all([
    startTiercache(['--mode=writer'], env),
    startTiercache(['--mode=reader', `--instance-id=${instanceId}`, '--workers=2'], env),
  ]);
  await eventually(
    'both workers listening',
    async () => listening(readers.output()).length === 2 || undefined,
    60_000,
  );
}, 120_000);

afterAll(async () => {
  await Promise.all([writer?.stop(), readers?.stop()]);
});

describe('--workers', () => {
  it('runs N readers on one port, each with an instance id (and consumer group) of its own', () => {
    const workers = listening(readers.output());
    expect(new Set(workers.map((w) => w.url)).size).toBe(1);
    expect(workers.map((w) => w.instanceId).sort()).toEqual([`${instanceId}-w1`, `${instanceId}-w2`]);
    expect(new Set(workers.map((w) => w.pid)).size).toBe(2);
    expect(workers.map((w) => w.pid)).not.toContain(readers.process.pid);
  });

  it('every worker applies every change: reads on any connection follow a write from memory', async () => {
    await write('v1');
    // Hold v1 in both workers (a first read on a worker fills it from Redis).
    await eventually(
      'v1 held by the workers',
      async () => {
        const answers = await Promise.all(Array.from({ length: 8 }, () => readAll()));
        return answers.flat().every((e) => e.value === 'v1' && e.source === 'MEMORY') || undefined;
      },
      30_000,
    );
    // A worker that missed the change (a consumer group shared with the other) would answer v1 until its
    // memory entry expired.
    await write('v2');
    await eventually(
      'v2 everywhere',
      async () => {
        const answers = await Promise.all(Array.from({ length: 8 }, () => readAll()));
        return answers.flat().every((e) => e.value === 'v2' && e.source === 'MEMORY') || undefined;
      },
      30_000,
    );
  });

  it('one SIGTERM stops every worker cleanly', async () => {
    const pids = listening(readers.output()).map((w) => w.pid);
    await readers.stop();
    expect(readers.process.exitCode).toBe(0);
    for (const pid of pids) expect(() => process.kill(pid, 0)).toThrow();
    const stopped = readers
      .output()
      .split('\n')
      .filter((line) => line.includes('"msg":"all workers stopped"'))
      .map((line) => JSON.parse(line) as { exitCode: number });
    expect(stopped).toEqual([expect.objectContaining({ exitCode: 0 })]);
  });
});
