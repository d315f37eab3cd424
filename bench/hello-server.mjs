// Baselines B1 and B5: Fastify's own benchmark server (hello world, no logger), plain JavaScript
// run with plain node, as the compiled gateway is. SIGTERM closes it.
//
// C-B1, the ceiling for T1/T1b: the session route with only the work no JSON ingest can skip
// (read the body as bytes, hash it, decode and parse it, check it is an object, answer 201), and
// nothing else: no Redis, no auth, no log line, no metrics. What T1 can reach on this machine is
// below this figure by the cost of Redis (its CPU shares the same cores) and of our own work.
import Fastify from 'fastify'
import { createHash } from 'node:crypto'

const app = Fastify()
app.get('/', async () => ({ hello: 'world' }))
app.removeAllContentTypeParsers()
app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body))
const utf8 = new TextDecoder('utf-8')
// Both forms, as the gateway answers them (the real client adds the trailing slash), without
// changing B1's router options.
const parseOnly = async (request, reply) => {
  const raw = request.body
  const sha256 = createHash('sha256').update(raw).digest('hex')
  const body = JSON.parse(utf8.decode(raw))
  if (typeof body !== 'object' || body === null || sha256.length !== 64) return reply.code(400).send({ error: 'not_an_object' })
  return reply.code(201).send({ status: 'accepted' })
}
app.put('/ingest/:dsn/test_session/:session', parseOnly)
app.put('/ingest/:dsn/test_session/:session/', parseOnly)
await app.listen({ port: Number(process.env.PORT), host: '127.0.0.1' })
process.once('SIGTERM', () => app.close().then(() => process.exit(0)))
