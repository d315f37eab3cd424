// The admin's MongoDB client: connected, indexed and migrated at start, closed last (after HTTP) on close.
import fp from 'fastify-plugin'
import type { Db } from 'mongodb'
import { connectMongo, ensureIndexes } from '../../shared/mongo.ts'
import { migrateLegacyAdmins } from '../../tokens/roles.ts'
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
      // Accounts from before roles existed keep the full rights they had (tokens/roles.ts).
      await migrateLegacyAdmins(db, 'system:roles-upgrade')
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
