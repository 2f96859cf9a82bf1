/**
 * A demo step that misreports (`src/cli/demo.ts`): it expects a deny, makes an allowed call and
 * claims to have seen the deny. The demo's runner must still fail it, because a tool ran. Shared
 * by the embedded demo's test and the demo through a deployment.
 */
import type { DemoStep } from '../../src/cli/demo.js';

export function misreportingStep(message: string): DemoStep {
  return {
    title: 'expects a deny but the call runs',
    expect: 'ERR_POLICY_DENY',
    run: (ctx) =>
      ctx.client
        .call('echo', { message })
        .then((r) => ({ observed: r.outcome === 'executed' ? 'ERR_POLICY_DENY' : r.code })),
  };
}
