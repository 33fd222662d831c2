// The fast path keeps the parameters of the last plain bodies so that a hot client's repeated bytes are not
// parsed again; what it keeps must stay small whatever clients send (MAX_REQUEST_BYTES allows 64 MiB).
import { describe, expect, it } from 'vitest';
import { PARAMS_CACHED_MAX_BYTES, ParamsCache } from '../../src/http/fast-path.js';

const bodyOf = (params: object): Buffer => Buffer.from(JSON.stringify(params));

describe('the fast path’s cache of request parameters', () => {
  it('answers a repeated small body from what it kept, frozen', () => {
    const cache = new ParamsCache();
    const body = bodyOf({
      query: 'query($k: [String!]!) { values(keys: $k) { value } }',
      variables: { k: ['a'] },
    });
    const first = cache.get(body);
    expect(first?.params.variables).toEqual({ k: ['a'] });
    expect(cache.get(Buffer.from(body))).toBe(first);
    expect(Object.isFrozen(first?.params.variables?.k)).toBe(true);
  });

  it('keeps nothing of a body above its bound, however often it comes', () => {
    const cache = new ParamsCache();
    const pad = 'x'.repeat(PARAMS_CACHED_MAX_BYTES);
    const body = bodyOf({ query: '{ __typename }', variables: { pad } });
    const first = cache.get(body);
    expect(first?.params.variables).toEqual({ pad });
    const second = cache.get(body);
    expect(second).not.toBe(first);
    expect(second?.params.variables).toEqual({ pad });
  });

  it('keeps a body exactly at its bound', () => {
    const cache = new ParamsCache();
    const bare = bodyOf({ query: '{ __typename }', variables: { pad: '' } }).length;
    const body = bodyOf({
      query: '{ __typename }',
      variables: { pad: 'x'.repeat(PARAMS_CACHED_MAX_BYTES - bare) },
    });
    expect(body.length).toBe(PARAMS_CACHED_MAX_BYTES);
    expect(cache.get(body)).toBe(cache.get(body));
  });
});
