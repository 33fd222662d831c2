// The GraphQL resolvers: thin translations between the schema and the reader and writer.
import { GraphQLScalarType, Kind } from 'graphql';
import type { Resolvers } from '../generated/resolvers-types.js';
import { checkKey, checkRead, type Limits } from '../domain/limits.js';
import type { Committed } from '../ports.js';
import { loadAll } from '../reader/loaders.js';
import type { RequestContext } from './context.js';
import { toClientError, wrongRole } from './errors.js';

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
      values: async (_root, { keys, fresh }, ctx) => {
        requireReader(ctx);
        try {
          checkRead(keys, limits);
          const results = await loadAll(fresh ? ctx.loaders.fresh : ctx.loaders.cached, keys);
          ctx.budget.spend(results);
          return results;
        } catch (error) {
          throw toClientError(error, 'values');
        }
      },
      value: async (_root, { key, fresh }, ctx) => {
        requireReader(ctx);
        try {
          checkKey(key, 'key', limits);
          const result = await (fresh ? ctx.loaders.fresh : ctx.loaders.cached).load(key);
          ctx.budget.spend([result]);
          return result;
        } catch (error) {
          throw toClientError(error, 'value');
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
    Entry: {
      exists: (entry) => entry.value !== null,
      source: (entry) => (entry.value === null ? 'NONE' : entry.origin === 'memory' ? 'MEMORY' : 'REDIS'),
    },
  };
}
