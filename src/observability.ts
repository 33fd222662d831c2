// Logging and counting for everything that is not the client's to act on: pino writes one JSON line per
// event on stderr (pretty when stderr is a terminal and the dev dependency pino-pretty is there), and
// prom-client keeps the counters, gauges and histograms that /metrics renders, beside its default process
// and Node.js metrics. The API below is the project's own, so no component imports either library.
import { pino, stdSerializers, stdTimeFunctions, type DestinationStream } from 'pino';
import * as prom from 'prom-client';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface Logger {
  debug(msg: string, context?: Record<string, unknown>): void;
  info(msg: string, context?: Record<string, unknown>): void;
  warn(msg: string, context?: Record<string, unknown>): void;
  error(msg: string, context?: Record<string, unknown>): void;
  child(bindings: Record<string, unknown>): Logger;
}

const LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];
const isLevel = (name: string | undefined): name is LogLevel => LEVELS.some((level) => level === name);
const levelFromEnv = process.env.LOG_LEVEL;
const initialLevel: LogLevel = isLevel(levelFromEnv) ? levelFromEnv : 'info';

/** pino-pretty is a dev dependency: a terminal gets it where it is installed, production never needs it. */
async function prettyStream(): Promise<DestinationStream | null> {
  if (!process.stderr.isTTY) return null;
  try {
    const { default: pretty } = await import('pino-pretty');
    return pretty({ destination: 2, sync: true });
  } catch {
    return null;
  }
}

const root = pino(
  {
    level: initialLevel,
    base: undefined,
    timestamp: stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  },
  // process.stderr rather than a file descriptor of pino's own: writes to it are synchronous on a pipe or
  // file (nothing is lost on process.exit), and tests can watch it.
  (await prettyStream()) ?? process.stderr,
);

export function setLogLevel(level: LogLevel): void {
  root.level = level;
}

/** Errors anywhere in the context are logged with their type, message, stack and causes. */
function fields(context: Record<string, unknown> | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(context ?? {}))
    out[key] = value instanceof Error ? stdSerializers.errWithCause(value) : value;
  return out;
}

// Bindings are merged per call rather than kept in pino children, so setLogLevel reaches every logger.
export function createLogger(bindings: Record<string, unknown> = {}): Logger {
  const write =
    (level: LogLevel) =>
    (msg: string, context?: Record<string, unknown>): void => {
      if (root.isLevelEnabled(level)) root[level]({ ...bindings, ...fields(context) }, msg);
    };
  return {
    debug: write('debug'),
    info: write('info'),
    warn: write('warn'),
    error: write('error'),
    child: (more) => createLogger({ ...bindings, ...more }),
  };
}

export const log = createLogger();

type Labels = Record<string, string>;

/** A prom-client counter whose label names are those of its first use (components pass labels, not names). */
export class Counter {
  private counter: prom.Counter | null = null;
  constructor(
    readonly name: string,
    readonly help: string,
    private readonly registry: prom.Registry,
  ) {}
  /**
   * Bound series count into a plain number, handed to prom-client when the counter is read (scrape, value()):
   * prom-client's own inc() hashes and validates the labels on every call, which showed in the hot reads'
   * profile.
   */
  private readonly bound: { series: { inc(by: number): void }; pending: number }[] = [];
  inc(labels: Labels = {}, by = 1): void {
    this.series(labels).inc(by);
  }
  /** One series, resolved once: for hot paths. */
  bind(labels: Labels): { inc(by?: number): void } {
    const slot = { series: this.series(labels), pending: 0 };
    this.bound.push(slot);
    return { inc: (by = 1) => void (slot.pending += by) };
  }
  async value(labels: Labels = {}): Promise<number> {
    if (!this.counter) return 0;
    const { values } = await this.counter.get();
    const wanted = JSON.stringify(Object.entries(labels).sort());
    return values.find((v) => JSON.stringify(Object.entries(v.labels).sort()) === wanted)?.value ?? 0;
  }
  private flush(): void {
    for (const slot of this.bound) {
      if (slot.pending === 0) continue;
      slot.series.inc(slot.pending);
      slot.pending = 0;
    }
  }
  private series(labels: Labels): { inc(by: number): void } {
    this.counter ??= new prom.Counter({
      name: this.name,
      help: this.help,
      labelNames: Object.keys(labels),
      registers: [this.registry],
      collect: () => this.flush(),
    });
    return Object.keys(labels).length === 0 ? this.counter : this.counter.labels(labels);
  }
}

/** Observations counted into cumulative buckets; quantiles come from the buckets. */
export interface Histogram {
  observe(value: number): void;
}

/** The process-wide registry; components register what they count once, at construction. */
export class Metrics {
  readonly registry = new prom.Registry();
  private readonly counters = new Map<string, Counter>();
  private readonly gauges = new Map<string, { read: () => number }>();
  private readonly histograms = new Map<string, prom.Histogram>();

  constructor() {
    prom.collectDefaultMetrics({ register: this.registry });
  }
  counter(name: string, help: string): Counter {
    let c = this.counters.get(name);
    if (!c) this.counters.set(name, (c = new Counter(name, help, this.registry)));
    return c;
  }
  /** A value read when /metrics is scraped; registering the name again replaces what it reads. */
  gauge(name: string, help: string, read: () => number): void {
    const known = this.gauges.get(name);
    if (known) return void (known.read = read);
    const source = { read };
    this.gauges.set(name, source);
    new prom.Gauge({
      name,
      help,
      registers: [this.registry],
      collect() {
        this.set(source.read());
      },
    });
  }
  histogram(name: string, help: string, buckets: readonly number[]): Histogram {
    let h = this.histograms.get(name);
    if (!h)
      this.histograms.set(
        name,
        (h = new prom.Histogram({ name, help, buckets: [...buckets], registers: [this.registry] })),
      );
    return h;
  }
  /** The Content-Type of what render() returns. */
  get contentType(): string {
    return this.registry.contentType;
  }
  render(): Promise<string> {
    return this.registry.metrics();
  }
}

export const metrics = new Metrics();

const refused = metrics.counter(
  'tiercache_http_refused_total',
  'Requests refused, by extensions.code: by the request guard before any work, or RESPONSE_TOO_LARGE once the answer outgrew MAX_RESPONSE_BYTES',
);
/** Counts a refusal: abuse shows on /metrics, while the client reads why in its error. */
export function countRefusal(code: string): void {
  refused.inc({ code });
}

/** Counts errors that nobody can act on synchronously, with their context logged. */
export const internalErrors = metrics.counter(
  'tiercache_internal_errors_total',
  'Errors logged, by component',
);

/**
 * Whether the `failures`-th failure in a row deserves a log line: the first, then every tenth, so an outage
 * is visible without flooding the log.
 */
export function worthLogging(failures: number): boolean {
  return failures === 1 || failures % 10 === 0;
}

export function reportError(
  component: string,
  msg: string,
  error: unknown,
  context: Record<string, unknown> = {},
): void {
  internalErrors.inc({ component });
  log.error(msg, { component, error, ...context });
}
