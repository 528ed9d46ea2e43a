/** Reads an SSE chat stream from a fetch response as it arrives, so a test can act mid-stream. */
export class StreamReader {
  text = '';
  content = '';
  chunks = 0;
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  private readonly decoder = new TextDecoder();
  private pending = '';

  constructor(res: Response) {
    this.reader = res.body!.getReader();
  }

  /** Reads until `enough()` holds or the stream ends; true when it ended. */
  async readUntil(enough: () => boolean): Promise<boolean> {
    while (!enough()) {
      const { done, value } = await this.reader.read().catch(() => ({ done: true, value: undefined }));
      if (done) return true;
      const text = this.decoder.decode(value, { stream: true });
      this.text += text;
      this.pending += text;
      const events = this.pending.split('\n\n');
      this.pending = events.pop() ?? '';
      for (const event of events) {
        if (!event.startsWith('data: ') || event === 'data: [DONE]') continue;
        const json = JSON.parse(event.slice(6)) as { choices?: Array<{ delta?: { content?: string } }> };
        const piece = json.choices?.[0]?.delta?.content;
        if (piece) {
          this.content += piece;
          this.chunks++;
        }
      }
    }
    return false;
  }

  readToEnd(): Promise<boolean> {
    return this.readUntil(() => false);
  }

  /** The JSON of the final `data: {"error":…}` event, if the stream ended with one. */
  get error(): { code: string; message: string } | undefined {
    const last = this.text.trim().split('\n\n').at(-1) ?? '';
    if (!last.startsWith('data: {"error"')) return undefined;
    return (JSON.parse(last.slice(6)) as { error: { code: string; message: string } }).error;
  }
}

/** A tool call as an OpenAI chat stream delivers it: pieces by index, the arguments in fragments. */
export interface StreamedToolCall {
  id?: string;
  type?: string;
  name?: string;
  args: string;
}

type ToolCallDelta = { index: number; id?: string; type?: string; function?: { name?: string; arguments?: string } };
type ChatChunk = { choices: Array<{ delta?: { tool_calls?: ToolCallDelta[] }; finish_reason?: string | null }> };

/** Reads an OpenAI SDK chat stream to its end and puts its tool calls together, with the last finish reason. */
export async function collectToolCalls(stream: AsyncIterable<ChatChunk>): Promise<{ calls: StreamedToolCall[]; finish: string | null }> {
  const calls: StreamedToolCall[] = [];
  let finish: string | null = null;
  for await (const chunk of stream) {
    for (const delta of chunk.choices[0]?.delta?.tool_calls ?? []) {
      calls[delta.index] ??= { args: '' };
      if (delta.id) calls[delta.index].id = delta.id;
      if (delta.type) calls[delta.index].type = delta.type;
      if (delta.function?.name) calls[delta.index].name = delta.function.name;
      calls[delta.index].args += delta.function?.arguments ?? '';
    }
    finish = chunk.choices[0]?.finish_reason ?? finish;
  }
  return { calls, finish };
}
