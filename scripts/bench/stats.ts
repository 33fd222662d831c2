// Turns raw measurements into the figures the benchmark reports: percentiles of latency samples, and
// quantiles of the deltas of Prometheus histograms scraped from /metrics.

export interface Distribution {
  count: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/** Nearest-rank percentiles: every figure is a latency that was really observed. */
export function distribution(samples: readonly number[]): Distribution {
  if (samples.length === 0) return { count: 0, mean: NaN, p50: NaN, p90: NaN, p99: NaN, max: NaN };
  const sorted = Float64Array.from(samples).sort();
  const at = (q: number): number => sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)] as number;
  let sum = 0;
  for (const value of sorted) sum += value;
  return {
    count: sorted.length,
    mean: sum / sorted.length,
    p50: at(0.5),
    p90: at(0.9),
    p99: at(0.99),
    max: sorted[sorted.length - 1] as number,
  };
}

export interface MetricSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses Prometheus text format, enough of it for what tiercache renders (no escapes inside labels). */
export function parseMetrics(text: string): MetricSample[] {
  const samples: MetricSample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][\w:]*)(?:\{([^}]*)\})?\s+(\S+)$/.exec(line);
    if (!match) continue;
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? '').matchAll(/(\w+)="([^"]*)"/g))
      labels[pair[1] as string] = pair[2] as string;
    samples.push({ name: match[1] as string, labels, value: parseValue(match[3] as string) });
  }
  return samples;
}

function parseValue(raw: string): number {
  if (raw === '+Inf') return Infinity;
  if (raw === '-Inf') return -Infinity;
  return Number(raw);
}

/** The sum of every series of `name` whose labels include `labels` (a counter across label sets). */
export function total(
  samples: readonly MetricSample[],
  name: string,
  labels: Record<string, string> = {},
): number {
  let sum = 0;
  for (const sample of samples) {
    if (sample.name !== name) continue;
    if (Object.entries(labels).every(([key, value]) => sample.labels[key] === value)) sum += sample.value;
  }
  return sum;
}

/** One histogram's cumulative buckets, ascending by upper bound; the last is +Inf. */
export interface Buckets {
  bounds: number[];
  cumulative: number[];
}

export function histogram(samples: readonly MetricSample[], name: string): Buckets {
  const rows = samples
    .filter((s) => s.name === `${name}_bucket` && s.labels.le !== undefined)
    .map((s) => ({ bound: parseValue(s.labels.le as string), count: s.value }))
    .sort((a, b) => a.bound - b.bound);
  if (rows.length === 0) throw new Error(`no histogram ${name} in the scraped metrics`);
  return { bounds: rows.map((r) => r.bound), cumulative: rows.map((r) => r.count) };
}

/** What was observed between two scrapes of the same histogram. */
export function bucketDelta(before: Buckets, after: Buckets): Buckets {
  if (before.bounds.join() !== after.bounds.join())
    throw new Error('histogram buckets changed between scrapes');
  return {
    bounds: after.bounds,
    cumulative: after.cumulative.map((c, i) => c - (before.cumulative[i] ?? 0)),
  };
}

export interface Quantile {
  value: number;
  /** True when the quantile falls in the +Inf bucket: the value is then only a lower bound. */
  overflow: boolean;
}

/**
 * The q-quantile by linear interpolation inside the bucket that holds it, as Prometheus's
 * histogram_quantile does (the first bucket starts at 0). Its error is bounded by that bucket's width.
 */
export function bucketQuantile({ bounds, cumulative }: Buckets, q: number): Quantile {
  const count = cumulative[cumulative.length - 1] ?? 0;
  if (count === 0) return { value: NaN, overflow: false };
  const rank = q * count;
  const i = cumulative.findIndex((c) => c >= rank);
  const upper = bounds[i] as number;
  if (upper === Infinity) return { value: bounds[bounds.length - 2] ?? NaN, overflow: true };
  const lower = i === 0 ? 0 : (bounds[i - 1] as number);
  const below = i === 0 ? 0 : (cumulative[i - 1] as number);
  const inBucket = (cumulative[i] as number) - below;
  return { value: lower + (upper - lower) * ((rank - below) / inBucket), overflow: false };
}

export interface Quantiles {
  p50: Quantile;
  p99: Quantile;
  count: number;
}

/** The median and 99th percentile of what a histogram observed between two scrapes. */
export function quantilesBetween(before: MetricSample[], after: MetricSample[], name: string): Quantiles {
  const delta = bucketDelta(histogram(before, name), histogram(after, name));
  return {
    p50: bucketQuantile(delta, 0.5),
    p99: bucketQuantile(delta, 0.99),
    count: delta.cumulative[delta.cumulative.length - 1] ?? 0,
  };
}
