import test from 'ava';
import OpenAI from 'openai';
import type { Browser, BrowserContext } from 'playwright-core';
import { type Bed, startBed } from './helpers/bed.js';
import { launchChromium } from './helpers/browser.js';
import { createKey, logIn, signUp } from './helpers/console.js';

// The console in a real browser (Debian's chromium, headless), as a customer and an operator would use it.
let bed: Bed;
let browser: Browser;
const MODEL = 'console/chat-1';
const PASSWORD = 'correct horse battery staple';

test.before(async () => {
  bed = await startBed('console_browser');
  const { admin, mock } = bed;
  const channel = await admin.channel('console-openai', 'openai', `${mock.url}/v1`);
  await admin.token(channel.id, 'tok-console-browser', 8);
  await admin.model(MODEL, { channel_id: channel.id, upstream_model: 'mock-gpt', input_price_per_1m: 2, output_price_per_1m: 8 });
  await admin.call('POST', '/admin/api/users', { email: 'operator@example.com', password: PASSWORD, is_admin: true });
  browser = await launchChromium();
});

test.after.always(async () => {
  await browser?.close();
  await bed?.stop();
});

/** A fresh browser profile's worth of state: its own cookies. */
const person = (): Promise<BrowserContext> => browser.newContext();

async function fund(email: string, usd: string): Promise<void> {
  const { data } = await bed.admin.call<{ data: Array<{ id: number }> }>('GET', `/admin/api/users?email=${encodeURIComponent(email)}`);
  await bed.admin.call('POST', `/admin/api/users/${data[0].id}/credit`, { amount_usd: usd });
}

test.serial('sign up, create a key shown once, call the API with it, see the usage, revoke it and see the next call refused', async (t) => {
  const context = await person();
  const page = await context.newPage();
  await signUp(page, bed.url, 'ada@example.com', PASSWORD);
  await fund('ada@example.com', '5');

  const key = await createKey(page, bed.url, 'laptop');
  t.regex(key, /^sk-eastx-[A-Za-z0-9_-]{43}$/);
  t.is((await page.getByRole('button', { name: 'Copy' }).count()) > 0, true, 'a copy button next to the key');
  await page.reload();
  t.is(await page.getByTestId('new-key').count(), 0, 'the key is not shown again after a reload');
  t.false((await page.content()).includes(key), 'nowhere on the page');
  t.true((await page.locator('table.keys').textContent())!.includes(key.slice(0, 'sk-eastx-'.length + 4)), 'only its prefix is listed');

  const client = new OpenAI({ baseURL: `${bed.url}/v1`, apiKey: key, maxRetries: 0 });
  const reply = await client.chat.completions.create({
    model: MODEL,
    messages: [{ role: 'user', content: 'Hello from the browser test' }],
  });
  t.is(reply.object, 'chat.completion');
  const cost = (reply.usage as unknown as { cost: number }).cost;
  t.true(cost > 0);

  await page.goto(`${bed.url}/usage`);
  const table = page.getByTestId('usage-table');
  await t.notThrowsAsync(table.getByText(MODEL).waitFor());
  t.is(await page.getByTestId('usage-requests').textContent(), '1');
  t.is(Number((await page.getByTestId('usage-total').textContent())!.replace('$', '')), cost, 'the page shows what the API billed');
  t.is(await page.locator('figure.chart svg rect').count(), 1, 'one bar segment: today, one model');

  await page.goto(`${bed.url}/keys`);
  await page.getByRole('link', { name: 'Revoke' }).click();
  await page.getByRole('button', { name: 'Revoke this key' }).click();
  await page.waitForURL(`${bed.url}/keys`);
  t.regex((await page.getByRole('status').textContent()) ?? '', /revoked/);
  const refused = await client.models.list().then(
    () => undefined,
    (err: unknown) => err,
  );
  t.true(refused instanceof OpenAI.AuthenticationError, 'the next call after revoking gets 401');
  t.is((refused as InstanceType<typeof OpenAI.AuthenticationError>).status, 401);
  await context.close();
});

test.serial('redeem a code: the balance changes once; a second redemption of the same code is refused', async (t) => {
  const context = await person();
  const page = await context.newPage();
  await signUp(page, bed.url, 'grace@example.com', PASSWORD);
  const { codes } = await bed.admin.call<{ codes: string[] }>('POST', '/admin/api/redemption-codes', { amount_usd: '7.5', count: 1 });

  await page.goto(`${bed.url}/recharge`);
  t.is(await page.getByTestId('balance').textContent(), '$0');
  await page.getByLabel('Redemption code').fill(codes[0]);
  await page.getByRole('button', { name: 'Redeem' }).click();
  await page.waitForURL(`${bed.url}/recharge`);
  t.is(await page.getByTestId('balance').textContent(), '$7.5');
  t.regex((await page.getByRole('status').textContent()) ?? '', /\+\$7\.5/);
  t.true((await page.locator('table.ledger').textContent())!.includes('redemption'));

  await page.getByLabel('Redemption code').fill(codes[0]);
  await page.getByRole('button', { name: 'Redeem' }).click();
  t.regex((await page.getByRole('alert').textContent()) ?? '', /unknown or already redeemed/);
  await page.goto(`${bed.url}/recharge`);
  t.is(await page.getByTestId('balance').textContent(), '$7.5', 'credited once');
  await context.close();
});

test.serial('CSRF: a form post without the token is refused (403) and changes nothing', async (t) => {
  const context = await person();
  const page = await context.newPage();
  await signUp(page, bed.url, 'mallory-victim@example.com', PASSWORD);
  await page.goto(`${bed.url}/keys`);
  // the browser really submits the form, minus its token, with the victim's session cookie
  await page.locator('form[action="/keys"] input[name="_csrf"]').evaluate((input) => input.remove());
  await page.getByLabel('Name (optional)').fill('forged');
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.url() === `${bed.url}/keys` && r.request().method() === 'POST'),
    page.getByRole('button', { name: 'Create key' }).click(),
  ]);
  t.is(response.status(), 403);
  t.regex((await page.getByRole('alert').textContent()) ?? '', /CSRF/);
  await page.goto(`${bed.url}/keys`);
  t.is(await page.getByText('forged').count(), 0, 'no key was created');
  await context.close();
});

test.serial('XSS probe: a key named <script>… is shown as text and never runs', async (t) => {
  const context = await person();
  const page = await context.newPage();
  const alerts: string[] = [];
  page.on('dialog', (dialog) => {
    alerts.push(dialog.message());
    void dialog.dismiss();
  });
  await signUp(page, bed.url, 'xss@example.com', PASSWORD);
  const probe = '<script>alert("xss")</script><img src=x onerror=alert(1)>';
  await createKey(page, bed.url, probe);
  await page.reload();
  t.is(await page.locator('td.key-name').first().textContent(), probe, 'the name is text on the page');
  t.is(await page.locator('table.keys script, table.keys img').count(), 0, 'no element was injected');
  t.deepEqual(alerts, []);
  await context.close();
});

test.serial('Bull Board loads for an operator, and a customer session gets 403', async (t) => {
  const customer = await person();
  const customerPage = await customer.newPage();
  await signUp(customerPage, bed.url, 'not-an-operator@example.com', PASSWORD);
  const refused = await customerPage.goto(`${bed.url}/admin/queues`);
  t.is(refused?.status(), 403);
  t.is((await customerPage.goto(`${bed.url}/admin`))?.status(), 403, 'the operator area too');
  await customer.close();

  const operator = await person();
  const page = await operator.newPage();
  await logIn(page, bed.url, 'operator@example.com', PASSWORD);
  const board = await page.goto(`${bed.url}/admin/queues`);
  t.is(board?.status(), 200);
  await t.notThrowsAsync(page.getByText('channel-1').first().waitFor({ timeout: 15_000 }), 'the board lists the channel queue');
  await operator.close();
});

test.serial('every page: each input has a visible label, and nothing breaks the CSP (no inline script or style)', async (t) => {
  const context = await person();
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`${page.url()}: ${message.text()}`);
  });
  page.on('pageerror', (err) => problems.push(`${page.url()}: ${err.message}`));
  const unlabelled = () =>
    page.locator('input:not([type=hidden]), select, textarea').evaluateAll((fields) =>
      fields
        .map((f) => f as unknown as { labels: ArrayLike<{ textContent: string | null }> | null; outerHTML: string })
        .filter((f) => !f.labels?.length || !f.labels[0].textContent?.trim())
        .map((f) => f.outerHTML),
    );
  const visit = async (path: string) => {
    const res = await page.goto(`${bed.url}${path}`);
    t.is(res?.status(), 200, path);
    t.deepEqual(await unlabelled(), [], `${path}: every input has a visible label`);
  };
  for (const path of ['/', '/pricing', '/docs', '/signup', '/login', '/admin/login']) await visit(path);
  await logIn(page, bed.url, 'operator@example.com', PASSWORD);
  await createKey(page, bed.url, 'labels');
  const operators = await bed.admin.call<{ data: Array<{ id: number }> }>('GET', '/admin/api/users?email=operator%40example.com');
  const operatorId = operators.data[0].id;
  for (const path of [
    '/keys',
    '/recharge',
    '/usage',
    '/admin',
    '/admin/users',
    `/admin/users/${operatorId}`,
    '/admin/channels',
    '/admin/models',
    `/admin/models/edit?id=${encodeURIComponent(MODEL)}`,
    '/admin/models/edit',
    '/admin/codes',
  ])
    await visit(path);
  const keyId = await page.goto(`${bed.url}/keys`).then(() => page.locator('tr[data-key-id]').first().getAttribute('data-key-id'));
  await visit(`/keys/${keyId}/revoke`);
  t.deepEqual(problems, [], 'no console errors: no CSP violation, no script error');
  await context.close();
});
