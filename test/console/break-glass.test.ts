/**
 * Break-glass reviews in the approvers' console (L7 Break-glass "mandatory post-incident review",
 * OE-INV-020 distinct humans and tenant scope; docs/console.md "Reviews"): dave (L4) breaks glass
 * with his device key, an agent's transfer runs under it and opens a review. erin, of the call's
 * tenant, closes it on her Reviews page with a justification her device key signs over the
 * statement `failclosed reviews close` signs; the close is ledgered with her name and the exported
 * ledger verifies offline. dave himself, and frank of another tenant, are refused (each refusal
 * ledgered, the review left open); a replayed close, a cross-origin close and a close in an
 * expired session are refused; markup in the justification renders as text. The operator's
 * break-glass page lists the grant in force and the closed review. dave breaks glass on his own
 * Break-glass page, which signs exactly the statement it shows; erin (no L4/L5 role) is refused
 * there.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Request } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JsonObject } from '../../src/kernel/index.js';
import { readOperatorToken } from '../../src/embedded/index.js';
import { verifyBundle } from '../../src/verify/index.js';
import { startRig, type Rig } from '../approvals/support.js';
import { entriesOf } from '../control-plane/support.js';
import {
  cookieOf,
  ensureConsoleBuilt,
  launchBrowser,
  onboard,
  postFromPage,
  type Person,
  type Reply,
} from './browser.js';

const TRANSFER = { from_account: 'acct_ops', to_account: 'acct_vendor', amount: 4500, currency: 'USD' };
const MARKUP = 'INC-7 checked <script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">';

let rig: Rig;
let browser: Browser;
let dave: Person;
let erin: Person;
let frank: Person;
let reviewId = '';
let requestId = '';

/**
 * Signs `statement` in the person's browser with their device key, as a review close (`review`)
 * or a break-glass grant (`break-glass`), and posts it from the page: what a console would send,
 * including one that shows no button for it.
 */
function signedPost(
  p: Person,
  path: string,
  kind: 'review' | 'break-glass',
  statement: Record<string, unknown>,
): Promise<Reply> {
  const script = `(async () => {
    const ks = await import('/console/keystore.js');
    const st = await import('/console/statement.js');
    const s = ${JSON.stringify(statement)};
    const bytes = ${JSON.stringify(kind)} === 'review'
      ? st.reviewSigningInput(s)
      : new TextEncoder().encode('failclosed-break-glass-v1\\n' + st.canonicalJson(s));
    const key = await ks.loadDeviceKey(${JSON.stringify(p.name)});
    const signature = await ks.signWith(key, bytes);
    const r = await fetch('/console/api/${path}', {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ statement: s, signature }),
    });
    return { status: r.status, body: await r.json() };
  })()`;
  return p.page.evaluate<Reply>(script);
}

const stamp = (): string => new Date(rig.now()).toISOString();

const closeBy = (p: Person, notes: string): Promise<Reply> =>
  signedPost(p, `reviews/${reviewId}/close`, 'review', {
    review_id: reviewId,
    reviewer: p.name,
    notes,
    timestamp: stamp(),
  });

async function ledger(): ReturnType<typeof entriesOf> {
  await rig.instance.core.ledger.settled();
  return entriesOf(rig.instance.core.ledger);
}

async function reviewStatus(): Promise<string | undefined> {
  return (await rig.instance.core.approvals.service.listReviews()).find((r) => r.review_id === reviewId)
    ?.status;
}

/** Opens the Reviews page from the inbox (or reloads it). */
async function openReviews(p: Person): Promise<void> {
  if ((await p.page.locator('#reviews').count()) > 0) {
    await p.page.evaluate("document.getElementById('reviews').dataset.stale = '1'");
    await p.page.click('#reviews-refresh');
  } else await p.page.click('#nav-reviews');
  await p.page.locator('#reviews:not([data-stale])').waitFor();
}

/**
 * Fills the Break-glass page of `p` for `transfer_funds` in `acme` and signs it; the status line
 * after. The page shows exactly the statement signed.
 */
async function breakGlassOnPage(p: Person, reason: string): Promise<string> {
  if ((await p.page.locator('#nav-break-glass').count()) === 0) {
    await p.page.click('#nav-inbox');
    await p.page.locator('#inbox').waitFor();
  }
  await p.page.click('#nav-break-glass');
  await p.page.locator('#bg-form').waitFor();
  await p.page.selectOption('#bg-tenant', 'acme');
  await p.page.fill('#bg-tool', 'transfer_funds');
  await p.page.selectOption('#bg-category', 'incident');
  await p.page.fill('#bg-reason', reason);
  await p.page.fill('#bg-ttl', '600');
  const shown = JSON.parse((await p.page.locator('#bg-statement').textContent()) ?? '{}') as JsonObject;
  expect(shown).toMatchObject({
    approver: p.name,
    tenant: 'acme',
    tool: 'transfer_funds',
    reason_category: 'incident',
    reason,
    ttl_sec: 600,
  });
  await p.page.check('#bg-ack');
  await p.page.evaluate("document.getElementById('status').textContent = ''");
  await p.page.click('#bg-submit');
  await p.page.locator('#status', { hasText: /\S/ }).waitFor();
  return (await p.page.locator('#status').textContent()) ?? '';
}

/** Back to the inbox from the Break-glass page. */
async function backToInbox(p: Person): Promise<void> {
  await p.page.click('#nav-inbox');
  await p.page.locator('#inbox').waitFor();
}

beforeAll(async () => {
  ensureConsoleBuilt();
  rig = await startRig();
  browser = await launchBrowser();
  dave = await onboard(browser, rig, 'dave', 'L4', ['acme']);
  erin = await onboard(browser, rig, 'erin', 'treasury', ['acme']);
  frank = await onboard(browser, rig, 'frank', 'treasury', ['globex']);
  // dave breaks glass on his Break-glass page with his device key; a transfer then runs under it.
  expect(await breakGlassOnPage(dave, 'payroll outage INC-7')).toContain('Break-glass granted');
  expect(await dave.page.locator('#bg-result article.grant .grant-id dd').textContent()).toMatch(/^bg_/);
  expect((await rig.instance.core.approvals.service.activeGrants()).map((g) => g.approver)).toEqual(['dave']);
  await backToInbox(dave);
  const ran = await rig.agent().call('transfer_funds', TRANSFER);
  expect(ran.outcome).toBe('executed');
  requestId = String(ran.request_id);
  const open = (await rig.instance.core.approvals.service.listReviews()).filter((r) => r.status === 'open');
  expect(open).toHaveLength(1);
  reviewId = open[0]?.review_id ?? '';
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await rig?.close();
});

describe('break-glass reviews in the console', { timeout: 120_000 }, () => {
  it('the break-glass user sees the review without a close button and is refused closing it', async () => {
    await openReviews(dave);
    const card = dave.page.locator(`article.review[data-review-id="${reviewId}"]`);
    await card.waitFor();
    expect(await card.locator('.opened-for dd').textContent()).toBe('dave');
    expect(await card.locator('button.close-review').count()).toBe(0);
    expect(await card.locator('.own').count()).toBe(1);
    const before = (await ledger()).length;
    const r = await closeBy(dave, 'closing my own');
    expect([r.status, r.body['code']]).toEqual([403, 'ERR_APPROVAL_SELF']);
    expect(await reviewStatus()).toBe('open');
    const after = (await ledger()).slice(before);
    expect(after.map((e) => e.type)).toEqual(['denial']);
    expect(after[0]?.actor.id).toBe('dave');
    expect(after[0]?.payload).toMatchObject({ code: 'ERR_APPROVAL_SELF', stage: 'review' });
  });

  it('an approver of another tenant sees no review and is refused closing it', async () => {
    await openReviews(frank);
    expect(await frank.page.locator('article.review').count()).toBe(0);
    const before = (await ledger()).length;
    const r = await closeBy(frank, 'looks fine to me');
    expect([r.status, r.body['code']]).toEqual([403, 'ERR_APPROVER_TENANT']);
    expect(await reviewStatus()).toBe('open');
    const after = (await ledger()).slice(before);
    expect(after.map((e) => [e.type, e.actor.id, e.payload['code']])).toEqual([
      ['denial', 'frank', 'ERR_APPROVER_TENANT'],
    ]);
  });

  it('a cross-origin close with the approver’s cookie is refused before anything is read', async () => {
    const cookie = await cookieOf(erin);
    for (const origin of ['http://evil.example', 'null']) {
      const r = await fetch(`${rig.instance.url}/console/api/reviews/${reviewId}/close`, {
        method: 'POST',
        headers: { cookie, origin, 'content-type': 'application/json' },
        body: JSON.stringify({ statement: {}, signature: 'x' }),
      });
      expect([r.status, ((await r.json()) as JsonObject)['code']]).toEqual([403, 'ERR_ORIGIN_FORBIDDEN']);
    }
    // A form post (no JSON) from the page's own origin is refused too.
    const form = await erin.page.evaluate<number>(`fetch('/console/api/reviews/${reviewId}/close', {
      method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{}' }).then((r) => r.status)`);
    expect(form).toBe(400);
    expect(await reviewStatus()).toBe('open');
  });

  it('an approver of the tenant closes it on her device key: ledgered with her name, a replay refused, markup inert', async () => {
    await openReviews(erin);
    const card = erin.page.locator(`article.review[data-review-id="${reviewId}"]`);
    await card.locator('button.close-review').click();
    await erin.page.fill('#review-notes', MARKUP);
    // The dialog shows exactly the statement signed: the notes as text, not markup.
    expect(await erin.page.locator('#review-statement').textContent()).toContain('"reviewer": "erin"');
    let sent = '';
    const capture = (req: Request): void => {
      if (req.url().endsWith(`/reviews/${reviewId}/close`)) sent = req.postData() ?? '';
    };
    erin.page.on('request', capture);
    await erin.page.evaluate("document.getElementById('status').textContent = ''");
    await erin.page.click('#review-sign-submit');
    await erin.page.locator('#status', { hasText: /\S/ }).waitFor();
    erin.page.off('request', capture);
    expect(await erin.page.locator('#status').textContent()).toContain('Review closed');
    expect(await reviewStatus()).toBe('closed');

    // Shown as text among the closed reviews: no element, no script ran.
    const closed = erin.page.locator(`article.review.closed[data-review-id="${reviewId}"]`);
    expect(await closed.locator('.notes').textContent()).toBe(MARKUP);
    expect(await closed.locator('.closed-by dd').textContent()).toBe('erin');
    expect(await erin.page.locator('main img, main script, dialog img, dialog script').count()).toBe(0);
    expect(await erin.page.evaluate<unknown>('window.__pwned')).toBeUndefined();

    const events = await ledger();
    const closes = events.filter((e) => e.type === 'review.closed');
    expect(closes).toHaveLength(1);
    expect(closes[0]?.actor.id).toBe('erin');
    expect(closes[0]?.payload).toMatchObject({
      review_id: reviewId,
      reviewer: 'erin',
      justification: MARKUP,
    });

    // The very body the page sent, sent again: refused, nothing more ledgered as a close.
    const replay = await postFromPage(erin, `reviews/${reviewId}/close`, sent);
    expect(replay.status).toBe(403);
    expect(replay.body['code']).toBe('ERR_APPROVAL_INVALID');
    expect((await ledger()).filter((e) => e.type === 'review.closed')).toHaveLength(1);

    // The exported ledger verifies offline, with the break-glass use and its closed review.
    const out = join(rig.dir, 'audit.json');
    expect((await rig.cli('ledger', 'export', '--out', out)).code).toBe(0);
    const trust = join(rig.dir, 'trust-roots.json');
    expect((await rig.cli('trust-roots', '--out', trust)).code).toBe(0);
    const bundle = readFileSync(out, 'utf8');
    for (const t of ['"break_glass.used"', '"review.opened"', '"review.closed"']) expect(bundle).toContain(t);
    expect(bundle).toContain(requestId);
    const report = verifyBundle(readFileSync(out), { trust: readFileSync(trust) });
    expect(report.checks.filter((c) => c.status === 'fail').map((c) => c.id)).toEqual([]);
    expect(report.exitCode).toBe(0);
    expect([...dave.dialogs, ...erin.dialogs, ...frank.dialogs]).toEqual([]);
  });

  it('the operator’s break-glass page lists the grant in force with its reason, and the closed review; the operator revokes the grant there', async () => {
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      await page.goto(`${rig.instance.url}/console/operator.html`);
      await page.fill('#operator-token', readOperatorToken(rig.dir));
      await page.click('#operator-sign-in-submit');
      await page.waitForSelector('#incident');
      await page.click('#nav-break-glass');
      await page.waitForSelector('#break-glass');
      const grants = page.locator('#break-glass article.grant');
      expect(await grants.count()).toBe(1);
      const shown = (await grants.first().textContent()) ?? '';
      for (const t of ['transfer_funds', 'acme', 'dave (L4)', 'incident: payroll outage INC-7'])
        expect(shown).toContain(t);
      const review = page.locator(`#break-glass article.review.closed[data-review-id="${reviewId}"]`);
      expect(await review.textContent()).toContain(MARKUP);
      expect(await page.locator('main img, main script').count()).toBe(0);

      // Revoked from the page: refused without the typed grant id, then ended and ledgered first.
      const grantId = (await grants.first().getAttribute('data-grant-id')) ?? '';
      const revoke = async (typed: string): Promise<string> => {
        await page.evaluate("document.getElementById('status').textContent = ''");
        await grants.first().locator('button.revoke').click();
        await page.fill('#revoke-reason', 'incident over');
        await page.fill('#confirm-text', typed);
        await page.click('#people-submit');
        await page.locator('#status', { hasText: /\S/ }).waitFor();
        return (await page.locator('#status').textContent()) ?? '';
      };
      expect(await revoke('wrong')).toContain('ERR_REQUEST_MALFORMED');
      expect(await grants.count()).toBe(1);
      expect(await revoke(grantId)).not.toContain('ERR_');
      await page.locator('#no-grants').waitFor();
      await rig.instance.core.ledger.settled();
      const ended = (await entriesOf(rig.instance.core.ledger)).filter(
        (e) =>
          e.type === 'break_glass.used' &&
          (e.payload['scope'] as Record<string, unknown>)['phase'] === 'revoked',
      );
      expect(
        ended.map((e) => [e.actor.role, (e.payload['scope'] as Record<string, unknown>)['grant_id']]),
      ).toEqual([['operator', grantId]]);
      expect(await rig.instance.core.approvals.service.activeGrants()).toEqual([]);
    } finally {
      await context.close();
    }
  });

  it('an approver without an L4 or L5 role is refused on the Break-glass page: nothing granted', async () => {
    const before = (await ledger()).length;
    expect(await breakGlassOnPage(erin, 'trying my luck')).toContain('ERR_BREAK_GLASS_DENIED');
    expect(await erin.page.locator('#bg-result article.grant').count()).toBe(0);
    expect(await rig.instance.core.approvals.service.activeGrants()).toEqual([]);
    expect((await ledger()).slice(before).filter((e) => e.type === 'break_glass.used')).toEqual([]);
    await backToInbox(erin);
  });

  it('a close in an expired session is refused: ERR_UNAUTHENTICATED', async () => {
    rig.advance(16 * 60_000);
    const r = await closeBy(frank, 'after the idle timeout');
    expect([r.status, r.body['code']]).toEqual([401, 'ERR_UNAUTHENTICATED']);
    const reviews = await erin.page.evaluate<number>("fetch('/console/api/reviews').then((r) => r.status)");
    expect(reviews).toBe(401);
  });
});
