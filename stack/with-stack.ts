// `tsx stack/with-stack.ts -- <command> [args...]`: run a command (e.g. the
// test runner) against a fresh throwaway stack, or against the services
// already named in the environment (CI, or a running `npm run stack`).
import { spawn } from 'node:child_process'
import { rm } from 'node:fs/promises'
import { delimiter, join } from 'node:path'
import { ensureBinaries } from './install.ts'
import { startStack, type Stack } from './launcher.ts'
import { defaultStackDir, repoRoot } from './paths.ts'
import { exitCodeFor } from './signals.ts'

const argv = process.argv.slice(2)
const dash = argv.indexOf('--')
const [command, ...args] = dash >= 0 ? argv.slice(dash + 1) : argv
if (!command) {
  console.error('usage: tsx stack/with-stack.ts -- <command> [args...]')
  process.exit(2)
}

const preset = ['REDIS_URL', 'MONGODB_URL', 'S3_ENDPOINT'].every((k) => process.env[k])
let stack: Stack | undefined
if (!preset) {
  try {
    const binaries = await ensureBinaries()
    // One Redis server whatever STACK_TOPOLOGY says: the suite checks Redis keys with plain clients.
    stack = await startStack({ dir: join(defaultStackDir, `run-${process.pid}`), binaries, singleRedis: true })
  } catch (err) {
    // The dir is kept: the message points at the service logs in it.
    console.error(`with-stack: ${(err as Error).message}`)
    process.exit(1)
  }
}

// So that `-- tap` works outside `npm run` too.
const PATH = [join(repoRoot, 'node_modules', '.bin'), process.env.PATH].filter(Boolean).join(delimiter)
const child = spawn(command, args, { stdio: 'inherit', env: { ...process.env, ...stack?.env, PATH } })

// Forward signals (once each kind) rather than dying: the stack must be
// stopped after the command, whatever ends it.
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => child.kill(sig))
}

const code = await new Promise<number>((resolve) => {
  child.once('error', (err) => {
    console.error(`with-stack: cannot run ${command}: ${err.message}`)
    resolve(127)
  })
  child.once('exit', (c, s) => resolve(exitCodeFor(c, s)))
})

if (stack) {
  await stack.stop()
  await rm(stack.dir, { recursive: true, force: true })
}
process.exit(code)
