/**
 * A failclosed client on its own: generate a client key, register the client with the Gate's
 * operator endpoint, then make one call the policy allows and one it denies.
 *
 *   FAILCLOSED_URL             the Gate (default http://127.0.0.1:7070)
 *   FAILCLOSED_OPERATOR_TOKEN  the operator token, or else it is read from
 *   FAILCLOSED_HOME            the gate's data directory (default ../../.failclosed): operator.token
 *   FAILCLOSED_TENANT          the tenant to register the client in (default acme)
 *
 * Exits 0 when the allowed call ran and the denied call was denied, 1 otherwise.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createAdminClient, createClient, generateClientKey } from 'failclosed/client';
import type { CallResult } from 'failclosed/client';

const url = process.env['FAILCLOSED_URL'] ?? 'http://127.0.0.1:7070';
const home = process.env['FAILCLOSED_HOME'] ?? join('..', '..', '.failclosed');
const token =
  process.env['FAILCLOSED_OPERATOR_TOKEN'] ?? readFileSync(join(home, 'operator.token'), 'utf8').trim();
const tenant = process.env['FAILCLOSED_TENANT'] ?? 'acme';

function show(label: string, r: CallResult): void {
  const line =
    r.outcome === 'executed'
      ? { label, outcome: r.outcome, request_id: r.request_id, result: r.result, receipt: r.receipt }
      : { label, outcome: r.outcome, code: r.code, reason: r.reason, request_id: r.request_id };
  console.log(JSON.stringify(line));
}

async function main(): Promise<number> {
  // 1. A fresh Ed25519 key pair. Keep `privateJwk` secret (a 0600 file) to reuse the client.
  const clientKey = generateClientKey();
  const name = `example-agent-${clientKey.kid.slice(0, 8)}`;

  // 2. The operator registers the client's public key (ledgered as admin.client_registered).
  const admin = createAdminClient({ url, token });
  const registered = await admin.addClient({ name, tenant, publicJwk: clientKey.publicJwk });
  console.log(
    JSON.stringify({ label: 'register', status: registered.status, client: name, kid: clientKey.kid }),
  );
  if (registered.status !== 201) {
    console.error(JSON.stringify(registered.body));
    return 1;
  }

  // 3. The agent signs its calls with the private key.
  const client = createClient({ url, identity: name, tenant, key: clientKey.key });
  const allowed = await client.call('echo', { message: 'hello from the example' });
  show('allowed', allowed);
  const denied = await client.call('transfer_funds', {
    from_account: 'acct_ops',
    to_account: 'acct_x',
    amount: 60000,
    currency: 'USD',
  });
  show('denied', denied);

  // 4. The operator reads the evidence the allowed call left in the ledger.
  if (allowed.outcome === 'executed') {
    const evidence = await admin.evidence(allowed.request_id);
    const body = evidence.body as { records?: unknown[] };
    console.log(
      JSON.stringify({ label: 'evidence', status: evidence.status, records: body.records?.length ?? 0 }),
    );
  }
  return allowed.outcome === 'executed' && denied.outcome === 'deny' ? 0 : 1;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  },
);
