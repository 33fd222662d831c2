// The fault suite's witness: records every write a writer acknowledged, reads the keys back from every reader
// all the time, and judges what it saw against tiercache's promises — no acknowledged write lost, no version
// going backwards on any reader, every reader serving every acknowledged version within the staleness bound
// of its acknowledgement (from memory or from Redis), and all readers converged to Redis afterwards. It reads
// Redis through the project's own Store adapter for the Redis the processes use (one server or a cluster),
// so it sees what they wrote under their key layout.
import type { Store } from '../../src/ports.js';
import { openStore, type RedisTarget } from '../support/stores.js';

export interface Endpoint {
  readonly name: string;
  readonly base: string;
}

interface Ack {
  readonly version: bigint;
  /** When the acknowledgement arrived here (ms). */
  readonly at: number;
}

export interface Figures {
  readonly scenario: string;
  readonly writesAcknowledged: number;
  readonly writesRefused: number;
  readonly lost: number;
  readonly regressions: number;
  readonly reads: number;
  /** Longest time a reader answered an older version than one acknowledged before the read began. */
  readonly worstStalenessMs: number;
  readonly staleBeyondBound: number;
  /** From the end of the fault (restart, SIGCONT, …) until every reader answered every key as Redis has it. */
  readonly recoveryMs: number | null;
}

const READ = `query($keys: [String!]!) { values(keys: $keys) { key version } }`;
const SET = `mutation($entries: [EntryInput!]!) { setValues(entries: $entries) { written { key version } } }`;
const DELETE = `mutation($keys: [String!]!) { deleteValues(keys: $keys) { written { key version } } }`;

async function post<T>(base: string, query: string, variables: unknown, timeoutMs: number): Promise<T> {
  const res = await fetch(`${base}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query, variables }),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const body = (await res.json()) as { data?: T; errors?: { message: string }[] };
  if (!body.data) throw new Error(body.errors?.map((e) => e.message).join('; ') ?? `HTTP ${res.status}`);
  return body.data;
}

export class Observer {
  readonly acked = new Map<string, Ack[]>();
  private readonly seen = new Map<string, Map<string, bigint>>();
  private sampling: Promise<void>[] = [];
  private running = false;
  private counts = { acknowledged: 0, refused: 0, reads: 0, regressions: 0, staleBeyondBound: 0 };
  private worstStalenessMs = 0;
  readonly problems: string[] = [];
  readonly refusals: string[] = [];
  /** Its own client: it must keep answering while the suite kills things. Ready once a cluster's slot map is in. */
  private readonly store: Promise<Store>;

  constructor(
    readonly keys: readonly string[],
    /** FEED_MAX_LAG_MS + 1 s. */
    readonly boundMs: number,
    /** The Redis the processes use; read with the store they use for REDIS_KEY_PREFIX `prefix`. */
    redis: RedisTarget,
    prefix: string,
  ) {
    this.store = openStore(redis, prefix);
    // Reported by the first call that needs the store; never an unhandled rejection meanwhile.
    this.store.catch(() => undefined);
  }

  /** Sets the entries through a writer; an acknowledged version is recorded with its arrival time. */
  async set(writer: Endpoint, entries: { key: string; value: string }[]): Promise<boolean> {
    return this.record(() =>
      post<{ setValues: { written: { key: string; version: string }[] } }>(
        writer.base,
        SET,
        { entries },
        10_000,
      ).then((d) => d.setValues.written),
    );
  }

  async delete(writer: Endpoint, keys: string[]): Promise<boolean> {
    return this.record(() =>
      post<{ deleteValues: { written: { key: string; version: string }[] } }>(
        writer.base,
        DELETE,
        { keys },
        10_000,
      ).then((d) => d.deleteValues.written),
    );
  }

  /** Writes random sets (and deletes, if asked) from `writers()` until stopped; one loop per `loops`. */
  load(
    writers: () => readonly Endpoint[],
    options: { loops: number; deletes?: boolean },
  ): () => Promise<void> {
    let going = true;
    const loops = Array.from({ length: options.loops }, async () => {
      while (going) {
        const all = writers();
        const writer = all[Math.floor(Math.random() * all.length)];
        if (!writer) {
          await new Promise((r) => setTimeout(r, 50));
          continue;
        }
        const picked = [
          ...new Set(Array.from({ length: 1 + Math.floor(Math.random() * 4) }, () => this.pick())),
        ];
        const ok =
          options.deletes && Math.random() < 0.3
            ? await this.delete(writer, picked)
            : await this.set(
                writer,
                picked.map((key) => ({ key, value: `${key}@${Date.now()}-${Math.random()}` })),
              );
        // A refused write (writer dead, Redis down, backlog full) is retried a little later, not hammered.
        if (!ok) await new Promise((r) => setTimeout(r, 100));
      }
    });
    return async () => {
      going = false;
      await Promise.all(loops);
    };
  }

  /** Reads every key from every reader, over and over, until stop(). */
  startSampling(readers: () => readonly Endpoint[]): void {
    this.running = true;
    const loop = async (index: number): Promise<void> => {
      while (this.running) {
        const reader = readers()[index];
        if (!reader) return;
        const startedAt = Date.now();
        try {
          const data = await post<{ values: { key: string; version: string | null }[] }>(
            reader.base,
            READ,
            { keys: this.keys },
            2_000,
          );
          for (const { key, version } of data.values) {
            this.judge(reader.name, key, version === null ? 0n : BigInt(version), startedAt);
          }
          this.counts.reads++;
        } catch {
          // A reader that cannot answer (stopped, Redis down) breaks no promise by not answering.
          await new Promise((r) => setTimeout(r, 100));
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    this.sampling = readers().map((_, i) => loop(i));
  }

  async stopSampling(): Promise<void> {
    this.running = false;
    await Promise.all(this.sampling);
  }

  /**
   * Waits until every reader answers every key with the version Redis holds; resolves with how long that
   * took from `since`, or throws after `timeoutMs`.
   */
  async converged(readers: readonly Endpoint[], since: number, timeoutMs = 60_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    let last: string;
    for (;;) {
      try {
        const truth = (await (await this.store).read(this.keys)).map((e) => String(e?.version ?? 0n));
        const answers = await Promise.all(
          readers.map((r) =>
            post<{ values: { version: string | null }[] }>(r.base, READ, { keys: this.keys }, 2_000),
          ),
        );
        const off = answers.flatMap((a, i) =>
          a.values.flatMap((v, k) =>
            String(v.version ?? 0) === truth[k] ? [] : [`${readers[i]!.name}:${this.keys[k]}`],
          ),
        );
        if (off.length === 0) return Date.now() - since;
        last = `not converged: ${off.slice(0, 5).join(', ')}`;
      } catch (error) {
        last = String(error);
      }
      if (Date.now() > deadline)
        throw new Error(`readers did not converge to Redis in ${timeoutMs} ms: ${last}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Acknowledged writes whose version Redis no longer has (it holds an older one, or nothing). */
  async lost(): Promise<string[]> {
    const stored = await (await this.store).read(this.keys);
    return this.keys.flatMap((key, i) => {
      const newest = this.acked.get(key)?.reduce((m, a) => (a.version > m ? a.version : m), 0n) ?? 0n;
      const held = stored[i]?.version ?? 0n;
      return held < newest ? [`${key}: acknowledged ${newest}, Redis holds ${held}`] : [];
    });
  }

  async figures(scenario: string, recoveryMs: number | null): Promise<Figures> {
    const lost = await this.lost();
    this.problems.push(...lost.map((l) => `lost ${l}`));
    return {
      scenario,
      writesAcknowledged: this.counts.acknowledged,
      writesRefused: this.counts.refused,
      lost: lost.length,
      regressions: this.counts.regressions,
      reads: this.counts.reads,
      worstStalenessMs: this.worstStalenessMs,
      staleBeyondBound: this.counts.staleBeyondBound,
      recoveryMs,
    };
  }

  /** Committed batches not yet announced (entries in every outbox shard). */
  async outboxEntries(): Promise<number> {
    return (await this.store).outbox.size();
  }

  async close(): Promise<void> {
    await (await this.store).close();
  }

  private pick(): string {
    return this.keys[Math.floor(Math.random() * this.keys.length)] as string;
  }

  private async record(write: () => Promise<{ key: string; version: string }[]>): Promise<boolean> {
    try {
      const written = await write();
      const at = Date.now();
      for (const { key, version } of written) {
        const list = this.acked.get(key) ?? [];
        list.push({ version: BigInt(version), at });
        this.acked.set(key, list);
      }
      this.counts.acknowledged++;
      return true;
    } catch (error) {
      this.counts.refused++;
      if (this.refusals.length < 1000) this.refusals.push(String(error));
      return false;
    }
  }

  private judge(reader: string, key: string, version: bigint, startedAt: number): void {
    const seen = this.seen.get(reader) ?? new Map<string, bigint>();
    this.seen.set(reader, seen);
    const before = seen.get(key);
    if (before !== undefined && version < before) {
      this.counts.regressions++;
      this.problems.push(`${reader} went back on ${key}: ${before} then ${version}`);
    }
    if (before === undefined || version > before) seen.set(key, version);
    // The oldest write acknowledged before this read began that the answer does not yet show.
    const missed = (this.acked.get(key) ?? []).filter((a) => a.at < startedAt && a.version > version);
    if (missed.length === 0) return;
    const staleness = startedAt - Math.min(...missed.map((a) => a.at));
    this.worstStalenessMs = Math.max(this.worstStalenessMs, staleness);
    if (staleness > this.boundMs) {
      this.counts.staleBeyondBound++;
      if (this.problems.length < 50) {
        this.problems.push(
          `${reader} answered ${key}@${version} ${staleness} ms after a newer one was acknowledged`,
        );
      }
    }
  }
}
