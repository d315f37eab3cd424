// The route schemas the routes give Fastify: plain JSON Schema from gateway/route-schemas.json,
// which `npm run openapi` generates from gateway/schemas.ts (test/openapi.test.ts fails when it is
// stale). Plain JSON so that the gateway process never loads TypeBox
// (test/gateway-footprint.test.ts); typed as the TypeBox originals, for
// @fastify/type-provider-typebox.
import schemas from './route-schemas.json' with { type: 'json' }
import type * as S from './schemas.ts'

export const sessionSchema = schemas.sessionSchema as unknown as typeof S.sessionSchema
export const logsSchema = schemas.logsSchema as unknown as typeof S.logsSchema
export const mediaSchema = schemas.mediaSchema as unknown as typeof S.mediaSchema
export const healthzSchema = schemas.healthzSchema as unknown as typeof S.healthzSchema
export const readyzSchema = schemas.readyzSchema as unknown as typeof S.readyzSchema
