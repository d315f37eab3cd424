// The gateway's API description (OpenAPI 3.1, generated from the gateway's TypeBox route schemas
// by gateway/openapi.ts): /docs renders it as a page, /docs/openapi.json serves the document.
// Behind the log-in like every page of the panel: the description is not secret (it is also
// docs/openapi.json in the repository), but the panel serves nothing to anonymous visitors.
// The page is rendered on the server (admin/views/docs.ts), with the panel's own stylesheet: no UI bundle from
// a CDN, nothing the panel's CSP would block, no script.
import type { FastifyInstance } from 'fastify'
import { buildOpenApi, openApiJson } from '../../gateway/openapi.ts'
import { docsPage, type Json } from '../views/docs.ts'
import { page } from '../views/layout.ts'
import { sendHtml, who } from './common.ts'

export default async function docsRoutes(app: FastifyInstance) {
  // Built once: the document is a pure function of the gateway's schemas.
  const doc = buildOpenApi() as Json
  const json = openApiJson()
  const body = docsPage(doc)
  const any = { config: { access: 'any' as const } }
  app.get('/docs', any, async (request, reply) => sendHtml(reply, page({ title: 'Gateway API', admin: who(request), body })))
  app.get('/docs/openapi.json', any, async (_request, reply) => reply.type('application/json; charset=utf-8').send(json))
}
