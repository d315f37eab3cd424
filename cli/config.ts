// The CLI's configuration: MongoDB (the source of truth it changes), Redis (the token mirror and
// the queues) and the public URL it prints in DSNs. Nothing else, so an operator's shell needs no
// S3 key to manage tokens.
import type { Env } from '../shared/config-vars.ts'
import { mongoSettings, publicUrlSettings, readSections, redisSettings, type SettingsOf } from '../shared/config.ts'

const SECTIONS = [redisSettings, mongoSettings, publicUrlSettings] as const

export type CliConfig = SettingsOf<typeof SECTIONS>

export function loadCliConfig(env: Env = process.env): CliConfig {
  return readSections(env, SECTIONS)
}
