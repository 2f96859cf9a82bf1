/**
 * The inventory of execution-capable interfaces (FC-INV-6 evidence, docs/inventory.md): what it
 * lists for each deployment shape and tool adapter, where owners come from, that the registry
 * takes another family of interfaces, and that the ledger records it before every activation and
 * when a gate opens with a changed one — an activation whose inventory the ledger did not take is
 * refused and nothing changes.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildInventory,
  demoPolicyDir,
  INVENTORY_PROVIDERS,
  initDataDir,
  openCore,
  readOperatorToken,
  type InventoryProvider,
  type InventorySources,
} from '../../src/embedded/index.js';
import { inventoryJson, isDeny, parseInventory, sha256Hex } from '../../src/kernel/index.js';
import type { LedgerEntry } from '../../src/ledger/index.js';
import { buildBundleFromDir, type LoadedBundle } from '../../src/policy/index.js';
import { faultDecorators, noFaults } from '../support/faults.js';

const CONFIG: InventorySources['config'] = { audience: 'failclosed-executor', execution_port: 7071 };
const H = (c: string): string => c.repeat(64);

let demo: LoadedBundle;
let work: string;

beforeAll(async () => {
  const b = await buildBundleFromDir(demoPolicyDir());
  if (isDeny(b)) throw new Error(b.reason);
  demo = b.bundle;
  work = mkdtempSync(join(tmpdir(), 'fc-inventory-'));
});

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

/** A bundle whose tools use every adapter: MCP over stdio and HTTP (a pinned tool, prompt, resource), HTTP. */
function adapterBundle(): LoadedBundle {
  const mcp = { type: 'mcp', server: 'files', definition_sha256: H('d') };
  const tool = (name: string, adapter: Record<string, unknown>, owner?: string) => ({
    name,
    description: name,
    parameters: { type: 'object', additionalProperties: false },
    risk: 'low' as const,
    adapter: adapter as LoadedBundle['document']['tools'][number]['adapter'],
    ...(owner === undefined ? {} : { owner }),
  });
  return {
    hash: H('b'),
    document: {
      ...demo.document,
      policies: { all: 'permit (principal, action, resource);' },
      tools: [
        tool('files.read', { ...mcp, command: ['/usr/bin/mcp-files'], tool: 'read' }, 'storage-team'),
        tool('files.prompt', { ...mcp, command: ['/usr/bin/mcp-files'], prompt: 'summarise' }),
        tool('web.page', { ...mcp, server: 'web', url: 'https://mcp.example/mcp', resource: 'page://x' }),
        tool('web.pages', {
          ...mcp,
          server: 'web',
          url: 'https://mcp.example/mcp',
          resource_template: 'page://{id}',
        }),
        tool('hook', { type: 'http', method: 'POST', url: 'https://hooks.example/x' }, 'ops'),
      ],
    },
  };
}

describe('buildInventory', () => {
  it('the embedded default: a loopback execution listener and every demo tool with its Cedar action and owner', () => {
    const doc = buildInventory({ config: CONFIG, bundle: demo, activator: 'operator' });
    expect(doc.policy_bundle).toBe(demo.hash);
    expect(doc.interfaces[0]).toMatchObject({
      kind: 'execution-listener',
      audience: 'failclosed-executor',
      detail: { host: '127.0.0.1', port: 7071, tls: false, admits: 'loopback' },
    });
    expect(doc.interfaces[0]?.guard).toMatch(/envelope verify .*nonce consume/);
    const tools = doc.interfaces.filter((e) => e.tool !== undefined);
    expect(tools.map((e) => e.tool)).toEqual(demo.document.tools.map((t) => t.name));
    expect(doc.interfaces.find((e) => e.tool === 'list_files')).toMatchObject({
      kind: 'command',
      adapter: 'command',
      owner: 'operator',
      owner_source: 'activator',
      policy: { bundle: demo.hash, actions: ['Action::"list_files"'], permit: 'possible' },
    });
    expect(doc.interfaces.find((e) => e.tool === 'echo')?.kind).toBe('builtin');
    // Round trip through the strict parser the verifier uses.
    expect(parseInventory(inventoryJson(doc))).toEqual(doc);
  });

  it('MCP upstreams over stdio and HTTP with what each pins, HTTP tools, and owners named by the bundle', () => {
    const doc = buildInventory({ config: CONFIG, bundle: adapterBundle(), activator: 'alice' });
    const by = (tool: string) => doc.interfaces.find((e) => e.tool === tool);
    expect(by('files.read')).toMatchObject({
      kind: 'mcp-stdio',
      adapter: 'mcp',
      owner: 'storage-team',
      owner_source: 'bundle',
      detail: { server: 'files', pinned: 'tool', upstream_name: 'read', definition_sha256: H('d') },
    });
    expect(by('files.prompt')).toMatchObject({
      kind: 'mcp-stdio',
      owner: 'alice',
      detail: { pinned: 'prompt' },
    });
    expect(by('web.page')).toMatchObject({
      kind: 'mcp-http',
      detail: { server: 'web', url: 'https://mcp.example/mcp', pinned: 'resource' },
    });
    // A resource template is labelled as such, under its template (not as a resource).
    expect(by('web.pages')).toMatchObject({
      kind: 'mcp-http',
      detail: { server: 'web', pinned: 'template', upstream_name: 'page://{id}' },
    });
    expect(by('hook')).toMatchObject({ kind: 'http', owner: 'ops', detail: { method: 'POST' } });
    expect(parseInventory(inventoryJson(doc))).toEqual(doc);
  });

  it('a tool no rule could ever permit is flagged never', () => {
    const { 'send-email': _gone, ...policies } = demo.document.policies;
    const doc = buildInventory({
      config: CONFIG,
      bundle: { ...demo, document: { ...demo.document, policies } },
    });
    expect(doc.interfaces.find((e) => e.tool === 'send_email')?.policy.permit).toBe('never');
    expect(doc.interfaces.find((e) => e.tool === 'echo')?.policy.permit).toBe('possible');
    expect(doc.interfaces.find((e) => e.tool === 'echo')).toMatchObject({
      owner: 'unowned',
      owner_source: 'none',
    });
  });

  it('mutual TLS and a separate Execution Layer: the listeners as configured', () => {
    const tls = {
      ca: 'ca.pem',
      gate: { cert: 'g.pem', key: 'g.key' },
      control_plane: { cert: 'cp.pem', key: 'cp.key' },
      executor: { cert: 'e.pem', key: 'e.key' },
    };
    const mtls = buildInventory({
      config: { ...CONFIG, tls: tls, execution_host: '10.0.0.5', internal_port: 7443 },
    });
    expect(mtls.interfaces.map((e) => e.kind)).toEqual([
      'execution-listener',
      'internal-listener',
      'job-queue',
      'scheduler',
    ]);
    expect(mtls.interfaces[0]?.detail).toMatchObject({ host: '10.0.0.5', tls: true, admits: 'gate' });
    expect(mtls.interfaces[1]?.detail).toMatchObject({ port: 7443, admits: 'executor' });
    const separate = buildInventory({
      config: { ...CONFIG, tls: { ...tls, executor: undefined } as never, executor_url: 'https://exec:7443' },
    });
    expect(separate.interfaces.map((e) => e.kind)).toEqual(['executor-node', 'job-queue', 'scheduler']);
    expect(separate.interfaces[0]).toMatchObject({
      id: 'executor:https://exec:7443',
      audience: CONFIG.audience,
    });
  });

  it('another family of interfaces is one more provider', () => {
    const scheduler: InventoryProvider = () => [
      {
        kind: 'builtin',
        id: 'scheduler:nightly',
        owner: 'ops',
        owner_source: 'none',
        policy: { bundle: null, actions: [], permit: 'not-applicable' },
        guard: 'test',
        detail: {},
      },
    ];
    const doc = buildInventory({ config: CONFIG }, [...INVENTORY_PROVIDERS, scheduler]);
    expect(doc.interfaces.map((e) => e.id)).toEqual([
      'listener:execution',
      'queue:local',
      'scheduler',
      'scheduler:nightly',
    ]);
  });

  it('lists the queue of background calls: local by default, or the NATS subject and consumer', () => {
    const local = buildInventory({ config: CONFIG }).interfaces.find((e) => e.kind === 'job-queue');
    expect(local).toMatchObject({ id: 'queue:local', detail: { queue: 'local', concurrency: 2 } });
    const nats = buildInventory({
      config: {
        ...CONFIG,
        jobs: { queue: 'nats', url: 'nats://127.0.0.1:4222', stream: 'JOBS', workers: 1 },
      },
    }).interfaces.find((e) => e.kind === 'job-queue');
    expect(nats).toMatchObject({
      id: 'queue:nats:JOBS',
      detail: { subject: 'failclosed.jobs.jobs', consumer: 'workers', workers_in_gate: 1 },
    });
    expect(nats?.guard).toContain('executor.execute');
  });
});

async function entries(dir: string, faults = noFaults()): Promise<LedgerEntry[]> {
  const core = await openCore(dir, { decorate: faultDecorators(faults) });
  try {
    return await core.ledger.store.readRange(0, core.ledger.size());
  } finally {
    await core.close();
  }
}

describe('the inventory in the ledger', () => {
  it('init records it before its activation, as evidence that hashes to its name; an unchanged reopen records nothing', async () => {
    const dir = join(work, 'init');
    await initDataDir(dir);
    const all = await entries(dir);
    const recorded = all.filter((e) => e.type === 'inventory.recorded');
    expect(recorded).toHaveLength(1);
    const activation = all.find((e) => e.type === 'admin.policy_activated')!;
    expect(recorded[0]!.index).toBeLessThan(activation.index);
    expect(recorded[0]!.payload).toMatchObject({
      policy_bundle: activation.payload['policy_bundle'],
      reason: 'policy_activated',
    });
    const core = await openCore(dir);
    try {
      const sha = recorded[0]!.payload['inventory_sha256'] as string;
      const blob = await core.ledger.store.getEvidence(sha);
      expect(blob === undefined ? undefined : sha256Hex(blob.body)).toBe(sha);
    } finally {
      await core.close();
    }
    expect((await entries(dir)).filter((e) => e.type === 'inventory.recorded')).toHaveLength(1);
  });

  it('a gate opened with changed listeners records the new inventory (reason start)', async () => {
    const dir = join(work, 'changed');
    await initDataDir(dir);
    const file = join(dir, 'failclosed.json');
    const config = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    writeFileSync(file, JSON.stringify({ ...config, execution_port: 17071 }));
    const recorded = (await entries(dir)).filter((e) => e.type === 'inventory.recorded');
    expect(recorded).toHaveLength(2);
    expect(recorded[1]!.payload['reason']).toBe('start');
    expect(recorded[1]!.actor.role).toBe('gate');
  });

  it('an activation whose inventory the ledger refuses is refused ERR_LEDGER_UNAVAILABLE; the policy stays', async () => {
    const dir = join(work, 'refused');
    await initDataDir(dir);
    const faults = { ...noFaults(), ledger: 'throw' as const, ledgerTypes: ['inventory.recorded'] };
    const core = await openCore(dir, { decorate: faultDecorators(faults) });
    try {
      const before = core.bundles.active();
      const built = await buildBundleFromDir(demoPolicyDir());
      if (isDeny(built)) throw new Error(built.reason);
      const doc = JSON.parse(built.text) as { settings: Record<string, unknown> };
      doc.settings['description'] = 'another bundle';
      const size = core.ledger.size();
      const a = await core.gate.admin(
        'policy-activate',
        { bundle: JSON.stringify(doc), reason: 'test' },
        `Bearer ${readOperatorToken(dir)}`,
      );
      expect(a.body).toMatchObject({ code: 'ERR_LEDGER_UNAVAILABLE' });
      const after = await core.ledger.store.readRange(size, core.ledger.size());
      expect(after.filter((e) => e.type === 'admin.policy_activated')).toEqual([]);
      const now = core.bundles.active();
      expect(isDeny(now) ? null : now.hash).toBe(isDeny(before) ? 'no active bundle before' : before.hash);
    } finally {
      await core.close();
    }
  });
});
