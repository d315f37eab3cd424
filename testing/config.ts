// Every process's configuration in one object, for the tests, the fault suite and the benchmark,
// which start gateways, workers, admin panels and CLI runs from one environment. Each part is the
// process's own loader, so a test config is valid for every process exactly when each loader
// accepts the environment.
import { loadAdminServerConfig, type AdminServerConfig } from '../admin/config.ts'
import { loadCliConfig, type CliConfig } from '../cli/config.ts'
import { loadGatewayConfig, type GatewayConfig } from '../gateway/config.ts'
import type { Env } from '../shared/config-vars.ts'
import { loadWorkerConfig, type WorkerConfig } from '../worker/config.ts'

export type TestConfig = GatewayConfig & WorkerConfig & AdminServerConfig & CliConfig

export function loadTestConfig(env: Env): TestConfig {
  return { ...loadGatewayConfig(env), ...loadWorkerConfig(env), ...loadAdminServerConfig(env), ...loadCliConfig(env) }
}
