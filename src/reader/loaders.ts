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

/** A class rather than an object of closures: one allocation per request, loaders only when used. */
class RequestLoaders implements Loaders {
  private cachedLoader: DataLoader<string, ReadResult> | undefined;
  private freshLoader: DataLoader<string, ReadResult> | undefined;

  constructor(private readonly reader: Reader | null) {}

  get cached(): DataLoader<string, ReadResult> {
    return (this.cachedLoader ??= this.make(false));
  }

  get fresh(): DataLoader<string, ReadResult> {
    return (this.freshLoader ??= this.make(true));
  }

  private make(fresh: boolean): DataLoader<string, ReadResult> {
    const reader = this.reader;
    return new DataLoader<string, ReadResult>(async (keys) => {
      if (!reader) throw new Error('not a reader');
      return reader.read(keys, fresh);
    });
  }
}

export function createLoaders(reader: Reader | null): Loaders {
  return new RequestLoaders(reader);
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
