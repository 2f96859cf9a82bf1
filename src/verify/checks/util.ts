/** Small helpers shared by the checks. */
import type { BundleEntry } from '../entry-format.js';
import type { EntryView } from '../context.js';
import type { Finding, FindingCode } from '../types.js';

/** A finding naming the entry at `view` (its ledger index when it parsed, always its position). */
export function entryFinding(view: EntryView, code: FindingCode, message: string): Finding {
  const index = view.entry?.index;
  const name = index === undefined ? `entry at position ${view.position}` : `entry ${index}`;
  return index === undefined
    ? { code, message: `${name}: ${message}`, position: view.position }
    : { code, message: `${name}: ${message}`, position: view.position, index };
}

/** The views whose entry parsed. */
export function parsedViews(views: readonly EntryView[]): (EntryView & { readonly entry: BundleEntry })[] {
  return views.filter((v): v is EntryView & { readonly entry: BundleEntry } => v.entry !== undefined);
}

const HEX64 = /^[0-9a-f]{64}$/;

/** Decodes a proof (array of 64-hex hashes) or returns undefined. */
export function decodeProof(v: unknown): Buffer[] | undefined {
  // Attacker-controlled: proof hashes from the bundle.
  if (!Array.isArray(v) || v.length > 128) return undefined;
  const out: Buffer[] = [];
  for (const h of v) {
    if (typeof h !== 'string' || !HEX64.test(h)) return undefined;
    out.push(Buffer.from(h, 'hex'));
  }
  return out;
}

/** True for a 64-digit lower-hex string. */
export function isHex64(v: unknown): v is string {
  return typeof v === 'string' && HEX64.test(v);
}
