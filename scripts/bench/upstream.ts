/**
 * The benchmark's upstream, a process of its own (so its CPU is not the gateway's): an OpenAI-compatible
 * endpoint with zero latency answering 16 words, streamed as 4 chunks or whole. A request whose body has
 * `"bench_hold": true` gets its first chunk and is then held open until the client goes away.
 * Prints its port on stdout.
 */
import { createServer } from 'node:http';

const WORDS = 'the quick brown fox jumps over the lazy dog while seven happy otters float down the river';
const usage = { prompt_tokens: 12, completion_tokens: 16, total_tokens: 28 };
const completion = JSON.stringify({
  id: 'chatcmpl-bench',
  object: 'chat.completion',
  created: 1_764_460_800,
  model: 'bench',
  choices: [{ index: 0, message: { role: 'assistant', content: WORDS }, logprobs: null, finish_reason: 'stop' }],
  usage,
});
const chunk = (delta: object, finish: string | null) =>
  `data: ${JSON.stringify({ id: 'chatcmpl-bench', object: 'chat.completion.chunk', created: 1_764_460_800, model: 'bench', choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
const words = WORDS.split(' ');
const firstChunk = chunk({ role: 'assistant', content: '' }, null);
const restOfStream =
  [0, 4, 8, 12].map((i) => chunk({ content: `${i ? ' ' : ''}${words.slice(i, i + 4).join(' ')}` }, null)).join('') +
  chunk({}, 'stop') +
  `data: ${JSON.stringify({ id: 'chatcmpl-bench', object: 'chat.completion.chunk', created: 1_764_460_800, model: 'bench', choices: [], usage })}\n\ndata: [DONE]\n\n`;

const server = createServer((req, res) => {
  const parts: Buffer[] = [];
  req.on('data', (d: Buffer) => parts.push(d));
  req.on('end', () => {
    const body = Buffer.concat(parts).toString();
    if (!body.includes('"stream":true')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(completion);
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    if (body.includes('"bench_hold":true')) res.write(firstChunk);
    else res.end(firstChunk + restOfStream);
  });
});
server.keepAliveTimeout = 120_000;
server.maxConnections = 100_000;
server.listen(0, '127.0.0.1', () => console.log((server.address() as { port: number }).port));
