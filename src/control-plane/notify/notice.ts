/**
 * What a notice carries, and its bodies (docs/notifications.md): only the decision id, tool,
 * tenant, expiry, a redacted preview (summary, object count, cost, irreversible: never a
 * parameter value, never a secret) and a link to the console. The Standard Webhooks body is
 * `{type, timestamp, data}`; the Slack-compatible body is `{text, blocks}`.
 */
import type { JsonObject } from '../../kernel/index.js';
import type { NoticeEvent, ReceiverFormat } from './config.js';

/** The redacted preview of a notice: what an approver needs to decide to look, nothing more. */
export interface NoticePreview {
  readonly summary: string;
  readonly objects: number;
  readonly cost_estimate_cents: number | null;
  readonly irreversible: boolean;
}

/** One event to notify, as the approval service hands it over. */
export interface ApprovalNotice {
  readonly event: NoticeEvent;
  /** The pending (or break-glass finalised) decision; null for a break-glass grant itself. */
  readonly decision_id: string | null;
  readonly tool: string;
  readonly tenant: string;
  /** ms: when the approval window (or the grant) ends. */
  readonly expires_at: number;
  readonly preview: NoticePreview | null;
  /** Approvals needed (approval.requested). */
  readonly required?: number;
  readonly risk?: string;
  /** A break-glass grant issued (`granted`) or standing in for approvals (`used`). */
  readonly break_glass?: {
    readonly phase: 'granted' | 'used';
    readonly grant_id: string;
    readonly approver: string;
    readonly reason_category: string;
  };
}

/** The console page of a decision (`{base}/console/#/approvals/{id}`), or of the approvals list. */
export function consoleLink(baseUrl: string, decisionId: string | null): string {
  const base = baseUrl.replace(/\/+$/, '');
  return decisionId === null
    ? `${base}/console/#/approvals`
    : `${base}/console/#/approvals/${encodeURIComponent(decisionId)}`;
}

/** The notice's data: every member named, nothing else copied. */
export function noticeData(n: ApprovalNotice, link: string): JsonObject {
  return {
    decision_id: n.decision_id,
    tool: n.tool,
    tenant: n.tenant,
    expires_at: new Date(n.expires_at).toISOString(),
    preview:
      n.preview === null
        ? null
        : {
            summary: n.preview.summary,
            objects: n.preview.objects,
            cost_estimate_cents: n.preview.cost_estimate_cents,
            irreversible: n.preview.irreversible,
          },
    ...(n.required === undefined ? {} : { required: n.required }),
    ...(n.risk === undefined ? {} : { risk: n.risk }),
    ...(n.break_glass === undefined ? {} : { break_glass: { ...n.break_glass } }),
    link,
  };
}

/** Slack mrkdwn escaping (`&`, `<`, `>`): text from a policy or a name is shown, never interpreted. */
function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function slackText(n: ApprovalNotice): string {
  const what = `\`${esc(n.tool)}\` for tenant \`${esc(n.tenant)}\``;
  if (n.event === 'approval.requested') return `Approval waiting: ${what}`;
  const phase = n.break_glass?.phase === 'granted' ? 'granted' : 'used';
  return `Break-glass ${phase}: ${what} by ${esc(n.break_glass?.approver ?? 'unknown')}`;
}

/** The body sent to a receiver of `format`, as text (the exact bytes that are signed). */
export function noticeBody(format: ReceiverFormat, n: ApprovalNotice, link: string, atMs: number): string {
  const data = noticeData(n, link);
  if (format === 'standard')
    return JSON.stringify({ type: n.event, timestamp: new Date(atMs).toISOString(), data });
  const text = slackText(n);
  const lines = [
    `*${text}*`,
    ...(n.preview === null
      ? []
      : [
          esc(n.preview.summary),
          `objects: ${n.preview.objects}${n.preview.irreversible ? ' · irreversible' : ''}${
            n.preview.cost_estimate_cents === null ? '' : ` · cost ${n.preview.cost_estimate_cents} cents`
          }`,
        ]),
    `expires ${new Date(n.expires_at).toISOString()} · decision \`${esc(n.decision_id ?? '-')}\``,
  ];
  return JSON.stringify({
    text: `${text} ${link}`,
    blocks: [
      { type: 'section', text: { type: 'mrkdwn', text: lines.join('\n') } },
      { type: 'section', text: { type: 'mrkdwn', text: `<${link}|Open in the console>` } },
    ],
  });
}
