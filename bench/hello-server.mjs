// Baselines B1 and B5: Fastify's own benchmark server (hello world, no logger), plain JavaScript
// run with plain node, as the compiled gateway is. SIGTERM closes it.
import Fastify from 'fastify'

const app = Fastify()
app.get('/', async () => ({ hello: 'world' }))
await app.listen({ port: Number(process.env.PORT), host: '127.0.0.1' })
process.once('SIGTERM', () => app.close().then(() => process.exit(0)))
