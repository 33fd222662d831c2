// The request guard: every check a request must pass before tiercache does any work for it, written once
// and called from every way in — bearer tokens (WRITE_TOKENS / READ_TOKENS), the cross-site rules (content
// types, CORS), strict UTF-8 for URLs and bodies, and the cost limits of a GraphQL operation (document
// tokens, depth, aliases, keys per request). Nothing here touches the store or the bus.
//
// How each way in calls it:
// - HTTP, before any route (server.ts): `guard.cors(req, res)` answers preflights; `guard.checkHttp(req,
//   route)` refuses bad URLs, cross-site content types and missing tokens for /read, /write and /metrics.
// - REST bodies (rest.ts): `decodeUtf8(bytes)`.
// - GraphQL through yoga, or anything built on `yoga.getEnveloped()` (a compiled fast path, graphql-ws):
//   `guard.plugin()` caps parsing at MAX_QUERY_TOKENS, adds the depth / alias / introspection rules, strips
//   field suggestions, and before execute or subscribe checks the operation against the context's `access`
//   (mutations need write, everything else read) and the keys it names against MAX_READ_KEYS /
//   MAX_WRITE_ENTRIES. A context without `access` is refused: the check fails closed.
// - Subscriptions: put `access: guard.access(authorization)` in the context, where `authorization` is the
//   `Authorization` header of the SSE request or WebSocket upgrade, or `connectionParams.authorization` of a
//   graphql-ws `connection_init` (e.g. `{"authorization": "Bearer <token>"}`); to refuse the connection
//   itself, `guard.refuseReader(access)` returns the GraphQLError (UNAUTHENTICATED) to close it with.
import { createHash, timingSafeEqual } from 'node:crypto';
import { isUtf8 } from 'node:buffer';
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  getOperationAST,
  GraphQLError,
  Kind,
  NoSchemaIntrospectionCustomRule,
  parse,
  type ASTVisitor,
  type DocumentNode,
  type FragmentDefinitionNode,
  type SelectionSetNode,
  type ValidationContext,
} from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { countRefusal } from '../observability.js';

export interface GuardOptions {
  writeTokens: readonly string[];
  readTokens: readonly string[];
  corsOrigins: readonly string[];
  introspection: boolean;
  maxQueryTokens: number;
  maxQueryDepth: number;
  maxAliases: number;
  maxReadKeys: number;
  maxWriteEntries: number;
}

/** What a request's credentials allow. */
export interface Access {
  read: boolean;
  write: boolean;
}

/**
 * What the guard reads of a GraphQL context: the access its request or connection was granted, and whether
 * the execution is the fast path's provisional one (RequestContext.provisional).
 */
export interface GuardContext {
  readonly access?: Access;
  readonly provisional?: boolean;
}

/** A request refused before any work: HTTP status, extensions.code and a message the client can act on. */
export class Refusal extends Error {
  override readonly name = 'Refusal';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly extensions: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  toGraphQLError(): GraphQLError {
    return new GraphQLError(this.message, {
      extensions: {
        code: this.code,
        ...this.extensions,
        http: { status: this.status, headers: this.headers },
      },
    });
  }
}

// Headers a browser cannot send cross-site without a preflight: yoga's CSRF prevention plugin and Apollo's.
const CSRF_HEADERS = ['x-graphql-yoga-csrf', 'apollo-require-preflight', 'x-apollo-operation-name'];
const ROUTE_ACCESS: Record<string, keyof Access> = { '/read': 'read', '/write': 'write', '/metrics': 'read' };

const sha256 = (text: string): Buffer => createHash('sha256').update(text).digest();

/** Token sets compared in constant time: hashes of equal length, every configured token tried. */
class Tokens {
  private readonly hashes: Buffer[];
  constructor(tokens: readonly string[]) {
    this.hashes = tokens.map(sha256);
  }
  get open(): boolean {
    return this.hashes.length === 0;
  }
  has(presented: Buffer | null): boolean {
    if (presented === null) return false;
    let found = false;
    for (const hash of this.hashes) found = timingSafeEqual(hash, presented) || found;
    return found;
  }
}

function unauthenticated(what: 'read' | 'write'): Refusal {
  return new Refusal(
    401,
    'UNAUTHENTICATED',
    `${what === 'write' ? 'writing' : 'reading'} needs a valid token: send Authorization: Bearer <token>`,
    {},
    { 'www-authenticate': 'Bearer' },
  );
}

function tooComplex(message: string, limit: string, max: number): GraphQLError {
  return new GraphQLError(message, {
    extensions: { code: 'QUERY_TOO_COMPLEX', limit, max, http: { status: 400 } },
  });
}

/** Invalid UTF-8 would be decoded to U+FFFD, so two different byte strings would become one key. */
export function decodeUtf8(bytes: Uint8Array, where: string): string {
  if (!isUtf8(bytes)) throw new Refusal(400, 'BAD_REQUEST', `${where}: not valid UTF-8`);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
}

/** The media type of a Content-Type header, lower case, without parameters (no array per request). */
function mediaType(header: string | undefined): string {
  if (header === undefined) return '';
  const semicolon = header.indexOf(';');
  return (semicolon < 0 ? header : header.slice(0, semicolon)).trim().toLowerCase();
}

// graphql-js appends ` Did you mean "x"?` to unknown names: a map of the schema for whoever probes it.
const withoutSuggestion = (error: GraphQLError): GraphQLError => {
  const message = error.message.replace(/ Did you mean .*\?$/s, '');
  if (message === error.message) return error;
  return new GraphQLError(message, {
    nodes: error.nodes,
    source: error.source,
    positions: error.positions,
    path: error.path,
    originalError: error.originalError,
    extensions: error.extensions,
  });
};

export class Guard {
  private readonly writers: Tokens;
  private readonly readers: Tokens;
  private readonly origins: Set<string>;
  /** What a request without an Authorization header may do: the same for every such request. */
  private readonly anonymous: Access;

  constructor(private readonly options: GuardOptions) {
    this.writers = new Tokens(options.writeTokens);
    this.readers = new Tokens(options.readTokens);
    this.origins = new Set(options.corsOrigins);
    this.anonymous = Object.freeze(this.accessOf(undefined));
  }

  /** What an `Authorization` header value allows; write tokens may read too. */
  access(authorization: string | null | undefined): Access {
    return authorization === undefined || authorization === null
      ? this.anonymous
      : this.accessOf(authorization);
  }

  private accessOf(authorization: string | undefined): Access {
    const match = /^Bearer +([^\s]+) *$/i.exec(authorization ?? '');
    // The group is not optional: in any match it holds the token.
    const presented = match ? sha256(match[1]!) : null;
    const write = this.writers.open || this.writers.has(presented);
    const read =
      this.readers.open || this.readers.has(presented) || (!this.writers.open && this.writers.has(presented));
    return { read, write };
  }

  /** For a subscription transport: the error to refuse a connection with, or null when it may read. */
  refuseReader(access: Access | undefined): GraphQLError | null {
    return access?.read ? null : unauthenticated('read').toGraphQLError();
  }

  /**
   * CORS, off unless CORS_ORIGINS lists the request's origin. Answers a preflight itself (true: done).
   * No credentials are allowed: tokens travel in a header the caller's script sets, never in cookies.
   */
  cors(req: IncomingMessage, res: ServerResponse): boolean {
    const origin = req.headers.origin;
    const any = this.origins.has('*');
    const allowed = origin !== undefined && (any || this.origins.has(origin));
    if (allowed) {
      res.setHeader('access-control-allow-origin', any ? '*' : origin);
      res.setHeader('vary', 'Origin');
    }
    if (req.method !== 'OPTIONS' || req.headers['access-control-request-method'] === undefined) return false;
    if (allowed) {
      res.setHeader('access-control-allow-methods', 'GET, POST');
      res.setHeader(
        'access-control-allow-headers',
        ['authorization', 'content-type', ...CSRF_HEADERS].join(', '),
      );
      res.setHeader('access-control-max-age', '600');
    }
    res.writeHead(204).end();
    return true;
  }

  /** The checks every request passes before its route: URL bytes, cross-site bodies, route tokens. */
  checkHttp(req: IncomingMessage, route: string): Refusal | null {
    // Node hands the request line over as latin-1: a raw byte >= 0x80 would silently become another key.
    const rawUrl = req.url ?? '/';
    if (!/^[\x21-\x7e]*$/.test(rawUrl))
      return new Refusal(
        400,
        'BAD_REQUEST',
        'URL: only ASCII is allowed; percent-encode other bytes as UTF-8',
      );
    const query = rawUrl.indexOf('?');
    // Only a percent escape can fail to decode: a query without one (most hot reads) is valid as it is.
    if (query >= 0 && rawUrl.includes('%', query)) {
      for (const part of rawUrl.slice(query + 1).split('&')) {
        try {
          decodeURIComponent(part.replace(/\+/g, ' '));
        } catch {
          return new Refusal(400, 'BAD_REQUEST', 'URL query: percent-encoded bytes are not valid UTF-8');
        }
      }
    }
    if (req.method === 'POST') {
      const type = mediaType(req.headers['content-type']);
      // Form, multipart and text/plain bodies are what a page on another site can send without asking.
      const crossSiteSafe =
        type === 'application/json' ||
        (route === '/graphql' && CSRF_HEADERS.some((h) => req.headers[h] !== undefined));
      if (!crossSiteSafe) {
        return new Refusal(
          415,
          'UNSUPPORTED_MEDIA_TYPE',
          route === '/graphql'
            ? 'POST bodies must be application/json (or carry an x-graphql-yoga-csrf header)'
            : 'POST bodies must be application/json',
        );
      }
    }
    const needs = ROUTE_ACCESS[route];
    if (needs && !this.access(req.headers.authorization)[needs]) return unauthenticated(needs);
    return null;
  }

  /** The yoga (envelop) plugin: everything a GraphQL operation must pass before it executes. */
  plugin(): Plugin<GuardContext> {
    const { maxQueryTokens, maxQueryDepth, maxAliases, introspection } = this.options;
    return {
      onRequestParse: ({ request, requestParser, setRequestParser, fetchAPI }) => {
        if (request.method !== 'POST' || !requestParser) return;
        setRequestParser(async (req) => {
          const bytes = new Uint8Array(await req.arrayBuffer());
          try {
            decodeUtf8(bytes, 'body');
          } catch (error) {
            throw error instanceof Refusal ? error.toGraphQLError() : error;
          }
          return requestParser(
            new fetchAPI.Request(req.url, { method: req.method, headers: req.headers, body: bytes }),
          );
        });
      },
      onParse: ({ setParseFn }) => {
        setParseFn((source, options) => {
          try {
            return parse(source, { ...options, maxTokens: maxQueryTokens });
          } catch (error) {
            if (
              error instanceof GraphQLError &&
              /Document contains more th[ae]t \d+ tokens/.test(error.message)
            ) {
              countRefusal('QUERY_TOO_COMPLEX');
              throw tooComplex(
                `the document has more than ${maxQueryTokens} tokens (MAX_QUERY_TOKENS)`,
                'MAX_QUERY_TOKENS',
                maxQueryTokens,
              );
            }
            throw error;
          }
        });
      },
      onValidate: ({ addValidationRule }) => {
        addValidationRule(depthRule(maxQueryDepth));
        addValidationRule(aliasRule(maxAliases));
        if (!introspection) addValidationRule(NoSchemaIntrospectionCustomRule);
        return ({ result, setResult }) => {
          if (result.length === 0) return;
          // What graphql's validate() answers, which envelop types loosely (`Error[] | any[]`): every rule,
          // graphql's own and ours (depthRule, aliasRule), reports through context.reportError(GraphQLError).
          const errors = result as GraphQLError[];
          if (errors.some((e) => e.extensions.code === 'QUERY_TOO_COMPLEX'))
            countRefusal('QUERY_TOO_COMPLEX');
          setResult(errors.map(withoutSuggestion));
        };
      },
      onExecute: ({ args, setResultAndStopExecution }) => {
        const refusal = this.checkOperation(
          args.document,
          args.operationName,
          args.variableValues,
          args.contextValue,
        );
        if (refusal) return void setResultAndStopExecution({ errors: [refusal] });
        return {
          onExecuteDone: ({ result, setResult }) => {
            // Variable coercion errors come from execute, with the same suggestions.
            if ('errors' in result && result.errors)
              setResult({ ...result, errors: result.errors.map(withoutSuggestion) });
          },
        };
      },
      onSubscribe: ({ args, setResultAndStopExecution }) => {
        const refusal = this.checkOperation(
          args.document,
          args.operationName,
          args.variableValues,
          args.contextValue,
        );
        if (refusal) setResultAndStopExecution({ errors: [refusal] });
      },
    };
  }

  /**
   * What the plugin's execute hook checks (access, keys across fields and aliases): the compiled fast path
   * calls this very function when it executes without envelop (src/http/fast-path.ts).
   */
  checkOperation(
    document: DocumentNode,
    operationName: string | null | undefined,
    variables: Readonly<Record<string, unknown>> | null | undefined,
    context: GuardContext | null | undefined,
  ): GraphQLError | null {
    const refusal = this.operationRefusal(document, operationName, variables, context);
    // A provisional execution's errors are discarded and yoga executes again: counted then, once.
    if (refusal && !context?.provisional) countRefusal(String(refusal.extensions.code));
    return refusal;
  }

  /** Tokens for the operation's kind, then the keys it names across all fields, aliases and fragments. */
  private operationRefusal(
    document: DocumentNode,
    operationName: string | null | undefined,
    variables: Readonly<Record<string, unknown>> | null | undefined,
    context: GuardContext | null | undefined,
  ): GraphQLError | null {
    const operation = getOperationAST(document, operationName);
    if (!operation) return null; // execute itself reports the missing operation
    const access = context?.access;
    const writes = operation.operation === 'mutation';
    if (!(writes ? access?.write : access?.read))
      return unauthenticated(writes ? 'write' : 'read').toGraphQLError();
    const fragments = new Map<string, FragmentDefinitionNode>();
    for (const d of document.definitions)
      if (d.kind === Kind.FRAGMENT_DEFINITION) fragments.set(d.name.value, d);
    const keys = countKeys(operation.selectionSet, fragments, variables ?? {}, new Map());
    const max = writes ? this.options.maxWriteEntries : this.options.maxReadKeys;
    if (keys <= max) return null;
    const limit = writes ? 'MAX_WRITE_ENTRIES' : 'MAX_READ_KEYS';
    const argument = writes ? 'entries' : 'keys';
    return new GraphQLError(
      `the request names ${keys} ${writes ? 'entries' : 'keys'} across its fields and aliases, more than the limit of ${max} (${limit})`,
      { extensions: { code: 'BAD_USER_INPUT', argument, limit, max, http: { status: 400 } } },
    );
  }
}

/**
 * Keys a selection names: each `keys` / `entries` list's length and 1 per `key`, for every field and alias
 * (fields are not de-duplicated: a repeated field may be answered, and cost, again). Fragments are counted
 * once each and multiplied by their uses, so nested spreads cannot make this slow.
 */
function countKeys(
  selectionSet: SelectionSetNode,
  fragments: ReadonlyMap<string, FragmentDefinitionNode>,
  variables: Readonly<Record<string, unknown>>,
  memo: Map<string, number>,
): number {
  let total = 0;
  for (const selection of selectionSet.selections) {
    if (selection.kind === Kind.FIELD) {
      for (const arg of selection.arguments ?? []) {
        const name = arg.name.value;
        if (name !== 'keys' && name !== 'entries' && name !== 'key') continue;
        if (name === 'key') total += 1;
        else if (arg.value.kind === Kind.LIST) total += arg.value.values.length;
        else if (arg.value.kind === Kind.VARIABLE) {
          const value = variables[arg.value.name.value];
          total += Array.isArray(value) ? value.length : 1;
        } else total += 1;
      }
      if (selection.selectionSet) total += countKeys(selection.selectionSet, fragments, variables, memo);
    } else if (selection.kind === Kind.INLINE_FRAGMENT) {
      total += countKeys(selection.selectionSet, fragments, variables, memo);
    } else {
      const name = selection.name.value;
      let count = memo.get(name);
      if (count === undefined) {
        memo.set(name, 0); // a cycle (refused by validation anyway) counts as nothing rather than looping
        const fragment = fragments.get(name);
        count = fragment ? countKeys(fragment.selectionSet, fragments, variables, memo) : 0;
        memo.set(name, count);
      }
      total += count;
    }
  }
  return total;
}

/** Refuses operations nested deeper than `max` fields, through fragments (each measured once). */
function depthRule(max: number) {
  return (context: ValidationContext): ASTVisitor => {
    const memo = new Map<string, number>();
    const depth = (set: SelectionSetNode): number => {
      let deepest = 0;
      for (const s of set.selections) {
        let d: number;
        if (s.kind === Kind.FIELD) d = s.selectionSet ? 1 + depth(s.selectionSet) : 1;
        else if (s.kind === Kind.INLINE_FRAGMENT) d = depth(s.selectionSet);
        else {
          const name = s.name.value;
          const known = memo.get(name);
          if (known !== undefined) d = known;
          else {
            memo.set(name, 0);
            const fragment = context.getFragment(name);
            d = fragment ? depth(fragment.selectionSet) : 0;
            memo.set(name, d);
          }
        }
        if (d > deepest) deepest = d;
      }
      return deepest;
    };
    return {
      OperationDefinition(node) {
        const d = depth(node.selectionSet);
        if (d > max) {
          context.reportError(
            tooComplex(
              `the operation nests ${d} fields deep, more than ${max} (MAX_QUERY_DEPTH)`,
              'MAX_QUERY_DEPTH',
              max,
            ),
          );
        }
      },
    };
  };
}

/** Refuses documents with more than `max` aliased fields: each alias is more work for one request. */
function aliasRule(max: number) {
  return (context: ValidationContext): ASTVisitor => {
    let aliases = 0;
    return {
      Field(node) {
        if (node.alias && ++aliases === max + 1) {
          context.reportError(
            tooComplex(`the document has more than ${max} aliases (MAX_ALIASES)`, 'MAX_ALIASES', max),
          );
        }
      },
    };
  };
}
