// The path and query of a request as routing reads them, cheaply for the routes' own paths.

/** Every path the server routes (anything else is yoga's, or a 404). */
export const ROUTES = [
  '/graphql',
  '/graphql/stream',
  '/live',
  '/read',
  '/write',
  '/metrics',
  '/ready',
  '/health',
] as const;
const KNOWN = new Set<string>(ROUTES);

/** What routing reads of a request's URL. */
export interface RouteUrl {
  readonly pathname: string;
  /** The query without its `?`, as `searchParams` reads it. */
  readonly query: string;
  readonly searchParams: URLSearchParams;
}

/** A route's own path, its query parsed on first use (a class: an object literal with a getter cost more). */
class KnownRoute implements RouteUrl {
  private params: URLSearchParams | undefined;
  constructor(
    readonly pathname: string,
    readonly query: string,
  ) {}
  get searchParams(): URLSearchParams {
    return (this.params ??= new URLSearchParams(this.query));
  }
}

/**
 * The request's path and query. A path that is exactly one of the routes (no dot segments, escapes or
 * doubled slashes) is taken as it is, without building a WHATWG URL per hot request; anything else is
 * normalised by URL as before, so both ways agree on every path. (A query starting with a second `?` goes
 * to URL too: URLSearchParams would drop that `?`, URL keeps it in the first name.)
 */
export function routeOf(raw: string): RouteUrl {
  const q = raw.indexOf('?');
  const path = q < 0 ? raw : raw.slice(0, q);
  if (KNOWN.has(path) && !raw.includes('#') && raw.charCodeAt(q + 1) !== QUESTION)
    return new KnownRoute(path, q < 0 ? '' : raw.slice(q + 1));
  const url = new URL(raw, 'http://localhost');
  return { pathname: url.pathname, query: url.search.slice(1), searchParams: url.searchParams };
}
const QUESTION = 0x3f;

/**
 * `url.searchParams.get(name)`, without parsing the whole query when it has no `%` or `+` (the only
 * characters form decoding changes): then the first `&`-separated field whose name is `name` gives the
 * value as it stands (`''` for a field without `=`). Otherwise URLSearchParams decides.
 * test/unit/route-url.test.ts compares both over a corpus of query strings.
 */
export function queryParam(url: RouteUrl, name: string): string | null {
  const query = url.query;
  if (query.includes('%') || query.includes('+')) return url.searchParams.get(name);
  for (let start = 0; start <= query.length;) {
    let end = query.indexOf('&', start);
    if (end < 0) end = query.length;
    let eq = query.indexOf('=', start);
    if (eq < 0 || eq > end) eq = end;
    if (eq - start === name.length && query.startsWith(name, start))
      return eq === end ? '' : query.slice(eq + 1, end);
    start = end + 1;
  }
  return null;
}
