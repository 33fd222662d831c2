// The compiled fast path for the hot shape: a POST application/json GraphQL query whose answer has no
// errors, executed by graphql-jit straight on node:http. Documents are parsed and validated once per query
// text through yoga's own enveloped parse and validate, so every plugin yoga runs at those steps (the
// request guard's token, depth, alias and introspection checks among them) runs here too, written once.
// Execution runs every execute hook of yoga's plugins: through envelop's orchestrator when a plugin is one
// the fast path does not know, else directly (the orchestrator's promise plumbing was 5% of a hot answer's
// CPU): the guard's own check (access, keys), then the compiled query. Anything else goes to yoga: other
// methods, media types and Accept headers, mutations and subscriptions, documents that fail to parse or
// validate, and any execution with an error (re-executed by yoga, which only reads, to give yoga's own
// answer).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isUtf8 } from 'node:buffer';
import {
  getOperationAST,
  type DocumentNode,
  type ExecutionResult,
  type GraphQLError,
  type GraphQLSchema,
} from 'graphql';
import { compileQuery, isCompiledQuery, type CompiledQuery } from 'graphql-jit';
import type { Plugin, YogaServerInstance } from 'graphql-yoga';
import type { RequestContext } from '../graphql/context.js';
import { log, metrics } from '../observability.js';
import { sendBody } from './rest.js';

type Yoga = YogaServerInstance<object, RequestContext>;
type Enveloped = ReturnType<Yoga['getEnveloped']>;

/** The compiled query a context built by the fast path runs (yoga's own contexts have none). */
const COMPILED = Symbol('compiled query');
type FastContext = RequestContext & { [COMPILED]?: CompiledQuery };

const fastPathRequests = metrics.counter(
  'tiercache_http_fast_path_total',
  'GraphQL requests the compiled fast path looked at: answered itself, or handed to yoga',
);
const answeredCount = fastPathRequests.bind({ outcome: 'answered' });
const yogaCount = fastPathRequests.bind({ outcome: 'yoga' });

// Hot reads are small; a larger body goes to yoga unread (the fast path would hold it twice).
const MAX_BODY_BYTES = 64 * 1024;

/** Compiled queries kept, by query text and operation name; past it, the oldest is dropped. */
const MAX_DOCUMENTS = 1000;

// What yoga answers a successful query with, per Accept header the fast path takes; other Accept headers
// (lists, parameters, multipart, event streams) go to yoga's own negotiation.
const CONTENT_TYPE: Record<string, string> = {
  '': 'application/json; charset=utf-8',
  '*/*': 'application/json; charset=utf-8',
  'application/json': 'application/json; charset=utf-8',
  'application/graphql-response+json': 'application/graphql-response+json; charset=utf-8',
  'application/graphql-response+json, application/json': 'application/graphql-response+json; charset=utf-8',
  'application/graphql-response+json;charset=utf-8, application/json;charset=utf-8':
    'application/graphql-response+json; charset=utf-8',
};

/** A plugin whose execute hook the fast path runs itself, and the check that hook makes. */
export interface ExecuteCheck {
  /** Compared by identity with the plugins yoga runs. */
  readonly plugin: object;
  check(
    document: DocumentNode,
    operationName: string | null | undefined,
    variables: Readonly<Record<string, unknown>> | undefined,
    context: RequestContext,
  ): GraphQLError | null;
}

/**
 * The execute hooks yoga adds itself that direct execution stands in for, each recognised by its plugin's
 * hooks and its source, so that another version of them makes the fast path use envelop:
 * - envelop's engine hook sets the executor to graphql's execute; the fast path's own hook, later in the
 *   list, replaces that with the compiled query (so it must come first);
 * - envelop's error masking only rewrites results that have errors, and the fast path answers none of those
 *   (yoga executes them again).
 */
const YOGA_HOOKS = [
  {
    hooks: 'onExecute,onParse,onSubscribe,onValidate',
    source:
      /^\(\{ setExecuteFn \}\) => \{\s*if \(engine\.execute\) \{\s*setExecuteFn\(engine\.execute\);\s*\}\s*\}$/,
    beforeOwn: true,
  },
  {
    hooks: 'onExecute,onPluginInit,onSubscribe',
    source:
      /^onExecute\(\) \{\s*return \{\s*onExecuteDone\(payload\) \{\s*return handleStreamOrSingleExecutionResult\(payload, handleResult\);\s*\},?\s*\};\s*\}$/,
    beforeOwn: false,
  },
];

function isYogaHook(plugin: Partial<Plugin>, beforeOwn: boolean): boolean {
  const hooks = Object.keys(plugin).sort().join();
  const source = String(plugin.onExecute);
  return YOGA_HOOKS.some(
    (known) => known.hooks === hooks && known.source.test(source) && (beforeOwn || !known.beforeOwn),
  );
}

/** One query text (and operation name) the fast path has looked at: compiled, or left to yoga. */
type Prepared = { document: DocumentNode; compiled: CompiledQuery } | 'yoga';

interface Params {
  query: string;
  variables: Record<string, unknown> | undefined;
  operationName: string | undefined;
}

const FIELDS = new Set(['query', 'variables', 'operationName', 'extensions']);

/** The request's parameters when they are the plain shape; undefined sends the request to yoga. */
function parseParams(body: Buffer): Params | undefined {
  if (!isUtf8(body)) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return undefined;
  // A plain object, checked field by field below.
  const p = parsed as Record<string, unknown>;
  for (const name in p) if (!FIELDS.has(name)) return undefined;
  const { query, variables, operationName, extensions } = p;
  if (typeof query !== 'string') return undefined;
  if (extensions !== undefined && extensions !== null) return undefined;
  if (operationName !== undefined && operationName !== null && typeof operationName !== 'string')
    return undefined;
  if (
    variables !== undefined &&
    variables !== null &&
    (typeof variables !== 'object' || Array.isArray(variables))
  )
    return undefined;
  return {
    query,
    // Proven a plain object (or absent) just above.
    variables: (variables ?? undefined) as Record<string, unknown> | undefined,
    operationName: operationName ?? undefined,
  };
}

/** A body's parameters, and what the fast path prepared for them once it knew. */
interface Known {
  readonly params: Params;
  prepared: Prepared | undefined;
}

/**
 * The last bodies whose parameters were the plain shape: a hot client sends the same bytes again and again,
 * and comparing them (memcmp) costs less than checking, parsing and looking them up again. Shared between
 * requests, so the parameters are frozen: nothing downstream may change a request's variables. Only small
 * bodies are kept (hot queries are a few hundred bytes): freezing walks the parsed value recursively, which
 * a 32 KB body nested 16,000 levels deep overflowed (a 500 where yoga answers), and what is held stays at
 * 64 KiB of bodies instead of 1 MiB (16 × MAX_BODY_BYTES).
 */
export class ParamsCache {
  private readonly bodies: Buffer[] = [];
  private readonly known: Known[] = [];
  private next = 0;

  get(body: Buffer): Known | undefined {
    for (let i = 0; i < this.bodies.length; i++) if (this.bodies[i]!.equals(body)) return this.known[i];
    const params = parseParams(body);
    if (params === undefined) return undefined;
    if (body.length > PARAMS_CACHED_MAX_BYTES) return { params, prepared: undefined };
    deepFreeze(params);
    const known = { params, prepared: undefined };
    // A copy: the request's own buffer may be a view of a larger one.
    this.bodies[this.next] = Buffer.from(body);
    this.known[this.next] = known;
    this.next = (this.next + 1) % PARAMS_CACHED;
    return known;
  }
}
const PARAMS_CACHED = 16;
export const PARAMS_CACHED_MAX_BYTES = 4096;

function deepFreeze(value: unknown): void {
  if (typeof value !== 'object' || value === null || Object.isFrozen(value)) return;
  Object.freeze(value);
  for (const inner of Object.values(value)) deepFreeze(inner);
}

function isThenable<T>(value: T | PromiseLike<T>): value is PromiseLike<T> {
  return typeof (value as { then?: unknown }).then === 'function';
}

function counted(answered: boolean): boolean {
  (answered ? answeredCount : yogaCount).inc();
  return answered;
}

/** Writes a result without errors as yoga would (true); a result yoga must answer is not written (false). */
function send(req: IncomingMessage, res: ServerResponse, result: ExecutionResult): boolean {
  if (result.errors !== undefined || result.extensions !== undefined || res.headersSent) return false;
  sendBody(
    res,
    200,
    CONTENT_TYPE[req.headers.accept ?? ''] ?? 'application/json; charset=utf-8',
    JSON.stringify(result),
  );
  return true;
}

export class FastPath {
  private readonly params = new ParamsCache();
  private readonly prepared = new Map<string, Prepared>();
  /**
   * yoga's enveloped functions, built once: when no plugin hooks the enveloping itself (onEnveloped, or
   * instrumentation), what getEnveloped() returns does not depend on the context, and building it per
   * request only cost time. With such a plugin it is built per request, as yoga does.
   */
  private shared: Enveloped | null | undefined;
  /** Query text → the document yoga parsed from it. */
  private readonly documents = new Map<string, DocumentNode>();
  /** Whether yoga's validation passed a document. */
  private readonly validated = new WeakMap<DocumentNode, boolean>();

  /** Whether every execute hook of yoga's plugins is one the fast path runs itself (decided on first use). */
  private direct: boolean | undefined;
  private readonly own: Plugin;

  constructor(
    private readonly schema: GraphQLSchema,
    private readonly contextFor: (authorization: string | undefined) => RequestContext,
    private readonly guard: ExecuteCheck,
  ) {
    this.own = this.makePlugin();
  }

  /** Whether the request's method and headers are the shape the fast path takes (its body is read next). */
  static accepts(req: IncomingMessage): boolean {
    const type = req.headers['content-type'];
    return (
      req.method === 'POST' &&
      Number(req.headers['content-length']) <= MAX_BODY_BYTES &&
      (type === 'application/json' || type === 'application/json; charset=utf-8') &&
      CONTENT_TYPE[req.headers.accept ?? ''] !== undefined &&
      req.headers['content-encoding'] === undefined
    );
  }

  /**
   * Answers the request (true), or leaves it untouched for yoga (false); at once, without a promise, when the
   * compiled query completes synchronously (every key in memory).
   */
  answer(yoga: Yoga, req: IncomingMessage, res: ServerResponse, body: Buffer): boolean | Promise<boolean> {
    const answered = this.tryAnswer(yoga, req, res, body);
    if (typeof answered === 'boolean') return counted(answered);
    return answered.then(counted);
  }

  private tryAnswer(
    yoga: Yoga,
    req: IncomingMessage,
    res: ServerResponse,
    body: Buffer,
  ): boolean | Promise<boolean> {
    const known = this.params.get(body);
    if (!known) return false;
    const params = known.params;
    const prepared = (known.prepared ??= this.prepare(params));
    if (prepared === undefined || prepared === 'yoga') return false;
    const contextValue: FastContext = this.contextFor(req.headers.authorization);
    // A query, so executing it again in yoga after an error only reads. One result, not a stream: the
    // schema has no @defer/@stream, and subscriptions never take the fast path.
    let result: ExecutionResult | PromiseLike<ExecutionResult>;
    if (this.executesDirectly(yoga)) {
      // What the guard's hook would refuse, yoga refuses (and counts) when it executes the request again.
      if (this.guard.check(prepared.document, params.operationName, params.variables, contextValue))
        return false;
      result = prepared.compiled.query(undefined, contextValue, params.variables);
    } else {
      contextValue[COMPILED] = prepared.compiled;
      const enveloped = this.envelopedFor(yoga, contextValue);
      // One result, not a stream (above).
      result = enveloped.execute({
        schema: enveloped.schema,
        document: prepared.document,
        variableValues: params.variables,
        operationName: params.operationName,
        contextValue,
      }) as ExecutionResult | PromiseLike<ExecutionResult>;
    }
    // envelop may hand back a thenable of its own rather than a Promise.
    if (isThenable(result)) return Promise.resolve(result).then((r) => send(req, res, r));
    return send(req, res, result);
  }

  /**
   * The yoga plugin that teaches the fast path and runs its compiled queries. Yoga answers the first request
   * for each query text itself; the plugin keeps the document yoga parsed (with every parse plugin, the
   * guard's token limit among them) and whether yoga's validation (with every rule, the guard's among
   * them) passed it. The fast path takes that query text only afterwards, so it never parses or validates
   * anything itself, and never disturbs yoga's own caches.
   */
  plugin(): Plugin {
    return this.own;
  }

  /**
   * Whether the fast path executes without envelop (decided once): only when that runs every execute hook
   * envelop would, i.e. no instrumentation and no execute hook but the guard's, its own and error masking.
   */
  executesDirectly(yoga: Yoga): boolean {
    if (this.direct === undefined) {
      this.direct = this.runsEveryHook(yoga);
      log.info('compiled fast path', { execution: this.direct ? 'direct' : 'through envelop' });
    }
    return this.direct;
  }

  private runsEveryHook(yoga: Yoga): boolean {
    const plugins = (yoga as unknown as { plugins?: readonly (Partial<Plugin> | undefined)[] }).plugins;
    if (!Array.isArray(plugins)) return false;
    const own = plugins.indexOf(this.own);
    return plugins.every(
      (p, i) =>
        !p ||
        (!p.instrumentation &&
          !p.onEnveloped &&
          (!p.onExecute || p === this.own || p === this.guard.plugin || isYogaHook(p, i < own))),
    );
  }

  private makePlugin(): Plugin {
    return {
      onParse: ({ params }) => {
        const source = typeof params.source === 'string' ? params.source : params.source.body;
        return ({ result }) => {
          if (result instanceof Error || result === null || typeof result !== 'object') return;
          // A parse result that is not an error is a DocumentNode.
          this.remember(this.documents, source, result as DocumentNode);
        };
      },
      onValidate:
        ({ params }) =>
        ({ result }) =>
          void this.validated.set(params.documentAST, result.length === 0),
      onExecute: ({ args, setExecuteFn }) => {
        // envelop types the context any: ours carries the compiled query under COMPILED, yoga's has none.
        const compiled = (args.contextValue as { [COMPILED]?: CompiledQuery })[COMPILED];
        if (!compiled) return;
        setExecuteFn((a) => compiled.query(a.rootValue, a.contextValue, a.variableValues));
      },
    };
  }

  private envelopedFor(yoga: Yoga, contextValue: RequestContext): Enveloped {
    if (this.shared === undefined) {
      // yoga keeps the plugin list it enveloped in a protected field (its getEnveloped is a bound copy without
      // envelop's _plugins); should that ever change, the list is unknown and each request is enveloped.
      const plugins = (yoga as unknown as { plugins?: readonly (Partial<Plugin> | undefined)[] }).plugins;
      const contextBound =
        !Array.isArray(plugins) || plugins.some((p) => p?.onEnveloped || p?.instrumentation);
      this.shared = contextBound ? null : yoga.getEnveloped({});
    }
    return this.shared ?? yoga.getEnveloped(contextValue);
  }

  /** The compiled query for this text and operation, 'yoga' when it is not for the fast path, or undefined
   * when yoga has not seen the text yet (it answers, and the fast path learns). */
  private prepare({ query, operationName }: Params): Prepared | undefined {
    const cacheKey = `${operationName ?? ''}\n${query}`;
    const known = this.prepared.get(cacheKey);
    if (known !== undefined) return known;
    const document = this.documents.get(query);
    const valid = document && this.validated.get(document);
    if (document === undefined || valid === undefined) return undefined;
    let prepared: Prepared = 'yoga';
    if (valid && getOperationAST(document, operationName)?.operation === 'query') {
      const compiled = compileQuery(this.schema, document, operationName);
      if (isCompiledQuery(compiled)) {
        prepared = { document, compiled };
      }
    }
    this.remember(this.prepared, cacheKey, prepared);
    return prepared;
  }

  /** Bounded maps: past MAX_DOCUMENTS, the oldest entry goes. */
  private remember<T>(map: Map<string, T>, key: string, value: T): void {
    if (map.size >= MAX_DOCUMENTS && !map.has(key)) {
      const oldest = map.keys().next().value;
      if (oldest !== undefined) map.delete(oldest);
    }
    map.set(key, value);
  }
}
