/**
 * `failclosed demo` (SPEC §7 "each a named, automated end-to-end test and a demo step"): the
 * walkthrough passes every step against a real embedded gate, and a step that does not behave
 * as expected makes it fail.
 */
import { describe, expect, it } from 'vitest';
import { DEMO_STEPS, runDemo } from '../../src/cli/demo.js';
import { misreportingStep } from '../support/demo-steps.js';

describe('failclosed demo', () => {
  it('every step behaves as SPEC §7 says (exit 0), one PASS line per step', async () => {
    const out: string[] = [];
    expect(await runDemo((t) => out.push(t))).toBe(0);
    const lines = out.join('').split('\n');
    // Every step but those that run only through a deployment (`--gate`).
    const own = DEMO_STEPS.filter((s) => s.needs !== 'deployment');
    expect(own.length).toBe(DEMO_STEPS.length - 1);
    expect(lines.filter((l) => l.startsWith('PASS'))).toHaveLength(own.length);
    expect(lines.some((l) => l.startsWith('SKIP'))).toBe(false);
    expect(lines.some((l) => l.startsWith('FAIL'))).toBe(false);
    for (const code of [
      'ERR_POLICY_DENY',
      'ERR_ENVELOPE_PARAMS_MISMATCH',
      'ERR_NONCE_REPLAYED',
      'ERR_ENVELOPE_MISSING',
      'ERR_ENVELOPE_EXPIRED',
      'ERR_CONTROL_PLANE_UNAVAILABLE',
      'ERR_NONCE_STORE_UNAVAILABLE',
    ]) {
      expect(lines.some((l) => l.startsWith('PASS') && l.includes(`→ ${code}`))).toBe(true);
    }
  });

  it('a step that observes something else, or runs a tool it should not, fails the demo (exit 1)', async () => {
    const wrong = misreportingStep('x');
    const out: string[] = [];
    expect(await runDemo((t) => out.push(t), { steps: [wrong] })).toBe(1);
    expect(out.join('')).toMatch(/^FAIL +1\. .*tool ran 1×/m);
  });
});
