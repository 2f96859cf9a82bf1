/**
 * Rewrites a v2 bundle (JSON Lines) as the equivalent v1 document, for tests that tamper with a
 * bundle as one object: both formats reach the same verdict (docs/ledger.md "Audit bundle").
 */
export function v1Of(v2: string): string {
  const records = v2
    .trimEnd()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  const h = records[0] ?? {};
  const entries: unknown[] = [];
  const evidence: Record<string, unknown> = {};
  const policy: Record<string, unknown> = {};
  const inclusion: unknown[] = [...((h['anchor_proofs'] as unknown[] | undefined) ?? [])];
  for (const r of records.slice(1)) {
    if (r['record'] === 'entry') entries.push(r['entry']);
    else if (r['record'] === 'evidence')
      evidence[r['sha256'] as string] = { media_type: r['media_type'], body_b64: r['body_b64'] };
    else if (r['record'] === 'policy_bundle') policy[r['hash'] as string] = r['document'];
    else if (r['record'] === 'inclusion') inclusion.push({ index: r['index'], hashes: r['hashes'] });
  }
  return `${JSON.stringify({
    format: 'failclosed.audit-bundle/v1',
    origin: h['origin'],
    ledger_key: h['ledger_key'],
    scope: h['scope'],
    checkpoint: h['checkpoint'],
    entries,
    anchors: h['anchors'],
    proofs: { inclusion },
    older_checkpoints: h['older_checkpoints'],
    evidence,
    jwks: h['jwks'],
    policy_bundles: policy,
    exports: {},
    executor: h['executor'],
  })}\n`;
}
