/**
 * The floor under eastx's numbers: the fixed architecture's hop with nothing else on it. A web process
 * (plain node:http, no auth, no limits, no money, no validation) turns a request into a queue job and waits
 * for its answer on Redis pub/sub; a worker process takes the job, calls the upstream with undici (as eastx's adapters do) and
 * publishes the answer, a stream piece by piece as the upstream sends it (the web writes each piece as it
 * comes). What this costs on a machine is the least any gateway built this way can add there.
 *
 *   FLOOR_ROLE=web     with REDIS_URL, FLOOR_QUEUE; prints its port on stdout once listening
 *   FLOOR_ROLE=worker  with REDIS_URL, UPSTREAM_URL, FLOOR_QUEUE, FLOOR_CONCURRENCY (jobs at once, default 1000)
 *
 * FLOOR_QUEUE=bullmq: the job is a BullMQ job (patched as eastx's is), removed when done.
 * FLOOR_QUEUE=list: the job is an LPUSH onto a Redis list that the worker BLPOPs (no queue library at all).
 */
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { Agent, request } from 'undici';

const role = process.env.FLOOR_ROLE;
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const mode = process.env.FLOOR_QUEUE === 'list' ? 'list' : 'bullmq';
const QUEUE = 'floor';
const LIST = 'floor:list';
const PREFIX = 'floor-bench';

interface FloorJob {
  id: string;
  reply: string;
  body: string;
}

/** How the web hands a job to the worker: a BullMQ job, or a Redis list entry (only that mode's connection opens). */
function enqueuer(): (job: FloorJob) => Promise<unknown> {
  if (mode === 'list') {
    const commands = new Redis(redisUrl, { enableAutoPipelining: true });
    return (job) => commands.lpush(LIST, JSON.stringify(job));
  }
  const queue = new Queue<FloorJob>(QUEUE, { connection: new Redis(redisUrl, { maxRetriesPerRequest: null }), prefix: PREFIX });
  return (job) => queue.add('chat', job, { jobId: job.id, removeOnComplete: true, removeOnFail: true });
}

function web(): void {
  const enqueue = enqueuer();
  const subscriber = new Redis(redisUrl);
  const reply = `floor:reply:${randomUUID()}`;
  const waiting = new Map<string, (last: boolean, payload: string) => void>();
  // a message is `<job id>\n<kind><payload>`: kind `p` a piece of a stream, `e` the end (with the last payload)
  subscriber.on('message', (_channel: string, message: string) => {
    const cut = message.indexOf('\n');
    waiting.get(message.slice(0, cut))?.(message[cut + 1] === 'e', message.slice(cut + 2));
  });

  const server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (d: Buffer) => parts.push(d));
    req.on('end', () => {
      const job: FloorJob = { id: randomUUID(), reply, body: Buffer.concat(parts).toString() };
      waiting.set(job.id, (last, payload) => {
        if (!res.headersSent) res.writeHead(200, { 'content-type': last ? 'application/json' : 'text/event-stream' });
        if (!last) return void res.write(payload);
        waiting.delete(job.id);
        res.end(payload);
      });
      enqueue(job).catch(() => {
        waiting.delete(job.id);
        res.writeHead(500).end();
      });
    });
  });
  server.keepAliveTimeout = 120_000;
  void subscriber
    .subscribe(reply)
    .then(() => server.listen(0, '127.0.0.1', () => console.log((server.address() as { port: number }).port)));
}

function worker(): void {
  const upstream = `${process.env.UPSTREAM_URL}/v1/chat/completions`;
  const publisher = new Redis(redisUrl, { enableAutoPipelining: true });
  const dispatcher = new Agent({ keepAliveTimeout: 60_000 }); // no connection limit, as eastx's adapters
  const answer = async (job: FloorJob) => {
    const res = await request(upstream, { method: 'POST', headers: { 'content-type': 'application/json' }, body: job.body, dispatcher });
    if (!String(res.headers['content-type']).startsWith('text/event-stream')) {
      await publisher.publish(job.reply, `${job.id}\ne${await res.body.text()}`);
      return;
    }
    for await (const piece of res.body) await publisher.publish(job.reply, `${job.id}\np${piece}`);
    await publisher.publish(job.reply, `${job.id}\ne`);
  };
  if (mode === 'bullmq') {
    new Worker<FloorJob>(QUEUE, (job) => answer(job.data), {
      connection: new Redis(redisUrl, { maxRetriesPerRequest: null }),
      prefix: PREFIX,
      concurrency: Number(process.env.FLOOR_CONCURRENCY ?? 1000),
    });
    return;
  }
  const blocking = new Redis(redisUrl);
  void (async () => {
    for (;;) {
      const popped = await blocking.blpop(LIST, 0);
      if (popped) void answer(JSON.parse(popped[1]) as FloorJob).catch(() => undefined);
    }
  })();
}

if (role === 'web') web();
else if (role === 'worker') worker();
else throw new Error('FLOOR_ROLE must be web or worker');
