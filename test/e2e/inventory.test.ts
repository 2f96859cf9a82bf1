/**
 * `failclosed inventory` end to end (FC-INV-6 evidence, docs/inventory.md): the command lists a
 * real deployment's execution-capable interfaces through the Gate's operator endpoint (an
 * in-process instance, and the built `failclosed` binary), the endpoint refuses a caller without
 * an operator token, `--config` lists a separate Execution Layer, and the inventory the command
 * shows is the one the ledger export carries, against which `verify --require-inventory` checks
 * every receipt.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/run.js';
import { createClient } from '../../src/client/index.js';
import {
  DEMO_CLIENT,
  initDataDir,
  openCore,
  readClientFile,
  readOperatorToken,
  startEmbedded,
} from '../../src/embedded/index.js';
import type { InventoryDocument } from '../../src/kernel/index.js';
import { REPO_ROOT } from '../support/paths.js';

const run = promisify(execFile);

let work: string;
let dir: string;

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(argv, { out: (t) => void out.push(t), err: (t) => void err.push(t), env: {} });
  return { code, out: out.join(''), err: err.join('') };
}

interface Listed {
  inventory_sha256: string;
  inventory: InventoryDocument;
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'fc-e2e-inventory-'));
  dir = join(work, 'data');
  await initDataDir(dir);
}, 60_000);

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe('failclosed inventory', () => {
  it('--json lists the execution listener and every tool with its owner, Cedar action, permit and guard', async () => {
    const r = await cli('--data', dir, 'inventory', '--json');
    expect(r.code).toBe(0);
    const listed = JSON.parse(r.out) as Listed;
    expect(listed.inventory_sha256).toMatch(/^[0-9a-f]{64}$/);
    const ids = listed.inventory.interfaces.map((e) => e.id);
    expect(ids).toContain('listener:execution');
    for (const t of ['echo', 'list_files', 'send_email', 'transfer_funds'])
      expect(ids).toContain(`tool:${t}`);
    for (const e of listed.inventory.interfaces) {
      expect(e.owner).toBe('operator');
      expect(e.guard).toMatch(/envelope verify/);
    }
    expect(listed.inventory.interfaces.find((e) => e.id === 'tool:list_files')).toMatchObject({
      kind: 'command',
      policy: { actions: ['Action::"list_files"'], permit: 'possible' },
    });
  });

  it('without --json prints one block per interface', async () => {
    const r = await cli('inventory', '--data', dir);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^inventory [0-9a-f]{64}\n/);
    expect(r.out).toContain('execution-listener  listener:execution');
    expect(r.out).toContain('echo (builtin); owner operator (activator)');
  });

  it('the built binary prints the same inventory', async () => {
    const bin = join(REPO_ROOT, 'dist/src/cli/main.js');
    const { stdout } = await run(process.execPath, [bin, '--data', dir, 'inventory', '--json']);
    const mine = JSON.parse((await cli('--data', dir, 'inventory', '--json')).out) as Listed;
    expect((JSON.parse(stdout) as Listed).inventory_sha256).toBe(mine.inventory_sha256);
  });

  it('--config lists a separate Execution Layer by its own configuration', async () => {
    const file = join(work, 'executor.json');
    writeFileSync(
      file,
      JSON.stringify({
        audience: 'exec-a',
        listen: { host: '127.0.0.1', port: 7443 },
        gate_url: 'https://127.0.0.1:7444',
        tls: { ca: 'ca.pem', cert: 'executor.pem', key: 'executor.key' },
        nonces: 'nonces.db',
      }),
    );
    const r = await cli('inventory', '--config', file, '--json');
    expect(r.code).toBe(0);
    expect((JSON.parse(r.out) as Listed).inventory.interfaces).toEqual([
      expect.objectContaining({
        kind: 'executor-node',
        audience: 'exec-a',
        id: 'executor:https://127.0.0.1:7443',
      }),
    ]);
  });

  it('an operator of some tenants only is refused ERR_FORBIDDEN, and the refusal is ledgered', async () => {
    const env = { XDG_CONFIG_HOME: join(work, 'xdg') };
    const io = { out: () => undefined, err: () => undefined, env };
    expect(await runCli(['--data', dir, 'operators', 'add', 'acme-ops', '--tenant', 'acme'], io)).toBe(0);
    const err: string[] = [];
    const code = await runCli(['--data', dir, 'inventory', '--operator', 'acme-ops'], {
      ...io,
      err: (t) => void err.push(t),
    });
    expect(code).toBe(1);
    expect(err.join('')).toContain('ERR_FORBIDDEN');
    const core = await openCore(dir);
    try {
      const all = await core.ledger.store.readRange(0, core.ledger.size());
      expect(all.filter((e) => e.type === 'admin.refused').at(-1)).toMatchObject({
        actor: { id: 'acme-ops', role: 'operator' },
        payload: { action: 'inventory', code: 'ERR_FORBIDDEN' },
      });
    } finally {
      await core.close();
    }
  });

  it('--data and --config together, or a stray word, are usage errors (exit 2)', async () => {
    expect((await cli('inventory', '--data', dir, '--config', 'x.json')).code).toBe(2);
    expect((await cli('--data', dir, 'inventory', 'extra')).code).toBe(2);
  });
});

describe('POST /v1/admin/inventory and the ledger export', () => {
  it('needs an operator token; the listed inventory is the one the export carries, and verify checks receipts against it', async () => {
    const instance = await startEmbedded(dir, { port: 0, executionPort: 0 });
    let bundlePath: string;
    let listed: Listed;
    try {
      const url = `${instance.url}/v1/admin/inventory`;
      const anonymous = await fetch(url, {
        method: 'POST',
        body: '{}',
        headers: { 'content-type': 'application/json' },
      });
      expect(anonymous.status).toBe(401);
      const res = await fetch(url, {
        method: 'POST',
        body: '{}',
        headers: { authorization: `Bearer ${readOperatorToken(dir)}`, 'content-type': 'application/json' },
      });
      expect(res.status).toBe(200);
      listed = (await res.json()) as Listed;
      const file = readClientFile(dir, DEMO_CLIENT.identity);
      const client = createClient({
        url: instance.url,
        identity: file.identity,
        tenant: file.tenant,
        key: file.key,
      });
      expect(await client.call('echo', { message: 'listed' }, { session: 'inventory-e2e' })).toMatchObject({
        outcome: 'executed',
      });
      const exported = await fetch(`${instance.url}/v1/admin/ledger-export`, {
        method: 'POST',
        body: '{}',
        headers: { authorization: `Bearer ${readOperatorToken(dir)}`, 'content-type': 'application/json' },
      });
      expect(exported.status).toBe(200);
      bundlePath = join(work, 'bundle.jsonl');
      writeFileSync(bundlePath, await exported.text());
      writeFileSync(join(work, 'trust.json'), await (await fetch(`${instance.url}/v1/trust-roots`)).text());
    } finally {
      await instance.close();
    }
    const lines = readFileSync(bundlePath, 'utf8')
      .trimEnd()
      .split('\n')
      .map(
        (l) =>
          JSON.parse(l) as { record: string; entry?: { type: string; payload: Record<string, unknown> } },
      );
    const recorded = lines.filter((l) => l.entry?.type === 'inventory.recorded').at(-1);
    expect(recorded?.entry?.payload['inventory_sha256']).toBe(listed.inventory_sha256);
    const v = await cli(
      'verify',
      bundlePath,
      '--trust',
      join(work, 'trust.json'),
      '--require-inventory',
      '--json',
    );
    expect(v.code).toBe(0);
    const report = JSON.parse(v.out) as { checks: { id: string; status: string }[] };
    expect(report.checks.find((c) => c.id === 'interface-inventory')?.status).toBe('pass');
  });
});
