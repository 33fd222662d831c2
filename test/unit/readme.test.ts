// README's configuration table is the user's reference: it must name every setting the service reads,
// with the flag and default the service really has.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SETTINGS, shownDefault } from '../../src/config.js';

const readme = readFileSync('README.md', 'utf8');
/** The configuration table's rows, as trimmed cells (Prettier pads them). */
const rows = readme
  .split('\n')
  .filter((line) => /^\| `[A-Z_]+`/.test(line))
  .map((line) =>
    line
      .split('|')
      .slice(1, -1)
      .map((cell) => cell.trim()),
  );

describe('README configuration table', () => {
  it.each(SETTINGS.map((s) => [s.env, s] as const))(
    'documents %s with its flag, default and meaning',
    (_env, s) => {
      const row = rows.find((cells) => cells[0] === `\`${s.env}\``);
      expect(row, `README has no row for ${s.env}`).toBeDefined();
      expect(row?.[1]).toBe(`\`--${s.flag}\``);
      const shown = shownDefault(s);
      expect(row?.[2]).toBe(s.fallback ? `\`${shown}\`` : shown);
      // --help prints the same meaning, from the same list.
      expect(row?.[3]).toBe(s.help);
    },
  );

  it('lists no setting the service does not have', () => {
    const documented = rows.map((cells) => cells[0]?.replace(/`/g, ''));
    expect(documented.sort()).toEqual(SETTINGS.map((s) => s.env).sort());
  });
});
