// The command line as an operator meets it: --help lists every setting and exits 0; every start-up failure
// is one line on stderr naming the cause and the fix, and a reader whose port is taken fails before it joins
// Kafka, so it leaves no consumer group behind.
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SETTINGS } from '../../src/config.js';
import { kafkaBrokers, redisUrl, uniqueName } from '../support/services.js';

function run(args: string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', ...args], {
    env: { ...process.env, REDIS_URL: '', KAFKA_BROKERS: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise<{ code: number | null; stdout: string; lines: string[] }>((resolve) =>
    child.once('close', (code) => resolve({ code, stdout, lines: stderr.split('\n').filter(Boolean) })),
  );
}

let taken: Server;
let takenPort: number;

beforeAll(async () => {
  taken = createServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  takenPort = (taken.address() as { port: number }).port;
});

afterAll(() => new Promise<void>((resolve) => taken.close(() => resolve())));

describe('the command line', () => {
  it('prints every flag with its variable and default for --help and -h, and exits 0', async () => {
    for (const flag of ['--help', '-h']) {
      const { code, stdout } = await run([flag]);
      expect(code).toBe(0);
      for (const s of SETTINGS) expect(stdout).toContain(`--${s.flag}=…  (${s.env}; default `);
    }
  });

  it.each([
    [
      'a taken port',
      ['--port=TAKEN'],
      {},
      1,
      /^tiercache: port \d+ on 127\.0\.0\.1 is already in use: .*--port/,
    ],
    [
      'REDIS_URL without KAFKA_BROKERS',
      [],
      { REDIS_URL: 'redis://127.0.0.1:1' },
      2,
      /^tiercache: invalid configuration: REDIS_URL is set without KAFKA_BROKERS: set both/,
    ],
    [
      'an unreachable Redis',
      ['--port=0'],
      { REDIS_URL: 'redis://127.0.0.1:1', KAFKA_BROKERS: '127.0.0.1:1' },
      1,
      /^tiercache: Redis at redis:\/\/127\.0\.0\.1:1 is unreachable \(connect ECONNREFUSED .*\): start it, or fix REDIS_URL$/,
    ],
    [
      'an unreachable Kafka',
      ['--port=0'],
      { REDIS_URL: 'REDIS', KAFKA_BROKERS: '127.0.0.1:1' },
      1,
      /^tiercache: Kafka at 127\.0\.0\.1:1 could not be used \(.*ECONNREFUSED.*\): start it, or fix KAFKA_BROKERS/,
    ],
  ] as const)(
    'fails on %s with one line naming the cause and the fix',
    async (_what, args, env, code, line) => {
      const given = Object.fromEntries(
        Object.entries(env).map(([k, v]) => [k, v === 'REDIS' ? redisUrl() : v]),
      ) as Record<string, string>;
      const result = await run(
        args.map((a) => a.replace('TAKEN', String(takenPort))),
        given,
      );
      expect(result.code).toBe(code);
      // The embedded default says first that it is not durable; nothing else comes before the failure.
      const lines = result.lines.filter((l) => !l.includes('EMBEDDED MODE'));
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(line);
    },
  );

  it('refuses a reader whose port is taken before it joins Kafka: no consumer group is left', async () => {
    const instance = uniqueName('taken-port');
    const result = await run(['--mode=reader', `--port=${takenPort}`, `--instance-id=${instance}`], {
      REDIS_URL: redisUrl(),
      KAFKA_BROKERS: kafkaBrokers().join(','),
      KAFKA_TOPIC: uniqueName('taken-port'),
    });
    expect(result.code).toBe(1);
    const admin = new Kafka({ brokers: kafkaBrokers(), logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    try {
      const { groups } = await admin.listGroups();
      expect(groups.map((g) => g.groupId).filter((id) => id.endsWith(instance))).toEqual([]);
    } finally {
      await admin.disconnect();
    }
  });
});
