// The gateway's API as an OpenAPI 3.1 document, generated from the TypeBox route schemas of
// gateway/schemas.ts. `npm run openapi` writes it to docs/openapi.json, and writes the same
// route schemas as plain JSON Schema to gateway/route-schemas.json, which the routes give Fastify
// through gateway/route-schemas.ts (the gateway process does not load TypeBox). The admin panel serves the document at /docs
// (admin/routes/docs.ts); test/openapi.test.ts fails when the document, the committed files
// and the routes disagree.
import { writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { apiRoutes, bodySchemas, routeSchemaExports, type ApiRoute } from './schemas.ts'

/** The version of the HTTP contract (not of the software): raise it when the contract changes. */
export const API_VERSION = '1.0.0'

/** `/ingest/:dsn/x` → `/ingest/{dsn}/x` */
export const openApiPath = (fastifyUrl: string) => fastifyUrl.replace(/:([A-Za-z0-9_]+)/g, '{$1}')

/** A TypeBox schema as plain JSON Schema (TypeBox keeps its own markers out of JSON). */
const plain = (schema: unknown) => JSON.parse(JSON.stringify(schema)) as Record<string, unknown>

const DESCRIPTION = `The HTTP API that the [RDToolkit](https://github.com/dimagi/rd-toolkit) app uploads finished rapid-diagnostic-test sessions to (the Cloudworks RDT API): the session JSON, its trace logs and its photos. Any client other than RDToolkit (a simulator, a second app) is written against this document.

**The DSN.** A device is configured with a DSN, a base URL \`https://<host>/ingest/<token>\` (printed by \`npm run cli -- token create\`). The client appends \`/test_session/{session}/\`, \`/test_session/{session}/logs/\` and \`/test_session/{session}/media/{media}/\`. Every route is served with and without the trailing slash. There is no other authentication: the token is the credential, so keep DSNs secret; answers never contain it.

**Order.** RDToolkit sends the session, then its logs, then its photos (in parallel), and may resend all three at any time. The server does not depend on the order.

**What an answer means.** 201: accepted, stored durably (or queued for storage). 409: already stored (a session GUID, or a media id of a session): a success too, as in RDToolkit, and the upload must not be repeated. A client deletes its copy on 201 or 409 only.

**Retries.** RDToolkit treats 200, 201 and 409 as success and retries every other status with exponential backoff (capped at 5 hours) for ever. The server is lenient for that reason: any Content-Type is accepted, a session or log body that breaks its schema is still stored (flagged), and a 4xx is given only when nothing useful could be stored. 429 and 503 always carry \`Retry-After\` (seconds): wait at least that long. Other 4xx answers will repeat for the same request; a client should keep the data and report the error rather than drop it. A connection that breaks before its answer arrives may have carried an accepted upload: retry it; the retry is then answered 409 (201 for an identical log batch).

**Errors.** Every refusal has the body \`{"error": <code>, "message": <text>}\`; the codes for each status are listed under its response.`

function operation(route: ApiRoute) {
  const params = (route.schema.params ?? { properties: {} }) as { properties: Record<string, { description?: string }> }
  const headers = (route.schema.headers ?? { properties: {} }) as {
    properties: Record<string, { description?: string }>
    required?: string[]
  }
  const parameters = [
    ...Object.entries(params.properties).map(([name, schema]) => ({
      name,
      in: 'path',
      required: true,
      description: schema.description,
      schema: plain(schema),
    })),
    ...Object.entries(headers.properties).map(([name, schema]) => ({
      name,
      in: 'header',
      required: headers.required?.includes(name) ?? false,
      description: schema.description,
      schema: plain(schema),
    })),
  ]
  const responses: Record<string, unknown> = {}
  for (const [status, body] of Object.entries(route.schema.response)) {
    const doc = route.responses[Number(status)]
    if (!doc) throw new Error(`${route.method} ${route.url}: response ${status} has a schema but no description`)
    responses[status] = {
      description: doc.description,
      ...(doc.headers ? { headers: doc.headers } : {}),
      content: { 'application/json': { schema: plain(body) } },
    }
  }
  for (const status of Object.keys(route.responses)) {
    if (!(status in route.schema.response))
      throw new Error(`${route.method} ${route.url}: response ${status} is described but has no schema`)
  }
  return {
    operationId: route.operationId,
    tags: [route.tag],
    summary: route.summary,
    description: route.description,
    ...(parameters.length ? { parameters } : {}),
    ...(route.requestBody ? { requestBody: { required: true, ...route.requestBody } } : {}),
    responses,
  }
}

export function buildOpenApi(): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {}
  for (const route of apiRoutes) {
    const path = openApiPath(route.url)
    const item = (paths[path] ??= {})
    item[route.method.toLowerCase()] = operation(route)
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'RDT ingest API',
      version: API_VERSION,
      summary: 'Where RDToolkit uploads test sessions, logs and photos.',
      description: DESCRIPTION,
    },
    servers: [
      {
        url: '{scheme}://{host}',
        description: 'The gateway (PUBLIC_URL). A DSN is this URL followed by `/ingest/{dsn}`.',
        variables: {
          scheme: { enum: ['https', 'http'], default: 'https', description: 'RDToolkit allows only https.' },
          host: { default: 'rdt.example.org' },
        },
      },
    ],
    tags: [
      { name: 'ingest', description: 'Uploads from devices, under the DSN.' },
      { name: 'health', description: 'For load balancers and orchestrators.' },
    ],
    paths,
    components: { schemas: Object.fromEntries(Object.entries(bodySchemas).map(([name, schema]) => [name, plain(schema)])) },
  }
}

/** The document as written to docs/openapi.json. */
export const openApiJson = () => JSON.stringify(buildOpenApi(), null, 2) + '\n'

/**
 * gateway/route-schemas.json: the route schemas as plain JSON Schema. Data, not code: the three
 * ingest routes share most of their answers, which a generated TypeScript file would spell out
 * three times; gateway/route-schemas.ts types them as their TypeBox originals.
 */
export const routeSchemasJson = () =>
  JSON.stringify(Object.fromEntries(Object.entries(routeSchemaExports).map(([name, schema]) => [name, plain(schema)])), null, 2) + '\n'

export const OPENAPI_FILE = fileURLToPath(new URL('../docs/openapi.json', import.meta.url))
export const ROUTE_SCHEMAS_FILE = fileURLToPath(new URL('./route-schemas.json', import.meta.url))

// `npm run openapi` (tsx gateway/openapi.ts) writes both files.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(OPENAPI_FILE, openApiJson())
  writeFileSync(ROUTE_SCHEMAS_FILE, routeSchemasJson())
  console.log(`wrote ${OPENAPI_FILE} and ${ROUTE_SCHEMAS_FILE}`)
}
