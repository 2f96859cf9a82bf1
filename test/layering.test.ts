/**
 * Import layering, read straight from the sources so the rule cannot silently weaken
 * (SPEC §1: the Execution Layer holds public keys only and must not import signing code;
 * GEI: "The signing key never leaves the trust boundary"; STYLE.md: `verify` → `kernel` only).
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from './support/paths.js';

const SRC = join(REPO_ROOT, 'src');

/** A module's layer: its top folder under src/, with the kernel's signing face apart. */
function layerOf(file: string): string {
  const rel = relative(SRC, file).split('\\').join('/');
  if (rel.startsWith('kernel/signing/')) return 'kernel/signing';
  const top = rel.split('/')[0] ?? '';
  return top.endsWith('.ts') ? '(root)' : top;
}

/** What each layer may import at run time (besides itself and `node:` built-ins). */
const ALLOWED: Record<string, readonly string[]> = {
  kernel: [],
  'kernel/signing': ['kernel'],
  verify: ['kernel'],
  ledger: ['kernel', 'kernel/signing'],
  policy: ['kernel'],
  execution: ['kernel'],
  'control-plane': ['kernel', 'kernel/signing', 'ledger', 'policy'],
  gate: ['kernel', 'ledger', 'policy', 'execution'],
  client: ['kernel', 'kernel/signing'],
  // Mutual TLS between roles: certificates and listeners, no role and nothing that signs envelopes.
  transport: ['kernel'],
  // Storage backends implement the roles' store interfaces (types only at run time beyond ledger).
  // The Gate's state store parses rows with the Gate's own role checks (parseClientRoles).
  storage: ['kernel', 'ledger', 'execution', 'control-plane', 'gate', 'console', 'schedules'],
  // The Gate's scheduler (docs/schedules.md): submits runs through the Gate's face, decides nothing.
  schedules: ['kernel', 'gate'],
  // The browser console's server side: its own store, over the approval service (web/ imports nothing outside).
  console: ['kernel', 'control-plane'],
  // Forensic replay: the verifier's reading plus the Control Plane's own evaluation (Cedar).
  replay: ['kernel', 'verify', 'policy', 'control-plane'],
  // The composition layers wire the roles together; they are the only ones above the roles.
  // (`client`: the CLI's audit-bundle download is the client library's.)
  embedded: [
    'client',
    'console',
    'kernel',
    'kernel/signing',
    'ledger',
    'policy',
    'execution',
    'control-plane',
    'gate',
    'verify',
    'storage',
    'transport',
    'schedules',
  ],
  cli: [
    'console',
    'kernel',
    'kernel/signing',
    'ledger',
    'policy',
    'execution',
    'control-plane',
    'gate',
    'verify',
    'client',
    'embedded',
    'storage',
    'transport',
    'replay',
    'schedules',
  ],
  '(root)': ['kernel', 'kernel/signing', 'client', 'embedded', 'verify'],
};

/**
 * Source folders (and files) that no layer claims. A new `src/<folder>` must be given its
 * layer in ALLOWED explicitly: an unknown folder would otherwise import anything unchecked.
 */
function unknownLayers(sourceFiles: readonly string[], topFolders: readonly string[]): string[] {
  const layers = new Set([...sourceFiles.map(layerOf), ...topFolders]);
  return [...layers].filter((l) => ALLOWED[l] === undefined).sort();
}
/** Layers that may import packages from node_modules. The kernel and verifier have no runtime dependency. */
const NO_PACKAGES = new Set(['kernel', 'kernel/signing', 'verify']);
/** Layers whose transitive run-time closure must never reach signing code or the Control Plane. */
const NEVER_SIGNS = ['execution', 'verify', 'gate', 'schedules'];

interface Import {
  readonly spec: string;
  readonly typeOnly: boolean;
  /** `import(…)`: loaded when the code runs, not with the module. */
  readonly dynamic: boolean;
}

function listTs(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...listTs(p));
    else if (p.endsWith('.ts') && !p.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

const IMPORT_RE =
  /(?:^|\n)\s*(import|export)\s+(type\s+)?(?:[^'";]*?\s+from\s+)?['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;

function importsOf(file: string): Import[] {
  const text = readFileSync(file, 'utf8');
  const out: Import[] = [];
  for (const m of text.matchAll(IMPORT_RE)) {
    const spec = m[3] ?? m[4];
    if (spec === undefined) continue;
    out.push({ spec, typeOnly: m[2] !== undefined, dynamic: m[4] !== undefined });
  }
  return out;
}

function resolveLocal(from: string, spec: string): string {
  return resolve(dirname(from), spec).replace(/\.js$/, '.ts');
}

const files = listTs(SRC);

describe('import layering (SPEC §1, GEI, FC-INV-6)', () => {
  it('finds the sources', () => {
    expect(files.length).toBeGreaterThan(5);
  });

  it('every source folder has a declared layer', () => {
    const topFolders = readdirSync(SRC).filter((n) => statSync(join(SRC, n)).isDirectory());
    expect(unknownLayers(files, topFolders)).toEqual([]);
  });

  it('every run-time import points down the layers', () => {
    const violations: string[] = [];
    for (const file of files) {
      const from = layerOf(file);
      const allowed = ALLOWED[from];
      for (const imp of importsOf(file)) {
        if (imp.spec.startsWith('node:')) continue;
        if (!imp.spec.startsWith('.')) {
          if (NO_PACKAGES.has(from) && !imp.typeOnly)
            violations.push(`${relative(SRC, file)} imports package ${imp.spec}`);
          continue;
        }
        const target = resolveLocal(file, imp.spec);
        const to = layerOf(target);
        if (to === from || imp.typeOnly) continue;
        if (allowed === undefined) {
          violations.push(`${relative(SRC, file)} is in ${from}, a folder with no declared layer`);
          continue;
        }
        if (!allowed.includes(to))
          violations.push(`${relative(SRC, file)} (${from}) imports ${relative(SRC, target)} (${to})`);
      }
    }
    expect(violations).toEqual([]);
  });

  it('other layers are entered only through their index.ts', () => {
    const violations: string[] = [];
    for (const file of files) {
      const from = layerOf(file);
      for (const imp of importsOf(file)) {
        if (!imp.spec.startsWith('.')) continue;
        const target = resolveLocal(file, imp.spec);
        const to = layerOf(target);
        if (to === from || to === '(root)') continue;
        const face = to === 'kernel/signing' ? 'kernel/signing/index.ts' : `${to}/index.ts`;
        const rel = relative(SRC, target).split('\\').join('/');
        if (rel !== face && rel !== `${to}/lean.ts`)
          violations.push(`${relative(SRC, file)} reaches into ${relative(SRC, target)}`);
      }
    }
    expect(violations).toEqual([]);
  });

  it('a lean face (`<layer>/lean.ts`) reaches no package, even transitively: importing it loads no dependency', () => {
    const faces = files.filter((f) => relative(SRC, f).split('\\').join('/').endsWith('/lean.ts'));
    expect(faces.length).toBeGreaterThan(0);
    const reached: string[] = [];
    for (const face of faces) {
      const seen = new Set<string>();
      const stack = [face];
      while (stack.length > 0) {
        const file = stack.pop()!;
        if (seen.has(file)) continue;
        seen.add(file);
        for (const imp of importsOf(file)) {
          // What the face's modules load later, where a command starts the composition, is not loaded with it.
          if (imp.typeOnly || imp.dynamic || imp.spec.startsWith('node:')) continue;
          if (imp.spec.startsWith('.')) stack.push(resolveLocal(file, imp.spec));
          else reached.push(`${relative(SRC, face)} → ${relative(SRC, file)} imports ${imp.spec}`);
        }
      }
    }
    expect(reached).toEqual([]);
  });

  it.each(NEVER_SIGNS)('%s never reaches signing code or the Control Plane, even transitively', (layer) => {
    const seen = new Set<string>();
    const stack = files.filter((f) => layerOf(f) === layer);
    const reached: string[] = [];
    while (stack.length > 0) {
      const file = stack.pop()!;
      if (seen.has(file)) continue;
      seen.add(file);
      const l = layerOf(file);
      if (l === 'kernel/signing' || l === 'control-plane' || l === 'client')
        reached.push(relative(SRC, file));
      for (const imp of importsOf(file)) {
        if (imp.typeOnly || !imp.spec.startsWith('.')) continue;
        stack.push(resolveLocal(file, imp.spec));
      }
    }
    expect(reached).toEqual([]);
  });

  it('the checker catches a forbidden import (self-test)', () => {
    const imps = [...`import { signEnvelope } from '../kernel/signing/index.js';`.matchAll(IMPORT_RE)];
    expect(imps.map((m) => m[3])).toEqual(['../kernel/signing/index.js']);
    const typeOnly = [...`import type { X } from '../ledger/index.js';`.matchAll(IMPORT_RE)];
    expect(typeOnly[0]?.[2]).toBeDefined();
    expect(layerOf(join(SRC, 'kernel/signing/sign-envelope.ts'))).toBe('kernel/signing');
    expect(ALLOWED['execution']).not.toContain('kernel/signing');
  });

  it('the checker refuses a source folder it does not know (self-test)', () => {
    expect(unknownLayers([join(SRC, 'reports/render.ts'), join(SRC, 'kernel/hash.ts')], [])).toEqual([
      'reports',
    ]);
    expect(unknownLayers([], ['kernel', 'plugins'])).toEqual(['plugins']);
  });
});
