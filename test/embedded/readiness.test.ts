/**
 * `/readyz` reflects real health by probing (STYLE "Readiness asks the real dependency, never a
 * flag"; L7 degraded mode): a full disk under the data directory makes it 503 with the failing
 * check named. The data directory sits on a small tmpfs filled to the last byte when the test may
 * mount one (root); otherwise the same probe is driven by a free-space threshold above what the
 * file system has.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { dataPaths, initDataDir, openCore } from '../../src/embedded/index.js';
import type { Core } from '../../src/embedded/index.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Mounts a 16 MiB tmpfs on a fresh directory; null when this process may not mount. */
function smallTmpfs(): string | null {
  const dir = mkdtempSync(join(tmpdir(), 'fc-readyz-mnt-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', dir], { stdio: 'ignore' });
  } catch {
    rmSync(dir, { recursive: true, force: true });
    return null;
  }
  cleanups.push(() => {
    execFileSync('umount', [dir], { stdio: 'ignore' });
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

function setConfig(dir: string, over: Record<string, unknown>): void {
  const path = dataPaths(dir).config;
  const config = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  writeFileSync(path, JSON.stringify({ ...config, ...over }));
}

/** Writes zeros into `dir` until the file system refuses (ENOSPC). */
function fillDisk(dir: string): void {
  const chunk = Buffer.alloc(256 * 1024);
  let i = 0;
  for (;;) {
    try {
      writeFileSync(join(dir, `filler-${i++}`), chunk);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOSPC') break;
      throw err;
    }
  }
  // The last partial chunk too.
  try {
    for (;;) writeFileSync(join(dir, `filler-${i++}`), Buffer.alloc(4096));
  } catch {
    // full to the page
  }
}

async function readiness(core: Core): Promise<{ status: number; checks: Record<string, boolean> }> {
  const a = await core.gate.ready();
  return { status: a.status, checks: (a.body as { checks: Record<string, boolean> }).checks };
}

describe('/readyz probes the real dependencies', () => {
  it('a full disk under the data directory makes /readyz 503 with the disk check named', async () => {
    const mount = smallTmpfs();
    const dir = mount ?? mkdtempSync(join(tmpdir(), 'fc-readyz-'));
    if (mount === null) cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    await initDataDir(dir);
    setConfig(dir, { min_free_disk_mb: 1 });
    const core = await openCore(dir);
    cleanups.push(() => core.close());
    const healthy = await readiness(core);
    expect(healthy.checks).toMatchObject({ ledger: true, state: true, nonce_store: true, disk: true });

    if (mount !== null) {
      fillDisk(dir);
    } else {
      // Without a mount: a threshold above any real file system's free space, the same probe.
      await core.close();
      setConfig(dir, { min_free_disk_mb: 2 ** 40 });
      const reopened = await openCore(dir);
      cleanups.push(() => reopened.close());
      const full = await readiness(reopened);
      expect(full.status).toBe(503);
      expect(full.checks['disk']).toBe(false);
      return;
    }
    const full = await readiness(core);
    expect(full.status).toBe(503);
    // Each store's real write round trip fails too, each check named.
    expect(full.checks).toMatchObject({ disk: false, ledger: false, state: false, nonce_store: false });
  });
});
