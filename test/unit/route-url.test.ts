// Routing reads a request's path and query without building a WHATWG URL for the routes' own paths: it must
// read every URL exactly as URL would.
import { describe, expect, it } from 'vitest';
import { routeOf } from '../../src/http/route-url.js';

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
