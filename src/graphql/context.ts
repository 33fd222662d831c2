// What every resolver receives: the roles this process serves and the request's own loaders.
import type { ResponseBudget } from '../domain/limits.js';
import type { Loaders } from '../reader/loaders.js';
import type { Reader } from '../reader/reader.js';
import type { Connection, LiveSubscriptions } from '../reader/subscriptions.js';
import type { Writer } from '../writer/writer.js';

export interface Roles {
  reader: Reader | null;
  writer: Writer | null;
  /** A reader's live subscriptions; null in a writer-only process. */
  live: LiveSubscriptions | null;
}

export interface RequestContext extends Roles {
  /** Per request: every key of every field and alias of the operation, de-duplicated, in one batch. */
  loaders: Loaders;
  /** What the answer may still carry (MAX_RESPONSE_BYTES), spent before anything is serialized. */
  budget: ResponseBudget;
  /** What the request's token allows; the request guard checks it before any resolver runs. */
  access: { read: boolean; write: boolean };
  /** The client connection the operation came on, for the subscriptions-per-connection limit. */
  connection: Connection;
  /**
   * The fast path's execution (src/http/fast-path.ts): an answer with errors is discarded and yoga executes
   * the request again, so what its errors would count is counted on yoga's execution only.
   */
  provisional: boolean;
}
