// `npm start`: the whole app on this machine: the local stack (unless the
// environment already names the services), then gateway, worker and, when
// present, admin, with their output prefixed by name. Whatever exits on its
// own is started again (stack/supervisor.ts); Ctrl-C stops everything.
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { AppProcess } from './app-process.ts'
import { ensureBinaries } from './install.ts'
import { startStack, type Stack } from './launcher.ts'
import { stackTlsSettings, type StackTlsSettings } from './local-tls.ts'
import { defaultStackDir, repoRoot } from './paths.ts'
import { roleEnv, type Role } from './roles.ts'
import { onShutdownSignal } from './signals.ts'
import { readEnvFile, writeEnvFile } from './stack-dir.ts'
import { ServiceUnit, Supervisor } from './supervisor.ts'
import { NODE_FLAGS } from '../shared/node-flags.ts'

const CHILD_STOP_TIMEOUT_MS = 15_000
const log = (line: string) => console.error(`[start-all] ${line}`)

// STACK_DIR: another stack dir than <repo>/.stack (a second instance, or a test's fresh one).
const stackDir = process.env.STACK_DIR || defaultStackDir
let stack: Stack | undefined
let tls: StackTlsSettings | null = null
try {
  // STACK_TLS=1: certificates first, so that a bad setting stops us before anything runs.
  tls = await stackTlsSettings(process.env, stackDir)
  if (!['REDIS_URL', 'MONGODB_URL', 'S3_ENDPOINT'].every((k) => process.env[k])) {
    // Persistent data in the stack dir, unlike with-stack's throwaway dirs.
    stack = await startStack({ dir: stackDir, binaries: await ensureBinaries() })
    if (tls) await writeEnvFile(stack.envFile, { ...(await readEnvFile(stack.envFile)), ...tls.envFile })
  }
} catch (err) {
  console.error(`start-all: ${(err as Error).message}`)
  await stack?.stop()
  process.exit(1)
}
const env = { ...process.env, ...stack?.env, ...tls?.env }
const port = Number(process.env.PORT || '8080')
// The distributed topology runs a second gateway on the next port (the admin panel then moves one
// further), as production runs several behind a load balancer.
const distributed = (stack?.topology ?? env.STACK_TOPOLOGY) === 'distributed'

interface App {
  role: keyof typeof NODE_FLAGS & Role
  entry: string
  env?: Record<string, string>
}
const apps: Record<string, App> = { gateway: { role: 'gateway', entry: 'gateway/server.ts' } }
if (distributed) apps.gateway2 = { role: 'gateway', entry: 'gateway/server.ts', env: { PORT: String(port + 1), METRICS_PORT: '9466' } }
apps.worker = { role: 'worker', entry: 'worker/server.ts' }
if (existsSync(join(repoRoot, 'admin', 'server.ts')))
  apps.admin = { role: 'admin', entry: 'admin/server.ts', env: distributed && !env.ADMIN_PORT ? { ADMIN_PORT: String(port + 2) } : {} }

const supervisor = new Supervisor({ log })
const processes = Object.entries(apps).map(
  ([name, app]) =>
    new AppProcess({
      name,
      entry: app.entry,
      nodeFlags: NODE_FLAGS[app.role],
      // Each process only its own role's credentials (stack/roles.ts). Only the two listeners
      // facing people get the certificate and its key.
      env: roleEnv({ ...env, ...(app.role === 'worker' ? {} : tls?.serverEnv), ...app.env }, app.role),
      log,
    }),
)
for (const app of processes) void supervisor.add(app)
if (stack) for (const svc of [stack.redis, stack.mongo, stack.s3]) void supervisor.add(new ServiceUnit(svc, log))
// The services are unref'd children; between two restarts nothing else may be pending.
const keepAlive = setInterval(() => {}, 1 << 30)

console.log(`[start-all] gateway: ${env.PUBLIC_URL || `http://127.0.0.1:${port}`}`)
if (distributed) console.log(`[start-all] second gateway: port ${port + 1}; admin panel: port ${apps.admin?.env?.ADMIN_PORT ?? 8081}`)
if (stack) console.log(`[start-all] stack env file: ${stack.envFile}`)
if (tls)
  console.log(
    `[start-all] HTTPS with the local CA ${tls.tls.caFile} (GATEWAY_CA_FILE; certificates ${tls.tls.made === 'nothing' ? 'reused' : 'made'})`,
  )
console.log('[start-all] Ctrl-C to stop')

onShutdownSignal((sig) => {
  log(`${sig}: stopping`)
  supervisor.stop()
  void (async () => {
    await Promise.all(processes.map((app) => app.stop(CHILD_STOP_TIMEOUT_MS)))
    // Stack last: the apps may still flush to Redis/Mongo/S3 while draining.
    await stack?.stop()
    clearInterval(keepAlive)
    process.exit(0)
  })()
})
