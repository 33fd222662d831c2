// The request guard's decisions on their own: who may read or write with which token, and how many keys an
// operation names once aliases, fragments and variables are taken into account.
import { parse, type GraphQLError } from 'graphql';
import { describe, expect, it } from 'vitest';
import { decodeUtf8, Guard, Refusal, type GuardOptions } from '../../src/http/guard.js';

const W = 'write-token-0123456789';
const R = 'read-token-0123456789';
const options = (more: Partial<GuardOptions> = {}): GuardOptions => ({
  writeTokens: [],
  readTokens: [],
  corsOrigins: [],
  introspection: false,
  maxQueryTokens: 1000,
  maxQueryDepth: 10,
  maxAliases: 10,
  maxReadKeys: 10,
  maxWriteEntries: 5,
  ...more,
});

describe('Guard.access', () => {
  it('is open where no tokens are set, and takes only listed bearer tokens where they are', () => {
    expect(new Guard(options()).access(undefined)).toEqual({ read: true, write: true });
    const guard = new Guard(options({ writeTokens: [W, 'other-write-token-000'], readTokens: [R] }));
    expect(guard.access(undefined)).toEqual({ read: false, write: false });
    expect(guard.access(`Bearer ${R}`)).toEqual({ read: true, write: false });
    expect(guard.access(`Bearer ${W}`)).toEqual({ read: true, write: true });
    expect(guard.access('Bearer other-write-token-000')).toEqual({ read: true, write: true });
    expect(guard.access(`bearer ${W}`)).toEqual({ read: true, write: true });
    for (const wrong of [
      W,
      `Basic ${W}`,
      `Bearer ${W}x`,
      `Bearer ${W.slice(1)}`,
      'Bearer ',
      `Bearer ${W} ${W}`,
    ])
      expect(guard.access(wrong), wrong).toEqual({ read: false, write: false });
  });

  it('keeps reads open when only writes need a token', () => {
    const guard = new Guard(options({ writeTokens: [W] }));
    expect(guard.access(undefined)).toEqual({ read: true, write: false });
    expect(guard.refuseReader(guard.access(undefined))).toBeNull();
    expect(guard.refuseReader(undefined)?.extensions.code).toBe('UNAUTHENTICATED');
  });
});

describe('the operation check', () => {
  // The plugin's onExecute hook, called as envelop would, returning what it answered instead of executing.
  function check(
    guard: Guard,
    query: string,
    variables: Record<string, unknown>,
    access = { read: true, write: true },
  ) {
    const plugin = guard.plugin();
    let refused: GraphQLError | undefined;
    const onExecute = plugin.onExecute as (payload: unknown) => unknown;
    onExecute({
      args: { document: parse(query), variableValues: variables, contextValue: { access } },
      setResultAndStopExecution: (result: { errors: GraphQLError[] }) => (refused = result.errors[0]),
    });
    return refused?.extensions;
  }
  const guard = new Guard(options());

  it('counts keys across fields, aliases, literal lists, variables and fragments used twice', () => {
    expect(
      check(guard, '{ a: values(keys: ["1","2","3","4","5"]) { key } b: value(key: "x") { key } }', {}),
    ).toBeUndefined();
    expect(
      check(guard, 'query ($k: [String!]!) { a: values(keys: $k) { key } b: values(keys: $k) { key } }', {
        k: ['1', '2', '3', '4', '5', '6'],
      }),
    ).toMatchObject({ code: 'BAD_USER_INPUT', argument: 'keys', limit: 'MAX_READ_KEYS', max: 10 });
    const fragments =
      'query ($k: [String!]!) { ...F ...G } fragment F on Query { values(keys: $k) { key } } fragment G on Query { ...F }';
    expect(check(guard, fragments, { k: ['1', '2', '3', '4', '5'] })).toBeUndefined();
    expect(check(guard, fragments, { k: ['1', '2', '3', '4', '5', '6'] })).toMatchObject({
      limit: 'MAX_READ_KEYS',
    });
  });

  it('counts mutation entries against MAX_WRITE_ENTRIES and asks mutations for a write token', () => {
    const set =
      'mutation ($e: [EntryInput!]!) { a: setValues(entries: $e) { written { key } } b: deleteValues(keys: ["x"]) { written { key } } }';
    const entries = (n: number) => Array.from({ length: n }, (_, i) => ({ key: `k${i}`, value: 'v' }));
    expect(check(guard, set, { e: entries(4) })).toBeUndefined();
    expect(check(guard, set, { e: entries(5) })).toMatchObject({
      argument: 'entries',
      limit: 'MAX_WRITE_ENTRIES',
    });
    expect(check(guard, set, { e: entries(1) }, { read: true, write: false })).toMatchObject({
      code: 'UNAUTHENTICATED',
      http: { status: 401 },
    });
    expect(check(guard, '{ health { ok } }', {}, { read: false, write: false })).toMatchObject({
      code: 'UNAUTHENTICATED',
    });
  });
});

describe('decodeUtf8', () => {
  it('refuses bytes that are not UTF-8 instead of replacing them', () => {
    expect(decodeUtf8(Buffer.from('ü🦀'), 'body')).toBe('ü🦀');
    for (const bad of [[0xff], [0xc3, 0x28], [0xed, 0xa0, 0x80]]) {
      expect(() => decodeUtf8(Uint8Array.from(bad), 'body')).toThrow(Refusal);
    }
  });
});
