// The CLI's configuration: MongoDB (the source of truth it changes), Redis (the token mirror and
// the queues), the public URL it prints in DSNs, and, optionally, object storage: only `session
// delete` and `workspace purge` need it (they refuse without it), so an operator's shell needs no
// S3 key to manage tokens.
import * as shared from '../shared/config.ts'
import { int } from '../shared/config-vars.ts'

export const loadCliConfig = shared.configLoader(
  [shared.redisSettings, shared.mongoSettings, shared.publicUrlSettings, shared.optionalS3Settings],
  (env) => ({
    /** DELETION_BATCH_SIZE: documents per query and objects per multi-object DELETE of `session delete` / `workspace purge`. */
    deletionBatchSize: int(env, 'DELETION_BATCH_SIZE', 500, 1, 1000),
  }),
)
export type CliConfig = ReturnType<typeof loadCliConfig>
