/**
 * Rewrites a v1 bundle (possibly tampered) as v2 JSON Lines, so every tamper of the v1 corpus
 * also runs through the streaming reader (docs/ledger.md "Audit bundle"): header, policy
 * bundles, then chunks of `chunk` entries each preceded by the evidence and inclusion proofs its
 * entries name, then the end record.
 */
import type { MutableBundle } from './helpers.js';

const HEX64 = /^[0-9a-f]{64}$/;

/** The v2 lines of `b`. */
export function v2Lines(b: MutableBundle, chunk = 2): string[] {
  const inclusion = new Map<number, unknown>();
  for (const p of (b['proofs']?.['inclusion'] ?? []) as { index: number; hashes: unknown }[])
    inclusion.set(p.index, p.hashes);
  const anchors = (b['anchors'] ?? []) as { index: number }[];
  const lines: string[] = [
    JSON.stringify({
      record: 'header',
      format: 'failclosed.audit-bundle/v2',
      origin: b['origin'],
      ledger_key: b['ledger_key'],
      scope: b['scope'],
      checkpoint: b['checkpoint'],
      inclusion_proofs: inclusion.size > 0,
      anchors,
      anchor_proofs: anchors
        .filter((a) => inclusion.has(a.index))
        .map((a) => ({ index: a.index, hashes: inclusion.get(a.index) })),
      older_checkpoints: b['older_checkpoints'],
      jwks: b['jwks'],
      executor: b['executor'],
    }),
  ];
  for (const [hash, document] of Object.entries(b['policy_bundles'] ?? {}))
    lines.push(JSON.stringify({ record: 'policy_bundle', hash, document }));
  const entries = (b['entries'] ?? []) as unknown[];
  const evidence = (b['evidence'] ?? {}) as Record<string, { media_type: unknown; body_b64: unknown }>;
  for (let i = 0; i < entries.length; i += chunk) {
    const part = entries.slice(i, i + chunk);
    const shas = new Set<string>();
    for (const e of part) {
      const payload = (e as { payload?: unknown } | null)?.payload;
      if (typeof payload !== 'object' || payload === null) continue;
      for (const [k, v] of Object.entries(payload))
        if (k.endsWith('_sha256') && typeof v === 'string' && HEX64.test(v) && evidence[v] !== undefined)
          shas.add(v);
    }
    for (const sha of shas) lines.push(JSON.stringify({ record: 'evidence', sha256: sha, ...evidence[sha] }));
    for (const e of part) {
      const index = (e as { index?: unknown } | null)?.index;
      if (typeof index === 'number' && inclusion.has(index))
        lines.push(JSON.stringify({ record: 'inclusion', index, hashes: inclusion.get(index) }));
    }
    for (const e of part) lines.push(JSON.stringify({ record: 'entry', entry: e }));
  }
  lines.push(JSON.stringify({ record: 'end', entries: entries.length }));
  return lines;
}

/** Small limits so even a short bundle is read in several runs and request batches. */
export const TINY_LIMITS = { runEntries: 3, requestLag: 4, requestBatch: 5 } as const;
