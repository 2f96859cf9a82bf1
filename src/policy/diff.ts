/**
 * What changed between two policy bundles, for review before activation: tools added, removed
 * or changed (parameter schema, adapter, risk, preview, description, untrusted output), policies
 * added, removed or changed (with a line diff of their Cedar text), the Cedar schema, and the
 * bundle's name and settings. Pure. (SPEC §6 "Policy as code", OE-INV-014/020)
 */
import { canonicalize } from '../kernel/index.js';
import type { JsonValue } from '../kernel/index.js';
import type { PolicyBundleDocument, ToolSpec } from './types.js';

/** One line of a line diff: kept (` `), removed (`-`) or added (`+`). */
export interface DiffLine {
  readonly op: ' ' | '-' | '+';
  readonly text: string;
}

/** One member of a tool that differs. */
export interface FieldChange {
  readonly field: string;
  readonly before: JsonValue | null;
  readonly after: JsonValue | null;
}

/** The differences between bundle `from` and bundle `to`. */
export interface BundleDiff {
  readonly from: string;
  readonly to: string;
  readonly identical: boolean;
  readonly name: { readonly before: string; readonly after: string } | null;
  readonly settings: FieldChange | null;
  readonly tools: {
    readonly added: readonly string[];
    readonly removed: readonly string[];
    readonly changed: readonly { readonly name: string; readonly fields: readonly FieldChange[] }[];
  };
  readonly policies: {
    readonly added: readonly { readonly id: string; readonly text: string }[];
    readonly removed: readonly { readonly id: string; readonly text: string }[];
    readonly changed: readonly { readonly id: string; readonly diff: readonly DiffLine[] }[];
  };
  readonly schema: readonly DiffLine[] | null;
}

const TOOL_FIELDS = [
  'description',
  'parameters',
  'risk',
  'adapter',
  'preview',
  'untrusted_output',
  'owner',
] as const;
/** Past this many cells the line diff shows the whole text removed and added. */
const MAX_DIFF_CELLS = 4_000_000;

/**
 * Line diff of `a` and `b` (longest common subsequence); for very long texts, everything of `a`
 * removed and everything of `b` added.
 */
export function diffLines(a: string, b: string): readonly DiffLine[] {
  const x = a.split('\n');
  const y = b.split('\n');
  if (x.length * y.length > MAX_DIFF_CELLS)
    return [
      ...x.map((text) => ({ op: '-' as const, text })),
      ...y.map((text) => ({ op: '+' as const, text })),
    ];
  const w = y.length + 1;
  const lcs = new Uint32Array((x.length + 1) * w);
  for (let i = x.length - 1; i >= 0; i--)
    for (let j = y.length - 1; j >= 0; j--)
      lcs[i * w + j] =
        x[i] === y[j] ? lcs[(i + 1) * w + j + 1]! + 1 : Math.max(lcs[(i + 1) * w + j]!, lcs[i * w + j + 1]!);
  const out: DiffLine[] = [];
  let i = 0;
  let j = 0;
  while (i < x.length || j < y.length) {
    if (i < x.length && j < y.length && x[i] === y[j]) {
      out.push({ op: ' ', text: x[i]! });
      i++;
      j++;
    } else if (j < y.length && (i === x.length || lcs[i * w + j + 1]! >= lcs[(i + 1) * w + j]!)) {
      out.push({ op: '+', text: y[j]! });
      j++;
    } else {
      out.push({ op: '-', text: x[i]! });
      i++;
    }
  }
  return out;
}

function json(v: unknown): JsonValue | null {
  return v === undefined ? null : (v as JsonValue);
}

function same(a: unknown, b: unknown): boolean {
  return canonicalize(json(a)) === canonicalize(json(b));
}

function toolChanges(a: ToolSpec, b: ToolSpec): FieldChange[] {
  return TOOL_FIELDS.filter((f) => !same(a[f], b[f])).map((field) => ({
    field,
    before: json(a[field]),
    after: json(b[field]),
  }));
}

/** The differences from bundle `a` (hash `fromHash`) to bundle `b` (hash `toHash`). */
export function diffBundles(
  a: PolicyBundleDocument,
  fromHash: string,
  b: PolicyBundleDocument,
  toHash: string,
): BundleDiff {
  const ta = new Map(a.tools.map((t) => [t.name, t]));
  const tb = new Map(b.tools.map((t) => [t.name, t]));
  const changedTools = [...ta.keys()]
    .filter((n) => tb.has(n))
    .sort()
    .map((name) => ({ name, fields: toolChanges(ta.get(name)!, tb.get(name)!) }))
    .filter((c) => c.fields.length > 0);
  const pa = a.policies;
  const pb = b.policies;
  const changedPolicies = Object.keys(pa)
    .filter((id) => Object.hasOwn(pb, id) && pa[id] !== pb[id])
    .sort()
    .map((id) => ({ id, diff: diffLines(pa[id]!, pb[id]!) }));
  const tools = {
    added: [...tb.keys()].filter((n) => !ta.has(n)).sort(),
    removed: [...ta.keys()].filter((n) => !tb.has(n)).sort(),
    changed: changedTools,
  };
  const policies = {
    added: Object.keys(pb)
      .filter((id) => !Object.hasOwn(pa, id))
      .sort()
      .map((id) => ({ id, text: pb[id]! })),
    removed: Object.keys(pa)
      .filter((id) => !Object.hasOwn(pb, id))
      .sort()
      .map((id) => ({ id, text: pa[id]! })),
    changed: changedPolicies,
  };
  const schema = a.schema === b.schema ? null : diffLines(a.schema, b.schema);
  const name = a.name === b.name ? null : { before: a.name, after: b.name };
  const settings = same(a.settings, b.settings)
    ? null
    : { field: 'settings', before: json(a.settings), after: json(b.settings) };
  const identical = fromHash === toHash;
  return { from: fromHash, to: toHash, identical, name, settings, tools, policies, schema };
}

function changedLines(lines: readonly DiffLine[]): string[] {
  return lines.map((l) => `    ${l.op} ${l.text}`);
}

/** A human-readable rendering of a {@link BundleDiff}. */
export function formatBundleDiff(d: BundleDiff): string {
  const out: string[] = [`bundle ${d.from}`, `    -> ${d.to}`];
  if (d.identical) return `${out.join('\n')}\nidentical\n`;
  if (d.name !== null) out.push(`name: ${d.name.before} -> ${d.name.after}`);
  if (d.settings !== null)
    out.push(`settings: ${canonicalize(d.settings.before)} -> ${canonicalize(d.settings.after)}`);
  for (const n of d.tools.added) out.push(`tool added: ${n}`);
  for (const n of d.tools.removed) out.push(`tool removed: ${n}`);
  for (const c of d.tools.changed) {
    out.push(`tool changed: ${c.name}`);
    for (const f of c.fields) {
      out.push(`  ${f.field}:`, `    - ${canonicalize(f.before)}`, `    + ${canonicalize(f.after)}`);
    }
  }
  const whole = (op: '+' | '-', text: string): string[] => text.split('\n').map((l) => `    ${op} ${l}`);
  for (const p of d.policies.added) out.push(`policy added: ${p.id}`, ...whole('+', p.text));
  for (const p of d.policies.removed) out.push(`policy removed: ${p.id}`, ...whole('-', p.text));
  for (const c of d.policies.changed) out.push(`policy changed: ${c.id}`, ...changedLines(c.diff));
  if (d.schema !== null) out.push('schema changed:', ...changedLines(d.schema));
  return `${out.join('\n')}\n`;
}
