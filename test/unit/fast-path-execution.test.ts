// The compiled fast path executes without envelop only when that runs every execute hook envelop would:
// the guard's (its check is called directly), its own, and yoga's error masking (which only rewrites
// results with errors, never answered by the fast path). Any other execute hook or any instrumentation,
// and it executes through envelop. The corpus in test/e2e/fast-path.test.ts checks what it answers.
import { createSchema, createYoga, type Plugin } from 'graphql-yoga';
import { describe, expect, it } from 'vitest';
import type { RequestContext } from '../../src/graphql/context.js';
import { FastPath } from '../../src/http/fast-path.js';
import { Guard } from '../../src/http/guard.js';

const schema = createSchema<RequestContext>({ typeDefs: 'type Query { ok: Boolean }' });
const guard = new Guard({
  writeTokens: [],
  readTokens: [],
  corsOrigins: [],
  introspection: false,
  maxQueryTokens: 1000,
  maxQueryDepth: 10,
  maxAliases: 10,
  maxReadKeys: 10,
  maxWriteEntries: 5,
});

function executesDirectly(
  extra: Plugin[] = [],
  { guardPlugin = guard.plugin(), maskedErrors = true } = {},
): boolean {
  const fast = new FastPath(
    schema,
    () => {
      throw new Error('no request in this test');
    },
    { plugin: guardPlugin, check: (...args) => guard.checkOperation(...args) },
  );
  const yoga = createYoga<object, RequestContext>({
    schema,
    maskedErrors,
    plugins: [guardPlugin, fast.plugin(), ...extra],
  });
  return fast.executesDirectly(yoga);
}

describe('the fast path without envelop', () => {
  it('executes directly beside the guard, its own plugin and yoga’s error masking (on or off)', () => {
    expect(executesDirectly()).toBe(true);
    expect(executesDirectly([], { maskedErrors: false })).toBe(true);
    // Plugins without execute hooks change nothing here.
    expect(executesDirectly([{ onParse: () => undefined }])).toBe(true);
  });

  it('goes through envelop for any other execute hook, instrumentation, or a guard plugin it was not given', () => {
    expect(executesDirectly([{ onExecute: () => undefined }])).toBe(false);
    expect(executesDirectly([{ instrumentation: { execute: (_payload, wrapped) => wrapped() } }])).toBe(
      false,
    );
    expect(executesDirectly([guard.plugin()])).toBe(false);
  });
});
