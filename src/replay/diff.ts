/**
 * Field-by-field comparison of a recorded payload with the re-derived one, over their RFC 8785
 * canonical forms: equal canonical bytes is the "byte for byte" of a replay (GEI Determinism).
 */
import { canonicalize } from '../kernel/index.js';
import type { JsonValue } from '../kernel/index.js';

/** One member that differs: its dotted path, what the ledger says, what replay derived. */
export interface FieldDifference {
  readonly field: string;
  /** The recorded value; `undefined` when the ledger lacks the member. */
  readonly recorded: JsonValue | undefined;
  /** The re-derived value; `undefined` when the replay derives no such member. */
  readonly rederived: JsonValue | undefined;
}

const isObject = (v: JsonValue | undefined): v is Record<string, JsonValue> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

const same = (a: JsonValue | undefined, b: JsonValue | undefined): boolean =>
  a === undefined || b === undefined ? a === b : canonicalize(a) === canonicalize(b);

/**
 * The members of `recorded` and `rederived` whose canonical encodings differ, descending into
 * objects so the finding names the leaf (`obligations.approvals`); arrays compare whole.
 */
export function diffJson(
  recorded: JsonValue | undefined,
  rederived: JsonValue | undefined,
  path = '',
): FieldDifference[] {
  if (same(recorded, rederived)) return [];
  if (!isObject(recorded) || !isObject(rederived)) return [{ field: path, recorded, rederived }];
  const keys = [...new Set([...Object.keys(recorded), ...Object.keys(rederived)])].sort();
  return keys.flatMap((k) => diffJson(recorded[k], rederived[k], path === '' ? k : `${path}.${k}`));
}

/** {@link diffJson} limited to the members of `rederived` (the others are not re-derivable). */
export function diffFields(recorded: Record<string, JsonValue>, rederived: Record<string, JsonValue>) {
  return Object.keys(rederived)
    .sort()
    .flatMap((k) => diffJson(recorded[k], rederived[k], k));
}
