// The stylesheet and script, and a health check that carries no data.
import type { FastifyInstance } from 'fastify'
import { ADMIN_CSS as css, ADMIN_JS as js } from '../static/assets.ts'

export default async function staticRoutes(app: FastifyInstance) {
  const pub = { config: { public: true } }
  app.get('/static/admin.css', pub, async (_req, reply) =>
    reply.type('text/css; charset=utf-8').header('cache-control', 'public, max-age=300').send(css),
  )
  app.get('/static/admin.js', pub, async (_req, reply) =>
    reply.type('text/javascript; charset=utf-8').header('cache-control', 'public, max-age=300').send(js),
  )
  app.get('/favicon.ico', pub, async (_req, reply) => reply.code(204).header('cache-control', 'public, max-age=86400').send())
  app.get('/healthz', pub, async (_req, reply) => reply.type('text/plain; charset=utf-8').send('ok'))
}
