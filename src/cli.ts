import { type ParseArgsConfig, parseArgs } from 'node:util';
import type { z } from 'zod';
import * as ops from './admin/operations/index.js';
import * as schemas from './admin/schemas.js';
import { auditLedger } from './billing/audit.js';
import { redeemCode } from './billing/codes.js';
import { formatUsd } from './billing/money.js';
import { config } from './config.js';
import { createDb } from './db/index.js';
import { migrateToLatest } from './db/migrate.js';
import { describeIssue } from './http/body.js';
import { badRequest } from './http/errors.js';
import { createRedis, RedisKeys } from './redis/index.js';
import { SecretBox } from './upstream/secrets.js';

/**
 * The operator CLI (SPEC §5): `node dist/src/cli.js <command> [args]` (`npm run admin -- <command>`).
 * Admin commands run the same operations as the admin API and print the same JSON.
 */

type Options = NonNullable<ParseArgsConfig['options']>;
type Values = Record<string, string | boolean | undefined>;

interface Command {
  usage: string;
  summary: string;
  options?: Options;
  /** How many positional arguments the command takes. */
  positionals?: number;
  run(args: { values: Values; positionals: string[]; deps: () => ops.AdminDeps }): Promise<unknown>;
}

const str = { type: 'string' } as const;
const flag = { type: 'boolean' } as const;

/** Runs CLI input through the admin API's schema, so both reject the same things with the same message. */
function validate<T extends z.ZodType>(schema: T, input: Record<string, unknown>): z.infer<T> {
  const parsed = schema.safeParse(Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined)));
  if (!parsed.success) throw badRequest(describeIssue(parsed.error));
  return parsed.data;
}

const int = (value: string | boolean | undefined) => (typeof value === 'string' ? Number(value) : undefined);
/** `none` (or an empty value) clears a nullable setting. */
const nullable = (value: string | boolean | undefined) =>
  typeof value !== 'string' ? undefined : value === '' || value === 'none' ? null : value;
const text = (value: string | boolean | undefined) => (typeof value === 'string' ? value : undefined);

function parseJson(value: string | boolean | undefined): Record<string, unknown> {
  if (typeof value !== 'string') throw badRequest('--json: a JSON object is required');
  try {
    const parsed: unknown = JSON.parse(value);
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) return parsed as Record<string, unknown>;
  } catch {
    // reported below
  }
  throw badRequest('--json: not a JSON object');
}

function parseJsonArray(value: string | boolean | undefined): unknown[] {
  if (typeof value !== 'string') throw badRequest('--json: a JSON array is required');
  try {
    const parsed: unknown = JSON.parse(value);
    if (Array.isArray(parsed)) return parsed;
  } catch {
    // reported below
  }
  throw badRequest('--json: not a JSON array');
}

/**
 * `--allowed-models 'gpt-4o*,claude-sonnet-4-6'` → a list; `none` → null: every model. An empty value is refused,
 * not taken as `none`: an unset shell variable must not lift a key's restriction.
 */
function modelList(value: string | boolean | undefined): string[] | null | undefined {
  if (typeof value !== 'string') return undefined;
  if (value === 'none') return null;
  const list = value
    .split(/[\s,]+/)
    .map((s) => s.trim())
    .filter(Boolean);
  if (list.length === 0) throw badRequest('--allowed-models: give model ids or prefix* patterns, or none for every model');
  return list;
}
const intOrNone = (value: string | boolean | undefined) =>
  typeof value !== 'string' ? undefined : value === '' || value === 'none' ? null : Number(value);

/** The limits `create-key` and `set-key` share, from their options. */
const keyLimits = (values: Record<string, string | boolean | undefined>) => ({
  rpm_limit: int(values.rpm),
  balance_cap_usd: nullable(values.cap),
  expires_at: nullable(values.expires),
  allowed_models: modelList(values['allowed-models']),
  max_concurrent_requests: intOrNone(values['max-concurrent']),
});

const commands: Record<string, Command> = {
  audit: {
    usage: 'audit',
    summary: 'check every account: balance = sum of ledger, held = open holds, key spent = its charges; exit 1 on a mismatch',
    run: async ({ deps }) => {
      const report = await auditLedger(deps().db);
      if (report.findings.length > 0)
        throw new Error(`ledger audit found ${report.findings.length} mismatch(es):\n${JSON.stringify(report, null, 2)}`);
      return report;
    },
  },
  migrate: {
    usage: 'migrate',
    summary: 'create the database if missing and apply pending migrations',
    run: async () => ({ applied: await migrateToLatest(config().databaseUrl) }),
  },
  'create-channel': {
    usage: 'create-channel --name NAME --type openai|anthropic|dashscope --base-url URL',
    summary: 'add an upstream channel',
    options: { name: str, type: str, 'base-url': str },
    run: ({ values, deps }) =>
      ops.createChannel(deps(), validate(schemas.channelBody, { name: values.name, type: values.type, base_url: values['base-url'] })),
  },
  'list-channels': {
    usage: 'list-channels',
    summary: 'channels with their tokens (never the secrets)',
    run: async ({ deps }) => ({ data: await ops.listChannels(deps()) }),
  },
  'add-token': {
    usage: 'add-token <channelId> --secret SECRET [--max-concurrency N] [--name NAME]',
    summary: 'add an upstream token (stored encrypted) to a channel',
    options: { secret: str, 'max-concurrency': str, name: str },
    positionals: 1,
    run: ({ values, positionals: [channelId], deps }) =>
      ops.addToken(
        deps(),
        ops.rowIdFrom(channelId, 'channel'),
        validate(schemas.tokenBody, { secret: values.secret, max_concurrency: int(values['max-concurrency']), name: values.name }),
      ),
  },
  'set-token': {
    usage: 'set-token <tokenId> [--status active|disabled] [--max-concurrency N]',
    summary: 'enable, disable or resize an upstream token',
    options: { status: str, 'max-concurrency': str },
    positionals: 1,
    run: ({ values, positionals: [tokenId], deps }) =>
      ops.updateToken(
        deps(),
        ops.rowIdFrom(tokenId, 'token'),
        validate(schemas.tokenPatch, { status: values.status, max_concurrency: int(values['max-concurrency']) }),
      ),
  },
  'list-models': {
    usage: 'list-models',
    summary: 'every model of the catalog, whatever its status, with its routes and their state (healthy, cooling, unhealthy, disabled)',
    run: async ({ deps }) => ({ data: await ops.listModels(deps()) }),
  },
  'put-model': {
    usage:
      'put-model <modelId> --json \'{"display_name":…, "routes":[{"channel_id":…, "upstream_model":…, "priority":…, "weight":…}], …}\'',
    summary: 'create or replace a model (same body as PUT /admin/api/models/:id; channel_id + upstream_model instead of routes: one route)',
    options: { json: str },
    positionals: 1,
    run: ({ values, positionals: [modelId], deps }) => ops.putModel(deps(), modelId, validate(schemas.modelBody, parseJson(values.json))),
  },
  'set-routes': {
    usage: 'set-routes <modelId> --json \'[{"channel_id":1, "upstream_model":"gpt-4o", "priority":10, "weight":3}, …]\'',
    summary: "replace a model's routes (higher priority first, by weight within a priority); the rest of the model stays",
    options: { json: str },
    positionals: 1,
    run: ({ values, positionals: [modelId], deps }) => ops.setModelRoutes(deps(), modelId, parseJsonArray(values.json)),
  },
  'create-user': {
    usage: 'create-user --email EMAIL [--password PASSWORD]',
    summary: 'add a user (the password is for the console)',
    options: { email: str, password: str },
    run: ({ values, deps }) => ops.createUser(deps(), validate(schemas.userBody, { email: values.email, password: values.password })),
  },
  'show-user': {
    usage: 'show-user <userId>',
    summary: 'balance and held amount of a user',
    positionals: 1,
    run: ({ positionals: [userId], deps }) => ops.getUser(deps(), ops.rowIdFrom(userId, 'user')),
  },
  credit: {
    usage: 'credit <userId> <amountUsd> [--note NOTE]',
    summary: 'add money to a balance (ledger kind "credit")',
    options: { note: str },
    positionals: 2,
    run: ({ values, positionals: [userId, amount], deps }) =>
      ops.creditUser(deps(), ops.rowIdFrom(userId, 'user'), validate(schemas.creditBody, { amount_usd: amount, note: values.note })),
  },
  adjust: {
    usage: 'adjust <userId> <signedAmountUsd> --note NOTE',
    summary: 'correct a balance up or down (ledger kind "adjustment"), e.g. adjust 7 -0.5 --note refund',
    options: { note: str },
    positionals: 2,
    run: ({ values, positionals: [userId, amount], deps }) =>
      ops.adjustUser(deps(), ops.rowIdFrom(userId, 'user'), validate(schemas.adjustBody, { amount_usd: amount, note: values.note })),
  },
  'create-key': {
    usage: 'create-key <userId> [--name NAME] [--rpm N] [--cap USD] [--expires ISO] [--allowed-models "ID,PREFIX*,…"] [--max-concurrent N]',
    summary: 'create an API key; the key is printed this once',
    options: { name: str, rpm: str, cap: str, expires: str, 'allowed-models': str, 'max-concurrent': str },
    positionals: 1,
    run: ({ values, positionals: [userId], deps }) =>
      ops.createKey(
        deps(),
        ops.rowIdFrom(userId, 'user'),
        validate(schemas.keyBody, {
          name: values.name,
          ...keyLimits(values),
        }),
      ),
  },
  'list-keys': {
    usage: 'list-keys <userId>',
    summary: "a user's API keys (never the keys themselves)",
    positionals: 1,
    run: async ({ positionals: [userId], deps }) => ({ data: await ops.listUserKeys(deps(), ops.rowIdFrom(userId, 'user')) }),
  },
  'show-key': {
    usage: 'show-key <keyId>',
    summary: 'an API key: limits, spend, status',
    positionals: 1,
    run: ({ positionals: [keyId], deps }) => ops.getKey(deps(), ops.rowIdFrom(keyId, 'key')),
  },
  'set-key': {
    usage:
      'set-key <keyId> [--disable | --enable] [--rpm N] [--cap USD|none] [--expires ISO|none] [--allowed-models "ID,PREFIX*,…"|none] [--max-concurrent N|none]',
    summary: 'change an API key; takes effect on the next request everywhere',
    options: { disable: flag, enable: flag, rpm: str, cap: str, expires: str, 'allowed-models': str, 'max-concurrent': str },
    positionals: 1,
    run: ({ values, positionals: [keyId], deps }) => {
      if (values.disable && values.enable) throw badRequest('--disable and --enable exclude each other');
      const disabled = values.disable ? true : values.enable ? false : undefined;
      return ops.updateKey(
        deps(),
        ops.rowIdFrom(keyId, 'key'),
        validate(schemas.keyPatch, {
          disabled,
          ...keyLimits(values),
        }),
      );
    },
  },
  'revoke-key': {
    usage: 'revoke-key <keyId>',
    summary: 'revoke an API key for good',
    positionals: 1,
    run: ({ positionals: [keyId], deps }) => ops.revokeKey(deps(), ops.rowIdFrom(keyId, 'key')),
  },
  codes: {
    usage: 'codes --amount USD --count N',
    summary: 'create single-use redemption codes (printed this once)',
    options: { amount: str, count: str },
    run: ({ values, deps }) =>
      ops.createRedemptionCodes(deps(), validate(schemas.codesBody, { amount_usd: values.amount, count: int(values.count) })),
  },
  redeem: {
    usage: 'redeem <userId> <code>',
    summary: 'redeem a code for a user, as the console does',
    positionals: 2,
    run: async ({ positionals: [userId, code], deps }) => {
      const { amountNano, balanceNano } = await redeemCode(deps().db, ops.rowIdFrom(userId, 'user'), code);
      return { amount_usd: formatUsd(amountNano), balance_usd: formatUsd(balanceNano) };
    },
  },
  usage: {
    usage: 'usage [--user USER_ID] [--key KEY_ID] [--since ISO] [--before-id ID] [--limit N]',
    summary: 'ledger rows, newest first',
    options: { user: str, key: str, since: str, 'before-id': str, limit: str },
    run: ({ values, deps }) =>
      ops.listUsage(
        deps(),
        validate(schemas.usageQuery, {
          user_id: text(values.user),
          key_id: text(values.key),
          since: text(values.since),
          before_id: text(values['before-id']),
          limit: text(values.limit),
        }),
      ),
  },
};

function helpText(): string {
  const lines = Object.values(commands).flatMap((c) => [`  ${c.usage}`, `      ${c.summary}`]);
  return [
    'usage: node dist/src/cli.js <command> [args]   (npm run admin -- <command> [args])',
    '',
    'commands:',
    ...lines,
    '  help',
    '      this list',
    '',
  ].join('\n');
}

/** Negative amounts (`adjust 7 -0.5`) are arguments, not options: parseArgs would read them as `-0` `-.` … */
function parseCommandArgs(command: Command, args: string[]): { values: Values; positionals: string[] } {
  const negatives = new Map<string, string>();
  const masked = args.map((arg, i) => {
    if (!/^-\d+(?:\.\d+)?$/.test(arg)) return arg;
    const placeholder = `\u0000negative-${i}`;
    negatives.set(placeholder, arg);
    return placeholder;
  });
  const { values, positionals } = parseArgs({ args: masked, options: command.options ?? {}, allowPositionals: true, strict: true });
  const unmask = (v: string) => negatives.get(v) ?? v;
  const restored = Object.fromEntries(Object.entries(values).map(([k, v]) => [k, typeof v === 'string' ? unmask(v) : v])) as Values;
  return { values: restored, positionals: positionals.map(unmask) };
}

/** Connections are opened only by commands that need them, and closed at the end. */
function lazyDeps() {
  let deps: ops.AdminDeps | undefined;
  return {
    get: () => {
      const cfg = config();
      if (!deps) {
        const redis = createRedis(cfg.redisUrl, { maxRetriesPerRequest: 2, enableAutoPipelining: false });
        redis.on('error', () => undefined); // a failing command reports it; no reconnect noise on stderr
        deps = {
          db: createDb(cfg.databaseUrl, 2),
          redis,
          keys: new RedisKeys(cfg.redisPrefix),
          secrets: new SecretBox(cfg.appSecret),
        };
      }
      return deps;
    },
    close: async () => {
      if (!deps) return;
      await Promise.all([deps.db.destroy(), deps.redis.quit().catch(() => undefined)]);
    },
  };
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === 'help' || name === '--help' || name === '-h') {
    process.stdout.write(helpText());
    return 0;
  }
  const command = commands[name];
  if (!command) {
    process.stderr.write(`unknown command: ${name}\n\n${helpText()}`);
    return 1;
  }
  const deps = lazyDeps();
  try {
    const { values, positionals } = parseCommandArgs(command, rest);
    const wanted = command.positionals ?? 0;
    if (positionals.length !== wanted) throw new Error(`usage: ${command.usage}`);
    const result = await command.run({ values, positionals, deps: deps.get });
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    return 0;
  } catch (err) {
    const redisDown = (err as Error).name === 'MaxRetriesPerRequestError';
    process.stderr.write(`${redisDown ? 'Redis did not answer at REDIS_URL' : (err as Error).message}\n`);
    return 1;
  } finally {
    await deps.close();
  }
}

process.exit(await main(process.argv.slice(2)));
