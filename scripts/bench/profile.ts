// Reduces a V8 CPU profile (`node --cpu-prof`) to what docs/benchmarks.md shows: the functions with the
// most self time, and the share of busy time by where the code lives (node internals, each package, tiercache).
import * as fs from 'node:fs';
import * as path from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
}

export interface ProfileSummary {
  file: string;
  /** Sampled time that was not idle, in ms. */
  busyMs: number;
  top: { frame: string; selfPercent: number }[];
  byPlace: { place: string; percent: number }[];
}

// Not work: the process waiting for I/O.
const IDLE = new Set(['(idle)', '(program)']);

/** Where a frame's code lives: `node:` internals, a package under node_modules, tiercache's dist/, or V8. */
function placeOf(url: string, functionName: string): string {
  if (url === '') return functionName.startsWith('(') ? functionName : '(native)';
  if (url.startsWith('node:')) return 'node internals';
  const modules = url.lastIndexOf('/node_modules/');
  if (modules >= 0) {
    const rest = url.slice(modules + '/node_modules/'.length).split('/');
    return rest[0]?.startsWith('@') ? `${rest[0]}/${rest[1] ?? ''}` : (rest[0] ?? '?');
  }
  if (url.includes('/dist/')) return 'tiercache';
  return path.basename(url);
}

function frameName(node: ProfileNode): string {
  const { functionName, url, lineNumber } = node.callFrame;
  const where =
    url === ''
      ? ''
      : ` ${url.replace(/^.*\/node_modules\//, '').replace(/^.*\/dist\//, 'dist/')}:${lineNumber + 1}`;
  return `${functionName || '(anonymous)'}${where}`;
}

export function summarize(file: string, topN = 25): ProfileSummary {
  // A file V8 wrote in its documented JSON format.
  const profile = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
  const interval = (profile.endTime - profile.startTime) / 1000 / Math.max(1, profile.samples.length);
  const byFrame = new Map<string, number>();
  const byPlace = new Map<string, number>();
  let busy = 0;
  for (const node of profile.nodes) {
    const hits = node.hitCount ?? 0;
    if (hits === 0 || IDLE.has(node.callFrame.functionName)) continue;
    busy += hits;
    const frame = frameName(node);
    byFrame.set(frame, (byFrame.get(frame) ?? 0) + hits);
    const place = placeOf(node.callFrame.url, node.callFrame.functionName);
    byPlace.set(place, (byPlace.get(place) ?? 0) + hits);
  }
  const percent = (hits: number): number => Math.round((1000 * hits) / Math.max(1, busy)) / 10;
  return {
    file,
    busyMs: Math.round(busy * interval),
    top: [...byFrame]
      .sort((a, b) => b[1] - a[1])
      .slice(0, topN)
      .map(([frame, hits]) => ({ frame, selfPercent: percent(hits) })),
    byPlace: [...byPlace]
      .sort((a, b) => b[1] - a[1])
      .map(([place, hits]) => ({ place, percent: percent(hits) })),
  };
}

export function renderSummary(s: ProfileSummary, title: string): string {
  const lines = [
    `${title}: ${s.busyMs} ms busy (idle excluded), ${path.basename(s.file)}`,
    'self time by place:',
  ];
  for (const p of s.byPlace.slice(0, 12)) lines.push(`  ${p.percent.toFixed(1).padStart(5)}%  ${p.place}`);
  lines.push('top frames by self time:');
  for (const f of s.top) lines.push(`  ${f.selfPercent.toFixed(1).padStart(5)}%  ${f.frame}`);
  return lines.join('\n') + '\n';
}

/** The newest .cpuprofile in `dir`. */
export function newestProfile(dir: string): string {
  const files = fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.cpuprofile'))
    .map((f) => path.join(dir, f))
    .sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs);
  if (files[0] === undefined) throw new Error(`no .cpuprofile in ${dir}`);
  return files[0];
}
