/**
 * `failclosed inventory`: the deployment's execution-capable interfaces with their owner, the
 * policy that covers each and the envelope check that guards it (docs/inventory.md, FC-INV-6).
 * `--data DIR` asks the Gate's operator endpoint (`POST /v1/admin/inventory`, of the running
 * server or an in-process one); `--config FILE` reads a separate Execution Layer's configuration.
 * argv → calls, no logic.
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { connect, operatorAction } from '../embedded/lean.js';
import { inventoryJson, inventorySha256, parseInventory } from '../kernel/index.js';
import type { InventoryDocument, JsonValue } from '../kernel/index.js';
import { operatorConnection } from './operators.js';

/** The usage line. */
export const INVENTORY_USAGE = `  inventory [--config FILE] [--json]        execution-capable interfaces: kind, owner, policy, envelope check
                                              (docs/inventory.md); --config: a serve executor configuration
`;

/** A usage mistake (exit 2). */
export class InventoryUsageError extends Error {}

/** Where the command writes. */
export interface InventoryIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  readonly env: Readonly<Record<string, string | undefined>>;
}

/** One line per interface: kind, id, owner, whether a rule could permit it, and its guard. */
export function formatInventory(doc: InventoryDocument, sha256: string): string {
  const lines = [
    `inventory ${sha256}`,
    `policy bundle ${doc.policy_bundle ?? '(none active)'}`,
    `${doc.interfaces.length} execution-capable interface(s)`,
    '',
  ];
  for (const e of doc.interfaces) {
    const what = e.tool !== undefined ? `${e.tool} (${e.adapter ?? '?'})` : (e.audience ?? e.id);
    lines.push(`${e.kind.padEnd(19)} ${e.id}`);
    lines.push(`  ${what}; owner ${e.owner} (${e.owner_source})`);
    const actions = e.policy.actions.length > 0 ? ` ${e.policy.actions.join(', ')}` : '';
    lines.push(`  policy${actions}: permit ${e.policy.permit}`);
    lines.push(`  guard: ${e.guard}`);
  }
  return `${lines.join('\n')}\n`;
}

function show(io: InventoryIo, doc: InventoryDocument, json: boolean): void {
  const sha = inventorySha256(doc);
  if (json) io.out(`${JSON.stringify({ inventory_sha256: sha, inventory: inventoryJson(doc) }, null, 2)}\n`);
  else io.out(formatInventory(doc, sha));
}

/**
 * Runs `inventory` with the arguments after the command word (and `--data`, which may come
 * before it). Exit 0 listed, 1 the Gate refused or failed; throws {@link InventoryUsageError}.
 */
export async function runInventoryCli(argv: readonly string[], io: InventoryIo): Promise<number> {
  let v;
  try {
    ({ values: v } = parseArgs({
      args: [...argv],
      options: {
        data: { type: 'string' },
        config: { type: 'string' },
        json: { type: 'boolean' },
        operator: { type: 'string' },
      },
      allowPositionals: false,
      strict: true,
    }));
  } catch (err) {
    throw new InventoryUsageError(err instanceof Error ? err.message : 'bad arguments');
  }
  const json = v.json === true;
  if (v.config !== undefined) {
    if (v.data !== undefined)
      throw new InventoryUsageError('inventory takes --data DIR or --config FILE, not both');
    const { buildExecutorNodeInventory, readExecutorConfig } = await import('../embedded/index.js');
    show(io, buildExecutorNodeInventory(readExecutorConfig(v.config)), json);
    return 0;
  }
  const dir = resolve(v.data ?? io.env['FAILCLOSED_HOME'] ?? '.failclosed');
  const conn = await connect(dir, operatorConnection(dir, io.env, v.operator));
  try {
    const a = await operatorAction(conn, 'inventory', {});
    const body = a.body as { inventory?: JsonValue } | null;
    const doc = a.status === 200 ? parseInventory(body?.inventory) : undefined;
    if (doc === undefined || typeof doc === 'string') {
      io.err(`${JSON.stringify(a.body)}\n`);
      return 1;
    }
    show(io, doc, json);
    return 0;
  } finally {
    await conn.close();
  }
}
