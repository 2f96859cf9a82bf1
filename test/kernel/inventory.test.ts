/**
 * The inventory document format (FC-INV-6 evidence, docs/inventory.md): what the strict parser
 * the verifier uses accepts and refuses, and which receipts an inventory lists.
 */
import { describe, expect, it } from 'vitest';
import {
  INVENTORY_FORMAT,
  inventoryLists,
  inventorySha256,
  parseInventory,
  sha256Hex,
  canonicalize,
  type InventoryDocument,
  type JsonValue,
} from '../../src/kernel/index.js';

const B = 'a'.repeat(64);
const tool = {
  kind: 'builtin',
  id: 'tool:echo',
  owner: 'alice',
  owner_source: 'bundle',
  policy: { bundle: B, actions: ['Action::"echo"'], permit: 'possible' },
  guard: 'executor.execute',
  tool: 'echo',
  adapter: 'builtin',
  detail: { risk: 'low' },
};
const listener = {
  kind: 'execution-listener',
  id: 'listener:execution',
  owner: 'alice',
  owner_source: 'activator',
  policy: { bundle: B, actions: [], permit: 'not-applicable' },
  guard: 'POST /v1/execute',
  audience: 'exec-1',
  detail: { port: 7071, tls: false, host: null },
};
const valid = { format: INVENTORY_FORMAT, policy_bundle: B, interfaces: [listener, tool] };

function parsed(v: unknown): InventoryDocument {
  const d = parseInventory(v as JsonValue);
  if (typeof d === 'string') throw new Error(d);
  return d;
}

describe('parseInventory', () => {
  it('accepts a well-formed document; its digest is that of its canonical bytes', () => {
    const d = parsed(valid);
    expect(d.interfaces).toHaveLength(2);
    expect(inventorySha256(d)).toBe(sha256Hex(canonicalize(valid as unknown as JsonValue)));
  });

  const rejected: [string, unknown][] = [
    ['not an object', []],
    ['another format', { ...valid, format: 'failclosed.inventory/v0' }],
    ['an unknown top-level member', { ...valid, extra: 1 }],
    ['a policy bundle that is no hash', { ...valid, policy_bundle: 'abc' }],
    ['an unknown kind', { ...valid, interfaces: [{ ...tool, kind: 'shell' }] }],
    ['an unknown member of an interface', { ...valid, interfaces: [{ ...tool, secret: 'x' }] }],
    ['the same id twice', { ...valid, interfaces: [tool, tool] }],
    ['no owner', { ...valid, interfaces: [{ ...tool, owner: '' }] }],
    ['an unknown owner source', { ...valid, interfaces: [{ ...tool, owner_source: 'guess' }] }],
    [
      'an unknown permit',
      { ...valid, interfaces: [{ ...tool, policy: { ...tool.policy, permit: 'maybe' } }] },
    ],
    ['an extra policy member', { ...valid, interfaces: [{ ...tool, policy: { ...tool.policy, x: 1 } }] }],
    ['a detail that is not a scalar', { ...valid, interfaces: [{ ...tool, detail: { nested: { a: 1 } } }] }],
    ['a tool name that is not a string', { ...valid, interfaces: [{ ...tool, tool: 7 }] }],
  ];
  for (const [what, v] of rejected)
    it(`refuses ${what}`, () => {
      expect(typeof parseInventory(v as JsonValue)).toBe('string');
    });
});

describe('inventoryLists', () => {
  const d = parsed(valid);
  it('a receipt of a listed tool and adapter by a listed executor is listed', () => {
    expect(inventoryLists(d, { tool: 'echo', adapter: 'builtin', executor: 'exec-1' })).toBe('listed');
  });
  it('another adapter or tool is not', () => {
    expect(inventoryLists(d, { tool: 'echo', adapter: 'command', executor: 'exec-1' })).toBe('tool-unlisted');
    expect(inventoryLists(d, { tool: 'rm', adapter: 'builtin', executor: 'exec-1' })).toBe('tool-unlisted');
    expect(inventoryLists(d, { tool: undefined, adapter: undefined, executor: 'exec-1' })).toBe(
      'tool-unlisted',
    );
  });
  it('another executor is not', () => {
    expect(inventoryLists(d, { tool: 'echo', adapter: 'builtin', executor: 'exec-2' })).toBe(
      'executor-unlisted',
    );
  });
  it('a listener never counts as a tool, nor a tool as an executor', () => {
    const onlyTool = parsed({ ...valid, interfaces: [{ ...tool, audience: 'exec-1' }] });
    expect(inventoryLists(onlyTool, { tool: 'echo', adapter: 'builtin', executor: 'exec-1' })).toBe(
      'executor-unlisted',
    );
  });
});
