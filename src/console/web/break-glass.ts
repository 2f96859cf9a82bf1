/**
 * The approver's Break-glass page (docs/console.md "Breaking glass"; L7 Break-glass): an approver
 * with an L4 or L5 role asks for a short grant scoped to one tenant and one tool, with a
 * structured reason, and signs it on this device with the enrolled key, over the statement
 * `failclosed break-glass` signs (statement.ts `breakGlassSigningInput`). The gate decides
 * (role, tenant scope, TTL bound, the identity provider's session for a bound approver) and
 * ledgers the grant before it can be used; every use opens a review another person closes. The
 * page only shows and signs exactly what it shows. Values are text (dom.ts).
 */
import { el, obj, replace, str, text } from './dom.js';
import { get, post, refusal } from './http.js';
import { loadDeviceKey, signWith } from './keystore.js';
import type { ReviewsHost } from './reviews.js';
import { breakGlassSigningInput, canonicalJson } from './statement.js';
import type { BreakGlassStatement } from './statement.js';

/** What the page needs of the approvers' app: what the Reviews page needs but evidence links. */
export type BreakGlassHost = Omit<ReviewsHost, 'evidence'>;

/** The reason categories offered (the gate accepts any lowercase word; these are the usual ones). */
const CATEGORIES = ['incident', 'outage', 'security', 'data-recovery', 'other'] as const;

function labelled(label: string, control: HTMLElement): HTMLElement {
  return el('label', {}, el('span', {}, label), control);
}

/** Shows the break-glass form for the signed-in approver. */
export async function showBreakGlass(host: BreakGlassHost): Promise<void> {
  const main = document.getElementById('main') as HTMLElement;
  const me = await get('me');
  if (me.status === 401) return host.signedOut(me);
  if (me.status !== 200) return host.say(`Unavailable (${refusal(me)})`, 'error');
  host.syncClock(me);
  const roles = Array.isArray(me.body['roles']) ? (me.body['roles'] as unknown[]).map(str) : [];
  const tenants = me.body['tenants'];

  // The tenant: one of the approver's, or any for an approver of every tenant.
  let tenant: HTMLInputElement | HTMLSelectElement;
  if (Array.isArray(tenants)) {
    tenant = el('select', { id: 'bg-tenant', name: 'bg-tenant' });
    for (const t of tenants.map(str)) tenant.append(el('option', {}, t));
  } else {
    tenant = el('input', { id: 'bg-tenant', name: 'bg-tenant' });
    tenant.required = true;
  }
  const tool = el('input', { id: 'bg-tool', name: 'bg-tool' });
  tool.required = true;
  tool.pattern = '[A-Za-z0-9._:\\-]{1,128}';
  const category = el('select', { id: 'bg-category', name: 'bg-category' });
  for (const c of CATEGORIES) category.append(el('option', {}, c));
  const reason = el('textarea', { id: 'bg-reason', name: 'bg-reason' });
  reason.required = true;
  reason.maxLength = 1000;
  const ttl = el('input', { id: 'bg-ttl', name: 'bg-ttl', type: 'number' });
  ttl.min = '1';
  ttl.step = '1';
  ttl.value = '900';
  ttl.required = true;
  const ack = el('input', { id: 'bg-ack', name: 'bg-ack', type: 'checkbox' });
  ack.required = true;
  const shown = el('pre', { id: 'bg-statement', className: 'params' });
  // One timestamp for the form: what is shown is exactly what is signed.
  const timestamp = host.now();
  const current = (): BreakGlassStatement => ({
    approver: host.who(),
    tenant: tenant.value.trim(),
    tool: tool.value.trim(),
    reason_category: category.value,
    reason: reason.value.trim(),
    ttl_sec: Number.parseInt(ttl.value, 10) || 0,
    timestamp,
  });
  const render = (): void => {
    shown.textContent = JSON.stringify(JSON.parse(canonicalJson({ ...current() })), null, 2);
  };
  for (const c of [tenant, tool, category, reason, ttl]) c.addEventListener('input', render);
  render();

  const submit = el('button', { id: 'bg-submit', type: 'submit' }, 'Sign and break glass');
  const back = el('button', { id: 'nav-inbox', type: 'button', className: 'secondary' }, 'Inbox');
  back.addEventListener('click', () => host.inbox());
  const form = el(
    'form',
    { id: 'bg-form' },
    labelled('Tenant', tenant),
    labelled('Tool', tool),
    labelled('Reason category', category),
    labelled('Reason (ledgered)', reason),
    labelled('Valid for (seconds)', ttl),
    el('p', {}, 'This device signs exactly this statement:'),
    shown,
    el(
      'label',
      { className: 'ack' },
      ack,
      el(
        'span',
        {},
        'I break glass for this tenant and tool: the grant and every call under it are ledgered, and each use opens a review another person closes.',
      ),
    ),
    el('div', { className: 'actions' }, submit),
  );
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    void breakGlass(host, current());
  });
  replace(
    main,
    el(
      'section',
      { id: 'break-glass' },
      el('div', { className: 'bar' }, el('h2', {}, 'Break glass'), back, host.signOutButton()),
      el(
        'p',
        { className: 'muted' },
        `An emergency grant lets calls of one tool for one tenant run without waiting for approvals, for a short time. It needs an L4 or L5 role (yours: ${roles.length === 0 ? 'none' : roles.join(', ')}).`,
      ),
      form,
      el('div', { id: 'bg-result' }),
    ),
  );
}

async function breakGlass(host: BreakGlassHost, statement: BreakGlassStatement): Promise<void> {
  const key = await loadDeviceKey(host.who());
  if (key === undefined) return host.say('No device key in this browser.', 'error');
  const signature = await signWith(key, breakGlassSigningInput(statement));
  const a = await post('break-glass', { statement, signature });
  if (a.status === 401) return host.signedOut(a);
  if (a.status !== 201) return host.say(`Refused: ${refusal(a)}`, 'error');
  const grant = obj(a.body['grant']);
  const result = document.getElementById('bg-result');
  if (result !== null)
    replace(
      result,
      el(
        'article',
        { className: 'card grant', data: { grantId: str(grant['grant_id']) } },
        el('h3', {}, 'Grant in force'),
        el(
          'dl',
          { className: 'facts' },
          el(
            'div',
            { className: 'field grant-id' },
            el('dt', {}, 'Grant'),
            el('dd', {}, text(grant['grant_id'])),
          ),
          el('div', { className: 'field' }, el('dt', {}, 'Tool'), el('dd', {}, text(grant['tool']))),
          el('div', { className: 'field' }, el('dt', {}, 'Tenant'), el('dd', {}, text(grant['tenant']))),
          el(
            'div',
            { className: 'field expires' },
            el('dt', {}, 'Expires'),
            el('dd', {}, text(grant['expires_at'])),
          ),
        ),
      ),
    );
  (document.getElementById('bg-form') as HTMLFormElement | null)?.remove();
  host.say(`Break-glass granted: ledgered at #${text(obj(a.body['ledger'])['index'])}.`);
}
