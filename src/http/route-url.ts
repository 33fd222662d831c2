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
  readonly searchParams: URLSearchParams;
}

/** A route's own path, its query parsed on first use (a class: an object literal with a getter cost more). */
class KnownRoute implements RouteUrl {
  private params: URLSearchParams | undefined;
  constructor(
    readonly pathname: string,
    private readonly query: string,
  ) {}
  get searchParams(): URLSearchParams {
    return (this.params ??= new URLSearchParams(this.query));
  }
}

/**
 * The request's path and query. A path that is exactly one of the routes (no dot segments, escapes or
 * doubled slashes) is taken as it is, without building a WHATWG URL per hot request; anything else is
 * normalised by URL as before, so both ways agree on every path.
 */
export function routeOf(raw: string): RouteUrl {
  const q = raw.indexOf('?');
  const path = q < 0 ? raw : raw.slice(0, q);
  if (KNOWN.has(path) && !raw.includes('#')) return new KnownRoute(path, q < 0 ? '' : raw.slice(q + 1));
  return new URL(raw, 'http://localhost');
}
