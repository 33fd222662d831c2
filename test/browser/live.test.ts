// A real browser (Debian's chromium, driven by playwright-core) against `npm start`'s embedded default: the
// /live page shows a key change as it is written (also with READ_TOKENS: the right token follows writes, a
// wrong one is told UNAUTHENTICATED, and the token never appears in a URL), and GraphiQL at /graphql runs a
// subscription offline.
import { existsSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { graphql, startTiercache, type RunningTiercache } from '../support/processes.js';

const CANDIDATES = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'];

function chromiumPath(): string {
  const found = CANDIDATES.find((path): path is string => !!path && existsSync(path));
  if (!found)
    throw new Error(
      'The browser test needs Chromium and found none (looked at CHROMIUM_PATH, /usr/bin/chromium, ' +
        '/usr/bin/chromium-browser). Install it with `apt-get install chromium` (.ci/run does), or set ' +
        'CHROMIUM_PATH to a Chromium binary.',
    );
  return found;
}

const READ_TOKEN = 'live-page-read-token';

let app: RunningTiercache;
/** The same embedded default with READ_TOKENS set. */
let guarded: RunningTiercache;
let browser: Browser;
/** Every URL the pages requested: a token must never be in one (URLs land in logs). */
const requested: string[] = [];
/** Requests the pages made outside the server under test: there must be none (no CDN, no internet). */
const foreign: string[] = [];

async function newPage(): Promise<Page> {
  const page = await browser.newPage();
  page.on('request', (req) => {
    const url = req.url();
    requested.push(url);
    if (
      !url.startsWith(app.base) &&
      !url.startsWith(guarded.base) &&
      !url.startsWith('blob:') &&
      !url.startsWith('data:')
    )
      foreign.push(url);
  });
  return page;
}

async function set(key: string, value: string, base = app.base): Promise<void> {
  const res = await graphql(
    base,
    `
      mutation ($k: String!, $v: String!) {
        setValues(entries: [{ key: $k, value: $v }]) {
          written {
            version
          }
        }
      }
    `,
    { k: key, v: value },
  );
  expect(res.errors).toBeUndefined();
}

beforeAll(async () => {
  const executablePath = chromiumPath();
  // The embedded default, as `npm start` runs it: no Redis, no Kafka.
  [app, guarded] = await Promise.all([
    startTiercache([], { REDIS_URL: '', KAFKA_BROKERS: '' }),
    startTiercache([], { REDIS_URL: '', KAFKA_BROKERS: '', READ_TOKENS: READ_TOKEN }),
  ]);
  browser = await chromium.launch({ executablePath, args: ['--no-sandbox'] });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await Promise.all([app?.stop(), guarded?.stop()]);
});

describe('the /live page', () => {
  it('shows the current value, then each write as it happens, with a live indicator', async () => {
    await set('greeting', 'hello');
    const page = await newPage();
    await page.goto(`${app.base}/live`);
    await page.fill('#keys', 'greeting, missing');
    await page.click('button[type=submit]');
    const status = page.locator('#status');
    await expect.poll(() => status.getAttribute('data-state'), { timeout: 20_000 }).toBe('live');
    const value = page.locator('tr[data-key="greeting"] td.value');
    await expect.poll(() => value.textContent(), { timeout: 20_000 }).toBe('hello');
    await expect
      .poll(() => page.locator('tr[data-key="missing"] td.value').textContent(), { timeout: 20_000 })
      .toBe('(no value)');
    await set('greeting', 'bonjour');
    await expect.poll(() => value.textContent(), { timeout: 20_000 }).toBe('bonjour');
    expect(await page.locator('tr[data-key="greeting"] td.event').textContent()).toBe('SET');
    await page.close();
    expect(foreign).toEqual([]);
  });
});

describe('the /live page on a reader with READ_TOKENS', () => {
  /** Opens /live on the guarded reader and watches `key` with `token`. */
  async function watchWith(key: string, token: string): Promise<Page> {
    const page = await newPage();
    await page.goto(`${guarded.base}/live`);
    await page.fill('#keys', key);
    await page.fill('#token', token);
    await page.click('button[type=submit]');
    return page;
  }

  it('with the right token, shows the current value and follows a write', async () => {
    await set('guarded', 'first', guarded.base);
    const page = await watchWith('guarded', READ_TOKEN);
    const status = page.locator('#status');
    await expect.poll(() => status.getAttribute('data-state'), { timeout: 20_000 }).toBe('live');
    const value = page.locator('tr[data-key="guarded"] td.value');
    await expect.poll(() => value.textContent(), { timeout: 20_000 }).toBe('first');
    await set('guarded', 'second', guarded.base);
    await expect.poll(() => value.textContent(), { timeout: 20_000 }).toBe('second');
    expect(await page.locator('#message').isHidden()).toBe(true);
    await page.close();
    expect(requested.filter((url) => url.includes(READ_TOKEN))).toEqual([]);
    expect(foreign).toEqual([]);
  });

  it('with a wrong token, shows UNAUTHENTICATED and no value', async () => {
    await set('guarded', 'secret-value', guarded.base);
    const page = await watchWith('guarded', 'not-the-token');
    const message = page.locator('#message');
    await expect.poll(() => message.textContent(), { timeout: 20_000 }).toContain('UNAUTHENTICATED');
    expect(await page.locator('#status').getAttribute('data-state')).toBe('lost');
    expect(await page.locator('tr[data-key="guarded"]').count()).toBe(0);
    await page.close();
    expect(requested.filter((url) => url.includes('not-the-token'))).toEqual([]);
  });
});

describe('GraphiQL at /graphql', () => {
  it('loads without the internet and runs a subscription that follows writes', async () => {
    await set('hello', 'world');
    const page = await newPage();
    await page.goto(`${app.base}/graphql`);
    // The default tab holds a valueChanged subscription on "hello".
    const run = page.locator('.graphiql-execute-button');
    await run.waitFor({ timeout: 60_000 });
    await run.click();
    const response = page.locator('.graphiql-response');
    await expect.poll(() => response.textContent(), { timeout: 30_000 }).toContain('"world"');
    await set('hello', 'again');
    await expect.poll(() => response.textContent(), { timeout: 30_000 }).toContain('"again"');
    await page.close();
    expect(foreign).toEqual([]);
  });
});
