import { ApiError } from '../http/errors.js';
import { confirmCustomer } from '../http/guards.js';
import { type AppContext, type AppMiddleware, claimedCustomer, principal } from '../http/state.js';
import type { ChatJobData } from '../queue/jobs.js';
import {
  type ChatMessage,
  checkResponsesRequest,
  type ResponsesRequest,
  responsesRequestSchema,
  toChatRequest,
} from '../wire/responses/request.js';
import { echoOf } from '../wire/responses/response.js';
import { loadConversation, loadResponse } from '../wire/responses/store.js';
import { errorEvent } from '../wire/responses/stream.js';
import { admitted, enqueue, type FrontDoor, jobBase } from './admission.js';
import { type ChatRequest, chatDoor } from './chat.js';
import { respondWithResult, respondWithStream, type StreamStyle } from './relay-response.js';

/**
 * POST /v1/responses (SPEC §1b): OpenAI's Responses API, translated to a chat request at admission (so the
 * hold is the chat body's worst case, previous conversation included) and served by the chat job on any
 * channel type; the worker answers in the Responses format (workers/responses.ts). GET /v1/responses/{id}
 * returns a stored response to keys of its account.
 */

interface Translation {
  chat: ChatRequest;
  /** index in chat.messages where the conversation to store begins (after this turn's instructions) */
  conversationFrom: number;
}

/** The chat translation of each admitted body, made once by `load` (which may read the previous conversation). */
const translations = new WeakMap<ResponsesRequest, Translation>();

function translationOf(body: ResponsesRequest): Translation {
  const translation = translations.get(body);
  if (!translation) throw new Error('a Responses body reached admission without its translation');
  return translation;
}

const previousNotFound = (id: string) =>
  new ApiError('not_found', `previous response with id ${JSON.stringify(id)} not found`, { param: 'previous_response_id' });

/** A 400 about the translated chat body, told in the Responses request's terms (`input`, `input_image`). */
function inResponsesTerms(err: unknown): unknown {
  if (!(err instanceof ApiError) || err.extra.param !== 'messages') return err;
  const message = err.message.replace(/^messages:/, 'input:').replace('image_url parts', 'input_image parts');
  return new ApiError(err.code, message, { ...err.extra, param: 'input' });
}

export const responsesDoor: FrontDoor<ResponsesRequest> = {
  endpoint: '/v1/responses',
  modality: 'chat',
  schema: responsesRequestSchema,
  checkBody: checkResponsesRequest,
  async load(ctx, body) {
    let prior: ChatMessage[] | undefined;
    if (body.previous_response_id) {
      prior = await loadConversation(ctx.services.db, body.previous_response_id, claimedCustomer(ctx).key.userId);
      if (!prior) throw previousNotFound(body.previous_response_id);
    }
    const { chat } = toChatRequest(body, prior);
    translations.set(body, { chat: chat as ChatRequest, conversationFrom: body.instructions ? 1 : 0 });
  },
  demand(body, model) {
    try {
      return chatDoor.demand(translationOf(body).chat, model);
    } catch (err) {
      throw inResponsesTerms(err);
    }
  },
  worstCase: (body, model) => chatDoor.worstCase(translationOf(body).chat, model),
};

/** Responses streams: comments as keep-alives; a failure after the 200 is an `error` event (ResponseErrorEvent + SPEC §2 `error`). */
const responsesStreamStyle: StreamStyle = {
  includeUsage: false,
  doneMarker: false,
  keepAlive: (sse) => sse.comment('keep-alive'),
  errorEvent: (error, eventsWritten) => {
    const wire = error.toJSON();
    return errorEvent(wire.error, eventsWritten, wire);
  },
};

/** POST /v1/responses, after admission: the chat job (wire `responses`), then the relayed response or event stream. */
export async function createResponse(ctx: AppContext): Promise<void> {
  const { body, model, reservation } = admitted<ResponsesRequest>(ctx);
  const { chat, conversationFrom } = translationOf(body);
  const stream = body.stream === true;
  const upstreamBody: Record<string, unknown> = { ...chat, model: model.upstreamModel };
  // no limit, or one above the model's max_output_tokens: the limit the hold covers
  if (body.max_output_tokens == null || body.max_output_tokens > reservation.maxOutputTokens)
    upstreamBody.max_tokens = reservation.maxOutputTokens;
  const job: ChatJobData = {
    ...jobBase(ctx, 'chat'),
    kind: 'chat',
    wire: 'responses',
    stream,
    body: upstreamBody,
    responses: { echo: echoOf(body, ctx.state.requestId, model.id), conversationFrom },
  };
  const relay = await enqueue(ctx, job);
  if (stream) await respondWithStream(ctx, relay, job, responsesStreamStyle);
  else await respondWithResult(ctx, relay, job);
}

/**
 * The lookup step of GET /v1/responses/{id}, which is also its key step: a stored, unexpired response of the
 * key's own account; anything else 404 (before the RPM step, as an unknown model id is).
 */
export const responseFromPath: AppMiddleware = async (ctx, next) => {
  const id = String(ctx.params.id ?? '');
  const check = async () => {
    const response = await loadResponse(ctx.services.db, id, claimedCustomer(ctx).key.userId);
    if (!response) throw new ApiError('not_found', `response with id ${JSON.stringify(id)} not found`, { param: 'id' });
    ctx.state.storedResponse = response;
  };
  await confirmCustomer(ctx, { check, countsRpm: true });
  await next();
};

/** GET /v1/responses/{id} (after the RPM step). */
export async function retrieveResponse(ctx: AppContext): Promise<void> {
  principal(ctx, 'customer');
  if (!ctx.state.storedResponse) throw new Error('handler reached without its lookup');
  ctx.body = ctx.state.storedResponse;
}
