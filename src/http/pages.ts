// Static pages for people, served by the process itself from src/pages (no build step, nothing from the
// internet): /live, a page that watches keys change.
import { readFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';

// Two levels up from src/http or dist/http: the pages ship in src/pages beside both.
const PAGES = new URL('../../src/pages/', import.meta.url);

const TYPES: Record<string, string> = {
  'live.html': 'text/html; charset=utf-8',
  'live.js': 'text/javascript; charset=utf-8',
  'live.css': 'text/css; charset=utf-8',
};
// Read once at start: a handful of small files.
const FILES = new Map(
  Object.entries(TYPES).map(([name, type]) => [name, { type, body: readFileSync(new URL(name, PAGES)) }]),
);

/** /live answers the page; /live?asset=live.js|live.css its assets. */
export function servePage(url: Pick<URL, 'searchParams'>, res: ServerResponse): void {
  const name = url.searchParams.get('asset') ?? 'live.html';
  const file = FILES.get(name);
  if (!file) {
    res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
    return void res.end('no such asset\n');
  }
  res.writeHead(200, {
    'content-type': file.type,
    'content-length': file.body.length,
    // The page only talks to its own origin.
    'content-security-policy': "default-src 'self'; connect-src 'self'",
    'cache-control': 'no-cache',
  });
  res.end(file.body);
}
