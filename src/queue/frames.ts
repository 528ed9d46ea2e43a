import type { WireError } from '../http/errors.js';

/**
 * Worker → web frames on a web process's relay channel (`{prefix}:relay:<webId>`), demultiplexed by request
 * id. Sequence rule: `seq` counts from 0 per run of a job, so a gap (a lost frame) and a restart (BullMQ
 * re-ran a job whose worker died: seq 0 again) both show. Heartbeats are outside the sequence and never
 * reach a client; they only prove that a worker still runs the job.
 */
/** One SSE event of a stream, in the client's wire format: `event` is the SSE event name (absent for chat). */
export type ChunkFrame = { id: string; seq: number; t: 'chunk'; chunk: unknown; event?: string };
/** A stream's closing SSE event (non-chat wires): sent after settlement, so it may carry the cost. */
export type ClosingEvent = { event?: string; data: unknown };
/**
 * The answer: a non-stream result, or a stream's end, and its cost. Chat: the usage chunk (shown only to
 * clients that asked). Other wires: `events`, the stream's closing events, always written.
 */
export type DoneFrame = {
  id: string;
  seq: number;
  t: 'done';
  costNano: string;
  result?: unknown;
  usageChunk?: unknown;
  events?: ClosingEvent[];
  sentAt?: number;
};
/** The SPEC §2 error the request ends with; sent only for a request left unbillable (or billed for what it streamed). */
export type ErrorFrame = { id: string; seq: number; t: 'error'; error: WireError };
/** "Still running": one heartbeat names every silent job a worker runs for the channel's web process. */
export type HeartbeatsFrame = { t: 'hb'; ids: string[] };
/**
 * Published instead of a large final frame (base64 images…): that frame is only in the kept result
 * (`{prefix}:result:<id>`), where the web side reads it. Redis drops a pub/sub subscriber whose output
 * buffer passes 32 MB, and that subscriber carries every request of its web process.
 */
export type KeptFrame = { id: string; t: 'kept' };

export type FinalFrame = DoneFrame | ErrorFrame;
export type SequencedFrame = ChunkFrame | FinalFrame;
export type RelayFrame = SequencedFrame | KeptFrame;

export const encodeFrame = (frame: RelayFrame | HeartbeatsFrame): string => JSON.stringify(frame);

/** Final frames longer than this are published as a KeptFrame. */
export const LARGE_FRAME_CHARS = 256 * 1024;

const KINDS = new Set(['chunk', 'done', 'error', 'kept']);

/** A frame from the wire, or undefined for anything else (a relay channel carries only frames). */
export function decodeFrame(text: string): RelayFrame | HeartbeatsFrame | undefined {
  try {
    const frame = JSON.parse(text) as RelayFrame | HeartbeatsFrame;
    if (frame?.t === 'hb' && 'ids' in frame) return Array.isArray(frame.ids) ? frame : undefined;
    return typeof (frame as RelayFrame)?.id === 'string' && KINDS.has(frame.t) ? frame : undefined;
  } catch {
    return undefined;
  }
}

/** The web side of the sequence rule, for one request. */
export class FrameSequence {
  private expected = 0;
  private deliveredChunks = 0;

  /**
   * `ok` for the next frame in order, or for seq 0 again while nothing was delivered yet (a re-run of a job
   * whose first run showed nothing: it starts over cleanly); `gap` otherwise (frames went missing, or a
   * re-run would splice a second answer onto what the client already has).
   */
  accept(frame: SequencedFrame): 'ok' | 'gap' {
    const inOrder = frame.seq === this.expected || (frame.seq === 0 && this.deliveredChunks === 0);
    if (!inOrder) return 'gap';
    this.expected = frame.seq + 1;
    if (frame.t === 'chunk') this.deliveredChunks++;
    return 'ok';
  }

  /** Whether any chunk reached the client (the stream started showing output). */
  get started(): boolean {
    return this.deliveredChunks > 0;
  }
}
