// The CLI's configuration: MongoDB (the source of truth it changes), Redis (the token mirror and
// the queues) and the public URL it prints in DSNs. Nothing else, so an operator's shell needs no
// S3 key to manage tokens.
import type { Env } from '../shared/config-vars.ts'
import {
  mongoSettings,
  publicUrlSettings,
  redisSettings,
  type MongoSettings,
  type PublicUrlSettings,
  type RedisSettings,
} from '../shared/config.ts'

export type CliConfig = RedisSettings & MongoSettings & PublicUrlSettings

export function loadCliConfig(env: Env = process.env): CliConfig {
  return { ...redisSettings(env), ...mongoSettings(env), ...publicUrlSettings(env) }
}
