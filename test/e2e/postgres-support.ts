/**
 * Helpers shared by the end-to-end tests of the PostgreSQL deployment: the demo client of a data
 * directory, a revised demo policy (another bundle hash, the same rules) and its activation
 * through the operator endpoint.
 */
import pg from 'pg';
import { createApproverClient, createClient } from '../../src/client/index.js';
import type { FailclosedClient } from '../../src/client/index.js';
import {
  DEMO_CLIENT,
  demoPolicyDir,
  readClientFile,
  readOperatorToken,
  startEmbedded,
} from '../../src/embedded/index.js';
import type { EmbeddedInstance, EmbeddedOptions } from '../../src/embedded/index.js';
import { canonicalBytes, isDeny, parseJson, sha256Hex } from '../../src/kernel/index.js';
import { generateSigningKey } from '../../src/kernel/signing/index.js';
import { buildBundleFromDir } from '../../src/policy/index.js';

/** The demo client of `dir`, calling `instance`. */
export function clientOf(dir: string, instance: EmbeddedInstance): FailclosedClient {
  const file = readClientFile(dir, DEMO_CLIENT.identity);
  return createClient({ url: instance.url, identity: file.identity, tenant: file.tenant, key: file.key });
}

/** The demo policy with another description: another bundle hash, the same rules. */
export async function revisedDemoBundle(description: string): Promise<{ text: string; hash: string }> {
  const built = await buildBundleFromDir(demoPolicyDir());
  if (isDeny(built)) throw new Error(built.code);
  const doc = JSON.parse(built.text) as { settings: Record<string, unknown> };
  doc.settings['description'] = description;
  const text = JSON.stringify(doc);
  return { text, hash: sha256Hex(canonicalBytes(parseJson(text))) };
}

/** Activates `bundle` (document text) on `instance` with the operator token of `dir`. */
export function activate(dir: string, instance: EmbeddedInstance, bundle: string): Promise<Response> {
  return fetch(`${instance.url}/v1/admin/policy-activate`, {
    method: 'POST',
    headers: { authorization: `Bearer ${readOperatorToken(dir)}`, 'content-type': 'application/json' },
    body: JSON.stringify({ bundle, reason: 'revised policy' }),
  });
}

/** One statement as the `pg` driver was asked to send it: its text and its parameters. */
export interface SentStatement {
  readonly text: string;
  readonly values: readonly unknown[];
}

/**
 * Tells `seen` every statement any `pg` client is asked to send from now on (the prototype's
 * `query`, so connections opened later too, under the prepared-statement wrapper); returns the
 * function that restores the driver.
 */
export function watchStatements(seen: (s: SentStatement) => void): () => void {
  const proto = pg.Client.prototype as unknown as { query: (...args: unknown[]) => unknown };
  const query = proto.query;
  proto.query = function (this: unknown, ...args: unknown[]): unknown {
    const first = args[0] as
      string | { readonly text?: unknown; readonly values?: unknown } | null | undefined;
    const text = typeof first === 'string' ? first : first?.text;
    const values = Array.isArray(args[1]) ? args[1] : typeof first === 'object' ? first?.values : undefined;
    seen({
      text: typeof text === 'string' ? text : '',
      values: Array.isArray(values) ? (values as unknown[]) : [],
    });
    return query.apply(this, args);
  };
  return () => {
    proto.query = query;
  };
}

/**
 * Starts the deployment of `dir` (`options`), makes a warm-up call, then, between `record(true)`
 * and `record(false)`, an allowed `echo` and an escalated transfer: asked, approved by two
 * treasury approvers registered for it, retried and run; then closes it. Throws unless each
 * ends as it should.
 */
export async function allowedAndApprovedCalls(
  dir: string,
  options: EmbeddedOptions,
  record: (on: boolean) => void,
): Promise<void> {
  const instance = await startEmbedded(dir, options);
  try {
    await callsOn(dir, instance, () => record(true));
  } finally {
    record(false);
    await instance.close();
  }
}

async function callsOn(dir: string, instance: EmbeddedInstance, record: () => void): Promise<void> {
  const client = clientOf(dir, instance);
  const executed = (r: { outcome: string }, what: string): void => {
    if (r.outcome !== 'executed') throw new Error(`${what} did not run: ${JSON.stringify(r)}`);
  };
  executed(await client.call('echo', { message: 'warm-up' }), 'the warm-up');
  record();
  executed(await client.call('echo', { message: 'recorded' }), 'the allowed call');
  const transfer = { from_account: 'acct_a', to_account: 'acct_b', amount: 5000, currency: 'USD' };
  const asked = await client.call('transfer_funds', transfer);
  if (asked.outcome !== 'pending') throw new Error(`not pending: ${JSON.stringify(asked)}`);
  const authorization = `Bearer ${readOperatorToken(dir)}`;
  for (const name of ['treasurer-1', 'treasurer-2']) {
    const key = generateSigningKey();
    const added = await instance.core.gate.admin(
      'approvers-add',
      { name, roles: ['treasury'], tenants: ['acme'], public_jwk: { ...key.publicJwk } },
      authorization,
    );
    if (added.status !== 201) throw new Error(`approver not added: ${added.status}`);
    const approver = createApproverClient({ url: instance.url, name, key, authorization });
    const voted = await approver.decide(asked.decision_id, 'approve', 'checked');
    if (voted.status !== 200) throw new Error(`vote refused: ${voted.status}`);
  }
  executed(await client.call('transfer_funds', transfer, { requestId: asked.request_id }), 'the retry');
}
