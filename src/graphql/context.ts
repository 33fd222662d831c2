// What every resolver receives: the roles this process serves and the request's own loaders.
import DataLoader from 'dataloader';
import type { ResponseBudget } from '../domain/limits.js';
import type { ReadResult, Reader } from '../reader/reader.js';
import type { Writer } from '../writer/writer.js';

export interface Roles {
  reader: Reader | null;
  writer: Writer | null;
}

export interface RequestContext extends Roles {
  /** Per request: every key of every field and alias of the operation, de-duplicated, in one batch. */
  loaders: { cached: DataLoader<string, ReadResult>; fresh: DataLoader<string, ReadResult> };
  /** What the answer may still carry (MAX_RESPONSE_BYTES), spent before anything is serialized. */
  budget: ResponseBudget;
  /** What the request's token allows; the request guard checks it before any resolver runs. */
  access: { read: boolean; write: boolean };
}

export function createLoaders(reader: Reader | null): RequestContext['loaders'] {
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
