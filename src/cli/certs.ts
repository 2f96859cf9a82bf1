/**
 * `failclosed certs`: the development PKI for mutual TLS between roles (docs/cli.md,
 * docs/deployment.md "Mutual TLS"). argv → calls to `src/transport/dev-pki.ts`, no logic.
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { createDevCa, isRole, issueCert, revokeCert, writeCrl } from '../transport/index.js';
import type { Role } from '../transport/index.js';

/** The roles `certs init` issues a certificate for. */
const SERVICE_ROLES: readonly Role[] = ['gate', 'control-plane', 'executor', 'ledger'];

export const CERTS_USAGE = `  certs init --dir D [--days N] [--host H]... [--keyless-gate N]...
                                              development CA (ca.pem, ca.key 0600) and a certificate
                                              per role: gate, control-plane, executor, ledger; and
                                              per --keyless-gate a gate certificate N.pem as with
                                              certs issue --role gate --name N --no-host
  certs issue --dir D --role R [--name N] [--days N] [--host H... | --no-host]
                                              one more certificate (R: gate|control-plane|executor|
                                              ledger|client); reissuing a name rotates it;
                                              --no-host: only to connect out with (no host, clientAuth
                                              only), as a keyless Gate's (serve gate) must be
  certs revoke --dir D --serial HEX [--days N]
                                              revoke a serial and rewrite crl.pem (next update in N days)
  certs crl --dir D [--days N]                re-sign crl.pem with a new next update
`;

/** A usage mistake in a `certs` command. */
export class CertsUsageError extends Error {}

function days(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n <= 0) throw new CertsUsageError('--days must be a positive integer');
  return n;
}

/** Runs `failclosed certs ...` (`argv` after the word `certs`). */
export async function runCertsCli(argv: readonly string[], out: (t: string) => void): Promise<number> {
  const { values: v, positionals } = parseArgs({
    args: [...argv],
    options: {
      dir: { type: 'string' },
      days: { type: 'string' },
      host: { type: 'string', multiple: true },
      'no-host': { type: 'boolean' },
      'keyless-gate': { type: 'string', multiple: true },
      role: { type: 'string' },
      name: { type: 'string' },
      serial: { type: 'string' },
    },
    allowPositionals: true,
    strict: true,
  });
  const [sub, extra] = positionals;
  if (v.dir === undefined || extra !== undefined)
    throw new CertsUsageError('certs init|issue|revoke|crl --dir D');
  const dir = resolve(v.dir);
  const d = days(v.days);
  const hosts = v.host === undefined ? {} : { hosts: v.host };
  switch (sub) {
    case 'init': {
      if (v['no-host'] === true) throw new CertsUsageError('--no-host is an option of certs issue');
      const gates = v['keyless-gate'] ?? [];
      // A keyless Gate's certificate is a file of its own: never the Control Plane's `gate.pem`.
      // Checked before anything is written: a bad name must not leave the role certificates
      // re-issued and the command failed. No role's file name (`client` included), none reserved.
      if (
        gates.some(
          (n) => isRole(n) || ['ca', 'crl', 'revoked'].includes(n) || !/^[a-z0-9][a-z0-9._-]{0,63}$/.test(n),
        ) ||
        new Set(gates).size !== gates.length
      )
        throw new CertsUsageError(
          '--keyless-gate names must be file names ([a-z0-9][a-z0-9._-]*), differ from each other, from the roles and from ca, crl and revoked',
        );
      const ca = await createDevCa(dir, d === undefined ? {} : { days: d });
      out(ca.created ? `created CA ${ca.caCert}\n` : `kept the CA in ${ca.caCert}\n`);
      for (const role of SERVICE_ROLES) {
        const r = await issueCert(dir, { role, ...hosts, ...(d === undefined ? {} : { days: d }) });
        out(`${role}: ${r.cert} (serial ${r.serial})\n`);
      }
      for (const name of gates) {
        const r = await issueCert(dir, {
          role: 'gate',
          name,
          clientOnly: true,
          ...(d === undefined ? {} : { days: d }),
        });
        out(`keyless gate ${name}: ${r.cert} (serial ${r.serial})\n`);
      }
      out(`crl: ${await writeCrl(dir)}\n`);
      return 0;
    }
    case 'issue': {
      if (v['keyless-gate'] !== undefined)
        throw new CertsUsageError('--keyless-gate is an option of certs init');
      if (!isRole(v.role))
        throw new CertsUsageError('--role must be gate, control-plane, executor, ledger or client');
      if (v['no-host'] === true && v.host !== undefined)
        throw new CertsUsageError('--no-host and --host exclude each other');
      const r = await issueCert(dir, {
        role: v.role,
        ...(v.name === undefined ? {} : { name: v.name }),
        ...hosts,
        ...(v['no-host'] === true ? { clientOnly: true } : {}),
        ...(d === undefined ? {} : { days: d }),
      });
      out(`${r.cert} (serial ${r.serial}), key ${r.key}\n`);
      return 0;
    }
    case 'revoke':
      if (v.serial === undefined) throw new CertsUsageError('certs revoke --dir D --serial HEX');
      out(`revoked ${v.serial}: ${await revokeCert(dir, v.serial, d === undefined ? {} : { days: d })}\n`);
      return 0;
    case 'crl':
      out(`${await writeCrl(dir, d === undefined ? {} : { days: d })}\n`);
      return 0;
    default:
      throw new CertsUsageError('certs init|issue|revoke|crl --dir D');
  }
}
