import { randomBytes } from 'node:crypto'
import { readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { cmdline, isAlive } from './proc.ts'

interface PidFile {
  pid: number
  services: Record<string, number>
}

/**
 * Claims a stack dir through `<dir>/stack.pid` (created with O_EXCL), so that
 * two launchers never run services on the same data. A pid file whose owner
 * is dead is stale: its leftover services are killed and the dir reclaimed.
 */
export async function claimStackDir(dir: string): Promise<{
  setServicePid(name: string, pid: number): void
  release(): Promise<void>
}> {
  const file = join(dir, 'stack.pid')
  const state: PidFile = { pid: process.pid, services: {} }
  for (let tries = 0; ; tries++) {
    try {
      await writeFile(file, JSON.stringify(state), { flag: 'wx', mode: 0o600 })
      break
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || tries > 2) throw err
    }
    const old = await readPidFile(file)
    if (old && isAlive(old.pid)) {
      throw new Error(
        `a stack is already running in ${dir} (pid ${old.pid}${old.pid === process.pid ? ', this process' : ''}); ` +
          `stop it first (Ctrl-C, or kill ${old.pid}) or use another dir`,
      )
    }
    killLeftovers(old, dir)
    await rm(file, { force: true })
  }

  // Writes are serialised so that a late write never resurrects the file
  // after release().
  let chain = Promise.resolve()
  let released = false
  return {
    setServicePid(name, pid) {
      state.services[name] = pid
      chain = chain.then(async () => {
        if (released) return
        await writeFile(`${file}.tmp`, JSON.stringify(state), { mode: 0o600 })
        await rename(`${file}.tmp`, file)
      })
    },
    async release() {
      released = true
      await chain.catch(() => {})
      await rm(file, { force: true })
    },
  }
}

async function readPidFile(file: string): Promise<PidFile | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as PidFile
  } catch {
    return undefined // half-written or unreadable: treat as stale
  }
}

/**
 * Services normally die with their launcher (parent-death signal), but not
 * where setpriv is missing. Pids get reused, so only kill a process whose
 * command line still names this stack dir.
 */
function killLeftovers(old: PidFile | undefined, dir: string): void {
  for (const pid of Object.values(old?.services ?? {})) {
    if (isAlive(pid) && cmdline(pid).some((arg) => arg.startsWith(dir))) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {
        // gone meanwhile
      }
    }
  }
}

export interface S3Credentials {
  accessKey: string
  secretKey: string
}

/** Random per stack dir, generated once, so restarts keep working with old env files. */
export async function loadOrCreateCredentials(dir: string): Promise<S3Credentials> {
  const file = join(dir, 's3-credentials.json')
  try {
    const c = JSON.parse(await readFile(file, 'utf8')) as Partial<S3Credentials>
    if (c.accessKey && c.secretKey) return { accessKey: c.accessKey, secretKey: c.secretKey }
  } catch {
    // missing or corrupt: make new ones (the gateway keeps no users of its own)
  }
  const creds = {
    accessKey: `RDT${randomBytes(8).toString('hex').toUpperCase()}`,
    secretKey: randomBytes(30).toString('base64url'),
  }
  await writeFile(file, JSON.stringify(creds), { mode: 0o600 })
  return creds
}

/** Parses NAME=value lines (our own env file format). */
export async function readEnvFile(file: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  const text = await readFile(file, 'utf8').catch(() => '')
  for (const line of text.split('\n')) {
    const i = line.indexOf('=')
    if (i > 0 && !line.startsWith('#')) out[line.slice(0, i)] = line.slice(i + 1)
  }
  return out
}

/** Writes NAME=value lines with mode 0600 (it holds the S3 secret), atomically. */
export async function writeEnvFile(file: string, env: Record<string, string>): Promise<void> {
  const text = Object.entries(env)
    .map(([k, v]) => `${k}=${v}`)
    .join('\n')
  // A leftover tmp file would keep its old mode; start from scratch.
  await rm(`${file}.tmp`, { force: true })
  await writeFile(`${file}.tmp`, `${text}\n`, { mode: 0o600 })
  await rename(`${file}.tmp`, file)
}
