// Log lines a test expects (a failure it provokes on purpose) are captured and asserted on, instead of
// being printed: a passing run then shows no error line that nobody needs to read.
import { vi } from 'vitest';

export interface LogLine {
  level: string;
  msg: string;
  [field: string]: unknown;
}

/** Captures this process's JSON log lines from now until restore(); anything else still goes to stderr. */
export function captureLogs(): { lines: LogLine[]; restore(): void } {
  const lines: LogLine[] = [];
  const write = process.stderr.write.bind(process.stderr);
  const spy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    for (const text of String(chunk).split('\n')) {
      if (!text.startsWith('{"level":')) {
        if (text) write(`${text}\n`);
        continue;
      }
      lines.push(JSON.parse(text) as LogLine);
    }
    return true;
  });
  return { lines, restore: () => spy.mockRestore() };
}

/** The messages logged at one level. */
export function messages(lines: readonly LogLine[], level: string): string[] {
  return lines.filter((line) => line.level === level).map((line) => line.msg);
}
