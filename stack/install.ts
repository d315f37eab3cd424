import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { accessSync, constants, readFileSync } from 'node:fs'
import { mkdir, mkdtemp, readdir, readFile, rename, rm } from 'node:fs/promises'
import { basename, delimiter, dirname, join } from 'node:path'
import { binCacheDir, repoRoot } from './paths.ts'
import { withLock } from './lock.ts'
import { withParentDeathSignal } from './proc.ts'

export const FERRETDB_VERSION = 'v1.24.2'
export const VERSITYGW_VERSION = 'v1.7.0'
/** kustomize renders deploy/kubernetes/ in CI (v5.7.1 is the newest that builds with Go 1.26). */
export const KUSTOMIZE_VERSION = 'v5.7.1'
// MinIO (AGPL-3.0, a development and test service here, never shipped): the pinned server commit
// and the mc client version that deploy/minio/Dockerfile builds for compose.yaml, so the local
// stack and production run the same server and the same user/policy script (deploy/minio/init.sh).
export const MINIO_VERSION = dockerfileArg('MINIO_VERSION')
export const MC_VERSION = dockerfileArg('MC_VERSION')

/** Which S3 server the local stack runs: MinIO by default, `STACK_S3=versity` for the Versity gateway. */
export type S3Server = 'minio' | 'versity'

export function s3ServerFromEnv(env: NodeJS.ProcessEnv = process.env): S3Server {
  const v = env.STACK_S3 || 'minio'
  if (v !== 'minio' && v !== 'versity') throw new Error(`STACK_S3 must be "minio" or "versity", got "${v}"`)
  return v
}

export interface Binaries {
  redisServer: string
  ferretdb: string
  /** Built only for the S3 server in use (STACK_S3). */
  versitygw?: string
  minio?: string
  mc?: string
}

/**
 * Makes sure the three service binaries exist and returns their paths.
 * Idempotent and race-safe: each install runs under a lock and re-checks
 * after taking it, and Go builds write to a temp name that is renamed into
 * place, so a binary that exists is always complete.
 */
export async function ensureBinaries(s3: S3Server = s3ServerFromEnv()): Promise<Binaries> {
  await mkdir(binCacheDir, { recursive: true })
  // Sequential on purpose: two Go builds at once on a 2-core machine are
  // no faster in total, and the output lines stay in order.
  const redisServer = await ensureRedis()
  const ferretdb = await ensureFerretDB()
  if (s3 === 'versity') return { redisServer, ferretdb, versitygw: await ensureVersityGW() }
  const minio = await goInstall('minio', 'github.com/minio/minio', MINIO_VERSION, '4 min')
  const mc = await goInstall('mc', 'github.com/minio/mc', MC_VERSION, '2-3 min')
  return { redisServer, ferretdb, minio, mc }
}

/** An `ARG NAME=value` default of deploy/minio/Dockerfile: one place for the pinned versions. */
function dockerfileArg(name: string): string {
  const text = readFileSync(join(repoRoot, 'deploy', 'minio', 'Dockerfile'), 'utf8')
  const m = new RegExp(`^ARG ${name}=(\\S+)$`, 'm').exec(text)
  if (!m) throw new Error(`deploy/minio/Dockerfile has no "ARG ${name}=<version>" line`)
  return m[1]!
}

async function ensureRedis(): Promise<string> {
  const found = findOnPath('redis-server')
  if (found) return found
  if (process.getuid?.() !== 0) {
    throw new Error('redis-server not found; install it with: sudo apt-get install -y redis-server')
  }
  return withLock(join(binCacheDir, '.lock-apt'), async () => {
    const again = findOnPath('redis-server')
    if (again) return again
    log('installing redis-server (apt-get)')
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
    await run('apt-get', ['update'], { env })
    await run('apt-get', ['install', '-y', '--no-install-recommends', 'redis-server'], { env })
    const installed = findOnPath('redis-server')
    if (!installed) throw new Error('apt-get installed redis-server but it is not on PATH')
    return installed
  })
}

function ensureFerretDB(): Promise<string> {
  return ensureGoSource(`ferretdb-${FERRETDB_VERSION}`, join(repoRoot, 'stack', 'ferretdb'), '1-2 min')
}

/** Builds a Go main package of this repository into the binary cache, keyed by its exact sources. */
async function ensureGoSource(name: string, src: string, duration: string): Promise<string> {
  // Key the binary by the exact sources, so editing main.go or bumping a
  // dependency rebuilds, while an unchanged checkout never does.
  const hash = createHash('sha256')
  for (const f of ['go.mod', 'go.sum', 'main.go']) hash.update(await readFile(join(src, f)))
  const bin = join(binCacheDir, `${name}-${hash.digest('hex').slice(0, 12)}`)
  return ensureBuilt(bin, `${name} (once, ${duration})`, async (tmp) => {
    // CGO off: the binaries are static (FerretDB's SQLite is pure Go, modernc).
    await run(goBinary(), ['build', '-trimpath', '-o', tmp, '.'], {
      cwd: src,
      env: { ...process.env, CGO_ENABLED: '0' },
      dieWithUs: true,
    })
  })
}

/** kustomize and the manifest validator (deploy/kubernetes/validate), for deploy/kubernetes/check.ts. */
export async function ensureK8sTools(): Promise<{ kustomize: string; validate: string }> {
  const kustomize = await goInstall('kustomize', 'sigs.k8s.io/kustomize/kustomize/v5', KUSTOMIZE_VERSION, '2-4 min')
  return { kustomize, validate: await ensureGoSource('rdt-validate-k8s', join(repoRoot, 'deploy', 'kubernetes', 'validate'), '1-2 min') }
}

function ensureVersityGW(): Promise<string> {
  return goInstall('versitygw', 'github.com/versity/versitygw/cmd/versitygw', VERSITYGW_VERSION, '1-2 min')
}

/** `go install pkg@version` into the binary cache, as `<name>-<version>`. */
function goInstall(name: string, pkg: string, version: string, duration: string): Promise<string> {
  const bin = join(binCacheDir, `${name}-${version}`)
  return ensureBuilt(bin, `${name} ${version} (once, ${duration})`, async (tmp) => {
    // `go install pkg@version` only writes into GOBIN, so install into a
    // private temp dir and move the result to the temp name.
    const gobin = await mkdtemp(`${tmp}-gobin-`) // under the tmp prefix, so orphans get cleaned
    try {
      await run(goBinary(), ['install', '-trimpath', `${pkg}@${version}`], {
        cwd: binCacheDir, // outside any go.mod, so module mode uses only the pinned version
        env: { ...process.env, GOBIN: gobin, CGO_ENABLED: '0' },
        dieWithUs: true,
      })
      // Go names the binary after the package's last element, skipping a major-version suffix (…/kustomize/v5).
      const elements = pkg.split('/')
      const last = elements.pop()!
      await rename(join(gobin, /^v\d+$/.test(last) ? elements.pop()! : last), tmp)
    } finally {
      await rm(gobin, { recursive: true, force: true })
    }
  })
}

async function ensureBuilt(bin: string, what: string, build: (tmp: string) => Promise<void>): Promise<string> {
  if (isExecutable(bin)) return bin
  return withLock(`${bin}.lock`, async () => {
    if (isExecutable(bin)) return bin // another launch built it while we waited
    await removeOrphanTemps(bin)
    log(`building ${what}`)
    const tmp = `${bin}.tmp-${process.pid}`
    try {
      await build(tmp)
      await rename(tmp, bin)
    } finally {
      await rm(tmp, { force: true })
    }
    return bin
  })
}

/** Temp outputs of builds whose launcher was killed (we hold the lock now). */
async function removeOrphanTemps(bin: string): Promise<void> {
  const prefix = `${basename(bin)}.tmp-`
  for (const name of await readdir(dirname(bin))) {
    if (name.startsWith(prefix)) await rm(join(dirname(bin), name), { recursive: true, force: true })
  }
}

function goBinary(): string {
  const go = findOnPath('go') ?? ['/usr/local/go/bin/go', '/usr/lib/go/bin/go'].find(isExecutable)
  if (!go) throw new Error('the Go toolchain is needed to build FerretDB and the S3 server; `go` is not on PATH')
  return go
}

function findOnPath(name: string): string | undefined {
  // Debian puts redis-server in /usr/bin, but sbin dirs are not on every PATH.
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin']
  return dirs
    .filter(Boolean)
    .map((d) => join(d, name))
    .find(isExecutable)
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK)
    return true
  } catch {
    return false
  }
}

function log(line: string): void {
  process.stderr.write(`stack: ${line}\n`)
}

interface RunOptions {
  cwd?: string
  env?: NodeJS.ProcessEnv
  /** Kill it if we die (a Go build: yes; apt-get: never, dpkg must finish). */
  dieWithUs?: boolean
}

/** Runs a command quietly; on failure the error carries the output's tail. */
function run(command: string, commandArgs: string[], { cwd, env, dieWithUs }: RunOptions): Promise<void> {
  const [cmd, args] = dieWithUs ? withParentDeathSignal(command, commandArgs) : [command, commandArgs]
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    const keep = (b: Buffer) => {
      out = (out + b.toString()).slice(-8000)
    }
    child.stdout.on('data', keep)
    child.stderr.on('data', keep)
    child.on('error', reject)
    child.on('close', (code, signal) => {
      if (code === 0) resolve()
      else reject(new Error(`${command} ${commandArgs.join(' ')} failed (${signal ?? `exit ${code}`}):\n${out}`))
    })
  })
}
