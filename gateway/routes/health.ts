import type { FastifyInstance } from 'fastify'

export default async function healthRoutes(app: FastifyInstance) {
  // Liveness: the process answers. Never depends on Redis, so an outage does not get us restarted.
  app.get('/healthz', async () => ({ status: 'ok' }))
  // Readiness: Redis answers and has our scripts, so accepted work can be queued.
  app.get('/readyz', async (_request, reply) => {
    try {
      await app.redis.ping()
    } catch {
      return reply.code(503).header('retry-after', '5').send({ status: 'unavailable', redis: 'down' })
    }
    if (!app.scripts.loaded()) return reply.code(503).header('retry-after', '1').send({ status: 'unavailable', redis: 'loading scripts' })
    return { status: 'ready' }
  })
}
