// Maps failures to the statuses of the README ("HTTP API"). Bad input gets a clear 4xx; a dependency that
// is down gets 503 with Retry-After, so devices back off and retry; only our own bugs are 500.
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { AppError } from '../shared/errors.ts'
import { isRedisUnavailable } from '../shared/redis-errors.ts'

declare module 'fastify' {
  interface FastifyReply {
    /** The `code` of the error answer, set by errorHandler; the metrics plugin counts refusals by it. */
    errorCode?: string
  }
}

/** An answer decided on purpose: `code` is the `error` field of the JSON answer and the metrics' reason. */
export class HttpError extends AppError {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    readonly retryAfter?: number,
  ) {
    super(message)
  }
}

export const unavailable = (what: string) => new HttpError(503, 'unavailable', `${what} is unavailable, retry later`, 5)

/** Retry-After is whole seconds; never 0, or a device would come straight back. */
const seconds = (ms: number) => Math.max(1, Math.ceil(ms / 1000))

/** 429 (docs/architecture.md §1: the one 4xx that means "later", with Retry-After). `code` tells the limits apart in logs and metrics. */
export const rateLimited = (code: 'rate_limited' | 'ip_rate_limited' | 'byte_budget_exceeded', retryAfterMs: number) =>
  new HttpError(429, code, 'too many requests, retry later', seconds(retryAfterMs))

/** 503 because the pipeline is saturated (gateway/backlog.ts), not because something is down. */
export const overloaded = (reason: 'backlog' | 'staged_media' | 'redis_memory', retryAfterS: number) =>
  new HttpError(503, `overloaded_${reason}`, 'the service is busy, retry later', retryAfterS)

/** Dependency failures other than Redis: S3 unreachable or refusing. */
export function isStorageUnavailable(err: unknown): boolean {
  const e = err as { code?: string; statusCode?: number }
  return (
    ['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH'].includes(e?.code ?? '') ||
    (e?.statusCode !== undefined && e.statusCode >= 500)
  )
}

export function errorHandler(err: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  let status: number
  let code: string
  let message: string
  let retryAfter: number | undefined
  if (err instanceof HttpError) {
    ;({ statusCode: status, code, message, retryAfter } = err)
  } else if (isRedisUnavailable(err)) {
    ;[status, code, message, retryAfter] = [503, 'unavailable', 'queue is unavailable, retry later', 5]
  } else if (err.statusCode === 413 || err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    ;[status, code, message] = [413, 'too_large', 'body is too large']
  } else if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
    // Fastify's own client errors (bad content length, unsupported media type, ...).
    ;[status, code, message] = [err.statusCode, err.code ?? 'bad_request', err.message]
  } else {
    ;[status, code, message] = [500, 'internal', 'internal error']
  }
  if (status >= 500 && status !== 503) request.log.error({ err }, 'request failed')
  else request.log.info({ status, code, reason: message }, 'request refused')
  if (retryAfter) reply.header('retry-after', String(retryAfter))
  reply.errorCode = code
  reply.code(status).send({ error: code, message })
}
