/**
 * Browser fixtures for the console tests: Debian's Chromium driven by playwright-core (one browser
 * per test file, one context per person), the console's compiled modules, and the steps a person
 * takes (sign in with the enrolment code, sign in with the device key, approve in the dialog).
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { expect } from 'vitest';
import { consoleAssetsDir } from '../../src/console/index.js';
import { REPO_ROOT } from '../support/paths.js';
import type { Rig } from '../approvals/support.js';

/** Where Debian's chromium package puts the browser (`.ci/run` installs it). */
export const CHROMIUM = '/usr/bin/chromium';

/** Builds the browser modules when they are not built yet (CI builds them with `npm run build`). */
export function ensureConsoleBuilt(): void {
  if (consoleAssetsDir() === undefined)
    execFileSync(process.execPath, [join(REPO_ROOT, 'scripts', 'build-console.mjs')], { stdio: 'inherit' });
}

/** Launches the one browser of a test file. */
export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** A person at their own browser profile. */
export interface Person {
  readonly name: string;
  readonly context: BrowserContext;
  readonly page: Page;
  /** Every `alert`/`confirm`/`prompt` the page opened (must stay empty). */
  readonly dialogs: string[];
  kid?: string;
}

/** Opens a fresh context (its own cookies and IndexedDB) on the console. */
export async function openPerson(browser: Browser, rig: Rig, name: string): Promise<Person> {
  const context = await browser.newContext();
  const page = await context.newPage();
  const dialogs: string[] = [];
  page.on('dialog', (d) => {
    dialogs.push(d.message());
    void d.dismiss();
  });
  await page.goto(`${rig.instance.url}/console/`);
  await page.waitForSelector('#name');
  return { name, context, page, dialogs };
}

/** `approvers invite` through the CLI; the one-time code. */
export async function invite(
  rig: Rig,
  name: string,
  roles: string,
  tenants: readonly string[],
): Promise<string> {
  const r = await rig.cli(
    'approvers',
    'invite',
    name,
    '--role',
    roles,
    ...tenants.flatMap((t) => ['--tenant', t]),
  );
  expect(r.code, r.err).toBe(0);
  const json = JSON.parse(r.out.slice(0, r.out.indexOf('\n}\n') + 2)) as { code: string };
  return json.code;
}

/** First sign-in with the code: the browser makes and enrols its device key; returns the shown kid. */
export async function enrolDevice(p: Person, code: string): Promise<string> {
  await p.page.fill('#name', p.name);
  await p.page.fill('#code', code);
  await p.page.click('#code-sign-in');
  const kid = (await p.page.locator('#kid').textContent()) ?? '';
  p.kid = kid;
  return kid;
}

/** Invites, enrols and confirms `name`; the person is then signed in with the device key. */
export async function onboard(
  browser: Browser,
  rig: Rig,
  name: string,
  roles: string,
  tenants: readonly string[],
): Promise<Person> {
  const p = await openPerson(browser, rig, name);
  const kid = await enrolDevice(p, await invite(rig, name, roles, tenants));
  const confirmed = await rig.cli('approvers', 'confirm', name, '--kid', kid);
  expect(confirmed.code, confirmed.err).toBe(0);
  await p.page.click('#device-sign-in');
  await p.page.waitForSelector('#inbox');
  return p;
}

/**
 * Reloads the inbox and waits for the new one: the old one is marked first, so nothing is read
 * from (or typed into) the page the reload is about to replace.
 */
export async function refreshInbox(p: Person): Promise<void> {
  await p.page.evaluate("document.getElementById('inbox').dataset.stale = '1'");
  await p.page.click('#refresh');
  await p.page.locator('#inbox:not([data-stale])').waitFor();
}

/** Reloads the inbox and approves (or rejects) `decisionId` through the dialog; the status line after. */
export async function decideInBrowser(
  p: Person,
  decisionId: string,
  verdict: 'approve' | 'reject',
  justification: string,
): Promise<string> {
  await refreshInbox(p);
  const card = p.page.locator(`article.approval[data-decision-id="${decisionId}"]`);
  await card.locator(`button.${verdict}`).click();
  await p.page.fill('#justification', justification);
  await p.page.evaluate("document.getElementById('status').textContent = ''");
  await p.page.click('#sign-submit');
  // Locators, not waitForFunction: the console's CSP forbids the string evaluation it uses.
  await p.page.locator('#status', { hasText: /\S/ }).waitFor();
  return (await p.page.locator('#status').textContent()) ?? '';
}

/** An answer of the console API as the test reads it. */
export interface Reply {
  readonly status: number;
  readonly body: Record<string, unknown>;
}

/**
 * Signs `statement` with the device key of `signer` kept in this person's browser and posts it
 * from the page (same origin, the person's session): what a tampered or replayed console would send.
 */
export async function submitFromPage(
  p: Person,
  statement: Record<string, unknown>,
  signer: string = p.name,
): Promise<Reply & { readonly sent: string }> {
  const verdict = String(statement['verdict']);
  const id = String(statement['decision_id']);
  // A string, not a function: the test runner would rewrite a function's dynamic import.
  const script = `(async () => {
    const ks = await import('/console/keystore.js');
    const st = await import('/console/statement.js');
    const s = ${JSON.stringify(statement)};
    const key = await ks.loadDeviceKey(${JSON.stringify(signer)});
    const signature = key === undefined ? 'A'.repeat(86) : await ks.signWith(key, st.approvalSigningInput(s));
    const sent = JSON.stringify({ statement: s, signature });
    const r = await fetch('/console/api/approvals/${id}/${verdict}', {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: sent,
    });
    return { status: r.status, body: await r.json(), sent };
  })()`;
  return p.page.evaluate<Reply & { sent: string }>(script);
}

/** Posts `body` (text) to the console API from the page, as the page's own fetch would. */
export async function postFromPage(p: Person, path: string, body: string): Promise<Reply> {
  const script = `(async () => {
    const r = await fetch(${JSON.stringify(`/console/api/${path}`)}, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: ${JSON.stringify(body)},
    });
    return { status: r.status, body: await r.json() };
  })()`;
  return p.page.evaluate<Reply>(script);
}

/** The session cookie of a person's browser, as a `cookie` header value. */
export async function cookieOf(p: Person): Promise<string> {
  return (await p.context.cookies()).map((c) => `${c.name}=${c.value}`).join('; ');
}
