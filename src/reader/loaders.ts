// The read path of one request: DataLoaders that gather every key the request asks for (each field and alias
// of a GraphQL operation, or a REST read) into one de-duplicated call of the reader. Built on first use:
// a request whose keys are all in memory is answered by readAll() without them.
import DataLoader from 'dataloader';
import type { ReadResult, Reader } from './reader.js';

export interface Loaders {
  /** Answers from the memory tier where it can. */
  readonly cached: DataLoader<string, ReadResult>;
  /** Always from the store. */
  readonly fresh: DataLoader<string, ReadResult>;
}

export function createLoaders(reader: Reader | null): Loaders {
  const make = (fresh: boolean): DataLoader<string, ReadResult> =>
    new DataLoader<string, ReadResult>(async (keys) => {
      if (!reader) throw new Error('not a reader');
      return reader.read(keys, fresh);
    });
  let cached: DataLoader<string, ReadResult> | undefined;
  let fresh: DataLoader<string, ReadResult> | undefined;
  return {
    get cached() {
      return (cached ??= make(false));
    },
    get fresh() {
      return (fresh ??= make(true));
    },
  };
}

/**
 * Every key's result in order: at once when the memory tier holds them all (no loader, no promise per
 * key), else through the request's loader; the first failure (a store error) rejects the whole read.
 */
export function readAll(
  reader: Reader,
  loaders: Loaders,
  keys: readonly string[],
  fresh: boolean,
): ReadResult[] | Promise<ReadResult[]> {
  return (!fresh && reader.readHeld(keys)) || loadAll(fresh ? loaders.fresh : loaders.cached, keys);
}

async function loadAll(
  loader: DataLoader<string, ReadResult>,
  keys: readonly string[],
): Promise<ReadResult[]> {
  return (await loader.loadMany(keys)).map((result) => {
    if (result instanceof Error) throw result;
    return result;
  });
}
