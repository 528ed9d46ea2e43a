/**
 * npm run screenshots — a PNG of every console page in docs/screenshots/, taken by headless chromium from a
 * gateway started for the purpose (own database, the shipped mock upstream, real web + worker processes).
 * Thirty days of usage history are written straight into the ledger (balance debited to match), so the
 * usage chart has something to show; everything else goes through the console and the API.
 */
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import OpenAI from 'openai';
import type { Browser, Page } from 'playwright-core';
import { createDb } from '../src/db/index.js';
import { startMockUpstream } from '../src/mock/upstream.js';
import { AdminClient } from './helpers/admin.js';
import { launchChromium } from './helpers/browser.js';
import { createKey, logIn } from './helpers/console.js';
import { freshEnvironment } from './helpers/env.js';
import { startGateway } from './helpers/gateway.js';

const OUT = fileURLToPath(new URL('../docs/screenshots/', import.meta.url));
const PASSWORD = 'eastx-demo-password';

async function seedCatalog(admin: AdminClient, mockUrl: string) {
  const openai = await admin.channel('mock-openai', 'openai', `${mockUrl}/v1`);
  await admin.token(openai.id, 'mock-openai-token-1', 8, 'openai-1');
  await admin.token(openai.id, 'mock-openai-token-2', 8, 'openai-2');
  const anthropic = await admin.channel('mock-anthropic', 'anthropic', mockUrl);
  await admin.token(anthropic.id, 'mock-anthropic-token-1', 8, 'anthropic-1');
  const dashscope = await admin.channel('mock-dashscope', 'dashscope', mockUrl);
  await admin.token(dashscope.id, 'mock-dashscope-token-1', 4, 'dashscope-1');
  await admin.model('claude-sonnet-4-6', {
    display_name: 'Claude Sonnet 4.6',
    owned_by: 'anthropic',
    channel_id: anthropic.id,
    upstream_model: 'claude-sonnet-4-6',
    input_price_per_1m: 3,
    output_price_per_1m: 15,
    max_output_tokens: 8192,
  });
  await admin.model('gpt-4o-mini', {
    display_name: 'GPT-4o mini',
    owned_by: 'openai',
    channel_id: openai.id,
    upstream_model: 'gpt-4o-mini',
    input_price_per_1m: 0.15,
    output_price_per_1m: 0.6,
    max_output_tokens: 16384,
  });
  await admin.model('qwen/qwen-plus', {
    display_name: 'Qwen Plus',
    owned_by: 'alibaba',
    channel_id: dashscope.id,
    upstream_model: 'qwen-plus',
    input_price_per_1m: 0.4,
    output_price_per_1m: 1.2,
    vision: false,
  });
  await admin.model('text-embedding-3-small', {
    display_name: 'Text Embedding 3 Small',
    owned_by: 'openai',
    modality: 'embedding',
    channel_id: openai.id,
    upstream_model: 'text-embedding-3-small',
    input_price_per_1m: 0.02,
    vision: false,
    tools: false,
  });
  await admin.model('wanx-v1', {
    display_name: 'Wanx v1',
    owned_by: 'alibaba',
    modality: 'image',
    channel_id: dashscope.id,
    upstream_model: 'wanx-v1',
    price_per_image: 0.02,
    sizes: ['1024x1024', '720x1280'],
    vision: false,
    tools: false,
  });
  await admin.model('gpt-5.5-preview', {
    display_name: 'GPT-5.5 preview',
    owned_by: 'openai',
    status: 'coming_soon',
    channel_id: openai.id,
    upstream_model: 'gpt-5.5-preview',
    input_price_per_1m: 5,
    output_price_per_1m: 20,
  });
}

/** 29 days of charges before today, summed into usage_daily the way the migration does, balance debited. */
async function seedHistory(databaseUrl: string, userId: number) {
  const db = createDb(databaseUrl, 2);
  const models = [
    ['claude-sonnet-4-6', 3000n, 15000n],
    ['gpt-4o-mini', 150n, 600n],
    ['qwen/qwen-plus', 400n, 1200n],
  ] as const;
  let total = 0n;
  const rows = [];
  for (let day = 29; day >= 1; day--) {
    for (const [model, inMicro, outMicro] of models) {
      const requests = 20 + ((day * 7 + model.length * 13) % 60);
      for (let i = 0; i < requests; i += 10) {
        const prompt = 400 + ((day * 31 + i) % 900);
        const completion = 150 + ((day * 17 + i) % 500);
        const cost = (BigInt(prompt) * inMicro * 1000n + BigInt(completion) * outMicro * 1000n + 999n) / 1000n;
        total += cost;
        rows.push({
          user_id: userId,
          kind: 'charge' as const,
          model,
          prompt_tokens: prompt,
          completion_tokens: completion,
          images: 0,
          amount_nano: -cost,
          estimated: 0,
          note: null,
          created_at: new Date(Date.now() - day * 86_400_000),
        });
      }
    }
  }
  await db.insertInto('ledger').values(rows).execute();
  await db
    .updateTable('users')
    .set({ balance_nano: sql`balance_nano - ${total}` })
    .where('id', '=', userId)
    .execute();
  await sql`DELETE FROM usage_daily WHERE user_id = ${userId}`.execute(db);
  await sql`INSERT INTO usage_daily (user_id, day, model, requests, prompt_tokens, completion_tokens, images, spent_nano)
    SELECT user_id, DATE(created_at), model, COUNT(*), SUM(prompt_tokens), SUM(completion_tokens), SUM(images), -SUM(amount_nano)
    FROM ledger WHERE kind = 'charge' AND user_id = ${userId} GROUP BY user_id, DATE(created_at), model`.execute(db);
  await db.destroy();
}

async function shoot(page: Page, url: string, name: string, ready?: (page: Page) => Promise<void>) {
  await page.goto(url);
  await ready?.(page);
  await page.screenshot({ path: `${OUT}${name}.png`, fullPage: true });
  console.log(`  docs/screenshots/${name}.png`);
}

async function main() {
  mkdirSync(OUT, { recursive: true });
  const mock = await startMockUpstream();
  const { env } = await freshEnvironment('screenshots');
  const gateway = await startGateway(env);
  const base = gateway.urls[0];
  const admin = new AdminClient(base, env.ADMIN_TOKEN);
  let browser: Browser | undefined;
  try {
    await seedCatalog(admin, mock.url);
    const demo = await admin.call<{ id: number }>('POST', '/admin/api/users', { email: 'demo@eastx.local', password: PASSWORD });
    await admin.call('POST', `/admin/api/users/${demo.id}/credit`, { amount_usd: '20', note: 'welcome credit' });
    await admin.call('POST', '/admin/api/users', { email: 'ops@eastx.local', password: PASSWORD, is_admin: true });
    await admin.call('POST', '/admin/api/users', { email: 'ada@example.com' });
    await seedHistory(env.DATABASE_URL, demo.id);

    browser = await launchChromium();
    const customer = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await shoot(customer, `${base}/`, 'home');
    await shoot(customer, `${base}/pricing`, 'pricing');
    await shoot(customer, `${base}/docs`, 'docs');
    await shoot(customer, `${base}/signup`, 'signup');
    await shoot(customer, `${base}/login`, 'login');

    await logIn(customer, base, 'demo@eastx.local', PASSWORD);
    await createKey(customer, base, 'staging');
    const key = await createKey(customer, base, 'production');
    await customer.screenshot({ path: `${OUT}keys-new-key.png`, fullPage: true });
    console.log('  docs/screenshots/keys-new-key.png');
    const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: key, maxRetries: 0 });
    for (const model of ['claude-sonnet-4-6', 'gpt-4o-mini', 'gpt-4o-mini'])
      await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'Hello!' }] });
    await shoot(customer, `${base}/keys`, 'keys');
    const revokeHref = await customer.locator('a.danger').first().getAttribute('href');
    await shoot(customer, `${base}${revokeHref}`, 'key-revoke');
    const minted = await admin.call<{ codes: string[] }>('POST', '/admin/api/redemption-codes', { amount_usd: '10', count: 3 });
    await customer.goto(`${base}/recharge`);
    await customer.getByLabel('Redemption code').fill(minted.codes[0]);
    await customer.getByRole('button', { name: 'Redeem' }).click();
    await customer.waitForURL(`${base}/recharge`);
    await customer.screenshot({ path: `${OUT}recharge.png`, fullPage: true });
    console.log('  docs/screenshots/recharge.png');
    await shoot(customer, `${base}/usage`, 'usage');

    const phone = await browser.newPage({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2 });
    await logIn(phone, base, 'demo@eastx.local', PASSWORD);
    await shoot(phone, `${base}/keys`, 'phone-keys');
    await shoot(phone, `${base}/usage`, 'phone-usage');

    const operator = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await shoot(operator, `${base}/admin/login`, 'admin-login');
    await logIn(operator, base, 'ops@eastx.local', PASSWORD);
    await shoot(operator, `${base}/admin`, 'admin');
    await shoot(operator, `${base}/admin/users`, 'admin-users');
    await shoot(operator, `${base}/admin/users/${demo.id}`, 'admin-user');
    await shoot(operator, `${base}/admin/channels`, 'admin-channels');
    await shoot(operator, `${base}/admin/models`, 'admin-models');
    await shoot(operator, `${base}/admin/models/edit?id=gpt-4o-mini`, 'admin-model-edit');
    await operator.goto(`${base}/admin/codes`);
    await operator.getByLabel('Amount each (USD)').fill('5');
    await operator.getByLabel('How many').fill('3');
    await operator.getByRole('button', { name: 'Mint' }).click();
    await operator.waitForURL(`${base}/admin/codes`);
    await operator.screenshot({ path: `${OUT}admin-codes.png`, fullPage: true });
    console.log('  docs/screenshots/admin-codes.png');
    await shoot(operator, `${base}/admin/queues/queue/channel-1`, 'admin-queues', async (p) => {
      await p.getByText('channel-1').first().waitFor();
      await p.waitForLoadState('networkidle');
    });
  } finally {
    await browser?.close();
    await gateway.stop();
    await mock.close();
  }
}

main().catch((err) => {
  console.error('screenshots failed:', err);
  process.exit(1);
});
