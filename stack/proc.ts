import { accessSync, constants, readFileSync } from 'node:fs'

/** True when a process with this pid exists (signal 0 only checks). */
export function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    // EPERM means it exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * The process's argv from /proc, used before killing a pid read from a file:
 * pids get recycled, so we only kill a process that still runs our binary.
 */
export function cmdline(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean)
  } catch {
    return []
  }
}

/** util-linux setpriv, on every Debian/Ubuntu; undefined elsewhere (macOS). */
export const setpriv = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => {
  try {
    accessSync(p, constants.X_OK)
    return true
  } catch {
    return false
  }
})

/**
 * Wraps a command so that the kernel SIGKILLs it when our process dies in any
 * way, including kill -9, which no 'exit' hook can catch. setpriv execs the
 * command, so the child's pid is the command's own. (The signal fires when
 * the spawning *thread* exits: spawn from the main thread, not a worker.)
 */
export function withParentDeathSignal(command: string, args: string[]): [string, string[]] {
  return setpriv ? [setpriv, ['--pdeathsig', 'KILL', '--', command, ...args]] : [command, args]
}
