/**
 * Pre-execution preview (OE-INV-018): what a call will change, how many objects, a cost
 * estimate and whether it is irreversible, shown to approvers and bound into their signatures by
 * its hash. The Control Plane never runs a tool, so the default provider derives the preview
 * from the tool's declared `preview` and the parameters alone (dry-run type `describe`); a
 * deployment may inject a provider that asks the Execution Layer for a real dry run.
 */
import { canonicalize, deny, sha256Hex } from '../../kernel/index.js';
import type { Deny, JsonObject, JsonValue } from '../../kernel/index.js';
import type { ToolSpec } from '../../policy/index.js';

/** A preview as approvers see it. */
export interface Preview {
  readonly tool: string;
  readonly tenant: string;
  readonly params_sha256: string;
  readonly summary: string;
  /** What will change, one line per change. */
  readonly changes: readonly string[];
  readonly objects: number;
  /** Estimated cost in cents, or null when the tool declares none. */
  readonly cost_estimate_cents: number | null;
  readonly irreversible: boolean;
}

/** Computes a preview; a deny means "no preview can be produced" (the caller denies). */
export type PreviewProvider = (input: {
  readonly tool: ToolSpec;
  readonly tenant: string;
  readonly params: JsonValue;
  readonly params_sha256: string;
}) => Preview | Deny | Promise<Preview | Deny>;

const MAX_CHANGES = 20;

function scalar(v: JsonValue): string {
  const t = typeof v === 'string' ? v : canonicalize(v);
  return t.length > 80 ? `${t.slice(0, 77)}...` : t;
}

/**
 * The default provider. Tools without a `preview` declaration cannot be previewed
 * (`ERR_PREVIEW_UNAVAILABLE`), nor can a declared `dry_run` of a type other than `describe`.
 * `dry_run: { type: "describe", objects?: "<array parameter>", cost_usd?: "<number parameter>",
 * cost_cents?: "<integer parameter>" }` names the parameters to count and price; without them,
 * objects is the length of the longest array parameter (at least 1) and the cost is unknown.
 */
export const describePreview: PreviewProvider = ({ tool, tenant, params, params_sha256 }) => {
  const spec = tool.preview;
  if (spec === undefined) return deny('ERR_PREVIEW_UNAVAILABLE', 'the tool declares no preview');
  const dry = spec.dry_run;
  if (dry !== undefined && dry.type !== 'describe')
    return deny('ERR_PREVIEW_UNAVAILABLE', 'the dry-run type is not available to the Control Plane');
  const p: JsonObject =
    typeof params === 'object' && params !== null && !Array.isArray(params) ? (params as JsonObject) : {};
  const named = (k: string): JsonValue | undefined => {
    const name = dry?.[k];
    return typeof name === 'string' ? p[name] : undefined;
  };
  const arrays = Object.values(p).filter((v): v is JsonValue[] => Array.isArray(v));
  const counted = named('objects');
  const objects = Array.isArray(counted) ? counted.length : Math.max(1, ...arrays.map((a) => a.length));
  const usd = named('cost_usd');
  const cents = named('cost_cents');
  let cost: number | null = null;
  if (typeof usd === 'number' && Number.isFinite(usd) && usd >= 0) cost = Math.round(usd * 100);
  else if (typeof cents === 'number' && Number.isSafeInteger(cents) && cents >= 0) cost = cents;
  else if (dry?.['cost_usd'] !== undefined || dry?.['cost_cents'] !== undefined)
    return deny('ERR_PREVIEW_UNAVAILABLE', 'the cost parameter is missing');
  const changes = Object.keys(p)
    .sort()
    .slice(0, MAX_CHANGES)
    .map((k) => `${k}: ${scalar(p[k] ?? null)}`);
  return Object.freeze({
    tool: tool.name,
    tenant,
    params_sha256,
    summary: spec.summary ?? tool.description,
    changes: Object.freeze(changes),
    objects,
    cost_estimate_cents: cost,
    irreversible: spec.irreversible,
  });
};

/** The canonical bytes of a preview (stored as evidence) and their SHA-256 (bound into approvals). */
export function previewDigest(preview: Preview): { readonly bytes: Buffer; readonly sha256: string } {
  const bytes = Buffer.from(canonicalize({ ...preview, changes: [...preview.changes] }), 'utf8');
  return { bytes, sha256: sha256Hex(bytes) };
}

const SENSITIVE = /secret|token|password|passwd|credential|api[_-]?key|authorization|private/i;

/**
 * The parameter view approvers see: values of members whose names look sensitive are replaced
 * by `[redacted]`, long strings are cut (OE-INV-010). The hash still covers the real values.
 */
export function redactedParams(v: JsonValue, depth = 0): JsonValue {
  if (depth > 8) return '[truncated]';
  if (typeof v === 'string') return v.length > 200 ? `${v.slice(0, 197)}...` : v;
  if (Array.isArray(v))
    return (v as readonly JsonValue[]).slice(0, 50).map((x) => redactedParams(x, depth + 1));
  if (typeof v === 'object' && v !== null) {
    const out: Record<string, JsonValue> = {};
    for (const [k, x] of Object.entries(v as JsonObject))
      out[k] = SENSITIVE.test(k) ? '[redacted]' : redactedParams(x, depth + 1);
    return out;
  }
  return v;
}
