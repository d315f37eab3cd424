// The CLI's configuration: MongoDB (the source of truth it changes), Redis (the token mirror and
// the queues) and the public URL it prints in DSNs. Nothing else, so an operator's shell needs no
// S3 key to manage tokens.
import * as shared from '../shared/config.ts'

export const loadCliConfig = shared.configLoader([shared.redisSettings, shared.mongoSettings, shared.publicUrlSettings], () => ({}))
export type CliConfig = ReturnType<typeof loadCliConfig>
