// The gateway's HTTP contract as TypeBox schemas, one entry per route. `npm run openapi`
// (gateway/openapi.ts) turns them into docs/openapi.json and into gateway/route-schemas.json, the
// same schemas as plain JSON Schema, which the route plugins give Fastify (typed through
// @fastify/type-provider-typebox). The gateway process itself never imports this file: TypeBox
// costs about 24 MB of RSS (test/gateway-footprint.test.ts). test/openapi.test.ts fails when the
// document, the generated files and the routes disagree.
//
// Leniency (docs/architecture.md §1: the real client retries every status but 200/201/409 for ever):
// - no `body` schema: bodies are read raw by each route's own content-type parser, whatever
//   their Content-Type, and a session that breaks SessionBody is still stored, flagged. The
//   request bodies are described in `requestBody` (OpenAPI only), never given to Fastify;
// - `params` are enforced with exactly the rule of routes/params.ts (the same regular
//   expression, the same 400 body), and the DSN token is not checked by its schema: a malformed
//   token is an unknown token, 403 (auth.ts);
// - `headers` are described, never enforced (routes/params.ts);
// - `response` schemas serialise bodies that have exactly these fields, so nothing is stripped.
import Type, { type TSchema } from 'typebox'
import { ID_PATTERN } from '../shared/ids.ts'
import { SessionBody } from '../shared/session-schema.ts'

// --- Parameters ---------------------------------------------------------------------------

const Dsn = Type.String({
  description:
    'The DSN token (`rdt_` followed by 43 base64url characters), as printed by `token create`. The device is configured with the DSN, the base URL `https://<host>/ingest/<token>`, and appends the rest of the path. An unknown, malformed, revoked or expired token, or one without the permission, is answered 403.',
})

const id = (description: string) => Type.String({ pattern: ID_PATTERN.source, description })

const SessionId = id(
  'The test session GUID, as the device sends it. 1 to 128 characters of `[0-9A-Za-z_-]`; anything else is 400 `invalid_id`.',
)
const MediaId = id(
  'The image key: `raw`, `cropped`, `secondary_raw`, `secondary_cropped` or `attempt_{n}_{key}` from RDToolkit; any id of 1 to 128 characters of `[0-9A-Za-z_-]` is accepted, anything else is 400 `invalid_id`.',
)

export const SessionParams = Type.Object({ dsn: Dsn, session: SessionId })
export const MediaParams = Type.Object({ dsn: Dsn, session: SessionId, media: MediaId })

// --- Headers (described, never enforced) --------------------------------------------------

const JsonHeaders = Type.Object(
  {
    'content-encoding': Type.Optional(
      Type.String({
        description:
          '`identity` (or none) or `gzip` / `x-gzip`: the body is inflated, with the size limit applied to the inflated bytes. Any other coding is 415.',
      }),
    ),
  },
  { additionalProperties: true },
)

const MediaHeaders = Type.Object(
  {
    'content-encoding': Type.Optional(Type.String({ description: 'Must be absent or `identity`; anything else is 415.' })),
    'content-disposition': Type.Optional(
      Type.String({
        description:
          'Optional, e.g. `attachment; filename=20210125_111802_cropped.jpg`. The filename (only its last path segment, at most 255 characters; `filename*` wins) is kept as metadata and never used in a storage path. A malformed value is ignored, never refused.',
      }),
    ),
  },
  { additionalProperties: true },
)

// --- Bodies -------------------------------------------------------------------------------

/** What every 201 says. */
const Accepted = (description: string) => Type.Object({ status: Type.Literal('accepted') }, { description })

/** Every refusal: a machine-readable `error` and a `message` for people. Neither ever contains the token or the URL. */
const ErrorBody = (codes: string[], description: string) =>
  Type.Object(
    {
      error: Type.String({ description: 'Machine-readable reason.', examples: codes }),
      message: Type.String({ description: 'For people. Never contains the DSN token or the URL.' }),
    },
    { description },
  )

/** A log entry as RDToolkit sends it (docs/architecture.md §1). Documentation only. */
const LogEntry = Type.Object(
  {
    timestamp: Type.String({ format: 'date-time' }),
    tag: Type.String(),
    message: Type.String(),
    json: Type.Optional(
      Type.Union([Type.Object({}, { additionalProperties: true }), Type.String()], {
        description: 'An object (what RDToolkit sends) or a string (what the spec says); either is kept.',
      }),
    ),
    media_key: Type.Optional(Type.String({ description: 'The image key this entry is about, e.g. `attempt_1_cropped`.' })),
  },
  { additionalProperties: true },
)

export const LogsBody = Type.Object(
  { entries: Type.Array(LogEntry) },
  {
    additionalProperties: true,
    description:
      'The trace log of one session. Any JSON object or array is accepted: a bare array is taken as the entries; entries that break this shape, and fields besides `entries`, are stored flagged. The exact body is kept; at most LOGS_MAX_ENTRIES (10,000 by default) entries become documents.',
  },
)

// --- Responses shared by the ingest routes --------------------------------------------------

const RETRY_AFTER = {
  'Retry-After': {
    description: 'Whole seconds to wait before retrying (at least 1).',
    required: true,
    schema: { type: 'integer', minimum: 1 },
  },
}

interface ResponseDoc {
  description: string
  headers?: Record<string, unknown>
}

/** The statuses every ingest route can answer besides its own, with the error codes each carries. */
function ingestErrors(o: { codes400: string[]; bad400: string; limit413: string; text415: string }) {
  const schema = {
    400: ErrorBody(
      ['invalid_id', ...o.codes400, 'bad_url', 'bad_request'],
      'Nothing was stored; the same request will get the same answer.',
    ),
    403: ErrorBody(['forbidden'], 'Nothing was stored.'),
    408: ErrorBody(['request_timeout'], 'Written by Node.js itself; the connection is closed.'),
    413: ErrorBody(['too_large'], 'Nothing was stored.'),
    414: ErrorBody(['bad_url'], 'Nothing was stored.'),
    415: ErrorBody(['unsupported_encoding'], 'Nothing was stored.'),
    429: ErrorBody(
      ['rate_limited', 'byte_budget_exceeded', 'too_many_in_flight', 'ip_rate_limited'],
      'Nothing was stored; retry after Retry-After.',
    ),
    431: ErrorBody(['header_too_large'], 'Written by Node.js itself; the connection is closed.'),
    503: ErrorBody(
      ['unavailable', 'overloaded_backlog', 'overloaded_staged_media', 'overloaded_redis_memory'],
      'Nothing was stored; retry after Retry-After.',
    ),
  }
  const docs: Record<keyof typeof schema, ResponseDoc> = {
    400: {
      description: `Unusable request: a path id is invalid (\`invalid_id\`), ${o.bad400}, the URL has bad percent-encoding (\`bad_url\`), or Node.js's HTTP parser refused the request (\`bad_request\`, the connection is closed).`,
    },
    403: {
      description:
        'The token is unknown, malformed, revoked or expired, its workspace is inactive, or the token lacks the permission for this route (`forbidden`).',
    },
    408: {
      description:
        'The request did not arrive in time: its headers within HEADERS_TIMEOUT_MS or the whole request within REQUEST_TIMEOUT_MS (`request_timeout`). The connection is closed.',
    },
    413: { description: `The body is larger than ${o.limit413} (\`too_large\`).` },
    414: { description: 'A path segment is longer than 1024 characters (`bad_url`).' },
    415: { description: o.text415 },
    429: {
      description:
        'The token sent more than its rate limit (`rate_limited`), its workspace sent more than WORKSPACE_BYTES_PER_MINUTE (`byte_budget_exceeded`), the token already has MAX_IN_FLIGHT_PER_TOKEN uploads in flight on this gateway (`too_many_in_flight`), or the token is unknown and its client address sent too many unknown tokens (`ip_rate_limited`). Retry after `Retry-After`.',
      headers: RETRY_AFTER,
    },
    431: { description: 'The request headers are larger than 16 KB (`header_too_large`). The connection is closed.' },
    503: {
      description:
        'Redis or object storage is unreachable, or the token registry is not loaded yet (`unavailable`); or the pipeline is saturated: a queue backlog (`overloaded_backlog`), staged photo bytes (`overloaded_staged_media`) or Redis memory (`overloaded_redis_memory`). Retry after `Retry-After`.',
      headers: RETRY_AFTER,
    },
  }
  return { schema, docs }
}

const JSON_LIMIT = 'MAX_JSON_BYTES (as received, after gzip inflation, and as UTF-8 text once invalid bytes are replaced)'
const JSON_415 =
  'A `Content-Encoding` other than `identity`, `gzip` or `x-gzip` (`unsupported_encoding`). Never given for a `Content-Type`: any value is accepted, even a malformed one.'

const sessionErrors = ingestErrors({
  codes400: ['invalid_json', 'not_an_object', 'bad_encoding'],
  bad400: 'the body is not JSON (`invalid_json`) or not a JSON object (`not_an_object`), the gzip body is corrupt (`bad_encoding`)',
  limit413: JSON_LIMIT,
  text415: JSON_415,
})
const logsErrors = ingestErrors({
  codes400: ['invalid_json', 'not_an_object', 'bad_encoding'],
  bad400:
    'the body is not JSON (`invalid_json`) or is neither an object nor an array (`not_an_object`), the gzip body is corrupt (`bad_encoding`)',
  limit413: JSON_LIMIT,
  text415: JSON_415,
})
const mediaErrors = ingestErrors({
  codes400: ['aborted'],
  bad400: 'the upload ended before its declared length (`aborted`)',
  limit413: 'MAX_MEDIA_BYTES (the declared Content-Length, checked before a byte is read, or the bytes received)',
  text415:
    'Any `Content-Encoding` other than `identity` (`unsupported_encoding`). Never given for a `Content-Type`: any value is accepted, even a malformed one.',
})

// --- The routes -----------------------------------------------------------------------------

/** An ingest route: its params and headers, the refusals, and its own answers (201, and 409 where it has one). */
function ingestSchema<P extends TSchema, H extends TSchema, R extends Record<number, TSchema>>(
  params: P,
  headers: H,
  errors: ReturnType<typeof ingestErrors>,
  own: R,
) {
  return { params, headers, response: { ...own, ...errors.schema } }
}

/** The 409 of the routes that take one upload per id. */
const Conflict = (description: string) => ErrorBody(['conflict', 'deleted'], description)
/** Every upload of a deleted session (README "Deletion"). */
const DELETED_409 = ' `deleted`: an operator deleted this session; its data is not stored again.'

export const sessionSchema = ingestSchema(SessionParams, JsonHeaders, sessionErrors, {
  201: Accepted('Accepted: queued for storage.'),
  409: Conflict('`conflict`: this session GUID is already stored in this workspace.' + DELETED_409),
})

export const logsSchema = ingestSchema(SessionParams, JsonHeaders, logsErrors, {
  201: Accepted('Accepted (or a byte-identical replay of a batch already accepted).'),
  409: ErrorBody(['deleted'], DELETED_409.trim()),
})

export const mediaSchema = ingestSchema(MediaParams, MediaHeaders, mediaErrors, {
  201: Accepted('Accepted: the photo is staged and queued for storage.'),
  409: Conflict('`conflict`: this media id is already stored for this session.' + DELETED_409),
})

export const healthzSchema = {
  response: { 200: Type.Object({ status: Type.Literal('ok') }) },
}

export const readyzSchema = {
  response: {
    200: Type.Object({ status: Type.Literal('ready') }),
    503: Type.Object({
      status: Type.Literal('unavailable'),
      redis: Type.String({ description: '`down` or `loading scripts`.', examples: ['down', 'loading scripts'] }),
    }),
  },
}

// --- The table the document is generated from -------------------------------------------------

export interface RouteSchema {
  params?: TSchema
  headers?: TSchema
  response: Record<number, TSchema>
}

export interface ApiRoute {
  method: 'GET' | 'PUT'
  /** In Fastify's form (`:name`); every route is also served with a trailing slash. */
  url: string
  operationId: string
  tag: 'ingest' | 'health'
  summary: string
  description: string
  schema: RouteSchema
  /** OpenAPI only: never given to Fastify, so never enforced. */
  requestBody?: { description: string; content: Record<string, { schema?: unknown }> }
  /** One entry per status in `schema.response`. */
  responses: Record<number, ResponseDoc>
}

const STORED = 'The data is stored (or queued for storage, durably): the device may delete its copy.'
const ANY_TYPE =
  'Any `Content-Type` is accepted, even a missing or malformed one (RDToolkit sends `application/json; charset=utf-8`); the body is read as bytes and kept exactly.'

export const apiRoutes: ApiRoute[] = [
  {
    method: 'PUT',
    url: '/ingest/:dsn/test_session/:session',
    operationId: 'putTestSession',
    tag: 'ingest',
    summary: 'Upload a finished test session',
    description:
      'The session JSON, sent first. Idempotent per (workspace, session GUID): the first upload is answered 201, every later one 409, whatever its body. A later body that differs is kept for operators (`test_session_conflicts`) but does not replace the first. Also served as `/ingest/{dsn}/test_session/{session}/`, which is what RDToolkit sends.',
    schema: sessionSchema,
    requestBody: {
      description: `A test session as RDToolkit sends it, described by SessionBody. Accepted even when it does not match: any JSON object is stored, flagged with \`validation.ok: false\` and the reasons. Only a body that is not JSON, or not a JSON object, is refused (400). ${ANY_TYPE} At most MAX_JSON_BYTES (5 MiB by default).`,
      content: { 'application/json': { schema: { $ref: '#/components/schemas/SessionBody' } }, '*/*': {} },
    },
    responses: {
      201: { description: `Accepted. ${STORED}` },
      409: {
        description: `The session GUID already exists in this workspace. Treat it as success, as RDToolkit does: ${STORED.charAt(0).toLowerCase() + STORED.slice(1)} A different body under the same GUID is kept in \`test_session_conflicts\`, never silently dropped. Also the answer (\`deleted\`) for a session an operator deleted, whose data is not stored again.`,
      },
      ...sessionErrors.docs,
    },
  },
  {
    method: 'PUT',
    url: '/ingest/:dsn/test_session/:session/logs',
    operationId: 'putTestSessionLogs',
    tag: 'ingest',
    summary: "Upload a session's trace logs",
    description:
      'The log entries of a session, sent after the session. A byte-identical replay is stored once and answered 201 again; a batch with different bytes is another batch. The only 409 is for a session an operator deleted. Also served with a trailing slash, which is what RDToolkit sends.',
    schema: logsSchema,
    requestBody: {
      description: `Log entries, described by LogsBody. Accepted even when they do not match: any JSON object or array is stored, flagged. Only a body that is not JSON, or a JSON scalar, is refused (400). ${ANY_TYPE} At most MAX_JSON_BYTES.`,
      content: { 'application/json': { schema: { $ref: '#/components/schemas/LogsBody' } }, '*/*': {} },
    },
    responses: {
      201: { description: `Accepted, or a byte-identical replay of a batch already accepted. ${STORED}` },
      409: {
        description: `The session was deleted by an operator (\`deleted\`): nothing is stored. Treat it as success, as RDToolkit does.`,
      },
      ...logsErrors.docs,
    },
  },
  {
    method: 'PUT',
    url: '/ingest/:dsn/test_session/:session/media/:media',
    operationId: 'putTestSessionMedia',
    tag: 'ingest',
    summary: 'Upload one photo of a session',
    description:
      'One image, sent as the raw file (photos of one session may be sent in parallel, and before the session itself). Idempotent per (workspace, session, media id): the first upload is answered 201, every later one 409 (often before its body is read; the body is then read and discarded so that the client sees the answer). `Content-Length` or chunked transfer encoding. Also served with a trailing slash, which is what RDToolkit sends.',
    schema: mediaSchema,
    requestBody: {
      description:
        'The image bytes, unchanged (RDToolkit sends full-resolution JPEGs of 1–6 MB with `Content-Type: image/jpeg`). Any `Content-Type` is accepted and kept as metadata; the stored type is sniffed from the bytes. At most MAX_MEDIA_BYTES (50 MiB by default).',
      content: { 'image/jpeg': {}, '*/*': {} },
    },
    responses: {
      201: { description: `Accepted. ${STORED}` },
      409: {
        description: `This media id already exists for this session, or (\`deleted\`) an operator deleted the session and nothing is stored. Treat it as success, as RDToolkit does: ${STORED.charAt(0).toLowerCase() + STORED.slice(1)}`,
      },
      ...mediaErrors.docs,
    },
  },
  {
    method: 'GET',
    url: '/healthz',
    operationId: 'getHealthz',
    tag: 'health',
    summary: 'Liveness',
    description: 'Answers 200 while the process runs; never depends on Redis.',
    schema: healthzSchema,
    responses: { 200: { description: 'The process runs.' } },
  },
  {
    method: 'GET',
    url: '/readyz',
    operationId: 'getReadyz',
    tag: 'health',
    summary: 'Readiness',
    description: 'Answers 200 when Redis answers and holds every Lua script the gateway runs, else 503.',
    schema: readyzSchema,
    responses: {
      200: { description: 'Ready to accept uploads.' },
      503: { description: 'Redis is down, or its scripts are being loaded. Retry after `Retry-After`.', headers: RETRY_AFTER },
    },
  },
]

/** The request bodies, as `components.schemas` of the document. */
export const bodySchemas = { SessionBody, LogsBody }

/** What gateway/route-schemas.json holds (and route-schemas.ts exports), as plain JSON Schema (one entry per schema the routes use). */
export const routeSchemaExports = { sessionSchema, logsSchema, mediaSchema, healthzSchema, readyzSchema }
