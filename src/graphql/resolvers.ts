// The GraphQL resolvers: thin translations between the schema and the reader and writer.
import { GraphQLScalarType, Kind } from 'graphql';
import type { Resolvers } from '../generated/resolvers-types.js';
import { checkKey, checkRead, checkWatch, type Limits } from '../domain/limits.js';
import { SubscriptionRefused, type Delivery } from '../reader/subscriptions.js';
import type { Committed } from '../ports.js';
import { readAll } from '../reader/loaders.js';
import type { RequestContext } from './context.js';
import { clientError, toClientError, wrongRole } from './errors.js';

const VersionScalar = new GraphQLScalarType<bigint, string>({
  name: 'Version',
  serialize: (value) => {
    if (typeof value !== 'bigint') throw new TypeError('Version must be a bigint');
    return value.toString();
  },
  parseValue: (value) => {
    if (typeof value !== 'string' || !/^\d+$/.test(value))
      throw new TypeError('Version is a decimal integer string');
    return BigInt(value);
  },
  parseLiteral: (ast) => {
    if (ast.kind !== Kind.STRING || !/^\d+$/.test(ast.value))
      throw new TypeError('Version is a decimal integer string');
    return BigInt(ast.value);
  },
});

function requireReader(ctx: RequestContext): NonNullable<RequestContext['reader']> {
  if (!ctx.reader) throw wrongRole('reader');
  return ctx.reader;
}

function requireWriter(ctx: RequestContext): NonNullable<RequestContext['writer']> {
  if (!ctx.writer) throw wrongRole('writer');
  return ctx.writer;
}

const written = (committed: Committed[]) => ({
  written: committed.map(({ key, version }) => ({ key, version })),
});

export function createResolvers(limits: Limits): Resolvers<RequestContext> {
  return {
    Version: VersionScalar,
    Query: {
      // Not async: when memory holds every key the field completes at once, with no promise to settle.
      values: (_root, { keys, fresh }, ctx) => {
        const reader = requireReader(ctx);
        const fail = (error: unknown): never => {
          throw toClientError(error, 'values', ctx.provisional);
        };
        try {
          checkRead(keys, limits);
          const results = readAll(reader, ctx.loaders, keys, fresh === true);
          if (Array.isArray(results)) return (ctx.budget.spend(results), results);
          return results.then((r) => (ctx.budget.spend(r), r)).catch(fail);
        } catch (error) {
          return fail(error);
        }
      },
      value: (_root, { key, fresh }, ctx) => {
        const reader = requireReader(ctx);
        const fail = (error: unknown): never => {
          throw toClientError(error, 'value', ctx.provisional);
        };
        try {
          checkKey(key, 'key', limits);
          const results = readAll(reader, ctx.loaders, [key], fresh === true);
          // One result per key asked: results[0] is there.
          if (Array.isArray(results)) return (ctx.budget.spend(results), results[0]!);
          return results.then((r) => (ctx.budget.spend(r), r[0]!)).catch(fail);
        } catch (error) {
          return fail(error);
        }
      },
      health: (_root, _args, ctx) => ({
        ok: true,
        roles: [...(ctx.reader ? ['reader'] : []), ...(ctx.writer ? ['writer'] : [])],
        feedCurrent: ctx.reader ? ctx.reader.feedCurrent : null,
      }),
    },
    Mutation: {
      setValues: async (_root, { entries, ttlSeconds }, ctx) => {
        const writer = requireWriter(ctx);
        try {
          return written(await writer.setValues(entries, ttlSeconds ?? null));
        } catch (error) {
          throw toClientError(error, 'setValues');
        }
      },
      deleteValues: async (_root, { keys }, ctx) => {
        const writer = requireWriter(ctx);
        try {
          return written(await writer.deleteValues(keys));
        } catch (error) {
          throw toClientError(error, 'deleteValues');
        }
      },
    },
    Subscription: {
      valueChanged: {
        subscribe: (_root, { keys, prefix, includeInitial }, ctx) => {
          if (!ctx.live) throw wrongRole('reader');
          try {
            checkWatch(keys ?? null, prefix ?? null, limits);
            return ctx.live.subscribe(
              { keys: keys ?? [], prefix: prefix ?? null },
              includeInitial ?? false,
              ctx.connection,
            );
          } catch (error) {
            if (error instanceof SubscriptionRefused)
              throw clientError('TOO_MANY_SUBSCRIPTIONS', error.message);
            throw toClientError(error, 'valueChanged');
          }
        },
        // The server's own end of a subscription reaches the client as a last event carrying the error.
        resolve: (delivery: Delivery) => {
          if ('ended' in delivery) throw clientError(delivery.ended, delivery.message);
          return delivery;
        },
      },
    },
    ValueChange: {
      exists: (event) => event.value !== null,
    },
    Entry: {
      exists: (entry) => entry.value !== null,
      source: (entry) => (entry.value === null ? 'NONE' : entry.origin === 'memory' ? 'MEMORY' : 'REDIS'),
    },
  };
}
