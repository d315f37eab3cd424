import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { isAlive } from './proc.ts'

/**
 * Cross-process lock built on mkdir, which is atomic on every local
 * filesystem. The owner's pid is written inside so that a lock left behind by
 * a crashed process (kill -9 during a Go build) can be detected and broken.
 */
export async function withLock<T>(lockDir: string, fn: () => Promise<T>, timeoutMs = 15 * 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  const owner = join(lockDir, 'owner')
  for (;;) {
    try {
      await mkdir(lockDir)
      await writeFile(owner, `${process.pid}@${hostname()}\n`)
      break
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    }
    if (await isStale(lockDir, owner)) {
      await rm(lockDir, { recursive: true, force: true })
      continue
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for lock ${lockDir}`)
    await sleep(500)
  }
  try {
    return await fn()
  } finally {
    await rm(lockDir, { recursive: true, force: true })
  }
}

async function isStale(lockDir: string, owner: string): Promise<boolean> {
  let text: string
  try {
    text = await readFile(owner, 'utf8')
  } catch {
    // Owner file missing: either the owner is between mkdir and writeFile
    // (a few ms) or it died there. Only an old lock dir counts as dead.
    try {
      return Date.now() - (await stat(lockDir)).mtimeMs > 30_000
    } catch {
      return false // lock vanished; the caller simply retries mkdir
    }
  }
  const [pid, host] = text.trim().split('@')
  // A lock from another host (shared home dir) cannot be checked; trust it.
  if (host !== hostname()) return false
  return !isAlive(Number(pid))
}
