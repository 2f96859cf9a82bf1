/**
 * The approver's console (docs/console.md): sign-in (the enrolment code once, then the device
 * key), enrolment of a non-extractable device key, and the approvals inbox where a statement is
 * built, shown and signed in this browser. Values from agents, tools, clients and approvers are
 * rendered as text only (dom.ts).
 */
import { el, obj, replace, str, text, type Obj } from './dom.js';
import { get, oidcReturn, post, refusal } from './http.js';
import type { Answer } from './http.js';
import { createDeviceKey, loadDeviceKey, signWith, thumbprint } from './keystore.js';
import type { DeviceKey } from './keystore.js';
import { checkInclusion, entryHashOf, verifyCheckpointNote } from './proof.js';
import type { Entry } from './proof.js';
import { showBreakGlass, type BreakGlassHost } from './break-glass.js';
import { showReviews, type ReviewsHost } from './reviews.js';
import { approvalSigningInput, canonicalJson, shownMismatch, signInInput } from './statement.js';
import type { ApprovalStatement } from './statement.js';

const main = document.getElementById('main') as HTMLElement;
const statusLine = document.getElementById('status') as HTMLElement;
const dialog = document.getElementById('dialog') as HTMLDialogElement;

/** Server time minus local time: statements carry the gate's clock, so a skewed device still signs in its window. */
let skewMs = 0;
let who = '';

function say(message: string, kind: 'info' | 'error' = 'info'): void {
  statusLine.textContent = message;
  statusLine.className = kind;
}

function syncClock(a: Answer): void {
  const now = Date.parse(str(a.body['now']));
  if (Number.isFinite(now)) skewMs = now - Date.now();
}

function labelled(label: string, input: HTMLInputElement | HTMLTextAreaElement): HTMLLabelElement {
  return el('label', {}, el('span', {}, label), input);
}

function input(id: string, type = 'text'): HTMLInputElement {
  const i = el('input', { id, type, name: id });
  i.required = true;
  i.autocomplete = 'off';
  return i;
}

function showSignIn(): void {
  const name = input('name');
  const code = input('code', 'password');
  const codeForm = el(
    'form',
    { id: 'code-form' },
    el('h2', {}, 'First sign-in: enrol this device'),
    el('p', {}, 'Use the one-time code the operator gave you. This browser then makes your device key.'),
    labelled('Enrolment code', code),
    el('button', { id: 'code-sign-in', type: 'submit' }, 'Sign in and enrol this device'),
  );
  const deviceButton = el('button', { id: 'device-sign-in', type: 'button' }, 'Sign in with this device');
  replace(
    main,
    el('section', { className: 'card' }, el('h2', {}, 'Sign in'), labelled('Your name', name), deviceButton),
    el('section', { className: 'card' }, codeForm),
  );
  deviceButton.addEventListener('click', () => void deviceSignIn(name.value.trim()));
  codeForm.addEventListener('submit', (e) => {
    e.preventDefault();
    void codeSignIn(name.value.trim(), code.value.trim());
  });
}

async function codeSignIn(name: string, code: string): Promise<void> {
  const a = await post('sign-in/code', { name, code });
  if (a.status !== 200) return say(`Sign-in refused (${refusal(a)})`, 'error');
  who = name;
  // Bound to an OIDC identity: the identity provider first, the device key after the return.
  const me = await get('me');
  if (me.body['oidc_required'] === true) return showOidcStep(name);
  await enrolThisDevice(name);
}

/**
 * The second step of a person bound to an OIDC identity: the browser goes to the identity
 * provider and comes back to `/console/?code=…&state=…`, handled by {@link oidcReturn}.
 */
function showOidcStep(name: string): void {
  const b = el('button', { id: 'oidc-sign-in', type: 'button' }, 'Continue with your identity provider');
  b.addEventListener('click', () => {
    void post('sign-in/oidc/start', {}).then((a) => {
      const url = str(a.body['authorization_url']);
      if (a.status !== 200 || !/^https?:\/\//.test(url))
        return say(`Sign-in refused (${refusal(a)})`, 'error');
      window.location.assign(url);
    });
  });
  replace(
    main,
    el(
      'section',
      { className: 'card', id: 'oidc-step' },
      el('h2', {}, 'Sign in with your identity provider'),
      el(
        'p',
        {},
        `${name}: your invitation is bound to your identity at the organisation’s identity provider.`,
      ),
      b,
      signOutButton(),
    ),
  );
}

async function enrolThisDevice(name: string): Promise<void> {
  let key: DeviceKey;
  try {
    key = await createDeviceKey(name);
  } catch {
    return say('This browser cannot make a non-extractable Ed25519 key (WebCrypto).', 'error');
  }
  const e = await post('enrol', { public_jwk: key.jwk });
  if (e.status !== 200) return say(`Enrolment refused (${refusal(e)})`, 'error');
  if (str(e.body['kid']) !== key.kid)
    return say('The gate recorded another key than this device made.', 'error');
  showEnrolled(name, key.kid);
}

function showEnrolled(name: string, kid: string): void {
  const again = el('button', { id: 'device-sign-in', type: 'button' }, 'Sign in with this device');
  again.addEventListener('click', () => void deviceSignIn(name));
  replace(
    main,
    el(
      'section',
      { className: 'card', id: 'enrolled' },
      el('h2', {}, 'Device key enrolled'),
      el('p', {}, 'Read this fingerprint to the operator over a channel you trust (not this page):'),
      el('p', { className: 'kid', id: 'kid' }, kid),
      el('p', {}, 'The operator confirms it with:'),
      el('pre', { className: 'code' }, `failclosed approvers confirm ${name} --kid ${kid}`),
      el('p', {}, 'Until then this key signs nothing. Once confirmed, sign in with this device.'),
      again,
    ),
  );
  say('Enrolled: waiting for the operator’s confirmation.');
}

function showKeyMismatch(name: string): void {
  replace(
    main,
    el(
      'section',
      { className: 'card', id: 'key-mismatch' },
      el('h2', {}, 'Do not confirm this enrolment'),
      el(
        'p',
        { className: 'warn' },
        `The key the gate holds for ${name} is not a key made in this browser. Someone else may have enrolled with your code. Read no fingerprint to the operator: tell them to invite you again.`,
      ),
      signOutButton(),
    ),
  );
  say('The enrolled key is not this device’s: ask the operator for a new invitation.', 'error');
}

async function deviceSignIn(name: string): Promise<void> {
  const key = await loadDeviceKey(name);
  if (key === undefined)
    return say('No device key for this name in this browser: use your enrolment code.', 'error');
  const c = await post('sign-in/challenge', { name });
  if (c.status !== 200) return say(`Sign-in refused (${refusal(c)})`, 'error');
  const signature = await signWith(key, signInInput(name, str(c.body['challenge'])));
  const a = await post('sign-in/key', { name, challenge: c.body['challenge'], signature });
  if (a.status !== 200) return say(`Sign-in refused (${refusal(a)})`, 'error');
  who = name;
  say(`Signed in as ${name} with this device’s key.`);
  await start();
}

async function start(): Promise<void> {
  const me = await get('me');
  if (me.status !== 200) {
    const shown = statusLine.textContent;
    showSignIn();
    if (me.status !== 401) say(`The console is unavailable (${refusal(me)})`, 'error');
    else if (shown !== null && shown !== '') statusLine.textContent = shown;
    return;
  }
  syncClock(me);
  who = str(me.body['name']);
  const stage = str(me.body['stage']);
  const method = str(me.body['method']);
  if (me.body['oidc_required'] === true) return showOidcStep(who);
  if (method === 'code+oidc' && stage === 'invited') return enrolThisDevice(who);
  if (stage !== 'confirmed' || !method.startsWith('key')) {
    const kid = str(me.body['kid']);
    if (kid === '') return showSignIn();
    // The fingerprint read to the operator must be this device's key: the gate's word for it is
    // compared with the key in this browser, and another (or none) is never shown to be read out.
    const local = await loadDeviceKey(who);
    if (local === undefined || (await thumbprint(local.jwk.x)) !== kid) return showKeyMismatch(who);
    return showEnrolled(who, kid);
  }
  await showInbox();
}

function signOutButton(): HTMLButtonElement {
  const b = el('button', { id: 'sign-out', type: 'button', className: 'secondary' }, 'Sign out');
  b.addEventListener('click', () => {
    void post('sign-out', {}).then(() => {
      showSignIn();
      say('Signed out.');
    });
  });
  return b;
}

function field(label: string, value: unknown, className = ''): HTMLElement {
  return el('div', { className: `field ${className}` }, el('dt', {}, label), el('dd', {}, text(value)));
}

function previewOf(p: Obj): HTMLElement {
  if (Object.keys(p).length === 0) return el('p', { className: 'muted' }, 'No preview was required.');
  const changes = Array.isArray(p['changes']) ? (p['changes'] as unknown[]) : [];
  return el(
    'div',
    { className: 'preview' },
    el('h4', {}, 'What changes'),
    p['summary'] === undefined ? null : el('p', { className: 'summary' }, text(p['summary'])),
    el('ul', { className: 'changes' }, ...changes.map((c) => el('li', {}, text(c)))),
    el(
      'dl',
      {},
      field('Objects', p['objects']),
      field('Cost estimate (cents)', p['cost_estimate_cents'] ?? 'unknown'),
      field(
        'Irreversible',
        p['irreversible'] === true ? 'yes' : 'no',
        p['irreversible'] === true ? 'warn' : '',
      ),
    ),
  );
}

function escalationOf(item: Obj): HTMLElement {
  const e = obj(item['escalation']);
  const roles = Array.isArray(item['roles']) ? (item['roles'] as unknown[]).map(text).join(', ') : '';
  return el(
    'div',
    { className: 'why' },
    el('h4', {}, 'Why it waits'),
    el(
      'dl',
      {},
      field('Needs', `${text(item['required'])} approval(s)${roles === '' ? '' : ` from role ${roles}`}`),
      field('Risk', item['risk']),
      e['rules_fired'] === undefined ? null : field('Rules that fired', e['rules_fired']),
      e['rationale'] === undefined ? null : field('Rationale', e['rationale']),
      e['obligations'] === undefined ? null : field('Obligations', e['obligations']),
      e['taint'] === undefined ? null : field('Session taint', e['taint'], 'warn'),
      field('Session', item['session'] ?? 'none'),
    ),
  );
}

function votesOf(item: Obj): HTMLElement {
  const votes = Array.isArray(item['votes']) ? (item['votes'] as unknown[]).map(obj) : [];
  if (votes.length === 0) return el('p', { className: 'muted' }, 'No votes yet.');
  return el(
    'ul',
    { className: 'votes' },
    ...votes.map((v) =>
      el(
        'li',
        {},
        el('strong', {}, text(v['approver'])),
        ` ${text(v['verdict'])}: `,
        el('span', { className: 'justification' }, text(v['justification'])),
      ),
    ),
  );
}

/** What a policy activation changes against the active bundle (`policy diff`, computed by the gate). */
function policyDiffOf(item: Obj): HTMLElement | null {
  if (item['kind'] !== 'policy_activation') return null;
  const d = obj(item['policy_diff']);
  if (Object.keys(d).length === 0)
    return el(
      'p',
      { className: 'warn', id: 'policy-diff-missing' },
      'What this activation changes could not be computed: do not approve blind.',
    );
  return el(
    'div',
    { className: 'policy-diff' },
    el('h4', {}, 'What this activation changes (against the active bundle)'),
    el('pre', { className: 'diff' }, text(d['text'])),
  );
}

function card(item: Obj): HTMLElement {
  const id = str(item['decision_id']);
  const evidenceButton = el('button', { className: 'evidence secondary', type: 'button' }, 'Evidence');
  evidenceButton.addEventListener('click', () => void showEvidence(str(item['request_id'])));
  const approve = el('button', { className: 'approve', type: 'button' }, 'Approve…');
  const reject = el('button', { className: 'reject secondary', type: 'button' }, 'Reject…');
  approve.addEventListener('click', () => openDialog(item, 'approve'));
  reject.addEventListener('click', () => openDialog(item, 'reject'));
  return el(
    'article',
    { className: 'card approval', data: { decisionId: id } },
    el(
      'h3',
      {},
      el('span', { className: 'tool' }, text(item['tool'])),
      ' for tenant ',
      el('span', { className: 'tenant' }, text(item['tenant'])),
    ),
    el(
      'dl',
      { className: 'facts' },
      field('Requested by', item['requester'], 'requester'),
      field('Owner', item['owner'] ?? 'unknown'),
      field('Expires', item['expires_at']),
      field('Decision', id),
    ),
    previewOf(obj(item['preview'])),
    policyDiffOf(item),
    escalationOf(item),
    el('h4', {}, 'Parameters (redacted)'),
    el('pre', { className: 'params' }, text(item['params'])),
    el('h4', {}, 'Votes'),
    votesOf(item),
    el('div', { className: 'actions' }, approve, reject, evidenceButton),
  );
}

async function showInbox(): Promise<void> {
  const a = await get('inbox');
  if (a.status === 401) {
    showSignIn();
    return say(`Signed out (${refusal(a)})`, 'error');
  }
  if (a.status !== 200) return say(`The inbox is unavailable (${refusal(a)})`, 'error');
  syncClock(a);
  const items = Array.isArray(a.body['approvals']) ? (a.body['approvals'] as unknown[]).map(obj) : [];
  const refresh = el('button', { id: 'refresh', type: 'button', className: 'secondary' }, 'Refresh');
  refresh.addEventListener('click', () => void showInbox());
  const reviews = el('button', { id: 'nav-reviews', type: 'button', className: 'secondary' }, 'Reviews');
  reviews.addEventListener('click', () => void showReviews(reviewsHost));
  const glass = el(
    'button',
    { id: 'nav-break-glass', type: 'button', className: 'secondary' },
    'Break glass',
  );
  glass.addEventListener('click', () => void showBreakGlass(reviewsHost));
  const requestId = input('evidence-id');
  const lookup = el(
    'form',
    { id: 'evidence-form', className: 'bar' },
    labelled('Evidence of request id', requestId),
    el('button', { id: 'evidence-open', type: 'submit', className: 'secondary' }, 'Show evidence'),
  );
  lookup.addEventListener('submit', (e) => {
    e.preventDefault();
    void showEvidence(requestId.value.trim());
  });
  replace(
    main,
    el(
      'section',
      { id: 'inbox' },
      el(
        'div',
        { className: 'bar' },
        el('h2', {}, `Waiting for ${who}`),
        reviews,
        glass,
        refresh,
        signOutButton(),
      ),
      items.length === 0 ? el('p', { className: 'muted', id: 'empty' }, 'Nothing waits for you.') : null,
      ...items.map(card),
      lookup,
    ),
  );
}

/** The Reviews and Break-glass pages' view of this app (reviews.ts, break-glass.ts). */
const reviewsHost: ReviewsHost & BreakGlassHost = {
  who: () => who,
  now: () => new Date(Date.now() + skewMs).toISOString(),
  syncClock,
  say,
  inbox: () => void showInbox(),
  evidence: (requestId) => void showEvidence(requestId),
  signedOut: (a) => {
    showSignIn();
    say(`Signed out (${refusal(a)})`, 'error');
  },
  signOutButton,
};

function check(ok: boolean, yes: string, no: string): HTMLElement {
  return el('span', { className: ok ? 'check ok' : 'check fail' }, ok ? `\u2713 ${yes}` : `\u2717 ${no}`);
}

/**
 * The evidence of one request (FC-INV-5): its ledger records in order, each re-hashed and proven
 * included in the signed checkpoint here, in the browser, under the ledger key the gate publishes.
 */
async function showEvidence(requestId: string): Promise<void> {
  const a = await get(`requests/${encodeURIComponent(requestId)}`);
  if (a.status !== 200) return say(`No evidence (${refusal(a)})`, 'error');
  const trust = await fetch('/v1/trust-roots', { cache: 'no-store' })
    .then((r) => r.json() as Promise<unknown>)
    .catch(() => ({}));
  const vkey = str(obj(obj(trust)['ledger'])['vkey']);
  const cp = obj(a.body['checkpoint']);
  const verified = await verifyCheckpointNote(str(cp['note']), vkey);
  const records = Array.isArray(a.body['records']) ? (a.body['records'] as unknown[]).map(obj) : [];
  const rows: HTMLElement[] = [];
  for (const r of records) {
    const e = obj(r['entry']) as Entry;
    const inc = obj(r['inclusion']);
    const hashOk = (await entryHashOf(e)) === e['entry_hash'];
    const proof = Array.isArray(inc['proof']) ? (inc['proof'] as unknown[]).map(str) : [];
    const included =
      verified !== undefined &&
      inc['tree_size'] === verified.size &&
      (await checkInclusion(str(e['entry_hash']), Number(e['index']), verified.size, proof, verified.root));
    const actor = obj(e['actor']);
    rows.push(
      el(
        'article',
        {
          className: `card record${e['type'] === 'execution.receipt' ? ' receipt' : ''}`,
          data: { index: text(e['index']) },
        },
        el(
          'h4',
          {},
          `#${text(e['index'])} `,
          el('span', { className: 'type' }, text(e['type'])),
          ` at ${text(e['at'])}`,
        ),
        el('p', {}, `by ${text(actor['id'])} (${text(actor['role'])}), trace ${text(e['trace_id'])}`),
        el(
          'p',
          { className: 'checks' },
          check(hashOk, 'entry hash recomputed', 'entry hash does not match its fields'),
          ' ',
          check(included, 'in the signed checkpoint', 'not proven in the signed checkpoint'),
        ),
        el('pre', { className: 'params' }, text(e['payload'])),
      ),
    );
  }
  const back = el('button', { id: 'back', type: 'button', className: 'secondary' }, 'Back to the inbox');
  back.addEventListener('click', () => void showInbox());
  const claims = Array.isArray(a.body['envelope_claims']) ? (a.body['envelope_claims'] as unknown[]) : [];
  replace(
    main,
    el(
      'section',
      { id: 'evidence' },
      el('div', { className: 'bar' }, el('h2', {}, 'Evidence of ', el('span', {}, requestId)), back),
      el(
        'dl',
        {},
        field('Outcome', a.body['outcome']),
        field('Traces', a.body['trace_ids']),
        field(
          'Checkpoint',
          verified === undefined ? 'none verified' : `${verified.origin}, ${verified.size} entries`,
        ),
      ),
      el(
        'p',
        { id: 'checkpoint-check' },
        check(
          verified !== undefined,
          'checkpoint signature verified under the published ledger key',
          'checkpoint signature NOT verified',
        ),
      ),
      el('h3', {}, 'Envelope claims'),
      el('pre', { className: 'params', id: 'claims' }, claims.length === 0 ? 'none issued' : text(claims)),
      el('h3', {}, 'Timeline'),
      ...rows,
    ),
  );
  say(`Evidence of ${requestId}: the read is ledgered under your name.`);
}

function statementFor(
  item: Obj,
  verdict: 'approve' | 'reject',
  justification: string,
  timestamp: string,
): ApprovalStatement {
  return {
    decision_id: str(item['decision_id']),
    intent_sha256: str(item['intent_sha256']),
    preview_sha256: typeof item['preview_sha256'] === 'string' ? item['preview_sha256'] : null,
    verdict,
    justification,
    timestamp,
    approver: who,
  };
}

function openDialog(item: Obj, verdict: 'approve' | 'reject'): void {
  const justification = el('textarea', { id: 'justification', name: 'justification' });
  justification.required = true;
  justification.maxLength = 1000;
  const shown = el('pre', { id: 'statement', className: 'params' });
  // One timestamp for the dialog: what is shown is exactly what is signed.
  const timestamp = new Date(Date.now() + skewMs).toISOString();
  const current = (): ApprovalStatement => statementFor(item, verdict, justification.value.trim(), timestamp);
  const render = (): void => {
    shown.textContent = JSON.stringify(JSON.parse(canonicalJson({ ...current() })), null, 2);
  };
  justification.addEventListener('input', render);
  render();
  const submit = el(
    'button',
    { id: 'sign-submit', type: 'submit' },
    verdict === 'approve' ? 'Sign and approve' : 'Sign and reject',
  );
  const cancel = el('button', { id: 'cancel', type: 'button', className: 'secondary' }, 'Cancel');
  const form = el(
    'form',
    { id: 'decide-form' },
    el(
      'h3',
      {},
      verdict === 'approve' ? 'Approve ' : 'Reject ',
      el('span', {}, text(item['tool'])),
      ' for ',
      el('span', {}, text(item['tenant'])),
    ),
    el('p', {}, 'This device signs exactly this statement:'),
    shown,
    labelled('Justification (ledgered)', justification),
    el('div', { className: 'actions' }, submit, cancel),
  );
  cancel.addEventListener('click', () => dialog.close());
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    void decide(item, current());
  });
  replace(dialog, form);
  dialog.showModal();
}

async function decide(item: Obj, statement: ApprovalStatement): Promise<void> {
  const verdict = statement.verdict;
  // The digests signed are recomputed from what is shown: any difference, and nothing is signed.
  const mismatch = await shownMismatch(item);
  if (mismatch !== undefined) {
    dialog.close();
    return say(`Refused to sign: ${mismatch}.`, 'error');
  }
  const key = await loadDeviceKey(who);
  if (key === undefined) return say('No device key in this browser.', 'error');
  const signature = await signWith(key, approvalSigningInput(statement));
  const a = await post(`approvals/${encodeURIComponent(statement.decision_id)}/${verdict}`, {
    statement,
    signature,
  });
  dialog.close();
  if (a.status !== 200) return say(`Refused: ${refusal(a)}`, 'error');
  await showInbox();
  say(
    `${verdict === 'approve' ? 'Approved' : 'Rejected'}: ${text(a.body['status'])} (${text(a.body['approvals'])} of ${text(a.body['required'])})`,
  );
}

void oidcReturn(new URLSearchParams(window.location.search), '/console/', 'sign-in/oidc/callback', say)
  .then(() => start())
  .catch(() => say('The console failed to start.', 'error'));
