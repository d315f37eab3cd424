// Path ids, and the validator compiler the ingest routes give Fastify for their schemas
// (generated from gateway/schemas.ts into gateway/route-schemas.json).
import type { FastifySchemaCompiler } from 'fastify'
import { isValidId } from '../../shared/ids.ts'
import { HttpError } from '../errors.ts'

const invalidId = (name: string) => new HttpError(400, 'invalid_id', `${name} must match [0-9A-Za-z_-]{1,128}`)

/**
 * Path ids other than the DSN (which is checked by authentication) must be valid ids, or 400.
 * Called first in each ingest route's onRequest hook, so an invalid id is refused before any
 * other check and before the body is read; the params schema (the same pattern) is checked
 * again by Fastify before the handler, with the same answer.
 */
export function validIds<T extends Record<string, string>>(params: T): T {
  for (const [name, value] of Object.entries(params)) {
    if (name !== 'dsn' && !isValidId(value)) throw invalidId(name)
  }
  return params
}

interface ParamsSchema {
  type?: string
  properties?: Record<string, { type?: string; pattern?: string } & Record<string, unknown>>
}

/** The keywords a params property may use; anything else would be silently ignored, so it stops the start instead. */
const KNOWN = new Set(['type', 'pattern', 'description', 'examples'])

/**
 * The ingest routes' validation, never stricter than the routes were without schemas:
 * - params: each property is a string matching its `pattern` (if any), else the same 400
 *   `invalid_id` as validIds (not Fastify's FST_ERR_VALIDATION body). Only `type: string` and
 *   `pattern` are understood; a schema using more is refused when the route is registered;
 * - headers: described in the document, never enforced (a device answered 400 for a header
 *   would retry it for ever; Content-Encoding has its own answer, 415, in body.ts);
 * - the ingest routes have no body or querystring schema (bodies are read raw), and one would
 *   be refused here.
 * Not Ajv, nor TypeBox's compiler (what @fastify/type-provider-typebox offers): the gateway
 * process does not load TypeBox (about 24 MB of RSS, test/gateway-footprint.test.ts), and this
 * is the whole of what the schemas ask.
 */
export const ingestValidatorCompiler: FastifySchemaCompiler<ParamsSchema> = ({ schema, httpPart, method, url }) => {
  if (httpPart === 'headers') return () => true
  if (httpPart !== 'params') throw new Error(`${method} ${url}: the ingest routes validate params only, not ${httpPart}`)
  const rules = Object.entries(schema.properties ?? {}).map(([name, prop]) => {
    const unknown = Object.keys(prop).filter((k) => !KNOWN.has(k))
    if (schema.type !== 'object' || prop.type !== 'string' || unknown.length) {
      throw new Error(`${method} ${url}: params.${name} must be {type: 'string', pattern?} (has ${unknown.join(', ') || 'another type'})`)
    }
    return [name, prop.pattern === undefined ? null : new RegExp(prop.pattern)] as const
  })
  return (params) => {
    const p = params as Record<string, unknown>
    for (const [name, re] of rules) {
      const value = p[name]
      if (typeof value !== 'string' || (re && !re.test(value))) return { error: invalidId(name) }
    }
    return true
  }
}
