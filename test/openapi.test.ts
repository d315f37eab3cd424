// The OpenAPI document (docs/openapi.json) against the gateway: the committed file is what the
// schemas generate, it is structurally OpenAPI 3.1, its paths, methods, parameters and statuses
// are exactly the routes the real gateway registers (with the very schemas they were given),
// and the answers of a real gateway match the documented bodies.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { request } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Compile } from 'typebox/compile'
import { buildGateway } from '../gateway/app.ts'
import { buildOpenApi, OPENAPI_FILE, openApiJson, openApiPath, ROUTE_SCHEMAS_FILE, routeSchemasJson } from '../gateway/openapi.ts'
import { ingestValidatorCompiler } from '../gateway/routes/params.ts'
import * as routeSchemas from '../gateway/route-schemas.ts'
import { routeSchemaExports } from '../gateway/schemas.ts'
import { HttpError } from '../gateway/errors.ts'
import { asRole, testConfig } from './helpers/env.ts'
import { fixturesDir } from '../testing/fixtures.ts'
import { seedToken } from '../testing/seed.ts'
import { fakeJpeg } from '../testing/media.ts'

// The document is walked by key path; each walk asserts what it finds.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = Record<string, any>
const doc = buildOpenApi() as Json
const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace']

t.test('docs/openapi.json and gateway/route-schemas.json are the committed output of `npm run openapi`', async (t) => {
  t.equal(readFileSync(OPENAPI_FILE, 'utf8'), openApiJson(), 'docs/openapi.json is stale: run `npm run openapi` and commit it')
  t.equal(
    readFileSync(ROUTE_SCHEMAS_FILE, 'utf8'),
    routeSchemasJson(),
    'gateway/route-schemas.json is stale: run `npm run openapi` and commit it',
  )
  t.same(
    Object.keys(routeSchemas).sort(),
    Object.keys(routeSchemaExports).sort(),
    'gateway/route-schemas.ts exports every generated schema, and only those',
  )
})

t.test('the document is structurally OpenAPI 3.1', async (t) => {
  t.match(doc.openapi, /^3\.1\.\d+$/)
  t.type(doc.info?.title, 'string')
  t.type(doc.info?.version, 'string')
  t.ok(Array.isArray(doc.servers) && doc.servers.length > 0, 'servers')
  for (const server of doc.servers) {
    for (const v of server.url.match(/\{([^}]+)\}/g) ?? [])
      t.ok(server.variables?.[v.slice(1, -1)]?.default !== undefined, `server variable ${v} has a default`)
  }
  const operationIds = new Set<string>()
  for (const [path, item] of Object.entries(doc.paths as Json)) {
    t.match(path, /^\//, `${path} starts with /`)
    const templated = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1])
    for (const [method, op] of Object.entries(item as Json)) {
      t.ok(METHODS.includes(method), `${method} is an HTTP method`)
      t.notOk(operationIds.has(op.operationId), `${op.operationId} is unique`)
      operationIds.add(op.operationId)
      const pathParams = (op.parameters ?? []).filter((p: Json) => p.in === 'path')
      t.same(
        pathParams.map((p: Json) => p.name).sort(),
        [...templated].sort(),
        `${method} ${path}: every template variable is a path parameter and vice versa`,
      )
      for (const p of op.parameters ?? []) {
        t.ok(['path', 'query', 'header', 'cookie'].includes(p.in), `${p.name}: valid "in"`)
        if (p.in === 'path') t.equal(p.required, true, `${p.name}: path parameters are required`)
        if (p.in === 'header')
          t.notOk(
            ['accept', 'content-type', 'authorization'].includes(p.name.toLowerCase()),
            `${p.name}: OpenAPI ignores this header parameter`,
          )
        t.ok(p.schema, `${p.name} has a schema`)
      }
      t.ok(Object.keys(op.responses ?? {}).length > 0, `${method} ${path} has responses`)
      for (const [status, res] of Object.entries(op.responses as Json)) {
        t.match(status, /^[1-5]\d\d$/, 'status code')
        t.type(res.description, 'string', `${method} ${path} ${status} has a description`)
        t.ok(res.description.length > 0)
      }
      if (op.requestBody) t.ok(Object.keys(op.requestBody.content ?? {}).length > 0, 'requestBody has content')
    }
  }
  // Every $ref resolves.
  const refs = JSON.stringify(doc).match(/"\$ref":"[^"]+"/g) ?? []
  t.ok(refs.length > 0)
  for (const ref of refs) {
    const target = ref.slice(8, -1)
    t.match(target, /^#\//)
    let node: unknown = doc
    for (const part of target.slice(2).split('/')) node = (node as Json | undefined)?.[part]
    t.ok(node, `${target} resolves`)
  }
})

t.test('the routes of the real gateway and the document agree', async (t) => {
  const config = testConfig()
  const app = await buildGateway({ config: asRole(config, 'gateway'), logger: false })
  t.teardown(() => app.close())
  await app.ready()
  const routes = app.gatewayRoutes.filter((r) => r.method !== 'HEAD')
  const documented = Object.entries(doc.paths as Json).flatMap(([path, item]) =>
    Object.keys(item as Json).map((m) => `${m.toUpperCase()} ${path}`),
  )
  t.same(routes.map((r) => `${r.method} ${openApiPath(r.url)}`).sort(), documented.sort(), 'the same methods and paths')

  const plain = (s: unknown) => JSON.parse(JSON.stringify(s))
  for (const route of routes) {
    const op = doc.paths[openApiPath(route.url)]?.[route.method.toLowerCase()]
    if (!op) continue
    const name = `${route.method} ${route.url}`
    const schema = route.schema as { params?: Json; headers?: Json; response?: Json; body?: unknown } | undefined
    t.ok(schema?.response, `${name} has response schemas`)
    t.equal(schema?.body, undefined, `${name} has no body schema: bodies stay raw and lenient`)
    t.same(Object.keys(op.responses).sort(), Object.keys(schema?.response ?? {}).sort(), `${name}: the same statuses`)
    for (const [status, body] of Object.entries(schema?.response ?? {})) {
      t.same(
        op.responses[status]?.content?.['application/json']?.schema,
        plain(body),
        `${name} ${status}: the documented body is the serialisation schema`,
      )
    }
    const params = (kind: string) => (op.parameters ?? []).filter((p: Json) => p.in === kind)
    t.same(
      params('path').map((p: Json) => [p.name, p.schema]),
      Object.entries(schema?.params?.properties ?? {}).map(([n, s]) => [n, plain(s)]),
      `${name}: the same path parameters`,
    )
    t.same(
      params('header').map((p: Json) => [p.name, p.schema]),
      Object.entries(schema?.headers?.properties ?? {}).map(([n, s]) => [n, plain(s)]),
      `${name}: the same header parameters`,
    )
    // 429 and 503 always come with Retry-After.
    for (const status of ['429', '503'])
      if (op.responses[status]) t.ok(op.responses[status].headers?.['Retry-After'], `${name} ${status} documents Retry-After`)
  }
})

t.test('params are validated with the 400 body of routes/params.ts; headers are never enforced', async (t) => {
  const compile = (schema: unknown, httpPart: string) =>
    ingestValidatorCompiler({ schema: schema as Json, httpPart, method: 'PUT', url: '/x' }) as (v: unknown) => { error?: HttpError }
  const params = compile(routeSchemas.mediaSchema.params, 'params')
  t.same(params({ dsn: 'anything at all', session: 's-1', media: 'cropped' }).error, undefined, 'any DSN string and valid ids pass')
  const bad = params({ dsn: 'x', session: 's-1', media: 'a'.repeat(129) }).error as HttpError
  t.ok(bad instanceof HttpError)
  t.same([bad.statusCode, bad.code, bad.message], [400, 'invalid_id', 'media must match [0-9A-Za-z_-]{1,128}'])
  t.equal(params({ dsn: 'x', session: 'a/b', media: 'm' }).error?.message, 'session must match [0-9A-Za-z_-]{1,128}')
  t.equal(params({ dsn: 'x', session: 's', media: 'm' }), true)
  const headers = compile(routeSchemas.sessionSchema.headers, 'headers')
  t.equal(headers({ 'content-encoding': ['odd', 'array'] }), true, 'headers are never refused')
  t.throws(
    () => compile({ type: 'object', properties: { id: { type: 'string', maxLength: 3 } } }, 'params'),
    /params\.id must be/,
    'a keyword the compiler does not check stops the start',
  )
  t.throws(() => compile({ type: 'object' }, 'body'), /params only/, 'no body schema on an ingest route')
})

t.test('the answers of a real gateway match the documented bodies and statuses', async (t) => {
  const config = testConfig({ MAX_JSON_BYTES: String(64 * 1024) })
  const seeded = await seedToken(config)
  const app = await buildGateway({ config: asRole(config, 'gateway'), logger: false })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const port = (app.server.address() as AddressInfo).port

  function send(method: string, path: string, body?: Buffer | string, headers: Record<string, string | number> = {}) {
    return new Promise<{ status: number; body: string; headers: Record<string, unknown> }>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port,
          method,
          path,
          headers: body === undefined ? headers : { 'content-length': Buffer.byteLength(body), ...headers },
        },
        (res) => {
          let text = ''
          res.on('data', (c) => (text += c))
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, headers: res.headers }))
        },
      )
      req.on('error', reject)
      req.end(body)
    })
  }
  /** Checks the answer against the document's operation for `template` (its path, OpenAPI form). */
  async function check(
    method: string,
    template: string,
    path: string,
    expected: number,
    body?: Buffer | string,
    headers: Record<string, string | number> = {},
  ) {
    const res = await send(method, path, body, headers)
    const label = `${method} ${path.replace(seeded.token, '{dsn}').slice(0, 120)} → ${expected}`
    t.equal(res.status, expected, `${label} (${res.body.slice(0, 200)})`)
    const documented = doc.paths[template][method.toLowerCase()].responses[String(res.status)]
    t.ok(documented, `${label}: the status is documented`)
    if (!documented) return
    const schema = documented.content['application/json'].schema
    t.ok(Compile(schema).Check(JSON.parse(res.body)), `${label}: the body matches the documented schema`)
    for (const h of Object.keys(documented.headers ?? {})) t.ok(res.headers[h.toLowerCase()], `${label}: ${h} is sent`)
  }

  const sessionBody = readFileSync(new URL('session-rdtoolkit.json', fixturesDir))
  const logsBody = readFileSync(new URL('logs-rdtoolkit.json', fixturesDir))
  const json = { 'content-type': 'application/json; charset=utf-8' }
  const S = '/ingest/{dsn}/test_session/{session}'
  const L = `${S}/logs`
  const M = `${S}/media/{media}`
  const base = `/ingest/${seeded.token}/test_session`

  // Sessions: both slash forms, replays, leniency, refusals.
  await check('PUT', S, `${base}/oa-1/`, 201, sessionBody, json)
  await check('PUT', S, `${base}/oa-2`, 201, sessionBody, json)
  await check('PUT', S, `${base}/oa-1`, 409, sessionBody, json)
  await check('PUT', S, `${base}/oa-3/`, 201, '{"state": 42}', { 'content-type': ';;;' })
  await check('PUT', S, `${base}/oa-4/`, 201, '{}', {})
  await check('PUT', S, `${base}/oa-5/`, 400, 'not json', json)
  await check('PUT', S, `${base}/${'a'.repeat(129)}/`, 400, sessionBody, json)
  await check('PUT', S, `/ingest/rdt_unknown/test_session/${'a'.repeat(129)}/`, 400, sessionBody, json) // an invalid id comes before the token
  await check('PUT', S, `/ingest/rdt_unknown/test_session/oa-6/`, 403, sessionBody, json)
  await check('PUT', S, `${base}/oa-7`, 413, Buffer.alloc(65 * 1024, 0x20), json)
  await check('PUT', S, `${base}/oa-8`, 415, sessionBody, { ...json, 'content-encoding': 'br' })
  await check('PUT', S, `${base}/${'a'.repeat(1100)}`, 414, sessionBody, json)
  await check('PUT', S, `${base}/%E0%A4%A/`, 400, sessionBody, json)
  // Logs: a replay is 201 again.
  await check('PUT', L, `${base}/oa-1/logs/`, 201, logsBody, json)
  await check('PUT', L, `${base}/oa-1/logs`, 201, logsBody, json)
  await check('PUT', L, `${base}/oa-1/logs/`, 400, '"a string"', json)
  await check('PUT', L, `${base}/oa-1/logs/`, 415, logsBody, { ...json, 'content-encoding': 'deflate' })
  // Media.
  const jpeg = fakeJpeg(50_000)
  const photo = { 'content-type': 'image/jpeg', 'content-disposition': 'attachment; filename=20210125_111802_cropped.jpg' }
  await check('PUT', M, `${base}/oa-1/media/cropped/`, 201, jpeg, photo)
  await check('PUT', M, `${base}/oa-1/media/raw`, 201, jpeg, {
    'content-type': 'garbage',
    'content-disposition': 'attachment; filename*=bogus',
  })
  await check('PUT', M, `${base}/oa-1/media/cropped`, 409, jpeg, photo)
  await check('PUT', M, `${base}/oa-1/media/${'m'.repeat(129)}/`, 400, jpeg, photo)
  await check('PUT', M, `${base}/oa-1/media/x/`, 415, jpeg, { ...photo, 'content-encoding': 'gzip' })
  await check('PUT', M, `/ingest/rdt_unknown/test_session/oa-1/media/x/`, 403, jpeg, photo)
  // Health.
  await check('GET', '/healthz', '/healthz/', 200)
  await check('GET', '/readyz', '/readyz', 200)
})
