// Logging and counting for everything that is not the client's to act on: one JSON line per event on
// stderr, and process-wide counters and histograms that /metrics renders in Prometheus text format.

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, context?: Record<string, unknown>): void;
  info(msg: string, context?: Record<string, unknown>): void;
  warn(msg: string, context?: Record<string, unknown>): void;
  error(msg: string, context?: Record<string, unknown>): void;
  child(bindings: Record<string, unknown>): Logger;
}

const isLogLevel = (value: string | undefined): value is LogLevel =>
  value !== undefined && Object.hasOwn(ORDER, value);
let threshold: LogLevel = isLogLevel(process.env.LOG_LEVEL) ? process.env.LOG_LEVEL : 'info';

export function setLogLevel(level: LogLevel): void {
  threshold = level;
}

function describe(value: unknown): unknown {
  return value instanceof Error ? { name: value.name, message: value.message, stack: value.stack } : value;
}

function createLogger(bindings: Record<string, unknown> = {}): Logger {
  const write = (level: LogLevel, msg: string, context?: Record<string, unknown>): void => {
    if (ORDER[level] < ORDER[threshold]) return;
    const line: Record<string, unknown> = { time: new Date().toISOString(), level, msg, ...bindings };
    for (const [k, v] of Object.entries(context ?? {})) line[k] = describe(v);
    process.stderr.write(JSON.stringify(line) + '\n');
  };
  return {
    debug: (msg, context) => write('debug', msg, context),
    info: (msg, context) => write('info', msg, context),
    warn: (msg, context) => write('warn', msg, context),
    error: (msg, context) => write('error', msg, context),
    child: (more) => createLogger({ ...bindings, ...more }),
  };
}

export const log = createLogger();

type Labels = Record<string, string>;
const labelKey = (labels: Labels): string =>
  Object.entries(labels)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}="${v.replace(/["\\\n]/g, '_')}"`)
    .join(',');

/** Monotonic counters, one series per label set. */
export class Counter {
  private readonly series = new Map<string, { value: number }>();
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}
  inc(labels: Labels = {}, by = 1): void {
    this.cell(labelKey(labels)).value += by;
  }
  /** One series, resolved once: for hot paths, where building the label key on every increment shows. */
  bind(labels: Labels): { inc(by?: number): void } {
    const cell = this.cell(labelKey(labels));
    return { inc: (by = 1) => void (cell.value += by) };
  }
  value(labels: Labels = {}): number {
    return this.series.get(labelKey(labels))?.value ?? 0;
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    for (const [key, cell] of this.series) lines.push(`${this.name}${key ? `{${key}}` : ''} ${cell.value}`);
    return lines.join('\n');
  }
  private cell(key: string): { value: number } {
    let cell = this.series.get(key);
    if (!cell) this.series.set(key, (cell = { value: 0 }));
    return cell;
  }
}

/** A value that goes up and down, read when /metrics is rendered. */
export class Gauge {
  constructor(
    readonly name: string,
    readonly help: string,
    private readonly read: () => number,
  ) {}
  render(): string {
    return [
      `# HELP ${this.name} ${this.help}`,
      `# TYPE ${this.name} gauge`,
      `${this.name} ${this.read()}`,
    ].join('\n');
  }
}

/** Observations counted into cumulative buckets (Prometheus histogram); quantiles come from the buckets. */
export class Histogram {
  private readonly counts: number[];
  private sum = 0;
  private count = 0;
  constructor(
    readonly name: string,
    readonly help: string,
    /** Upper bounds, ascending. */
    readonly buckets: readonly number[],
  ) {
    this.counts = buckets.map(() => 0);
  }
  observe(value: number): void {
    this.sum += value;
    this.count++;
    const i = this.buckets.findIndex((bound) => value <= bound);
    if (i >= 0) this.counts[i] = (this.counts[i] ?? 0) + 1;
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    let cumulative = 0;
    this.buckets.forEach((bound, i) => {
      cumulative += this.counts[i] ?? 0;
      lines.push(`${this.name}_bucket{le="${bound}"} ${cumulative}`);
    });
    lines.push(
      `${this.name}_bucket{le="+Inf"} ${this.count}`,
      `${this.name}_sum ${this.sum}`,
      `${this.name}_count ${this.count}`,
    );
    return lines.join('\n');
  }
}

/** The process-wide registry; components register what they count once, at construction. */
export class Metrics {
  private readonly counters = new Map<string, Counter>();
  private readonly gauges = new Map<string, Gauge>();
  private readonly histograms = new Map<string, Histogram>();
  histogram(name: string, help: string, buckets: readonly number[]): Histogram {
    let h = this.histograms.get(name);
    if (!h) this.histograms.set(name, (h = new Histogram(name, help, buckets)));
    return h;
  }
  counter(name: string, help: string): Counter {
    let c = this.counters.get(name);
    if (!c) this.counters.set(name, (c = new Counter(name, help)));
    return c;
  }
  gauge(name: string, help: string, read: () => number): void {
    this.gauges.set(name, new Gauge(name, help, read));
  }
  render(): string {
    return (
      [...this.counters.values(), ...this.gauges.values(), ...this.histograms.values()]
        .map((m) => m.render())
        .join('\n') + '\n'
    );
  }
}

export const metrics = new Metrics();

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
