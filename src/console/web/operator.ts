/**
 * The operator's console (docs/console.md "Operator pages"): sign-in with the operator token
 * (sent once, never kept in the page or the browser's storage) or, for an operator bound to an
 * identity there, through the configured identity provider (the browser comes back to
 * `operator.html?code=…&state=…`, handed to the gate at once), the incident controls with a
 * confirmation step, and the ledger's latest signed checkpoint checked in this browser. Every
 * value is rendered as text only (dom.ts); answers and denial codes are shown as text.
 */
import { el, obj, replace, str, text, type Obj } from './dom.js';
import { get, oidcReturn, post, refusal } from './http.js';
import type { Answer } from './http.js';
import { verifyCheckpointNote } from './proof.js';

const main = document.getElementById('main') as HTMLElement;
const nav = document.getElementById('nav') as HTMLElement;
const statusLine = document.getElementById('status') as HTMLElement;
const dialog = document.getElementById('dialog') as HTMLDialogElement;

let operatorName = '';

function say(message: string, kind: 'info' | 'error' = 'info'): void {
  statusLine.textContent = message;
  statusLine.className = kind;
}

function strings(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}

function input(id: string, type = 'text'): HTMLInputElement {
  const i = el('input', { id, type, name: id });
  i.autocomplete = 'off';
  return i;
}

function labelled(label: string, control: HTMLElement): HTMLLabelElement {
  return el('label', {}, el('span', {}, label), control);
}

function field(label: string, value: unknown, className = ''): HTMLElement {
  return el('div', { className: `field ${className}` }, el('dt', {}, label), el('dd', {}, text(value)));
}

/** An answer as one line of text: the outcome and ledger index, or the denial code and reason. */
function answerText(a: Answer): string {
  if (a.status >= 200 && a.status < 300) {
    const ledger = obj(a.body['ledger']);
    const index = ledger['index'];
    return `Done (${str(a.body['outcome']) || 'ok'}${index === undefined ? '' : `, ledger entry #${text(index)}`}).`;
  }
  return `Refused (${refusal(a)})`;
}

function showSignIn(): void {
  replace(nav);
  const token = input('operator-token', 'password');
  token.required = true;
  const form = el(
    'form',
    { id: 'operator-sign-in' },
    el('h2', {}, 'Operator sign-in'),
    el('p', {}, 'Your operator token is sent once to sign in; this page keeps no copy of it.'),
    labelled('Operator token', token),
    el('button', { id: 'operator-sign-in-submit', type: 'submit' }, 'Sign in'),
  );
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const value = token.value.trim();
    // The field is emptied before the request: the token lives in the page for this call only.
    token.value = '';
    void signIn(value);
  });
  const providers = el('section', { className: 'card', id: 'operator-oidc' });
  providers.hidden = true;
  replace(
    main,
    providers,
    el('section', { className: 'card' }, form),
    el('p', { className: 'muted' }, 'Approvers sign in on the approvals page.'),
  );
  void get('operator/sign-in').then((a) => {
    const issuer = str(obj(a.body['oidc'])['issuer']);
    if (a.status !== 200 || issuer === '') return;
    let host = issuer;
    try {
      host = new URL(issuer).host;
    } catch {
      // Shown as given.
    }
    const b = el('button', { id: 'operator-oidc-sign-in', type: 'button' }, `Sign in with ${host}`);
    b.addEventListener('click', () => void oidcStart());
    replace(
      providers,
      el('h2', {}, 'Sign in with your identity provider'),
      el('p', {}, 'Operators bound to an identity there sign in with it; their token is refused here.'),
      b,
    );
    providers.hidden = false;
  });
}

/** Sends the browser to the identity provider; it comes back to this page with a code and state. */
async function oidcStart(): Promise<void> {
  const a = await post('operator/sign-in/oidc/start', {});
  const url = str(a.body['authorization_url']);
  if (a.status !== 200 || !/^https?:\/\//.test(url)) return say(`Sign-in refused (${refusal(a)})`, 'error');
  window.location.assign(url);
}

async function signIn(token: string): Promise<void> {
  const a = await post('operator/sign-in', { token });
  if (a.status !== 200) return say(`Sign-in refused (${refusal(a)})`, 'error');
  say('Signed in as operator.');
  await start();
}

const PAGES: ReadonlyArray<readonly [string, string, () => Promise<void>]> = [
  ['incident', 'Incident controls', () => showIncident()],
  ['ledger', 'Ledger', () => showLedger()],
  ['policy', 'Policy bundles', () => showPolicy()],
  ['people', 'Clients and approvers', () => showPeople()],
  ['break-glass', 'Break-glass', () => showBreakGlass()],
];

function showNav(current: string): void {
  const buttons = PAGES.map(([id, label, open]) => {
    const b = el('button', { id: `nav-${id}`, type: 'button', className: 'secondary' }, label);
    if (id === current) b.setAttribute('aria-current', 'page');
    b.addEventListener('click', () => void open());
    return b;
  });
  const out = el('button', { id: 'sign-out', type: 'button', className: 'secondary' }, 'Sign out');
  out.addEventListener('click', () => {
    void post('sign-out', {}).then(() => {
      showSignIn();
      say('Signed out.');
    });
  });
  replace(nav, ...buttons, out);
}

async function start(): Promise<void> {
  const me = await get('operator/me');
  if (me.status !== 200) {
    showSignIn();
    if (me.status !== 401) say(`The console is unavailable (${refusal(me)})`, 'error');
    return;
  }
  operatorName = str(me.body['name']);
  await showIncident();
}

/** A refused read: back to sign-in when the session is gone, else the code as text. */
function readFailed(what: string, a: Answer): void {
  if (a.status === 401) {
    showSignIn();
    return say(`Signed out (${refusal(a)})`, 'error');
  }
  say(`${what} is unavailable (${refusal(a)})`, 'error');
}

/**
 * The confirmation step: what will happen, and the exact text to type (the tenant, the session,
 * `engage`/`release`); the gate checks the typed text again before it acts.
 */
function confirmControl(title: string, expected: string, control: string, body: Obj): void {
  const typed = input('confirm-text');
  const reason = input('confirm-reason');
  const cancel = el('button', { type: 'button', className: 'secondary', id: 'confirm-cancel' }, 'Cancel');
  const submit = el('button', { type: 'submit', id: 'confirm-submit', className: 'danger' }, 'Confirm');
  const form = el(
    'form',
    { id: 'confirm-form' },
    el('h3', {}, title),
    el('p', {}, 'Type ', el('code', { className: 'expected' }, expected), ' to confirm.'),
    labelled('Confirmation', typed),
    labelled('Reason (ledgered)', reason),
    el('div', { className: 'actions' }, submit, cancel),
  );
  cancel.addEventListener('click', () => dialog.close());
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    if (typed.value !== expected) {
      say(`Type "${expected}" exactly to confirm.`, 'error');
      return;
    }
    dialog.close();
    void (async () => {
      const a = await post(`operator/incident/${control}`, {
        ...body,
        confirm: typed.value,
        reason: reason.value.trim() || 'console',
      });
      await showIncident();
      say(`${title}: ${answerText(a)}`, a.status === 200 ? 'info' : 'error');
    })();
  });
  replace(dialog, form);
  dialog.showModal();
}

function targetForm(
  id: string,
  title: string,
  label: string,
  onLabel: string,
  offLabel: string,
  act: (target: string, on: boolean) => void,
): HTMLElement {
  const target = input(`${id}-target`);
  const on = el('button', { type: 'button', id: `${id}-on`, className: 'danger' }, onLabel);
  const off = el('button', { type: 'button', id: `${id}-off`, className: 'secondary' }, offLabel);
  on.addEventListener('click', () => act(target.value.trim(), true));
  off.addEventListener('click', () => act(target.value.trim(), false));
  return el(
    'section',
    { className: 'card', id },
    el('h3', {}, title),
    labelled(label, target),
    el('div', { className: 'actions' }, on, off),
  );
}

function list(items: readonly string[], empty: string, className: string): HTMLElement {
  if (items.length === 0) return el('p', { className: 'muted' }, empty);
  return el('ul', { className }, ...items.map((t) => el('li', {}, t)));
}

async function showIncident(): Promise<void> {
  const a = await get('operator/incident');
  if (a.status !== 200) return readFailed('The incident state', a);
  showNav('incident');
  const engaged = a.body['kill_switch'] === true;
  const killButton = el(
    'button',
    { id: 'kill-switch-toggle', type: 'button', className: engaged ? 'secondary' : 'danger' },
    engaged ? 'Release the kill switch…' : 'Engage the kill switch…',
  );
  killButton.addEventListener('click', () =>
    confirmControl(
      engaged ? 'Release the kill switch' : 'Engage the kill switch',
      engaged ? 'release' : 'engage',
      'kill-switch',
      { on: !engaged },
    ),
  );
  const scope = el('select', { id: 'breaker-scope', name: 'breaker-scope' });
  for (const s of ['session', 'client', 'tenant']) {
    const o = el('option', {}, s);
    o.value = s;
    scope.append(o);
  }
  const breakerTarget = input('breaker-target');
  const breakerButton = el(
    'button',
    { type: 'button', id: 'breaker-reset', className: 'secondary' },
    'Reset…',
  );
  breakerButton.addEventListener('click', () => {
    const t = breakerTarget.value.trim();
    confirmControl(`Reset the breakers of ${scope.value} ${t}`, t, 'breaker-reset', { [scope.value]: t });
  });
  replace(
    main,
    el(
      'section',
      { id: 'incident' },
      el('h2', {}, 'Incident controls'),
      el(
        'section',
        { className: 'card', id: 'incident-state' },
        el('h3', {}, 'Current state'),
        el(
          'dl',
          {},
          el(
            'div',
            { className: 'field' },
            el('dt', {}, 'Kill switch'),
            el(
              'dd',
              { id: 'kill-switch-state', className: engaged ? 'state-on' : 'state-off' },
              engaged ? 'ENGAGED: every call is refused' : 'released',
            ),
          ),
          field('Signed in as', operatorName),
        ),
        el('h4', {}, 'Locked-down tenants'),
        list(strings(a.body['locked_tenants']), 'None.', 'locked-tenants'),
        el('h4', {}, 'Quarantined sessions and clients'),
        list(strings(a.body['quarantined_sessions']), 'None.', 'quarantined-sessions'),
      ),
      el('section', { className: 'card', id: 'kill-switch' }, el('h3', {}, 'Kill switch'), killButton),
      el(
        'div',
        { className: 'controls' },
        targetForm('lockdown', 'Tenant lockdown', 'Tenant', 'Lock down…', 'Lift…', (t, on) =>
          confirmControl(`${on ? 'Lock down' : 'Lift the lockdown of'} tenant ${t}`, t, 'lockdown', {
            tenant: t,
            on,
          }),
        ),
        targetForm(
          'quarantine',
          'Session quarantine',
          'Session id, or client:NAME',
          'Quarantine…',
          'Release…',
          (t, on) =>
            confirmControl(`${on ? 'Quarantine' : 'Release'} ${t}`, t, 'quarantine', { session: t, on }),
        ),
        el(
          'section',
          { className: 'card', id: 'breaker' },
          el('h3', {}, 'Breaker reset'),
          labelled('Scope', scope),
          labelled('Session, client or tenant', breakerTarget),
          el('div', { className: 'actions' }, breakerButton),
        ),
      ),
    ),
  );
}

/**
 * The audit-bundle export as a download: the gate ledgers the export (`audit.export`) before it
 * reads a line, so each download is on the record with who asked.
 */
function exportCard(): HTMLElement {
  const button = el('button', { id: 'ledger-export', type: 'button' }, 'Download the export');
  button.addEventListener('click', () => {
    void (async () => {
      const res = await fetch('/console/api/operator/ledger/export', {
        method: 'POST',
        credentials: 'same-origin',
        cache: 'no-store',
        headers: { 'content-type': 'application/json' },
        body: '{}',
      });
      if (res.status !== 200) {
        const body = obj(await res.json().catch(() => ({})));
        return say(`Export refused (${refusal({ status: res.status, body })})`, 'error');
      }
      const name = /filename="([A-Za-z0-9._-]+)"/.exec(res.headers.get('content-disposition') ?? '')?.[1];
      const blob = await res.blob();
      const url = URL.createObjectURL(blob);
      const a = el('a', {});
      a.href = url;
      a.download = name ?? 'failclosed-ledger.ndjson';
      document.body.append(a);
      a.click();
      a.remove();
      URL.revokeObjectURL(url);
      say(`Export downloaded (${String(blob.size)} bytes; ledgered as audit.export).`);
    })();
  });
  return el(
    'section',
    { className: 'card', id: 'export' },
    el('h3', {}, 'Export'),
    el('p', {}, 'The whole ledger as an audit bundle (NDJSON), with the keys to verify it.'),
    button,
  );
}

/** A diff answer (`policy diff` of the gate) as text, in a `pre`. */
function diffView(a: Answer): HTMLElement {
  if (a.status !== 200)
    return el('p', { className: 'warn', id: 'policy-diff-error' }, `Refused (${refusal(a)})`);
  const d = obj(a.body['diff']);
  return el(
    'div',
    { id: 'policy-diff' },
    el(
      'h4',
      {},
      d['identical'] === true ? 'Identical to the active bundle' : 'Changes against the active bundle',
    ),
    el('pre', { className: 'diff' }, text(d['text'])),
  );
}

/**
 * Policy bundles: the active one, activations waiting for approval (each with its diff), and a
 * bundle document pasted here, diffed against the active one and sent for activation.
 */
async function showPolicy(): Promise<void> {
  const a = await get('operator/policy');
  if (a.status !== 200) return readFailed('The policy page', a);
  showNav('policy');
  const active = obj(a.body['active']);
  const pending = Array.isArray(a.body['pending']) ? (a.body['pending'] as unknown[]).map(obj) : [];
  const out = el('div', { id: 'policy-output' });
  const doc = el('textarea', { id: 'bundle-text', name: 'bundle-text' });
  const diffButton = el(
    'button',
    { type: 'button', id: 'bundle-diff', className: 'secondary' },
    'Show the diff',
  );
  const activateButton = el(
    'button',
    { type: 'button', id: 'bundle-activate', className: 'danger' },
    'Request activation…',
  );
  diffButton.addEventListener('click', () => {
    void post('operator/policy/diff', { bundle: doc.value }).then((r) => replace(out, diffView(r)));
  });
  activateButton.addEventListener('click', () => {
    const typed = input('confirm-text');
    const reason = input('confirm-reason');
    const submit = el('button', { type: 'submit', id: 'confirm-submit', className: 'danger' }, 'Request');
    const cancel = el('button', { type: 'button', id: 'confirm-cancel', className: 'secondary' }, 'Cancel');
    const form = el(
      'form',
      { id: 'confirm-form' },
      el('h3', {}, 'Request the activation of this bundle'),
      el(
        'p',
        {},
        'When approvals.json asks for it, approvers must approve before it takes effect. Type ',
        el('code', {}, 'activate'),
        ' to confirm.',
      ),
      labelled('Confirmation', typed),
      labelled('Reason (ledgered)', reason),
      el('div', { className: 'actions' }, submit, cancel),
    );
    cancel.addEventListener('click', () => dialog.close());
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      dialog.close();
      void post('operator/policy/activate', {
        bundle: doc.value,
        confirm: typed.value,
        reason: reason.value.trim() || 'console',
      }).then(async (r) => {
        const waiting = r.body['code'] === 'ERR_APPROVAL_PENDING';
        await showPolicy();
        say(
          waiting
            ? `Waiting for approvals (decision ${str(r.body['decision_id'])}).`
            : `Activation: ${answerText(r)}`,
          r.status === 200 || waiting ? 'info' : 'error',
        );
      });
    });
    replace(dialog, form);
    dialog.showModal();
  });
  const pendingCards = pending.map((p) => {
    const show = el('button', { type: 'button', className: 'secondary pending-diff' }, 'Show the diff');
    const slot = el('div', {});
    show.addEventListener('click', () => {
      void post('operator/policy/diff', { hash: str(p['bundle']) }).then((r) => replace(slot, diffView(r)));
    });
    return el(
      'article',
      { className: 'card pending-activation', data: { decisionId: str(p['decision_id']) } },
      el(
        'dl',
        {},
        field('Bundle', p['bundle']),
        field('Requested by', p['requested_by']),
        field('Approvals so far', p['approvals']),
        field('Expires', p['expires_at']),
      ),
      show,
      slot,
    );
  });
  replace(
    main,
    el(
      'section',
      { id: 'policy' },
      el('h2', {}, 'Policy bundles'),
      el(
        'section',
        { className: 'card', id: 'active-bundle' },
        el('h3', {}, 'Active bundle'),
        Object.keys(active).length === 0
          ? el('p', { className: 'warn' }, 'No active bundle: every call is refused.')
          : el(
              'dl',
              {},
              field('Name', active['name']),
              field('Hash', active['hash'], 'hash'),
              field('Tools', active['tools']),
              field('Policies', active['policies']),
            ),
      ),
      el('h3', {}, 'Activations waiting for approval'),
      pendingCards.length === 0 ? el('p', { className: 'muted' }, 'None.') : null,
      ...pendingCards,
      el(
        'section',
        { className: 'card', id: 'bundle-upload' },
        el('h3', {}, 'A new bundle'),
        el(
          'p',
          { className: 'muted' },
          'Paste a bundle document (failclosed policy build makes one; at most 64 KiB here).',
        ),
        labelled('Bundle document (JSON)', doc),
        el('div', { className: 'actions' }, diffButton, activateButton),
        out,
      ),
    ),
  );
}

/** A dialog that asks for the fields of one change, then posts it and reloads the people page. */
function peopleDialog(
  title: string,
  route: string,
  fields: ReadonlyArray<readonly [string, string, 'text' | 'textarea']>,
  fixed: Obj,
  build: (values: Record<string, string>) => Obj,
  confirmText?: string,
  /** The page shown again once answered. */
  refresh: () => Promise<void> = showPeople,
): void {
  const controls = fields.map(([id, label, kind]) => {
    const c = kind === 'textarea' ? el('textarea', { id, name: id }) : input(id);
    return [id, c, labelled(label, c)] as const;
  });
  const typed = input('confirm-text');
  const submit = el('button', { type: 'submit', id: 'people-submit' }, 'Submit');
  const cancel = el('button', { type: 'button', id: 'people-cancel', className: 'secondary' }, 'Cancel');
  const form = el(
    'form',
    { id: 'people-form' },
    el('h3', {}, title),
    ...controls.map(([, , l]) => l),
    confirmText === undefined ? null : el('p', {}, 'Type ', el('code', {}, confirmText), ' to confirm.'),
    confirmText === undefined ? null : labelled('Confirmation', typed),
    el('div', { className: 'actions' }, submit, cancel),
  );
  cancel.addEventListener('click', () => dialog.close());
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const values: Record<string, string> = {};
    for (const [id, c] of controls) values[id] = c.value.trim();
    dialog.close();
    void (async () => {
      let body: Obj;
      try {
        body = { ...fixed, ...build(values), ...(confirmText === undefined ? {} : { confirm: typed.value }) };
      } catch {
        return say('The public key must be a JSON Web Key (JSON).', 'error');
      }
      const r = await post(`operator/${route}`, body);
      await refresh();
      const code = str(r.body['code']);
      if (r.status < 300 && route === 'approvers/invite' && code !== '')
        return showInvitation(str(r.body['name']), code);
      say(`${title}: ${answerText(r)}`, r.status < 300 ? 'info' : 'error');
    })();
  });
  replace(dialog, form);
  dialog.showModal();
}

/** The one-time code of an invitation, shown once. */
function showInvitation(name: string, code: string): void {
  main.prepend(
    el(
      'section',
      { className: 'card', id: 'invitation' },
      el('h3', {}, `Invitation for ${name}`),
      el('p', {}, 'Give this one-time code to the person over a channel you trust. It is shown once.'),
      el('p', { className: 'kid', id: 'invite-code' }, code),
    ),
  );
  say(`Invited ${name}.`);
}

const csv = (v: string): string[] =>
  v
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x !== '');

/** Clients and approvers of the operator's tenants, with their changes. */
/** A button that runs `act` when clicked. */
function button(label: string, className: string, act: () => void): HTMLButtonElement {
  const b = el('button', { type: 'button', className }, label);
  b.addEventListener('click', act);
  return b;
}

async function showPeople(): Promise<void> {
  const a = await get('operator/people');
  if (a.status !== 200) return readFailed('Clients and approvers', a);
  showNav('people');
  const clients = Array.isArray(a.body['clients']) ? (a.body['clients'] as unknown[]).map(obj) : [];
  const approvers = Array.isArray(a.body['approvers']) ? (a.body['approvers'] as unknown[]).map(obj) : [];
  const jwk = (v: string): unknown => JSON.parse(v) as unknown;
  const clientCards = clients.map((c) => {
    const name = str(c['identity']);
    return el(
      'article',
      { className: 'card client', data: { name } },
      el('h4', {}, el('span', { className: 'client-name' }, name), ` (${str(c['status'])})`),
      el(
        'dl',
        {},
        field('Tenant', c['tenant']),
        field('Key id', c['kid']),
        field('Roles', strings(c['roles'])),
      ),
      str(c['status']) !== 'active'
        ? null
        : el(
            'div',
            { className: 'actions' },
            button('Rotate key…', 'secondary rotate', () =>
              peopleDialog(
                `Rotate the key of ${name}`,
                'clients/rotate',
                [['rotate-jwk', 'New public key (JWK)', 'textarea']],
                { name },
                (v) => ({
                  public_jwk: jwk(v['rotate-jwk'] ?? ''),
                }),
              ),
            ),
            button('Revoke…', 'danger revoke', () =>
              peopleDialog(
                `Revoke ${name}`,
                'clients/revoke',
                [['revoke-reason', 'Reason (ledgered)', 'text']],
                { name },
                (v) => ({
                  reason: v['revoke-reason'] || 'console',
                }),
                name,
              ),
            ),
          ),
    );
  });
  const approverCards = approvers.map((p) => {
    const name = str(p['name']);
    return el(
      'article',
      { className: 'card approver', data: { name } },
      el('h4', {}, name, ` (${str(p['status'])})`),
      el(
        'dl',
        {},
        field('Roles', strings(p['roles'])),
        field('Tenants', p['tenants'] === '*' ? 'every tenant' : strings(p['tenants'])),
        field('Key id', p['kid']),
      ),
      str(p['status']) !== 'active'
        ? null
        : el(
            'div',
            { className: 'actions' },
            button('Remove…', 'danger remove', () =>
              peopleDialog(
                `Remove ${name}`,
                'approvers/remove',
                [['remove-reason', 'Reason (ledgered)', 'text']],
                { name },
                (v) => ({
                  reason: v['remove-reason'] || 'console',
                }),
                name,
              ),
            ),
          ),
    );
  });
  const register = button('Register a client…', 'secondary', () =>
    peopleDialog(
      'Register a client',
      'clients/register',
      [
        ['client-name', 'Name', 'text'],
        ['client-tenant', 'Tenant', 'text'],
        ['client-owner', 'Owner (a person; never approves its calls)', 'text'],
        ['client-jwk', 'Public key (JWK, from failclosed clients keygen)', 'textarea'],
      ],
      {},
      (v) => ({
        name: v['client-name'],
        tenant: v['client-tenant'],
        ...(v['client-owner'] === '' ? {} : { owner: v['client-owner'] }),
        public_jwk: jwk(v['client-jwk'] ?? ''),
      }),
    ),
  );
  register.id = 'client-register';
  const invite = button('Invite an approver…', 'secondary', () =>
    peopleDialog(
      'Invite an approver',
      'approvers/invite',
      [
        ['invite-name', 'Name', 'text'],
        ['invite-roles', 'Roles (comma-separated)', 'text'],
        ['invite-tenants', 'Tenants (comma-separated, or *)', 'text'],
      ],
      {},
      (v) => ({
        name: v['invite-name'],
        roles: csv(v['invite-roles'] ?? ''),
        tenants: v['invite-tenants'] === '*' ? '*' : csv(v['invite-tenants'] ?? ''),
      }),
    ),
  );
  invite.id = 'approver-invite';
  const confirmKey = button('Confirm a device key…', 'secondary', () =>
    peopleDialog(
      'Confirm an approver’s device key',
      'approvers/confirm',
      [
        ['confirm-name', 'Name', 'text'],
        ['confirm-kid', 'Fingerprint (kid) the person read to you', 'text'],
      ],
      {},
      (v) => ({ name: v['confirm-name'], kid: v['confirm-kid'] }),
    ),
  );
  confirmKey.id = 'approver-confirm';
  replace(
    main,
    el(
      'section',
      { id: 'people' },
      el('div', { className: 'bar' }, el('h2', {}, 'Clients'), register),
      clientCards.length === 0 ? el('p', { className: 'muted' }, 'No clients.') : null,
      ...clientCards,
      el('div', { className: 'bar' }, el('h2', {}, 'Approvers'), invite, confirmKey),
      approverCards.length === 0 ? el('p', { className: 'muted' }, 'No approvers.') : null,
      ...approverCards,
    ),
  );
}

/**
 * Break-glass grants in force, each revocable (typed confirmation), and reviews, read-only:
 * closing a review is signed by an approver (`failclosed reviews close`, or the approvers' Reviews page).
 */
async function showBreakGlass(): Promise<void> {
  const a = await get('operator/break-glass');
  if (a.status !== 200) return readFailed('Break-glass reviews', a);
  showNav('break-glass');
  const reviews = Array.isArray(a.body['reviews']) ? (a.body['reviews'] as unknown[]).map(obj) : [];
  const open = reviews.filter((r) => r['status'] === 'open');
  const closed = reviews.filter((r) => r['status'] !== 'open');
  const grants = Array.isArray(a.body['grants']) ? (a.body['grants'] as unknown[]).map(obj) : [];
  const grantOf = (g: Obj): HTMLElement =>
    el(
      'article',
      { className: 'card grant', data: { grantId: str(g['grant_id']) } },
      el('h4', {}, `${str(g['tool'])} for tenant ${str(g['tenant'])}, until ${str(g['expires_at'])}`),
      el(
        'dl',
        {},
        field('Granted by', `${str(g['approver'])} (${str(g['role'])})`),
        field('Reason', `${str(g['reason_category'])}: ${str(g['reason'])}`),
        field('Granted', g['created_at']),
        field('Grant', g['grant_id']),
      ),
      el(
        'div',
        { className: 'actions' },
        button('Revoke…', 'danger revoke', () =>
          peopleDialog(
            `Revoke grant ${str(g['grant_id'])}`,
            'break-glass/revoke',
            [['revoke-reason', 'Reason (ledgered)', 'text']],
            { grant_id: str(g['grant_id']) },
            (v) => ({ reason: v['revoke-reason'] || 'console' }),
            str(g['grant_id']),
            showBreakGlass,
          ),
        ),
      ),
    );
  const cardOf = (r: Obj): HTMLElement =>
    el(
      'article',
      { className: `card review ${str(r['status'])}`, data: { reviewId: str(r['review_id']) } },
      el('h4', {}, `Review ${str(r['review_id'])} (${str(r['status'])})`),
      el(
        'dl',
        {},
        field('Break-glass used by', r['opened_for']),
        field('Grant', r['grant_id']),
        field('Decision', r['decision_id']),
        field('Opened', r['opened_at']),
        r['status'] === 'open' ? null : field('Closed by', r['closed_by']),
        r['status'] === 'open' ? null : field('Notes', r['notes']),
      ),
    );
  replace(
    main,
    el(
      'section',
      { id: 'break-glass' },
      el('h2', {}, 'Break-glass reviews'),
      el(
        'p',
        { className: 'muted' },
        'Each use of a break-glass grant opens a review. Another approver closes it with a signed statement: on their Reviews page, or failclosed reviews close ID --as NAME --notes TEXT.',
      ),
      el('h3', {}, `Grants in force (${String(grants.length)})`),
      grants.length === 0 ? el('p', { className: 'muted', id: 'no-grants' }, 'None.') : null,
      ...grants.map(grantOf),
      el('h3', {}, `Open (${String(open.length)})`),
      open.length === 0 ? el('p', { className: 'muted' }, 'None.') : null,
      ...open.map(cardOf),
      el('h3', {}, `Closed (${String(closed.length)})`),
      closed.length === 0 ? el('p', { className: 'muted' }, 'None.') : null,
      ...closed.map(cardOf),
    ),
  );
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** The latest signed checkpoint, its signature checked here under the ledger key the gate publishes. */
async function showLedger(): Promise<void> {
  const a = await get('operator/ledger');
  if (a.status !== 200) return readFailed('The ledger', a);
  showNav('ledger');
  const cp = obj(a.body['checkpoint']);
  const trust = await fetch('/v1/trust-roots', { cache: 'no-store' })
    .then((r) => r.json() as Promise<unknown>)
    .catch(() => ({}));
  const vkey = str(obj(obj(trust)['ledger'])['vkey']);
  const verified =
    Object.keys(cp).length === 0 ? undefined : await verifyCheckpointNote(str(cp['note']), vkey);
  const ok = verified !== undefined && verified.size === cp['size'];
  replace(
    main,
    el(
      'section',
      { id: 'ledger' },
      el('h2', {}, 'Ledger'),
      el(
        'section',
        { className: 'card', id: 'checkpoint' },
        el('h3', {}, 'Latest signed checkpoint'),
        Object.keys(cp).length === 0
          ? el('p', { className: 'muted' }, 'No checkpoint is signed yet.')
          : el(
              'div',
              {},
              el(
                'p',
                { id: 'checkpoint-check' },
                el(
                  'span',
                  { className: ok ? 'check ok' : 'check fail' },
                  ok
                    ? '\u2713 signature verified in this browser under the ledger key the gate publishes'
                    : '\u2717 the checkpoint signature does not verify',
                ),
              ),
              el(
                'dl',
                {},
                field('Size (records)', cp['size'], 'size'),
                field('Root (hex)', verified === undefined ? '' : hex(verified.root), 'root'),
                field('Ledger key', vkey),
              ),
              el('pre', { className: 'note' }, text(cp['note'])),
            ),
        el(
          'p',
          { className: 'muted' },
          'Verify the whole log offline: download the export, then failclosed verify.',
        ),
      ),
      exportCard(),
    ),
  );
}

void oidcReturn(
  new URLSearchParams(window.location.search),
  '/console/operator.html',
  'operator/sign-in/oidc/callback',
  say,
)
  .then(() => start())
  .catch(() => say('The console failed to start.', 'error'));
