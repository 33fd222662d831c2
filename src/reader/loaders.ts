// The read path of one request: DataLoaders that gather every key the request asks for (each field and alias
// of a GraphQL operation, or a REST read) into one de-duplicated call of the reader.
import DataLoader from 'dataloader';
import type { ReadResult, Reader } from './reader.js';

export interface Loaders {
  /** Answers from the memory tier where it can. */
  cached: DataLoader<string, ReadResult>;
  /** Always from the store. */
  fresh: DataLoader<string, ReadResult>;
}

export function createLoaders(reader: Reader | null): Loaders {
  const make = (fresh: boolean): DataLoader<string, ReadResult> =>
    new DataLoader<string, ReadResult>(async (keys) => {
      if (!reader) throw new Error('not a reader');
      return reader.read(keys, fresh);
    });
  return { cached: make(false), fresh: make(true) };
}

/** Every key's result in order; the first failure (a store error) rejects the whole read. */
export async function loadAll(
  loader: DataLoader<string, ReadResult>,
  keys: readonly string[],
): Promise<ReadResult[]> {
  return (await loader.loadMany(keys)).map((result) => {
    if (result instanceof Error) throw result;
    return result;
  });
}
