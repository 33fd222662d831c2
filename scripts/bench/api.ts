// tiercache's API as the benchmark uses it: typed writes and reads, and waits for a state the figures
// depend on (keys held in a reader's memory, every change applied).
import { eventually } from '../../test/support/processes.js';
import { graphql, scrape } from './http.js';
import { total } from './stats.js';

export type Source = 'MEMORY' | 'REDIS' | 'NONE';

export interface Entry {
  key: string;
  value: string | null;
  source: Source;
  version: string | null;
}

export const SET_VALUES = `mutation ($entries: [EntryInput!]!) {
  setValues(entries: $entries) { written { key version } }
}`;

export interface SetValuesData {
  setValues: { written: { key: string; version: string }[] };
}

/** Changes this run has written; every reader must apply as many before its histograms are read. */
let changesWritten = 0;

export function countWritten(changes: number): void {
  changesWritten += changes;
}

/** Writes entries in one mutation and returns each key's new version. */
export async function setValues(
  writer: string,
  entries: { key: string; value: string }[],
): Promise<Map<string, bigint>> {
  const data = await graphql<SetValuesData>(writer, SET_VALUES, { entries });
  countWritten(entries.length);
  return new Map(data.setValues.written.map((w) => [w.key, BigInt(w.version)]));
}

export async function values(reader: string, keys: readonly string[], fresh = false): Promise<Entry[]> {
  const data = await graphql<{ values: Entry[] }>(
    reader,
    'query ($keys: [String!]!, $fresh: Boolean) { values(keys: $keys, fresh: $fresh) { key value source version } }',
    { keys, fresh },
  );
  return data.values;
}

/** Resolves once `reader` answers every key from memory at (at least) the version written. */
export async function waitInMemory(reader: string, versions: ReadonlyMap<string, bigint>): Promise<void> {
  const keys = [...versions.keys()];
  await eventually(
    `${versions.size} keys in the memory tier of ${reader}`,
    async () => {
      const entries = await values(reader, keys);
      const held = entries.every(
        (e) =>
          e.source === 'MEMORY' && e.version !== null && BigInt(e.version) >= (versions.get(e.key) ?? 0n),
      );
      return held || undefined;
    },
    30_000,
  );
}

/**
 * Resolves once `reader` has received every change this run wrote (its feed may deliver after a read). Counted
 * on the propagation histogram, which sees every change the feed delivers: the applied counter skips those
 * that arrive while the reader does not trust its feed (lag over FEED_MAX_LAG_MS, as under a backlog on the
 * 3-broker Kafka), and waiting for it then never ended.
 */
export async function waitAllApplied(reader: string): Promise<void> {
  await eventually(
    `${reader} to receive all ${changesWritten} changes written`,
    async () =>
      total(await scrape(reader), 'tiercache_reader_propagation_ms_count') >= changesWritten || undefined,
    30_000,
  );
}

/** A value of exactly `bytes` UTF-8 bytes that starts with `tag`, so that each write is distinguishable. */
export function valueOf(tag: string, bytes: number): string {
  return tag.length >= bytes ? tag.slice(0, bytes) : tag + 'x'.repeat(bytes - tag.length);
}
