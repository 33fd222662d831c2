// The benchmark's own HTTP client for everything that is not bulk load: setup, timed writes, polls and
// /metrics scrapes. node:http over a keep-alive agent, so that a timed request never pays for a connect.
import { Agent, request as httpRequest } from 'node:http';
import { parseMetrics, type MetricSample } from './stats.js';

const agent = new Agent({ keepAlive: true, maxSockets: 64 });

export interface Response {
  status: number;
  /** As received, name and value alternating (names keep their case). */
  rawHeaders: string[];
  body: Buffer;
}

export function request(url: string, method = 'GET', body?: string, retried = false): Promise<Response> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = {};
    if (body !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = Buffer.byteLength(body);
    }
    const req = httpRequest(url, { method, agent, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, rawHeaders: res.rawHeaders, body: Buffer.concat(chunks) }),
      );
    });
    req.on('error', (error: NodeJS.ErrnoException) => {
      // A kept-alive socket the server closed while idle, as Node's documentation describes: send again once.
      if (!retried && req.reusedSocket && error.code === 'ECONNRESET')
        resolve(request(url, method, body, true));
      else reject(error);
    });
    req.end(body);
  });
}

/** The body of a GraphQL POST, built once where a loop sends it many times. */
export function graphqlBody(query: string, variables: Record<string, unknown> = {}): string {
  return JSON.stringify({ query, variables });
}

/** Sends a GraphQL body to `base`/graphql and returns `data`; any GraphQL error fails the call. */
export async function graphqlPost<T>(base: string, body: string): Promise<T> {
  const res = await request(`${base}/graphql`, 'POST', body);
  const parsed = JSON.parse(res.body.toString('utf8')) as { data?: T; errors?: { message: string }[] };
  if (parsed.errors?.length || parsed.data === undefined) {
    throw new Error(`GraphQL ${res.status} from ${base}: ${res.body.toString('utf8').slice(0, 500)}`);
  }
  return parsed.data;
}

export function graphql<T>(base: string, query: string, variables: Record<string, unknown> = {}): Promise<T> {
  return graphqlPost<T>(base, graphqlBody(query, variables));
}

export async function scrape(base: string): Promise<MetricSample[]> {
  const res = await request(`${base}/metrics`);
  if (res.status !== 200) throw new Error(`GET ${base}/metrics answered ${res.status}`);
  return parseMetrics(res.body.toString('utf8'));
}

export function closeClient(): void {
  agent.destroy();
}
