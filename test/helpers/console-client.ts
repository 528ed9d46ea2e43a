import { randomInt } from 'node:crypto';

/** A client address of its own (198.18.0.0/15, the benchmarking range), as Heroku's router would append it. */
const someClientIp = () => `198.18.${randomInt(256)}.${randomInt(1, 255)}`;

/**
 * A browser-like HTTP client for the console without a browser: keeps cookies, asks for HTML, does not
 * follow redirects, and knows the CSRF token of the last page it read (the hidden `_csrf` field). Each client
 * comes from its own address (X-Forwarded-For), so the per-IP throttles see separate visitors.
 */
export class ConsoleClient {
  readonly cookies = new Map<string, string>();
  csrf: string | undefined;

  private readonly extraHeaders: Record<string, string>;

  constructor(
    readonly baseUrl: string,
    extraHeaders: Record<string, string> = {},
  ) {
    this.extraHeaders = { 'x-forwarded-for': someClientIp(), ...extraHeaders };
  }

  private cookieHeader(): string {
    return [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
  }

  private remember(res: Response): void {
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      if (value === '' || /expires=Thu, 01 Jan 1970/i.test(line)) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }

  async request(
    method: string,
    path: string,
    init: { body?: string; headers?: Record<string, string> } = {},
  ): Promise<{ res: Response; text: string }> {
    const res = await fetch(`${this.baseUrl}${path}`, {
      method,
      redirect: 'manual',
      headers: { accept: 'text/html,application/xhtml+xml', cookie: this.cookieHeader(), ...this.extraHeaders, ...init.headers },
      body: init.body,
    });
    this.remember(res);
    const text = await res.text();
    const token = /name="_csrf" value="([^"]+)"/.exec(text)?.[1];
    if (token) this.csrf = token;
    return { res, text };
  }

  get(path: string) {
    return this.request('GET', path);
  }

  /** Posts a form; the CSRF token of the last page read is added unless `csrf: false` (or given). */
  post(
    path: string,
    fields: Record<string, string>,
    { csrf = true, headers = {} }: { csrf?: boolean; headers?: Record<string, string> } = {},
  ) {
    const form = new URLSearchParams(fields);
    if (csrf && !('_csrf' in fields) && this.csrf) form.set('_csrf', this.csrf);
    return this.request('POST', path, {
      body: form.toString(),
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    });
  }

  async signUp(email: string, password: string): Promise<void> {
    await this.get('/signup');
    const { res, text } = await this.post('/signup', { email, password });
    if (res.status !== 303) throw new Error(`sign-up failed: ${res.status} ${text.slice(0, 300)}`);
    await this.get('/keys');
  }

  async logIn(email: string, password: string): Promise<Response> {
    await this.get('/login');
    const { res } = await this.post('/login', { email, password });
    if (res.status === 303) await this.get(res.headers.get('location') ?? '/keys');
    return res;
  }
}
