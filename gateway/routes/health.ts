import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import { healthzSchema, readyzSchema } from '../route-schemas.ts'

export default async function healthRoutes(fastify: FastifyInstance) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  // Liveness: the process answers. Never depends on Redis, so an outage does not get us restarted.
  app.get('/healthz', { schema: healthzSchema }, async () => ({ status: 'ok' as const }))
  // Readiness: Redis answers and has our scripts, so accepted work can be queued.
  app.get('/readyz', { schema: readyzSchema }, async (_request, reply) => {
    try {
      await app.redis.ping()
    } catch {
      return reply.code(503).header('retry-after', '5').send({ status: 'unavailable', redis: 'down' })
    }
    if (!app.scripts.loaded()) return reply.code(503).header('retry-after', '1').send({ status: 'unavailable', redis: 'loading scripts' })
    return { status: 'ready' as const }
  })
}
