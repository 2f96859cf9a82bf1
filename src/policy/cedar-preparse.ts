/**
 * Pre-parsing a bundle's schema and policy set in a Cedar module, shared by the main thread
 * (`cedar.ts`) and the Cedar thread (`cedar-worker.ts`), which loads nothing else of the policy
 * layer. (SPEC §8 "Pre-parse per bundle")
 */
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';

/** The first of Cedar's messages, for a refusal's reason. */
export function firstMessage(errors: readonly cedar.DetailedError[]): string {
  return errors[0]?.message ?? 'unknown Cedar error';
}

/** Names under which a bundle's schema and policy set are pre-parsed in the Cedar module. */
export function preparsedName(hash: string): string {
  return `failclosed:${hash}`;
}

/**
 * Pre-parses a schema and policy set under `name`, so each evaluation skips parsing
 * (~0.25 ms instead of 1.6–5.5 ms, SPEC §8). Throws a plain `Error` on failure.
 */
export function preparse(
  name: string,
  schema: cedar.Schema,
  policies: { readonly [id: string]: string },
): void {
  const s = cedar.preparseSchema(name, schema);
  if (s.type !== 'success') throw new Error(`Cedar schema: ${firstMessage(s.errors)}`);
  // A Record<id, text> keeps our ids; one concatenated text would be renamed policy0… (SPEC §8).
  const p = cedar.preparsePolicySet(name, { staticPolicies: { ...policies } });
  if (p.type !== 'success') throw new Error(`Cedar policies: ${firstMessage(p.errors)}`);
}
