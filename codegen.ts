// Generates the resolver types from schema/*.graphql; `npm run codegen:check` fails CI when they are stale.
import type { CodegenConfig } from '@graphql-codegen/cli';

const config: CodegenConfig = {
  schema: 'schema/*.graphql',
  generates: {
    'src/generated/resolvers-types.ts': {
      plugins: ['typescript', 'typescript-resolvers'],
      config: {
        useIndexSignature: false,
        useTypeImports: true,
        enumsAsTypes: true,
        strictScalars: true,
        scalars: { Version: { input: 'string', output: 'bigint' } },
        contextType: '../graphql/context.js#RequestContext',
        mappers: {
          Entry: '../reader/reader.js#ReadResult',
          ValueChange: '../domain/subscription-index.js#ValueEvent',
        },
        avoidOptionals: { field: true, inputValue: false, object: false, defaultValue: false },
      },
    },
  },
};

export default config;
