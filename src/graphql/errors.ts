// Errors the client can act on, each with its extensions.code; anything else is masked, logged and counted.
import { GraphQLError } from 'graphql';
import { InvalidInput, ResponseTooLarge } from '../domain/limits.js';
import { countRefusal, reportError } from '../observability.js';
import { FeedBackedUp, PartialWrite, ReplicasNotConfirmed, StoreFailure } from '../ports.js';

export type ErrorCode =
  | 'BAD_USER_INPUT'
  | 'WRONG_ROLE'
  | 'UNAVAILABLE'
  | 'PARTIAL_WRITE'
  | 'INTERNAL'
  | 'RESPONSE_TOO_LARGE'
  | 'TOO_MANY_SUBSCRIPTIONS'
  | 'SLOW_CONSUMER';

export function clientError(
  code: ErrorCode,
  message: string,
  extra: Record<string, unknown> = {},
): GraphQLError {
  return new GraphQLError(message, { extensions: { code, ...extra } });
}

/** The one wording, for GraphQL and REST alike, of a request sent to a process without the role it needs. */
export function wrongRole(needed: 'reader' | 'writer'): GraphQLError {
  const other = needed === 'reader' ? 'writer' : 'reader';
  const what = needed === 'reader' ? 'reads' : 'writes';
  return clientError('WRONG_ROLE', `this process is a ${other}; send ${what} to a ${needed}`);
}

/**
 * Maps what a resolver threw to what the client sees: invalid input names the offending argument; a failing
 * store is UNAVAILABLE (worth a retry); anything else is a fault of ours, INTERNAL. Both are logged with
 * their cause; the client sees neither cause. An answer refused for its size is counted on /metrics like the
 * guard's refusals. Nothing is logged or counted for a provisional execution (RequestContext.provisional):
 * yoga executes that request again and answers it, so what the client is told is logged and counted once,
 * then (a failure that does not happen again there is not logged: the client got a good answer).
 */
export function toClientError(error: unknown, operation: string, provisional = false): GraphQLError {
  if (error instanceof GraphQLError) return error;
  if (error instanceof InvalidInput)
    return clientError('BAD_USER_INPUT', error.message, { argument: error.path });
  if (error instanceof ResponseTooLarge) {
    if (!provisional) countRefusal('RESPONSE_TOO_LARGE');
    return clientError('RESPONSE_TOO_LARGE', error.message);
  }
  // Not a fault: the bound doing its job while Kafka is away (counted by the writer, visible on /metrics).
  if (error instanceof FeedBackedUp) return clientError('UNAVAILABLE', error.message);
  if (error instanceof ReplicasNotConfirmed) return clientError('UNAVAILABLE', error.message);
  // Redis Cluster: some shards' parts of the batch committed, others did not; the client learns which.
  if (error instanceof PartialWrite) {
    reportError('graphql', `${operation} was written only in part`, error.cause);
    return clientError('PARTIAL_WRITE', error.message, {
      written: error.committed.map((c) => ({ key: c.key, version: String(c.version) })),
      notWritten: error.notWritten,
    });
  }
  if (!provisional) reportError('graphql', `${operation} failed`, error);
  if (error instanceof StoreFailure)
    return clientError('UNAVAILABLE', `${operation} could not be completed; try again`);
  return clientError('INTERNAL', `${operation} failed on an internal error`);
}
