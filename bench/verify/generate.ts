/**
 * Produces an audit bundle from real governed calls (SPEC §8; issue "bench/ on a bundle produced
 * by real governed calls"): an embedded deployment over a fresh data directory, signed `echo`
 * calls through the Gate's own call path (authentication, policy, ledger, envelope, execution),
 * 64 at a time, until the ledger holds the wanted number of entries; then the export through the
 * operator route, streamed to a file. Cached by size under `bench/.cache/` (gitignored).
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildSignedRequest } from '../../src/client/index.js';
import {
  DEMO_CLIENT,
  initDataDir,
  operatorDownload,
  readClientFile,
  readOperatorToken,
  startEmbedded,
} from '../../src/embedded/index.js';
import { importSigningKeyJwk } from '../../src/kernel/signing/index.js';

const CONCURRENCY = 64;

/** Where the trust roots of the deployment that produced `bundle` are saved. */
export function trustFileOf(bundle: string): string {
  return bundle.replace(/\.jsonl$/, '.trust.json');
}

/** The cached bundle of at least `entries` entries, generating it first when absent. */
export async function realBundle(
  cacheDir: string,
  entries: number,
  log: (s: string) => void,
): Promise<string> {
  const out = join(cacheDir, `real-${entries}.jsonl`);
  // The deployment's trust roots, saved as an auditor would pin them (docs/COMPLIANCE.md).
  const trust = trustFileOf(out);
  if (existsSync(out) && existsSync(trust)) return out;
  mkdirSync(cacheDir, { recursive: true });
  const dir = join(cacheDir, `data-${entries}`);
  rmSync(dir, { recursive: true, force: true });
  await initDataDir(dir);
  // The tenant rate breaker (6,000 calls a minute) would turn most of a fast bench into denials.
  const instance = await startEmbedded(dir, {
    port: 0,
    executionPort: 0,
    breakers: { maxCallsPerTenantWindow: 1_000_000_000, maxCallsPerSessionWindow: 1_000_000_000 },
  });
  try {
    const file = readClientFile(dir, DEMO_CLIENT.identity);
    const key = importSigningKeyJwk(file.key);
    const ledger = instance.core.ledger;
    let n = 0;
    let failed = 0;
    const started = Date.now();
    const worker = async (): Promise<void> => {
      while (ledger.size() < entries - 1) {
        const i = n++;
        const body = buildSignedRequest({
          key,
          identity: file.identity,
          tenant: file.tenant,
          action: 'echo',
          parameters: { message: `bench message ${i}` },
          timestampMs: Date.now(),
          // One session per call: a session that makes many calls quickly is quarantined by design.
          session: `bench-${i}`,
        });
        const r = await instance.core.gate.call(Buffer.from(JSON.stringify(body)));
        if (r.status !== 200) failed++;
        if (i % 5000 === 0)
          log(
            `  generating: ${ledger.size()} entries, ${Math.round(i / ((Date.now() - started) / 1000 + 1e-3))} calls/s`,
          );
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    log(`  ${n} real calls (${failed} not executed), ${ledger.size()} entries`);
    const conn = {
      url: instance.url,
      token: readOperatorToken(dir),
      inProcess: true,
      close: () => Promise.resolve(),
    };
    const a = await operatorDownload(conn, 'ledger-export', {}, out);
    if (a.status !== 200) throw new Error(`export refused: ${JSON.stringify(a.body)}`);
    const roots = await fetch(new URL('/v1/trust-roots', instance.url));
    if (roots.status !== 200) throw new Error(`no trust roots: HTTP ${roots.status}`);
    writeFileSync(trust, Buffer.from(await roots.arrayBuffer()));
  } finally {
    await instance.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
}
