// Errors the client can act on, each with its extensions.code; anything else is masked, logged and counted.
import { GraphQLError } from 'graphql';
import { InvalidInput, ResponseTooLarge } from '../domain/limits.js';
import { reportError } from '../observability.js';

export type ErrorCode = 'BAD_USER_INPUT' | 'WRONG_ROLE' | 'UNAVAILABLE' | 'RESPONSE_TOO_LARGE';

export function clientError(
  code: ErrorCode,
  message: string,
  extra: Record<string, unknown> = {},
): GraphQLError {
  return new GraphQLError(message, { extensions: { code, ...extra } });
}

/**
 * Maps what a resolver threw to what the client sees: invalid input names the offending argument; a failing
 * store or bus is UNAVAILABLE (worth a retry) and is logged with its cause.
 */
export function toClientError(error: unknown, operation: string): GraphQLError {
  if (error instanceof GraphQLError) return error;
  if (error instanceof InvalidInput)
    return clientError('BAD_USER_INPUT', error.message, { argument: error.path });
  if (error instanceof ResponseTooLarge) return clientError('RESPONSE_TOO_LARGE', error.message);
  reportError('graphql', `${operation} failed`, error);
  return clientError('UNAVAILABLE', `${operation} could not be completed; try again`);
}
