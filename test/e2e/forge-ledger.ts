/**
 * A forger holding every key of a deployment (its ledger key and issuer key, read from the data
 * directory) rewriting an exported v2 audit bundle consistently: edit payloads, then re-link and
 * re-hash the chain, carry every moved entry hash into the records and signed envelopes that name
 * it (re-signing the consumed envelopes with the issuer key, both digests following), and re-sign
 * the checkpoint over the new tree with the ledger key. `failclosed verify`, even with the
 * deployment's trust roots pinned, cannot tell (docs/replay.md "What verify cannot see").
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  computeEntryHash,
  entryLeafHash,
  envelopeSha256,
  formatCheckpoint,
  rootOf,
} from '../../src/kernel/index.js';
import type { EnvelopeClaims } from '../../src/kernel/index.js';
import {
  importSigningKeyJwk,
  noteSignerFor,
  signEnvelope,
  signNote,
} from '../../src/kernel/signing/index.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Rec = Record<string, any>;

/** A parsed v2 bundle: header, the other records in place, and the entries. */
export interface OpenBundle {
  header: Rec;
  records: Rec[];
  entries: Rec[];
}

/** Parses v2 bundle text. */
export function openBundle(text: string): OpenBundle {
  const [header, ...rest] = text
    .trimEnd()
    .split('\n')
    .map((l) => JSON.parse(l) as Rec);
  return {
    header: header!,
    records: rest.filter((r) => r['record'] !== 'entry' && r['record'] !== 'end'),
    entries: rest.filter((r) => r['record'] === 'entry').map((r) => r['entry'] as Rec),
  };
}

/** One chunk: every non-entry record, then the entries, then the end record. */
export function renderBundle(b: OpenBundle): string {
  return `${[
    b.header,
    ...b.records,
    ...b.entries.map((entry) => ({ record: 'entry', entry })),
    { record: 'end', entries: b.entries.length },
  ]
    .map((r) => JSON.stringify(r))
    .join('\n')}\n`;
}

const claimsOf = (jws: string): Rec =>
  JSON.parse(Buffer.from(jws.split('.')[1] ?? '', 'base64url').toString('utf8')) as Rec;

/** Replaces every string equal to a key of `moved` inside `v` (entry hashes are unique 64-hex). */
function remap(v: unknown, moved: ReadonlyMap<string, string>): unknown {
  if (typeof v === 'string') return moved.get(v) ?? v;
  if (Array.isArray(v)) return v.map((x) => remap(x, moved));
  if (typeof v === 'object' && v !== null)
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, remap(x, moved)]));
  return v;
}

/**
 * Rebuilds `b` after its payloads were edited, with the keys of the data directory `dir`: the
 * chain, every reference to a moved entry, the consumed envelopes (re-signed) and the checkpoint.
 */
export function resignWithDeploymentKeys(b: OpenBundle, dir: string): void {
  const keyOf = (name: string) =>
    importSigningKeyJwk(JSON.parse(readFileSync(join(dir, 'keys', name), 'utf8')) as unknown);
  const issuer = keyOf('issuer.jwk');
  const ledger = keyOf('ledger.jwk');
  const moved = new Map<string, string>();
  const resigned = new Map<string, string>();
  let prev: string | undefined;
  for (const e of b.entries) {
    e['payload'] = remap(e['payload'], moved);
    if (e['type'] === 'envelope.issued') {
      const receipt = b.entries.find(
        (r) => r['type'] === 'execution.receipt' && r['payload']['jti'] === e['payload']['jti'],
      );
      if (receipt !== undefined) {
        const claims = remap(claimsOf(receipt['payload']['envelope'] as string), moved) as EnvelopeClaims;
        const jws = signEnvelope(claims, issuer);
        resigned.set(e['payload']['jti'] as string, jws);
        e['payload']['envelope_sha256'] = envelopeSha256(jws);
      }
    }
    if (e['type'] === 'execution.receipt') {
      const jws = resigned.get(e['payload']['jti'] as string);
      if (jws !== undefined) {
        e['payload']['envelope'] = jws;
        e['payload']['envelope_sha256'] = envelopeSha256(jws);
      }
    }
    if (prev !== undefined) e['prev_hash'] = prev;
    const { entry_hash: old, ...body } = e;
    const fresh = computeEntryHash(body as never);
    if (fresh !== old) moved.set(old as string, fresh);
    e['entry_hash'] = fresh;
    prev = fresh;
  }
  const origin = b.header['origin'] as string;
  const root = rootOf(b.entries.map((e) => entryLeafHash(e['entry_hash'] as string)));
  b.header['checkpoint'] = signNote(
    formatCheckpoint({ origin, size: b.entries.length, rootHash: root }),
    noteSignerFor(origin, ledger.privateKey),
  );
  b.header['older_checkpoints'] = [];
}
