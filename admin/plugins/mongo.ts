// The admin's MongoDB client: connected and indexed at start, closed last (after HTTP) on close.
import fp from 'fastify-plugin'
import type { Db } from 'mongodb'
import { connectMongo, ensureIndexes } from '../../shared/mongo.ts'
import { ensureAdminIndexes } from '../data/indexes.ts'

declare module 'fastify' {
  interface FastifyInstance {
    db: Db
  }
}

export default fp<{ url: string; writeConcern: string | number }>(
  async (app, opts) => {
    const { client, db } = await connectMongo(opts.url, opts.writeConcern)
    try {
      await ensureIndexes(db)
      await ensureAdminIndexes(db)
    } catch (err) {
      await client.close()
      throw err
    }
    app.decorate('db', db)
    app.addHook('onClose', async () => {
      await client.close()
    })
  },
  { name: 'mongo' },
)
