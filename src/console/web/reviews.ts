/**
 * The approver's Reviews page (docs/console.md "Reviews"): the post-incident reviews opened by
 * break-glass uses in the approver's tenants, open and closed, and closing one with a
 * justification signed on this device with the enrolled key, over the statement `failclosed
 * reviews close` signs (statement.ts `reviewSigningInput`; L7 Break-glass "mandatory
 * post-incident review"). The gate decides who may close (never the person who used
 * break-glass, only a reviewer of the call's tenant): the page only shows. Values are text (dom.ts).
 */
import { el, obj, replace, str, text, type Obj } from './dom.js';
import { get, post, refusal } from './http.js';
import type { Answer } from './http.js';
import { loadDeviceKey, signWith } from './keystore.js';
import { canonicalJson, reviewSigningInput } from './statement.js';
import type { ReviewStatement } from './statement.js';

/** What the page needs of the approvers' app. */
export interface ReviewsHost {
  /** The signed-in approver's name. */
  readonly who: () => string;
  /** The gate's time now (the app keeps the skew), as ISO 8601. */
  readonly now: () => string;
  /** Records the gate's time of an answer. */
  readonly syncClock: (a: Answer) => void;
  readonly say: (message: string, kind?: 'info' | 'error') => void;
  /** Back to the inbox. */
  readonly inbox: () => void;
  /** The evidence page of a request. */
  readonly evidence: (requestId: string) => void;
  /** The sign-in page after a lost session. */
  readonly signedOut: (a: Answer) => void;
  readonly signOutButton: () => HTMLButtonElement;
}

function field(label: string, value: unknown, className = ''): HTMLElement {
  return el('div', { className: `field ${className}` }, el('dt', {}, label), el('dd', {}, text(value)));
}

function card(host: ReviewsHost, r: Obj): HTMLElement {
  const id = str(r['review_id']);
  const open = r['status'] === 'open';
  const actions: HTMLElement[] = [];
  if (open && r['own'] !== true) {
    const close = el('button', { className: 'close-review', type: 'button' }, 'Close review…');
    close.addEventListener('click', () => openDialog(host, r));
    actions.push(close);
  }
  if (typeof r['request_id'] === 'string') {
    const ev = el('button', { className: 'evidence secondary', type: 'button' }, 'Evidence');
    ev.addEventListener('click', () => host.evidence(str(r['request_id'])));
    actions.push(ev);
  }
  return el(
    'article',
    { className: `card review ${open ? 'open' : 'closed'}`, data: { reviewId: id } },
    el(
      'h3',
      {},
      el('span', { className: 'tool' }, text(r['tool'] ?? 'unknown tool')),
      ' for tenant ',
      el('span', { className: 'tenant' }, text(r['tenant'] ?? 'unknown')),
    ),
    el(
      'dl',
      { className: 'facts' },
      field('Break-glass used by', r['opened_for'], 'opened-for'),
      field('Opened', r['opened_at']),
      field('Decision', r['decision_id']),
      field('Review', id),
      open ? null : field('Closed by', r['closed_by'], 'closed-by'),
      open ? null : field('Closed', r['closed_at']),
    ),
    open ? null : el('h4', {}, 'Justification'),
    open ? null : el('p', { className: 'notes' }, text(r['notes'])),
    open && r['own'] === true
      ? el(
          'p',
          { className: 'muted own' },
          'You used break-glass here: another person must close this review.',
        )
      : null,
    actions.length === 0 ? null : el('div', { className: 'actions' }, ...actions),
  );
}

/** Shows the reviews the signed-in approver may see. */
export async function showReviews(host: ReviewsHost): Promise<void> {
  const main = document.getElementById('main') as HTMLElement;
  const a = await get('reviews');
  if (a.status === 401) return host.signedOut(a);
  if (a.status !== 200) return host.say(`The reviews are unavailable (${refusal(a)})`, 'error');
  host.syncClock(a);
  const items = Array.isArray(a.body['reviews']) ? (a.body['reviews'] as unknown[]).map(obj) : [];
  const open = items.filter((r) => r['status'] === 'open');
  const closed = items.filter((r) => r['status'] !== 'open');
  const refresh = el('button', { id: 'reviews-refresh', type: 'button', className: 'secondary' }, 'Refresh');
  refresh.addEventListener('click', () => void showReviews(host));
  const back = el('button', { id: 'nav-inbox', type: 'button', className: 'secondary' }, 'Inbox');
  back.addEventListener('click', () => host.inbox());
  replace(
    main,
    el(
      'section',
      { id: 'reviews' },
      el(
        'div',
        { className: 'bar' },
        el('h2', {}, 'Break-glass reviews'),
        back,
        refresh,
        host.signOutButton(),
      ),
      el(
        'p',
        { className: 'muted' },
        'Each use of break-glass opens a review that another person closes with a signed justification.',
      ),
      el('h3', {}, `Open (${open.length})`),
      open.length === 0 ? el('p', { className: 'muted', id: 'no-open' }, 'No review is open.') : null,
      ...open.map((r) => card(host, r)),
      el('h3', {}, `Closed (${closed.length})`),
      ...closed.map((r) => card(host, r)),
    ),
  );
}

function openDialog(host: ReviewsHost, r: Obj): void {
  const dialog = document.getElementById('dialog') as HTMLDialogElement;
  const notes = el('textarea', { id: 'review-notes', name: 'review-notes' });
  notes.required = true;
  notes.maxLength = 1000;
  const shown = el('pre', { id: 'review-statement', className: 'params' });
  // One timestamp for the dialog: what is shown is exactly what is signed.
  const timestamp = host.now();
  const current = (): ReviewStatement => ({
    review_id: str(r['review_id']),
    reviewer: host.who(),
    notes: notes.value.trim(),
    timestamp,
  });
  const render = (): void => {
    shown.textContent = JSON.stringify(JSON.parse(canonicalJson({ ...current() })), null, 2);
  };
  notes.addEventListener('input', render);
  render();
  const submit = el('button', { id: 'review-sign-submit', type: 'submit' }, 'Sign and close the review');
  const cancel = el('button', { id: 'cancel', type: 'button', className: 'secondary' }, 'Cancel');
  const form = el(
    'form',
    { id: 'review-form' },
    el(
      'h3',
      {},
      'Close the review of ',
      el('span', {}, text(r['tool'])),
      ' for ',
      el('span', {}, text(r['tenant'])),
    ),
    el('p', {}, 'This device signs exactly this statement:'),
    shown,
    el('label', {}, el('span', {}, 'Justification (ledgered)'), notes),
    el('div', { className: 'actions' }, submit, cancel),
  );
  cancel.addEventListener('click', () => dialog.close());
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    void closeReview(host, current());
  });
  replace(dialog, form);
  dialog.showModal();
}

async function closeReview(host: ReviewsHost, statement: ReviewStatement): Promise<void> {
  const dialog = document.getElementById('dialog') as HTMLDialogElement;
  const key = await loadDeviceKey(host.who());
  if (key === undefined) {
    dialog.close();
    return host.say('No device key in this browser.', 'error');
  }
  const signature = await signWith(key, reviewSigningInput(statement));
  const a = await post(`reviews/${encodeURIComponent(statement.review_id)}/close`, { statement, signature });
  dialog.close();
  if (a.status === 401) return host.signedOut(a);
  if (a.status !== 200) return host.say(`Refused: ${refusal(a)}`, 'error');
  await showReviews(host);
  host.say(`Review closed: ledgered at #${text(obj(a.body['ledger'])['index'])}.`);
}
