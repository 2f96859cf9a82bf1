/**
 * Interface inventory (FC-INV-6 "no execution-capable interface outside the governed path",
 * docs/inventory.md): every `execution.receipt` came through an interface listed by the
 * inventory in force at its time — the latest `inventory.recorded` before it for the policy
 * bundle its envelope names lists a tool of the receipt's name and adapter, and an executor whose
 * audience is the receipt's actor. The inventory document is the entry's evidence, checked
 * against its digest and parsed strictly here.
 *
 * Bundles exported from a ledger older than the inventory hold receipts with no inventory before
 * them: noted ("inventory: not present"), not a violation, unless `requireInventory`
 * (`--require-inventory`) demands one (`INVENTORY_NOT_PRESENT`).
 */
import {
  decodeBase64url,
  hexDigestEquals,
  inventoryLists,
  parseInventory,
  parseJson,
  sha256Hex,
} from '../../kernel/index.js';
import type { InventoryDocument, JsonObject, JsonValue } from '../../kernel/index.js';
import type { Finding, VerifyCheck } from '../types.js';
import { entryFinding, isHex64, parsedViews } from './util.js';

/** What the check carries from one run of entries to the next. */
interface InventoryState {
  /** The latest inventory recorded per policy bundle (`''` for one with no bundle). */
  readonly byBundle: Map<string, InventoryDocument>;
  /** Inventories recorded so far. */
  recorded: number;
  /** Receipts read before any inventory was recorded. */
  unlisted: number;
}

const STATE = 'interface-inventory.state';
const B64_STD = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** The inventory evidence `sha` as a parsed document, or why it cannot be used. */
function inventoryOf(evidence: Readonly<Record<string, JsonValue>>, sha: string): InventoryDocument | string {
  const blob = evidence[sha];
  if (blob === undefined) return 'missing';
  // Attacker-controlled: the evidence body and the document inside it.
  const b64 =
    typeof blob === 'object' && blob !== null && !Array.isArray(blob)
      ? (blob as JsonObject)['body_b64']
      : undefined;
  if (typeof b64 !== 'string' || !B64_STD.test(b64)) return 'its evidence is not base64';
  const body = Buffer.from(b64, 'base64');
  if (!hexDigestEquals(sha256Hex(body), sha)) return 'its evidence does not hash to inventory_sha256';
  let doc: JsonValue;
  try {
    doc = parseJson(body, { maxBytes: 16 << 20 });
  } catch {
    return 'its evidence is not strict JSON';
  }
  return parseInventory(doc);
}

/** The `policy_bundle` claim of the consumed envelope a receipt carries, when it can be read. */
function envelopeBundle(jws: unknown): string | undefined {
  if (typeof jws !== 'string') return undefined;
  const payload = decodeBase64url(jws.split('.')[1] ?? '');
  if (payload === undefined) return undefined;
  try {
    const claims = parseJson(payload, { maxBytes: 1 << 20 });
    const b =
      typeof claims === 'object' && claims !== null && !Array.isArray(claims)
        ? (claims as JsonObject)['policy_bundle']
        : undefined;
    return isHex64(b) ? b : undefined;
  } catch {
    return undefined;
  }
}

/** Interface inventory check. */
export const interfaceInventoryCheck: VerifyCheck = {
  id: 'interface-inventory',
  title: 'every execution receipt came through an interface listed by the inventory in force at its time',
  requirements: ['FC-INV-6'],
  run: (ctx) => {
    const out: Finding[] = [];
    const s = ctx.carry<InventoryState>(STATE, () => ({ byBundle: new Map(), recorded: 0, unlisted: 0 }));
    for (const v of parsedViews(ctx.views)) {
      const e = v.entry;
      const p = e.payload;
      if (e.type === 'inventory.recorded') {
        const sha = p['inventory_sha256'];
        const doc = isHex64(sha) ? inventoryOf(ctx.bundle.evidence, sha) : 'inventory_sha256 is not a digest';
        s.recorded++;
        if (doc === 'missing')
          out.push(
            entryFinding(v, 'INVENTORY_MISSING', 'the recorded inventory is not in the bundle evidence'),
          );
        else if (typeof doc === 'string')
          out.push(entryFinding(v, 'INVENTORY_MALFORMED', `the recorded inventory is unusable: ${doc}`));
        else if (doc.policy_bundle !== (p['policy_bundle'] ?? null))
          out.push(
            entryFinding(
              v,
              'INVENTORY_MALFORMED',
              'the inventory lists another policy bundle than its entry names',
            ),
          );
        else s.byBundle.set(doc.policy_bundle ?? '', doc);
        continue;
      }
      if (e.type !== 'execution.receipt') continue;
      if (s.recorded === 0) {
        s.unlisted++;
        if (ctx.options.requireInventory === true)
          out.push({
            ...entryFinding(
              v,
              'INVENTORY_NOT_PRESENT',
              'no inventory of execution-capable interfaces is recorded before this receipt',
            ),
            // In a partial bundle the inventory may be recorded before its first entry.
            ...(ctx.complete ? {} : { partial: true as const }),
          });
        continue;
      }
      const bundle = envelopeBundle(p['envelope']);
      const doc = bundle === undefined ? undefined : s.byBundle.get(bundle);
      if (doc === undefined) {
        out.push({
          ...entryFinding(
            v,
            'INVENTORY_UNLISTED',
            bundle === undefined
              ? 'the receipt names no policy bundle an inventory could list'
              : `no inventory is recorded for policy bundle ${bundle.slice(0, 16)}… before this receipt`,
          ),
          ...(ctx.complete || bundle === undefined ? {} : { partial: true as const }),
        });
        continue;
      }
      const listed = inventoryLists(doc, { tool: p['tool'], adapter: p['adapter'], executor: e.actor.id });
      if (listed === 'tool-unlisted')
        out.push(
          entryFinding(
            v,
            'INVENTORY_UNLISTED',
            `tool ${JSON.stringify(p['tool'] ?? null)} over adapter ${JSON.stringify(p['adapter'] ?? null)} is not an interface the inventory in force lists`,
          ),
        );
      else if (listed === 'executor-unlisted')
        out.push(
          entryFinding(
            v,
            'INVENTORY_EXECUTOR_UNLISTED',
            `executor ${JSON.stringify(e.actor.id)} is not an execution interface the inventory in force lists`,
          ),
        );
    }
    return out;
  },
  notes: (ctx) => {
    const s = ctx.carry<InventoryState>(STATE, () => ({ byBundle: new Map(), recorded: 0, unlisted: 0 }));
    if (s.recorded > 0 && s.unlisted === 0) return [];
    if (s.recorded === 0 && !ctx.complete)
      return [
        `inventory: not in this partial bundle${s.unlisted > 0 ? ` (${s.unlisted} receipt(s) not checked against one)` : ''}; export the whole ledger to check receipts against it`,
      ];
    if (s.recorded === 0)
      return [
        `inventory: not present (no inventory.recorded entry in this bundle${s.unlisted > 0 ? `; ${s.unlisted} receipt(s) not checked against one` : ''}); pass --require-inventory to demand one`,
      ];
    return [
      `inventory: ${s.unlisted} receipt(s) precede the first recorded inventory and were not checked against one`,
    ];
  },
};
