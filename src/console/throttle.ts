import { createHash } from 'node:crypto';
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import { ApiError } from '../http/errors.js';
import type { AppContext } from '../http/state.js';
import type { WebServices } from '../services.js';

/**
 * Brute-force throttles of the console, counted in Redis (rate-limiter-flexible: one Lua INCR+EXPIRE per
 * count, exact across web processes). Failed log-ins count per IP and per email address; once a limit is
 * reached, every attempt (even with the right password) waits until the window ends. Sign-ups count per IP;
 * ADMIN_TOKEN log-ins per IP and for the whole deployment.
 */
interface Limit {
  points: number;
  /** window and block, seconds */
  seconds: number;
}

export const LIMITS = {
  loginPerEmail: { points: 5, seconds: 15 * 60 },
  loginPerIp: { points: 50, seconds: 15 * 60 },
  signupPerIp: { points: 10, seconds: 3600 },
  adminPerDeployment: { points: 20, seconds: 15 * 60 },
} satisfies Record<string, Limit>;

type Name = keyof typeof LIMITS;

class Throttles {
  private readonly limiters: Record<Name, RateLimiterRedis>;

  constructor(svc: WebServices) {
    const make = (name: Name) =>
      new RateLimiterRedis({
        storeClient: svc.redis,
        keyPrefix: svc.keys.throttle(name),
        points: LIMITS[name].points,
        duration: LIMITS[name].seconds,
        blockDuration: LIMITS[name].seconds,
      });
    this.limiters = {
      loginPerEmail: make('loginPerEmail'),
      loginPerIp: make('loginPerIp'),
      signupPerIp: make('signupPerIp'),
      adminPerDeployment: make('adminPerDeployment'),
    };
  }

  /** 429 with Retry-After when any of these counters is used up. */
  async refuseIfSpent(counters: Array<[Name, string]>): Promise<void> {
    const states = await Promise.all(counters.map(([name, key]) => this.limiters[name].get(key)));
    let waitMs = 0;
    states.forEach((state, i) => {
      if (state && state.consumedPoints >= LIMITS[counters[i][0]].points) waitMs = Math.max(waitMs, state.msBeforeNext);
    });
    if (waitMs > 0) {
      const minutes = Math.ceil(waitMs / 60_000);
      throw new ApiError('rate_limit_exceeded', `too many attempts: try again in ${minutes} minute${minutes === 1 ? '' : 's'}`, {
        retryAfter: Math.ceil(waitMs / 1000),
      });
    }
  }

  /** Counts one attempt on each counter (a counter already used up stays blocked). */
  async count(counters: Array<[Name, string]>): Promise<void> {
    await Promise.all(
      counters.map(([name, key]) =>
        this.limiters[name].consume(key).catch((err: unknown) => {
          if (!(err instanceof RateLimiterRes)) throw err;
        }),
      ),
    );
  }

  async reset(name: Name, key: string): Promise<void> {
    await this.limiters[name].delete(key);
  }
}

const perServices = new WeakMap<WebServices, Throttles>();

export function throttles(svc: WebServices): Throttles {
  let found = perServices.get(svc);
  if (!found) perServices.set(svc, (found = new Throttles(svc)));
  return found;
}

/**
 * The client's address: the last X-Forwarded-For entry (the one Heroku's router appends, which a client
 * cannot forge), else the socket's address.
 */
export const clientIp = (ctx: AppContext) => ctx.ips.at(-1) ?? ctx.ip;

/** Email addresses are counted by hash, so Redis holds no address. */
export const emailKey = (email: string) => createHash('sha256').update(email.trim().toLowerCase()).digest('hex');
