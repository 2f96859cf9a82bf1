/**
 * The browser builds the bytes it signs itself (docs/console.md "What the browser signs"): they
 * must equal, byte for byte, what the kernel's `approvalSigningInput` makes of the same statement
 * (OE-INV-019), or a browser approval would never verify. Property-tested over arbitrary text,
 * including escapes, astral characters and member-order-sensitive names.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  approvalSigningInput as kernelInput,
  breakGlassSigningInput as kernelBreakGlassInput,
  canonicalize,
  intentSha256,
  parseBreakGlassStatement,
  parseReviewStatement,
  reviewSigningInput as kernelReviewInput,
} from '../../src/kernel/index.js';
import { previewDigest as serverPreviewDigest } from '../../src/control-plane/index.js';
import type { ApprovalStatement } from '../../src/kernel/index.js';
import { signInInput as serverSignIn } from '../../src/console/index.js';
import {
  approvalSigningInput,
  breakGlassSigningInput,
  canonicalJson,
  intentDigest,
  previewDigest,
  reviewSigningInput,
  shownMismatch,
  signInInput,
} from '../../src/console/web/statement.js';

const hex64 = fc.stringMatching(/^[0-9a-f]{64}$/);
const statement = fc.record({
  decision_id: fc.stringMatching(/^[A-Za-z0-9._:-]{1,40}$/),
  intent_sha256: hex64,
  preview_sha256: fc.option(hex64, { nil: null }),
  verdict: fc.constantFrom('approve' as const, 'reject' as const),
  justification: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 80 }),
  timestamp: fc
    .date({ min: new Date(0), max: new Date(4e12), noInvalidDate: true })
    .map((d) => d.toISOString()),
  approver: fc.stringMatching(/^[A-Za-z0-9._-]{1,20}$/),
});

describe('the browser signing input', () => {
  it('equals approvalSigningInput byte for byte', () => {
    fc.assert(
      fc.property(statement, (s: ApprovalStatement) => {
        expect(Buffer.from(approvalSigningInput(s)).equals(kernelInput(s))).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it('equals it for escapes, controls and astral text too', () => {
    const s: ApprovalStatement = {
      decision_id: 'd1',
      intent_sha256: 'a'.repeat(64),
      preview_sha256: null,
      verdict: 'approve',
      justification: '"quoted" \\ \n\t\u0001 \u2028 é 😀 <script>alert(1)</script>',
      timestamp: '2026-01-01T00:00:00.000Z',
      approver: 'alice',
    };
    expect(Buffer.from(approvalSigningInput(s)).equals(kernelInput(s))).toBe(true);
  });

  it('canonical JSON equals the kernel’s RFC 8785 for strings, integers, arrays and nested objects', () => {
    const json = fc.letrec((tie) => ({
      value: fc.oneof(
        { depthSize: 'small' },
        fc.string({ unit: 'grapheme' }),
        fc.integer(),
        fc.boolean(),
        fc.constant(null),
        fc.array(tie('value'), { maxLength: 4 }),
        fc.dictionary(fc.string({ unit: 'grapheme', maxLength: 6 }), tie('value'), { maxKeys: 4 }),
      ),
    })).value;
    fc.assert(
      fc.property(json, (v) => {
        expect(canonicalJson(v as never)).toBe(canonicalize(v as never));
      }),
      { numRuns: 300 },
    );
  });

  it('refuses a lone surrogate, as the kernel does', () => {
    expect(() => canonicalJson('\uD800')).toThrow(TypeError);
    expect(() => canonicalJson(1.5)).toThrow(TypeError);
  });

  it('the review-close input equals the kernel’s reviewSigningInput (what `reviews close` signs)', () => {
    const review = fc.record({
      review_id: fc.stringMatching(/^rv_[0-9a-f]{32}$/),
      reviewer: fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,20}$/),
      notes: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 80 }),
      timestamp: fc
        .date({ min: new Date(0), max: new Date(4e12), noInvalidDate: true })
        .map((d) => d.toISOString()),
    });
    fc.assert(
      fc.property(review, (s) => {
        // Only statements the server accepts matter: each one is signed the same in both places.
        const parsed = parseReviewStatement(s);
        fc.pre(parsed !== undefined);
        expect(Buffer.from(reviewSigningInput(s)).equals(kernelReviewInput(parsed))).toBe(true);
      }),
      { numRuns: 500 },
    );
    const hostile = {
      review_id: 'rv_' + 'a'.repeat(32),
      reviewer: 'erin',
      notes: '"quoted" \\ \n\t \u2028 é 😀 <script>alert(1)</script><img src=x onerror=alert(1)>',
      timestamp: '2026-01-01T00:00:00.000Z',
    };
    expect(Buffer.from(reviewSigningInput(hostile)).equals(kernelReviewInput(hostile))).toBe(true);
    // Another context: a review signature is never an approval's, and the other way round.
    expect(Buffer.from(reviewSigningInput(hostile)).subarray(0, 21).toString()).toBe(
      'failclosed-review-v1\n',
    );
  });

  it('the break-glass input equals the kernel’s breakGlassSigningInput (what `break-glass` signs)', () => {
    const glass = fc.record({
      approver: fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,20}$/),
      tenant: fc.stringMatching(/^[a-z][a-z0-9_-]{0,20}$/),
      tool: fc.stringMatching(/^[a-z][a-z0-9_.-]{0,30}$/),
      reason_category: fc.stringMatching(/^[a-z][a-z0-9_-]{0,20}$/),
      reason: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 80 }),
      ttl_sec: fc.integer({ min: -10, max: 1e9 }),
      timestamp: fc
        .date({ min: new Date(0), max: new Date(4e12), noInvalidDate: true })
        .map((d) => d.toISOString()),
    });
    fc.assert(
      fc.property(glass, (s) => {
        const parsed = parseBreakGlassStatement(s);
        fc.pre(parsed !== undefined);
        expect(Buffer.from(breakGlassSigningInput(s)).equals(kernelBreakGlassInput(parsed))).toBe(true);
      }),
      { numRuns: 500 },
    );
    const hostile = {
      approver: 'dave',
      tenant: 'acme',
      tool: 'transfer_funds',
      reason_category: 'incident',
      reason: '"quoted" \\ \n\t \u2028 é 😀 <script>alert(1)</script>',
      ttl_sec: 600,
      timestamp: '2026-01-01T00:00:00.000Z',
    };
    expect(Buffer.from(breakGlassSigningInput(hostile)).equals(kernelBreakGlassInput(hostile))).toBe(true);
    expect(Buffer.from(breakGlassSigningInput(hostile)).subarray(0, 26).toString()).toBe(
      'failclosed-break-glass-v1\n',
    );
  });

  it('the sign-in input equals the server’s', () => {
    expect(
      Buffer.from(signInInput('alice', 'c'.repeat(43))).equals(serverSignIn('alice', 'c'.repeat(43))),
    ).toBe(true);
  });
});

describe('the digests the browser recomputes before it signs', () => {
  const intent = fc.record({
    tool: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 30 }),
    tenant: fc.stringMatching(/^[A-Za-z0-9._-]{1,20}$/),
    params_sha256: hex64,
  });
  const preview = intent.chain((i) =>
    fc.record({
      tool: fc.constant(i.tool),
      tenant: fc.constant(i.tenant),
      params_sha256: fc.constant(i.params_sha256),
      summary: fc.string({ unit: 'grapheme', maxLength: 60 }),
      changes: fc.array(fc.string({ unit: 'grapheme', maxLength: 30 }), { maxLength: 4 }),
      objects: fc.nat(),
      cost_estimate_cents: fc.option(fc.nat(), { nil: null }),
      irreversible: fc.boolean(),
    }),
  );

  it('intent_sha256 equals the kernel’s intentSha256', async () => {
    await fc.assert(
      fc.asyncProperty(intent, async (i) => {
        expect(await intentDigest(i)).toBe(intentSha256(i));
      }),
      { numRuns: 200 },
    );
  });

  it('preview_sha256 equals the approval service’s previewDigest', async () => {
    await fc.assert(
      fc.asyncProperty(preview, async (p) => {
        expect(await previewDigest(p)).toBe(serverPreviewDigest(p).sha256);
      }),
      { numRuns: 200 },
    );
  });

  it('an item whose digests are not those of what it shows is refused; a true one passes', async () => {
    const p = {
      tool: 'transfer_funds',
      tenant: 'acme',
      params_sha256: 'b'.repeat(64),
      summary: 'Transfer 5000 USD',
      changes: ['acct_ops -5000'],
      objects: 2,
      cost_estimate_cents: null,
      irreversible: true,
    };
    const item = {
      tool: p.tool,
      tenant: p.tenant,
      params_sha256: p.params_sha256,
      intent_sha256: intentSha256(p),
      preview: p,
      preview_sha256: serverPreviewDigest(p).sha256,
    };
    expect(await shownMismatch(item)).toBeUndefined();
    expect(await shownMismatch({ ...item, preview: null, preview_sha256: null })).toBeUndefined();
    // What is shown changed, the digests kept: the page shows one thing and would sign another.
    expect(await shownMismatch({ ...item, tool: 'read_balance' })).toMatch(/intent_sha256/);
    expect(await shownMismatch({ ...item, preview: { ...p, summary: 'Transfer 5 USD' } })).toMatch(
      /preview_sha256/,
    );
    expect(await shownMismatch({ ...item, preview: { ...p, irreversible: false } })).toMatch(
      /preview_sha256/,
    );
    expect(await shownMismatch({ ...item, preview: null })).toMatch(/without a preview/);
    expect(await shownMismatch({ ...item, intent_sha256: 'c'.repeat(64) })).toMatch(/intent_sha256/);
    expect(await shownMismatch({ ...item, preview: { ...p, tenant: 'other' } })).toMatch(/another call/);
  });
});
