/**
 * Notifications in a real embedded deployment (docs/notifications.md): receivers added with
 * `failclosed webhooks add`, a real local HTTP receiver that hangs and one that always fails.
 * An escalated call still answers pending at once while the hanging receiver holds its notice;
 * the notice is signed (verified with the secret the CLI printed) and carries no parameter; the
 * approvals and the retry run as if no receiver existed (notifications are never on the
 * enforcement path).
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/run.js';
import { verifyWebhook } from '../../src/control-plane/index.js';
import { startRig, type Rig } from './support.js';

interface Arrival {
  readonly headers: IncomingMessage['headers'];
  readonly body: string;
}

/** A receiver that records each request and answers it with `status`, or never (`hang`). */
async function receiver(mode: 'hang' | number): Promise<{
  url: string;
  server: Server;
  got: Arrival[];
  next: () => Promise<Arrival>;
  answered: () => number;
}> {
  const got: Arrival[] = [];
  const waiting: ((a: Arrival) => void)[] = [];
  let answered = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const a = { headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      got.push(a);
      waiting.shift()?.(a);
      if (mode === 'hang') return; // never answers
      answered += 1;
      res.writeHead(mode).end('{"approve": true, "allow": true}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  let seen = 0;
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    server,
    got,
    // Resolves with the next request not yet handed out (or waits for it): no sleeping.
    next: () => {
      const i = seen;
      seen += 1;
      const a = got[i];
      return a !== undefined ? Promise.resolve(a) : new Promise((r) => waiting.push(r));
    },
    answered: () => answered,
  };
}

let rig: Rig;
let hang: Awaited<ReturnType<typeof receiver>>;
let fail: Awaited<ReturnType<typeof receiver>>;
let secret = '';

beforeAll(async () => {
  hang = await receiver('hang');
  fail = await receiver(500);
  rig = await startRig(undefined, async (dir) => {
    let out = '';
    const io = { out: (t: string) => (out += t), err: () => undefined, env: {} };
    expect(await runCli(['webhooks', 'add', 'pager', '--url', hang.url, '--data', dir], io)).toBe(0);
    secret = (JSON.parse(out) as { secret: string }).secret;
    expect(
      await runCli(['webhooks', 'add', 'chat', '--url', fail.url, '--format', 'slack', '--data', dir], io),
    ).toBe(0);
  });
  for (const n of ['alice', 'bob']) expect(await rig.enrol(n, 'treasury')).toBe(0);
}, 60_000);

afterAll(async () => {
  await rig.close();
  for (const s of [hang.server, fail.server]) {
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
});

const params = {
  from_account: 'acct_sentinelfrom',
  to_account: 'acct_sentinelto',
  amount: 5000,
  currency: 'USD',
  memo: 'password hunter2',
};

describe('signed webhooks are never on the enforcement path', () => {
  it('a pending call is notified, signed, without parameters; hanging and failing receivers change nothing', async () => {
    const first = await rig.agent().call('transfer_funds', params);
    if (first.outcome !== 'pending') throw new Error(`expected pending, got ${JSON.stringify(first)}`);
    const notice = await hang.next();
    // The hanging receiver holds the notice unanswered, and a new escalated call is still answered at once.
    const second = await rig.agent().call('transfer_funds', { ...params, amount: 6000 });
    expect(second.outcome).toBe('pending');
    expect(hang.answered()).toBe(0);
    // That delivery is still outstanding: its outbox row has no attempt recorded yet.
    const pagerRow = rig.instance.core.notifications?.outbox
      .list(50)
      .find((d) => d.id === notice.headers['webhook-id']);
    expect(pagerRow).toMatchObject({ receiver: 'pager', status: 'pending', attempts: 0 });

    const id = String(notice.headers['webhook-id']);
    const ts = Number(notice.headers['webhook-timestamp']);
    expect(verifyWebhook(secret, String(notice.headers['webhook-signature']), id, ts, notice.body)).toBe(
      true,
    );
    const doc = JSON.parse(notice.body) as { type: string; data: Record<string, unknown> };
    expect(doc.type).toBe('approval.requested');
    expect(Object.keys(doc.data).sort()).toEqual(
      ['decision_id', 'expires_at', 'link', 'preview', 'required', 'risk', 'tenant', 'tool'].sort(),
    );
    expect(doc.data).toMatchObject({
      decision_id: first.decision_id,
      tool: 'transfer_funds',
      tenant: 'acme',
      link: `${rig.instance.url}/console/#/approvals/${first.decision_id}`,
    });
    for (const raw of ['sentinel', 'hunter2', 'password', 'memo'])
      expect(notice.body.toLowerCase()).not.toContain(raw);

    // The failing receiver got its Slack body too, and is retried later; it decides nothing.
    const slack = await fail.next();
    expect(JSON.parse(slack.body)).toHaveProperty('blocks');
    expect(slack.body).not.toContain('sentinel');

    for (const n of ['alice', 'bob'])
      expect(
        (await rig.cli('approvals', 'approve', first.decision_id, '--as', n, '--justification', 'ok')).code,
      ).toBe(0);
    const retry = await rig.agent().call('transfer_funds', params, { requestId: first.request_id });
    expect(retry.outcome).toBe('executed');

    const listed = await rig.cli('webhooks', 'list');
    expect(listed.code).toBe(0);
    expect(listed.out).not.toContain('whsec_');
    const list = JSON.parse(listed.out) as {
      receivers: { id: string }[];
      deliveries: { receiver: string }[];
    };
    expect(list.receivers.map((r) => r.id)).toEqual(['pager', 'chat']);
    expect(list.deliveries.some((d) => d.receiver === 'chat')).toBe(true);
  });

  it('webhooks add refuses a URL that is not http(s) and leaves the configuration as it was', async () => {
    const bad = await rig.cli('webhooks', 'add', 'x', '--url', 'file:///etc/passwd');
    expect(bad.code).toBe(2);
    expect(bad.err).toContain('http: or https:');
    const listed = JSON.parse((await rig.cli('webhooks', 'list')).out) as { receivers: unknown[] };
    expect(listed.receivers).toHaveLength(2);
  });
});
