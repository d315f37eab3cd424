import { spawn } from 'node:child_process'
import { closeSync, openSync, writeSync } from 'node:fs'
import { mkdir, readFile, rm, symlink } from 'node:fs/promises'
import { delimiter, join } from 'node:path'
import { repoRoot } from './paths.ts'
import type { RoleSecrets } from './roles.ts'

/**
 * Creates the bucket, the three policies and the three users on the local MinIO by running
 * compose.yaml's own job, deploy/minio/init.sh, with the pinned mc on its PATH: one script and
 * one set of policy files (deploy/minio/policies/) for production and for the tests. Idempotent,
 * so it runs on every start. Its output goes to `<dir>/minio-init.log`.
 */
export async function runMinioInit(opts: {
  dir: string
  mc: string
  endpoint: string
  bucket: string
  root: { accessKey: string; secretKey: string }
  users: RoleSecrets['s3']
}): Promise<void> {
  // init.sh calls `mc`; the cached binary is named mc-<version>.
  const binDir = join(opts.dir, 'bin')
  await mkdir(binDir, { recursive: true })
  await rm(join(binDir, 'mc'), { force: true })
  await symlink(opts.mc, join(binDir, 'mc'))
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (!/^(MINIO_|MC_|S3_)/.test(k)) env[k] = v
  Object.assign(env, {
    PATH: [binDir, process.env.PATH].filter(Boolean).join(delimiter),
    // mc keeps a config folder; never the developer's ~/.mc.
    MC_CONFIG_DIR: join(opts.dir, 'mc'),
    MINIO_ENDPOINT: opts.endpoint,
    MINIO_POLICY_DIR: join(repoRoot, 'deploy', 'minio', 'policies'),
    MINIO_ROOT_USER: opts.root.accessKey,
    MINIO_ROOT_PASSWORD: opts.root.secretKey,
    S3_BUCKET: opts.bucket,
    // Policies for any bucket: each test file has its own (deploy/minio/init.sh).
    MINIO_POLICY_BUCKET: '*',
  })
  for (const r of ['gateway', 'worker', 'admin'] as const) {
    env[`S3_${r.toUpperCase()}_ACCESS_KEY`] = opts.users[r].accessKey
    env[`S3_${r.toUpperCase()}_SECRET_KEY`] = opts.users[r].secretKey
  }
  const logFile = join(opts.dir, 'minio-init.log')
  // Distributed MinIO answers S3 through its balancer before every node has loaded its bucket
  // and IAM subsystems or sees its peers' drives: a call that lands on such a node is refused with
  // "Server not initialized yet" or "Resource requested is unwritable", MinIO's own "try again"
  // answers. The script is idempotent, so it runs again, a few times, for those answers only.
  for (let attempt = 1; ; attempt++) {
    const code = await runInitOnce(env, logFile)
    if (code === 0) return
    const last = (await readFile(logFile, 'utf8')).split('\n--- ').at(-1) ?? ''
    const notYet = /Server not initialized yet|Resource requested is unwritable/.test(last)
    if (!notYet || attempt >= 10) throw new Error(`deploy/minio/init.sh failed (${code}); see ${logFile}`)
    await new Promise((resolve) => setTimeout(resolve, 1000))
  }
}

async function runInitOnce(env: NodeJS.ProcessEnv, logFile: string): Promise<number | string> {
  const fd = openSync(logFile, 'a', 0o600)
  writeSync(fd, `\n--- ${new Date().toISOString()} deploy/minio/init.sh\n`)
  try {
    return await new Promise<number | string>((resolve) => {
      const child = spawn('sh', [join(repoRoot, 'deploy', 'minio', 'init.sh')], { env, stdio: ['ignore', fd, fd] })
      child.once('error', (err) => resolve(err.message))
      child.once('exit', (c, s) => resolve(c ?? String(s)))
    })
  } finally {
    closeSync(fd)
  }
}
