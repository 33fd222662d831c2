// Routing reads a request's path and query without building a WHATWG URL for the routes' own paths, and a
// parameter without URLSearchParams when the query needs no decoding: both must read every URL exactly as
// URL would.
import { describe, expect, it } from 'vitest';
import { queryParam, routeOf } from '../../src/http/route-url.js';

const URLS = [
  '/graphql',
  '/graphql?',
  '/graphql?x=1',
  '/read?keys=a,b,c',
  '/read?keys=a%2Cb,c',
  '/read?keys=a%26b,c%3Dd,e%25f',
  '/read?keys=a+b,%20c',
  '/read?keys=%C3%A9,%E2%82%AC',
  '/read?keys=a\'b,"c",<d>,`e`,{f}',
  '/read?keys=a&keys=b',
  '/read??keys=a',
  '/read?&keys=a',
  '/read?keys=',
  '/read?keys',
  '/read?other=1&keys=x',
  '/read?keys=a#b',
  '/read#x?keys=a',
  '/read/?keys=a',
  '/./read?keys=a',
  '/x/../read?keys=a',
  '//read?keys=a',
  '/%72ead?keys=a',
  '/READ?keys=a',
  '/live?asset=live.js',
  '/metrics',
  '/nowhere?keys=a',
  '/',
];

describe('routeOf', () => {
  it.each(URLS)('reads %s as URL does', (raw) => {
    const url = new URL(raw, 'http://localhost');
    const route = routeOf(raw);
    expect(route.pathname).toBe(url.pathname);
    expect([...route.searchParams]).toEqual([...url.searchParams]);
    expect(route.searchParams.get('keys')).toBe(url.searchParams.get('keys'));
  });
});

// Query strings as GET /read receives them: repeated fields, fields without `=`, empty values, `+` and
// escapes, names that contain or extend `keys`, `=` inside values, other fields around.
const QUERIES = [
  '',
  'keys=a,b,c',
  'keys=',
  'keys',
  'keys&keys=a',
  'keys=a&keys=b',
  'keys=a&keys',
  'other=1&keys=x',
  'keys=x&other=1',
  'keysx=1&keys=y',
  'xkeys=1&keys=y',
  'keys=a=b,c',
  '=keys&keys=z',
  'keys=&keys=a',
  '&&keys=a&&',
  '&',
  'KEYS=a',
  'keys=a+b',
  'keys+=a&keys=b',
  'keys=a%2Cb,c',
  'ke%79s=a&keys=b',
  'keys=%E2%82%AC,%C3',
  'keys=a;b',
  'keys=a?b,c/d',
  'other',
  'other=keys=a',
  '?keys=a',
];

describe('queryParam', () => {
  it.each(QUERIES)('reads keys from %j as URLSearchParams does', (query) => {
    const raw = `/read?${query}`;
    expect(queryParam(routeOf(raw), 'keys')).toBe(new URL(raw, 'http://localhost').searchParams.get('keys'));
    expect(queryParam(routeOf(raw), 'other')).toBe(
      new URL(raw, 'http://localhost').searchParams.get('other'),
    );
  });

  it('reads the query of a path URL normalises too', () => {
    expect(queryParam(routeOf('/x/../read?keys=a,b'), 'keys')).toBe('a,b');
  });
});
