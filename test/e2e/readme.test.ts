// README's "Running the roles" block must work exactly as written right after `npm run services:up`: it is
// taken from README, run by bash in the repository, and its writer and readers must serve a write and read it.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { eventually, graphql } from '../support/processes.js';
import { kafkaBrokers, redisUrl } from '../support/services.js';

const readme = readFileSync('README.md', 'utf8');
const section = readme.slice(readme.indexOf('## Running the roles'));
const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1] ?? '';

const PORTS = [4000, 4001, 4002];
let shell: ReturnType<typeof spawn> | undefined;
let output = '';

afterAll(async () => {
  if (!shell?.pid || shell.exitCode !== null) return;
  const exited = new Promise((resolve) => shell!.once('exit', resolve));
  // The block's processes are the shell's background jobs: one signal to the group stops them all, cleanly.
  process.kill(-shell.pid, 'SIGTERM');
  await exited;
  // And they are gone (consumer groups deleted) before the services may be stopped.
  for (const port of PORTS)
    await eventually(`port ${port} closed`, () =>
      fetch(`http://127.0.0.1:${port}/health`).then(
        () => undefined,
        () => true,
      ),
    );
}, 30_000);

describe('README "Running the roles"', () => {
  it('starts a writer and two readers that serve the documented ports, as written', async () => {
    expect(block).toContain('node dist/main.js --mode=writer');
    // The global setup ran `services:up` (which writes .services/env) unless the services were given.
    if (!existsSync('.services/env')) {
      mkdirSync('.services', { recursive: true });
      writeFileSync('.services/env', `REDIS_URL=${redisUrl()}\nKAFKA_BROKERS=${kafkaBrokers().join(',')}\n`);
    }
    // Nothing from this test run's environment leaks in: the block must find the services by itself.
    const { REDIS_URL: _r, KAFKA_BROKERS: _k, ...env } = process.env;
    shell = spawn('bash', ['-euc', `${block}\nwait`], {
      env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    shell.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    shell.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    shell.once('exit', (code) => (output += `\n[shell exited with ${code}]`));

    const key = `readme-${Date.now()}`;
    await eventually(
      'the writer on port 4000',
      async () => {
        const res = await graphql<{ setValues: unknown }>(
          'http://127.0.0.1:4000',
          `mutation { setValues(entries: [{ key: "${key}", value: "hello" }]) { written { key } } }`,
        );
        return res.data?.setValues ? true : undefined;
      },
      90_000,
    ).catch((error: unknown) => {
      throw new Error(`${String(error)}\n--- output of the README block ---\n${output}`);
    });
    for (const port of [4001, 4002]) {
      const value = await eventually(
        `reader on port ${port}`,
        async () => {
          const res = await graphql<{ value: { value: string | null } }>(
            `http://127.0.0.1:${port}`,
            `{ value(key: "${key}") { value } }`,
          );
          return res.data?.value.value === 'hello' ? res.data.value.value : undefined;
        },
        90_000,
      );
      expect(value).toBe('hello');
    }
  }, 240_000);
});
