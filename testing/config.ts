// Every process's configuration in one object, for the tests, the fault suite and the benchmark,
// which start gateways, workers, admin panels and CLI runs from one environment. Each part is the
// process's own loader, so a test config is valid for every process exactly when each loader
// accepts the environment.
import { loadAdminServerConfig, type AdminServerConfig } from '../admin/config.ts'
import { loadCliConfig, type CliConfig } from '../cli/config.ts'
import { loadGatewayConfig, type GatewayConfig } from '../gateway/config.ts'
import type { Env } from '../shared/config-vars.ts'
import { loadWorkerConfig, type WorkerConfig } from '../worker/config.ts'

export type TestConfig = GatewayConfig & WorkerConfig & AdminServerConfig & Omit<CliConfig, 's3'>

export function loadTestConfig(env: Env): TestConfig {
  // The CLI's S3 settings are optional (null without S3_ENDPOINT); the worker's, read the same way, are the ones kept.
  const { s3: _cliS3, ...cli } = loadCliConfig(env)
  return { ...loadGatewayConfig(env), ...loadWorkerConfig(env), ...loadAdminServerConfig(env), ...cli }
}

/** An environment every loader accepts, pointing at nothing: for tests that only parse configuration. */
export const OFFLINE_ENV: Readonly<Record<string, string>> = {
  REDIS_URL: 'redis://127.0.0.1:1',
  MONGODB_URL: 'mongodb://127.0.0.1:1/x',
  S3_ENDPOINT: 'http://127.0.0.1:1',
  S3_ACCESS_KEY: 'a',
  S3_SECRET_KEY: 'b',
}
