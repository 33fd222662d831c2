// The hot-read baseline: a plain node:http server, in a process of its own like a reader, that answers
// every request (GET or POST) with the very status, headers and body bytes a reader gave (recorded in the JSON file named by
// argv[2]). What a reader spends beyond this is tiercache's own cost: routing, GraphQL, the memory tier.
//
//   node --import tsx scripts/bench/baseline-server.ts <response.json>
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RecordedResponse {
  status: number;
  rawHeaders: string[];
  bodyBase64: string;
}

// Node writes these itself, exactly as it does for the reader; set here they would appear twice.
const OWN_HEADERS = new Set(['date', 'connection', 'keep-alive', 'transfer-encoding']);

function main(file: string | undefined): void {
  if (file === undefined) throw new Error('usage: baseline-server.ts <response.json>');
  const recorded = JSON.parse(readFileSync(file, 'utf8')) as RecordedResponse;
  const body = Buffer.from(recorded.bodyBase64, 'base64');
  const headers: string[] = [];
  for (let i = 0; i + 1 < recorded.rawHeaders.length; i += 2) {
    const name = recorded.rawHeaders[i] as string;
    if (!OWN_HEADERS.has(name.toLowerCase())) headers.push(name, recorded.rawHeaders[i + 1] as string);
  }
  const server = createServer((req, res) => {
    // Answered once the body is read, as the reader does: it parses the body before it can answer.
    req.resume();
    req.on('end', () => res.writeHead(recorded.status, headers).end(body));
  });
  server.listen(0, '127.0.0.1', () => {
    const { port } = server.address() as AddressInfo;
    process.stderr.write(
      `${JSON.stringify({ msg: 'baseline listening', url: `http://127.0.0.1:${port}` })}\n`,
    );
  });
}

main(process.argv[2]);
