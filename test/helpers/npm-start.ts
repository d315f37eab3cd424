// `npm start` (stack/start-all.ts) as a real process with its own fresh stack dir, for the tests
// that check what it does as a whole: HTTPS (start-https) and restarts (start-restarts).
import { spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { readEnvFile } from '../../stack/stack-dir.ts'
import { freePort } from '../../stack/ports.ts'

// Set by with-stack (or CI) for the other tests; unset here, so that `npm start` starts and owns
// its own services, as on a fresh clone.
const SERVICE_VARS = [
  'REDIS_URL',
  'MONGODB_URL',
  'S3_ENDPOINT',
  'S3_ACCESS_KEY',
  'S3_SECRET_KEY',
  'S3_BUCKET',
  'S3_REGION',
  'REDIS_PREFIX',
  'PUBLIC_URL',
  'ADMIN_URL',
  'TLS_CERT_FILE',
  'TLS_KEY_FILE',
  'STACK_TLS',
  'STACK_DIR',
]

export interface NpmStart {
  dir: string
  port: number
  adminPort: number
  /** Everything it printed so far, stdout and stderr interleaved. */
  output(): string
  /** Resolves with the first match of `re` in the output from character `from` on; rejects after the deadline or if it exits. */
  waitForOutput(re: RegExp, opts?: { from?: number; timeoutMs?: number }): Promise<RegExpExecArray>
  /** The stack's env file (`<dir>/env`). */
  envFile(): Promise<Record<string, string>>
  /** Resolves with its exit code. */
  exited: Promise<number | null>
  /** SIGINT (Ctrl-C), then its exit code. */
  interrupt(): Promise<number | null>
  /** SIGKILL if still running, and remove the stack dir. */
  cleanup(): Promise<void>
}

export async function npmStart(extraEnv: Record<string, string>): Promise<NpmStart> {
  const dir = await mkdtemp(join(tmpdir(), 'rdt-npm-start-'))
  const port = await freePort()
  const adminPort = await freePort()
  const env: NodeJS.ProcessEnv = { ...process.env }
  for (const k of SERVICE_VARS) delete env[k]
  Object.assign(env, {
    STACK_DIR: dir,
    PORT: String(port),
    ADMIN_PORT: String(adminPort),
    // Two tests may run at once: no fixed metrics ports.
    METRICS_PORT: '0',
    LOG_LEVEL: 'warn',
    ...extraEnv,
  })
  const child = spawn(process.execPath, ['--import', 'tsx', 'stack/start-all.ts'], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  const listeners = new Set<() => void>()
  const onData = (c: Buffer) => {
    out += c.toString()
    for (const l of listeners) l()
  }
  child.stdout.on('data', onData)
  child.stderr.on('data', onData)
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  let running = true
  void exited.then(() => {
    running = false
    for (const l of listeners) l()
  })

  const waitForOutput = (re: RegExp, { from = 0, timeoutMs = 60_000 } = {}) =>
    new Promise<RegExpExecArray>((resolve, reject) => {
      const check = () => {
        const m = re.exec(out.slice(from))
        if (m) done(() => resolve(m))
        else if (!running) done(() => reject(new Error(`npm start exited before printing ${re}:\n${out.slice(-3000)}`)))
      }
      const timer = setTimeout(
        () => done(() => reject(new Error(`no ${re} in npm start's output within ${timeoutMs} ms:\n${out.slice(-3000)}`))),
        timeoutMs,
      )
      const done = (f: () => void) => {
        clearTimeout(timer)
        listeners.delete(check)
        f()
      }
      listeners.add(check)
      check()
    })

  return {
    dir,
    port,
    adminPort,
    output: () => out,
    waitForOutput,
    envFile: () => readEnvFile(join(dir, 'env')),
    exited,
    async interrupt() {
      child.kill('SIGINT')
      return exited
    },
    async cleanup() {
      if (running) {
        child.kill('SIGKILL')
        await exited
      }
      await rm(dir, { recursive: true, force: true })
    },
  }
}
