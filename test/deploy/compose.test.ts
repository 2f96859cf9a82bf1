/**
 * deploy/compose/compose.yaml: validated against the pinned Compose Specification schema
 * (test/fixtures/schemas, checked byte for byte) and checked for its segmentation and hardening:
 * PostgreSQL only on an internal network that only the gates join, only the gates' client port
 * published, read-only root filesystems, every capability dropped.
 */
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../support/paths.js';
import { DEPLOY_DIR, at, isObject, readYaml } from './support.js';
import type { Yaml, YamlObject } from './support.js';

const SCHEMAS_DIR = join(REPO_ROOT, 'test/fixtures/schemas');
const [compose] = readYaml(join(DEPLOY_DIR, 'compose/compose.yaml')) as [YamlObject];
const services = compose.services as YamlObject;
const service = (name: string) => services[name] as YamlObject;
const GATES = ['gate-a', 'gate-b'];

/** The Compose schema compiled strictly, its draft-07 meta-schema registered under the `$schema` it names. */
function composeValidator() {
  const schema = JSON.parse(readFileSync(join(SCHEMAS_DIR, 'compose-spec.json'), 'utf8')) as {
    $schema: string;
  };
  // Upstream's schema uses union types and `additionalProperties` without `type`; every other
  // strict check (unknown keywords, formats) stays on.
  const ajv = new Ajv({ allErrors: true, strict: true, strictTypes: false, allowUnionTypes: true });
  const draft07 = ajv.getSchema('http://json-schema.org/draft-07/schema')!.schema as object;
  expect(schema.$schema).toBe('https://json-schema.org/draft-07/schema');
  ajv.addMetaSchema({ ...draft07, $id: schema.$schema });
  return ajv.compile(schema);
}

function networksOf(s: YamlObject): string[] {
  const n = s.networks;
  if (Array.isArray(n)) return n as string[];
  if (isObject(n)) return Object.keys(n);
  return [];
}

describe('the pinned schemas', () => {
  it('match SHA256SUMS byte for byte, and every file present is listed', () => {
    const sums = new Map(
      readFileSync(join(SCHEMAS_DIR, 'SHA256SUMS'), 'utf8')
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => {
          const m = /^([0-9a-f]{64}) {2}\.\/(.+)$/.exec(l);
          if (m === null) throw new Error(`malformed SHA256SUMS line: ${l}`);
          return [m[2]!, m[1]!] as const;
        }),
    );
    const present = readdirSync(SCHEMAS_DIR).filter((p) => p !== 'README.md' && p !== 'SHA256SUMS');
    expect(present.sort()).toEqual([...sums.keys()].sort());
    for (const p of present)
      expect(
        createHash('sha256')
          .update(readFileSync(join(SCHEMAS_DIR, p)))
          .digest('hex'),
        p,
      ).toBe(sums.get(p));
  });
});

describe('deploy/compose/compose.yaml', () => {
  const validate = composeValidator();

  it('is valid under the Compose Specification schema', () => {
    const ok = validate(compose);
    expect(validate.errors ?? []).toEqual([]);
    expect(ok).toBe(true);
  });

  it('the validation can fail: an unknown key and a mistyped one are refused', () => {
    const bad = structuredClone(compose) as { services: Record<string, Record<string, Yaml>> };
    bad.services['gate-a']!.read_onyl = true;
    expect(validate(bad)).toBe(false);
    const bad2 = structuredClone(compose) as { services: Record<string, Record<string, Yaml>> };
    bad2.services['postgresql']!.cap_drop = 'ALL';
    expect(validate(bad2)).toBe(false);
  });

  it('runs two gates and PostgreSQL, and nothing else', () => {
    expect(Object.keys(services).sort()).toEqual([...GATES, 'postgresql'].sort());
  });

  it('puts PostgreSQL on an internal network only, joined by the gates and nothing else', () => {
    const networks = compose.networks as YamlObject;
    expect(networksOf(service('postgresql'))).toEqual(['db']);
    expect(at(networks, 'db', 'internal')).toBe(true);
    const onDb = Object.keys(services).filter((n) => networksOf(service(n)).includes('db'));
    expect(onDb.sort()).toEqual([...GATES, 'postgresql'].sort());
    expect(service('postgresql').ports).toBeUndefined();
    expect(service('postgresql').expose).toBeUndefined();
  });

  it('publishes only the gates client port (7070 in the container), each gate on its own host port', () => {
    const published = new Set<string>();
    for (const name of Object.keys(services)) {
      const ports = (service(name).ports ?? []) as string[];
      if (!GATES.includes(name)) {
        expect(ports, name).toEqual([]);
        continue;
      }
      expect(ports).toHaveLength(1);
      const m = /^127\.0\.0\.1:(\d+):7070$/.exec(ports[0]!);
      expect(m, ports[0]).not.toBeNull();
      published.add(m![1]!);
    }
    expect(published.size).toBe(GATES.length);
  });

  it('hardens every service: read-only root, every capability dropped and none added, no new privileges, a healthcheck', () => {
    for (const name of Object.keys(services)) {
      const s = service(name);
      expect(s.read_only, name).toBe(true);
      expect(s.cap_drop, name).toEqual(['ALL']);
      expect(s.cap_add, name).toBeUndefined();
      expect(s.privileged, name).toBeUndefined();
      expect(s.security_opt, name).toContain('no-new-privileges:true');
      expect(s.user, name).toMatch(/^[1-9]\d*:[1-9]\d*$/);
      expect(at(s, 'healthcheck', 'test', 0), name).toBe('CMD');
      expect(s.network_mode, name).toBeUndefined();
      expect(s.pid, name).toBeUndefined();
      expect(s.ipc, name).toBeUndefined();
    }
  });

  it('gates: data directory mounted, /tmp a tmpfs, readiness as health, stop grace longer than the drain', () => {
    for (const name of GATES) {
      const s = service(name);
      expect(at(s, 'volumes', 0, 'target')).toBe('/var/lib/failclosed');
      expect(s.tmpfs as string[]).toEqual([expect.stringMatching(/^\/tmp:/)]);
      expect((at(s, 'healthcheck', 'test') as string[]).join(' ')).toContain('http://127.0.0.1:7070/readyz');
      const command = s.command as string[];
      const grace = Number(command[command.indexOf('--grace') + 1]);
      expect(grace).toBeGreaterThan(0);
      expect(Number(/^(\d+)s$/.exec(s.stop_grace_period as string)![1])).toBeGreaterThan(grace);
      expect(at(s, 'depends_on', 'postgresql', 'condition')).toBe('service_healthy');
    }
  });

  it('the only relaxations are the ones bubblewrap needs (seccomp, AppArmor, /proc masking), on the gates alone', () => {
    const needed = ['seccomp=unconfined', 'apparmor=unconfined', 'systempaths=unconfined'];
    for (const name of GATES)
      expect((service(name).security_opt as string[]).sort()).toEqual(
        ['no-new-privileges:true', ...needed].sort(),
      );
    expect(service('postgresql').security_opt).toEqual(['no-new-privileges:true']);
  });

  it('holds no secret: the database password comes from the environment, required', () => {
    const text = readFileSync(join(DEPLOY_DIR, 'compose/compose.yaml'), 'utf8');
    for (const name of Object.keys(services)) {
      const env = (service(name).environment ?? {}) as YamlObject;
      for (const [k, v] of Object.entries(env))
        if (/PASSWORD|SECRET|TOKEN/.test(k)) expect(v, `${name} ${k}`).toMatch(/^\$\{[A-Z_]+:\?[^}]+\}$/);
      expect(JSON.stringify(env.FAILCLOSED_BACKEND ?? '')).not.toMatch(/:\/\/[^@/]*:[^@/]*@/);
    }
    expect(text).not.toMatch(/\.jwk|operator\.token/);
  });
});
