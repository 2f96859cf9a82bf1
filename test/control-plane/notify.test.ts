/**
 * Signed webhooks (docs/notifications.md): Standard Webhooks signatures (the specification's own
 * vector), a real local HTTP receiver that verifies them, retries with exponential backoff and
 * jitter on an injected clock (no sleeping), a bounded number of attempts, a durable outbox that
 * survives a restart, strict receiver configuration, and a notifier that never throws.
 */
import { createHmac } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import {
  backoffMs,
  createNotifier,
  createSqliteOutbox,
  generateWebhookSecret,
  parseWebhookConfig,
  signWebhook,
  verifyWebhook,
} from '../../src/control-plane/index.js';
import type { ApprovalNotice, NotificationOutbox, WebhookConfig } from '../../src/control-plane/index.js';
import { settableClock, T0 } from './support.js';

interface Received {
  readonly headers: IncomingMessage['headers'];
  readonly body: string;
}

/** A real receiver on loopback answering each request with the next status of `statuses` (then 200). */
async function receiver(statuses: number[] = []): Promise<{ url: string; got: Received[]; server: Server }> {
  const got: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      got.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(statuses.shift() ?? 200).end('{"allow": true}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  servers.push(server);
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, got, server };
}

const servers: Server[] = [];
const cleanups: (() => void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) c();
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
});

const NOTICE: ApprovalNotice = {
  event: 'approval.requested',
  decision_id: 'dec_123',
  tool: 'transfer_funds',
  tenant: 'acme',
  expires_at: T0 + 3600_000,
  preview: { summary: 'Moves money.', objects: 1, cost_estimate_cents: 500_000, irreversible: true },
  required: 2,
  risk: 'critical',
};

function setup(
  receivers: readonly Record<string, unknown>[],
  outbox: NotificationOutbox = createSqliteOutbox(':memory:'),
  extra: Record<string, unknown> = {},
) {
  const config: WebhookConfig = parseWebhookConfig({ receivers, ...extra });
  const clock = settableClock();
  const notifier = createNotifier({
    config,
    outbox,
    now: clock,
    baseUrl: () => 'http://gate.example:7070',
    random: () => 0.5,
  });
  return { notifier, outbox, clock, config };
}

describe('Standard Webhooks signatures', () => {
  it('reproduces the specification’s test vector and verifies only what was signed', () => {
    const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
    const body = '{"test": 2432232314}';
    const sig = signWebhook(secret, 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, body);
    expect(sig).toBe('v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=');
    expect(
      verifyWebhook(secret, `v1,bm9wZQ== ${sig}`, 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, body),
    ).toBe(true);
    expect(verifyWebhook(secret, sig, 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265331, body)).toBe(false);
    expect(verifyWebhook(secret, sig, 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, `${body} `)).toBe(false);
    expect(
      verifyWebhook(generateWebhookSecret(), sig, 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, body),
    ).toBe(false);
  });
});

describe('webhook configuration is strict (SSRF: operator-chosen http(s) URLs only)', () => {
  const secret = generateWebhookSecret();
  it.each([
    ['ftp://example.com/x', /http: or https:/],
    ['file:///etc/passwd', /http: or https:/],
    ['javascript:alert(1)', /http: or https:/],
    ['https://user:pw@example.com/', /credentials/],
    ['not a url', /not a URL/],
  ])('refuses receiver URL %s', (url, why) => {
    expect(() => parseWebhookConfig({ receivers: [{ id: 'r', url, secret }] })).toThrow(why);
  });

  it('refuses a malformed secret, an unknown event or member, duplicate ids; accepts loopback', () => {
    const ok = { id: 'r', url: 'http://127.0.0.1:9/x', secret };
    expect(parseWebhookConfig({ receivers: [ok] }).receivers[0]).toMatchObject({
      format: 'standard',
      events: ['approval.requested', 'break_glass.used'],
    });
    expect(() => parseWebhookConfig({ receivers: [{ ...ok, secret: 'hunter2' }] })).toThrow(TypeError);
    expect(() => parseWebhookConfig({ receivers: [{ ...ok, events: ['call.executed'] }] })).toThrow(
      TypeError,
    );
    expect(() => parseWebhookConfig({ receivers: [{ ...ok, headers: {} }] })).toThrow(/unknown member/);
    expect(() => parseWebhookConfig({ receivers: [ok, ok] })).toThrow(/unique/);
  });
});

describe('delivery from the outbox', () => {
  it('a notice arrives signed and verifiable, carrying only the redacted preview and a link', async () => {
    const rx = await receiver();
    const secret = generateWebhookSecret();
    const { notifier, outbox, clock } = setup([{ id: 'ops', url: rx.url, secret }]);
    notifier.notify(NOTICE);
    expect(await notifier.deliverDue()).toBe(1);
    expect(rx.got).toHaveLength(1);
    const { headers, body } = rx.got[0]!;
    const id = String(headers['webhook-id']);
    const ts = Number(headers['webhook-timestamp']);
    expect(id).toMatch(/^msg_[0-9a-f]{32}$/);
    expect(ts).toBe(Math.floor(clock() / 1000));
    // Verified the way a receiver does, with its own HMAC over "id.timestamp.body".
    const key = Buffer.from(secret.slice('whsec_'.length), 'base64');
    const mac = createHmac('sha256', key).update(`${id}.${ts}.${body}`).digest('base64');
    expect(headers['webhook-signature']).toBe(`v1,${mac}`);
    expect(verifyWebhook(secret, String(headers['webhook-signature']), id, ts, body)).toBe(true);
    expect(JSON.parse(body)).toEqual({
      type: 'approval.requested',
      timestamp: new Date(T0).toISOString(),
      data: {
        decision_id: 'dec_123',
        tool: 'transfer_funds',
        tenant: 'acme',
        expires_at: new Date(T0 + 3600_000).toISOString(),
        preview: { summary: 'Moves money.', objects: 1, cost_estimate_cents: 500_000, irreversible: true },
        required: 2,
        risk: 'critical',
        link: 'http://gate.example:7070/console/#/approvals/dec_123',
      },
    });
    expect(outbox.list(10)[0]).toMatchObject({ status: 'delivered', attempts: 1, last_status: 200 });
    // Delivered once: nothing is due any more.
    expect(await notifier.deliverDue()).toBe(0);
  });

  it('a receiver failing 3 times then succeeding gets the notice on retry, after backoff with jitter', async () => {
    const rx = await receiver([500, 503, 500]);
    const { notifier, outbox, clock } = setup([{ id: 'ops', url: rx.url, secret: generateWebhookSecret() }]);
    notifier.notify(NOTICE);
    const waits: number[] = [];
    for (let attempt = 1; attempt <= 3; attempt += 1) {
      expect(await notifier.deliverDue()).toBe(1);
      const row = outbox.list(1)[0]!;
      expect(row).toMatchObject({
        status: 'pending',
        attempts: attempt,
        last_error: `HTTP ${[500, 503, 500][attempt - 1]}`,
      });
      waits.push(row.next_at - clock());
      // Not tried again before its backoff ends.
      clock.advance(row.next_at - clock() - 1);
      expect(await notifier.deliverDue()).toBe(0);
      clock.advance(1);
    }
    expect(await notifier.deliverDue()).toBe(1);
    // Exponential, each jittered in [half, full] of 1 s · 2^(n-1) (random() = 0.5 here).
    expect(waits).toEqual([backoffMs(1, () => 0.5), backoffMs(2, () => 0.5), backoffMs(3, () => 0.5)]);
    expect(waits).toEqual([750, 1500, 3000]);
    expect(rx.got).toHaveLength(4);
    // The same webhook-id on every attempt (receivers drop repeats), each attempt signed anew.
    expect(new Set(rx.got.map((g) => g.headers['webhook-id'])).size).toBe(1);
    expect(outbox.list(1)[0]).toMatchObject({
      status: 'delivered',
      attempts: 4,
      last_status: 200,
      last_error: null,
    });
  });

  it('attempts are bounded: a receiver that always fails is given up after max_attempts', async () => {
    const rx = await receiver([500, 500, 500, 500]);
    const { notifier, outbox, clock } = setup(
      [{ id: 'ops', url: rx.url, secret: generateWebhookSecret() }],
      undefined,
      { max_attempts: 3 },
    );
    notifier.notify(NOTICE);
    for (let i = 0; i < 5; i += 1) {
      await notifier.deliverDue();
      clock.advance(3_600_000);
    }
    expect(rx.got).toHaveLength(3);
    expect(outbox.list(1)[0]).toMatchObject({ status: 'failed', attempts: 3, last_status: 500 });
  });

  it('the outbox is durable: a notice written before a restart is delivered after it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fc-outbox-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const rx = await receiver();
    const r = { id: 'ops', url: rx.url, secret: generateWebhookSecret() };
    const before = setup([r], createSqliteOutbox(join(dir, 'notifications.db')));
    before.notifier.notify(NOTICE);
    await before.notifier.stop();
    before.outbox.close();
    expect(rx.got).toHaveLength(0);
    const after = setup([r], createSqliteOutbox(join(dir, 'notifications.db')));
    expect(await after.notifier.deliverDue()).toBe(1);
    expect(rx.got).toHaveLength(1);
    after.outbox.close();
  });

  it('a Slack-compatible receiver gets {text, blocks}, signed the same way, escaped', async () => {
    const rx = await receiver();
    const secret = generateWebhookSecret();
    const { notifier } = setup([{ id: 'slack', url: rx.url, secret, format: 'slack' }]);
    notifier.notify({ ...NOTICE, preview: { ...NOTICE.preview!, summary: 'Moves <@channel> & money.' } });
    await notifier.deliverDue();
    const { headers, body } = rx.got[0]!;
    const doc = JSON.parse(body) as { text: string; blocks: { type: string; text: { text: string } }[] };
    expect(doc.text).toContain('Approval waiting: `transfer_funds` for tenant `acme`');
    expect(doc.text).toContain('http://gate.example:7070/console/#/approvals/dec_123');
    expect(doc.blocks[0]?.text.text).toContain('Moves &lt;@channel&gt; &amp; money.');
    expect(
      verifyWebhook(
        secret,
        String(headers['webhook-signature']),
        String(headers['webhook-id']),
        Number(headers['webhook-timestamp']),
        body,
      ),
    ).toBe(true);
  });

  it('only receivers asking for an event get it; a notifier whose outbox fails never throws', async () => {
    const rx = await receiver();
    const { notifier, outbox } = setup([
      { id: 'bg', url: rx.url, secret: generateWebhookSecret(), events: ['break_glass.used'] },
    ]);
    notifier.notify(NOTICE);
    notifier.flush();
    expect(outbox.list(10)).toEqual([]);
    outbox.close();
    expect(() => notifier.notify({ ...NOTICE, event: 'break_glass.used' })).not.toThrow();
    expect(() => notifier.flush()).not.toThrow();
    expect(notifier.dropped()).toBe(1);
  });

  it('notify only queues in memory: the outbox is written on a later turn, and a failed write is reported', async () => {
    const real = createSqliteOutbox(':memory:');
    let adds = 0;
    let failing = false;
    // Counts the writes, and fails them on demand (the real outbox underneath).
    const outbox: NotificationOutbox = {
      ...real,
      add: (items) => {
        adds += 1;
        if (failing) throw new Error('database is locked');
        real.add(items);
      },
    };
    const reports: string[] = [];
    const config = parseWebhookConfig({
      receivers: [{ id: 'ops', url: 'http://127.0.0.1:9/x', secret: generateWebhookSecret() }],
    });
    const notifier = createNotifier({
      config,
      outbox,
      now: settableClock(),
      baseUrl: () => 'http://gate.example:7070',
      onDropped: (m) => reports.push(m),
    });
    notifier.notify(NOTICE);
    notifier.notify({ ...NOTICE, decision_id: 'dec_456' });
    // Nothing written inside the calls (a caller's step never waits on the outbox file).
    expect(adds).toBe(0);
    await new Promise<void>((r) => setImmediate(r));
    expect(adds).toBe(2);
    expect(real.list(10).map((i) => i.status)).toEqual(['pending', 'pending']);
    failing = true;
    notifier.notify(NOTICE);
    expect(notifier.dropped()).toBe(0);
    await new Promise<void>((r) => setImmediate(r));
    expect(notifier.dropped()).toBe(1);
    expect(reports).toHaveLength(1);
    real.close();
  });

  it('a delivery aborted by stop() is no attempt: its row stays pending, even with max_attempts 1', async () => {
    const server = createServer(() => undefined); // never answers
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    servers.push(server);
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
    const arrived = new Promise<void>((r) => server.once('request', () => r()));
    const { notifier, outbox } = setup([{ id: 'ops', url, secret: generateWebhookSecret() }], undefined, {
      max_attempts: 1,
    });
    notifier.notify(NOTICE);
    const round = notifier.deliverDue();
    await arrived;
    await notifier.stop();
    expect(await round).toBe(1);
    expect(outbox.list(1)[0]).toMatchObject({ status: 'pending', attempts: 0, last_error: null });
  });

  it('a read-only outbox never creates the file, and reads while a writer holds it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fc-outbox-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, 'notifications.db');
    expect(() => createSqliteOutbox(path, { readOnly: true })).toThrow(/does not exist|unable to open/);
    expect(existsSync(path)).toBe(false);
    const writer = createSqliteOutbox(path);
    writer.add([{ id: 'msg_1', receiver: 'ops', event: 'approval.requested', body: '{}', created_at: T0 }]);
    // Another connection holds the write lock (a gate mid-write).
    const locker = new Database(path);
    locker.exec('BEGIN IMMEDIATE');
    try {
      const reader = createSqliteOutbox(path, { readOnly: true });
      expect(reader.list(10).map((i) => i.id)).toEqual(['msg_1']);
      expect(() =>
        reader.add([
          { id: 'msg_2', receiver: 'ops', event: 'approval.requested', body: '{}', created_at: T0 },
        ]),
      ).toThrow(/readonly/);
      reader.close();
    } finally {
      locker.exec('ROLLBACK');
      locker.close();
      writer.close();
    }
  });
});
