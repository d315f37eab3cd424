// The processes under test, started the way production starts them: compiled with `npm run build`
// and run as `node dist/gateway/server.js` / `node dist/worker/server.js`, LOG_LEVEL=info, their
// log lines going to a file (as a container's stdout would go to its log driver).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { NODE_FLAGS } from '../shared/node-flags.ts'
import { existsSync, openSync, closeSync, readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { freePort } from '../stack/ports.ts'
import { repoRoot } from '../stack/paths.ts'
import { roleEnv } from '../stack/roles.ts'

export interface AppProcess {
  name: string
  pid: number
  /** The public port (gateway, hello) or the metrics port (worker). */
  port: number
  metricsPort: number | null
  logFile: string
  /** Resident set size now, in bytes (from /proc, so it is the kernel's figure). */
  rss(): number
  /** The highest RSS the process has had (VmHWM), in bytes. */
  peakRss(): number
  /** CPU seconds used so far (user + system), from /proc. */
  cpu(): number
  /** SIGTERM, then wait for the exit (the process drains, as in production). */
  stop(): Promise<void>
  exited: Promise<number | null>
}

/**
 * Runs `npm run build`. Other engineers' unfinished type errors do not stop tsc emitting, so a non-zero exit with the entry points
 * present is a warning.
 */
export function build(log: (s: string) => void): void {
  const res = spawnSync('npm', ['run', '-s', 'build'], { cwd: repoRoot, encoding: 'utf8' })
  const entries = ['dist/gateway/server.js', 'dist/worker/server.js'].map((f) => join(repoRoot, f))
  if (res.status !== 0) {
    if (!entries.every((f) => existsSync(f))) throw new Error(`npm run build failed:\n${res.stdout}${res.stderr}`)
    const errors = (res.stdout + res.stderr).split('\n').filter((l) => /error TS/.test(l))
    log(`warning: npm run build reported ${errors.length} type error(s) (JS was emitted; first: ${errors[0]?.trim() ?? '?'})`)
  }
}

/**
 * CPU seconds (user + system) a process has used, from /proc/<pid>/stat (clock ticks of 1/100 s):
 * all its threads, V8's GC helpers and libuv's pool included. With `mainThread`, only the thread
 * that runs JavaScript (/proc/<pid>/task/<pid>/stat), the one a request waits for.
 */
export function cpuOf(pid: number, mainThread = false): number {
  try {
    const stat = readFileSync(mainThread ? `/proc/${pid}/task/${pid}/stat` : `/proc/${pid}/stat`, 'utf8')
    // Fields after the command name (which may contain spaces) start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch {
    return 0
  }
}

/** A reader of a process's CPU seconds so far, for cpuWindow; 0 while it has no pid (a stopped service). */
export const pidCpu =
  (pid: number | undefined, mainThread = false): (() => number) =>
  () =>
    pid ? cpuOf(pid, mainThread) : 0

/**
 * The whole machine's CPU so far, in seconds summed over its cores, from /proc/stat's first line:
 * busy (user, nice, system, irq, softirq) and steal (time the hypervisor gave another guest
 * while this one wanted to run). Over a window, busy minus our processes' own CPU is what
 * everything else on the box took from them.
 */
function machineCpu(): { busy: number; steal: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number)
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = f
  return { busy: (user + nice + system + irq + softirq) / 100, steal: steal / 100 }
}

/** What the machine and each named process used over a window, in cores (CPU seconds per second). */
export interface CpuShare {
  busy: number
  steal: number
  processes: Record<string, number>
  /** Busy minus the named processes: the rest of the stack and the bench, and any other work on the box. */
  others: number
}

/**
 * Opens a CPU window over the named processes (each read as CPU seconds so far); the function it
 * returns closes it. `extraS` adds processes whose CPU seconds were counted elsewhere (a load
 * generator counts its own).
 */
export function cpuWindow(processes: Record<string, () => number>): (extraS?: Record<string, number>) => CpuShare {
  const read = () => ({
    at: performance.now(),
    machine: machineCpu(),
    each: Object.fromEntries(Object.entries(processes).map(([name, cpu]) => [name, cpu()])),
  })
  const a = read()
  return (extraS = {}) => {
    const z = read()
    const cores = (cpuS: number) => cpuS / ((z.at - a.at) / 1000)
    const named: Record<string, number> = {}
    for (const name of Object.keys(processes)) named[name] = cores(z.each[name]! - a.each[name]!)
    for (const [name, cpuS] of Object.entries(extraS)) named[name] = cores(cpuS)
    const busy = cores(z.machine.busy - a.machine.busy)
    const ours = Object.values(named).reduce((x, y) => x + y, 0)
    return { busy, steal: cores(z.machine.steal - a.machine.steal), processes: named, others: Math.max(0, busy - ours) }
  }
}

export function formatCpuShare(s: CpuShare): string {
  const named = Object.entries(s.processes).map(([name, cores]) => `${name} ${cores.toFixed(2)}`)
  return `machine, in cores: busy ${s.busy.toFixed(2)} = ${[...named, `everything else ${s.others.toFixed(2)}`].join(' + ')}; steal ${s.steal.toFixed(2)}`
}

/**
 * Read and write system calls a process has made, from /proc/<pid>/io. Socket reads and writes
 * count here, so per request they say how well a process batches its I/O, whatever the machine's
 * load does to its CPU time.
 */
export function syscallsOf(pid: number): { reads: number; writes: number } {
  try {
    const io = readFileSync(`/proc/${pid}/io`, 'utf8')
    const f = (name: string) => Number(new RegExp(`^${name}: (\\d+)`, 'm').exec(io)?.[1] ?? 0)
    return { reads: f('syscr'), writes: f('syscw') }
  } catch {
    return { reads: 0, writes: 0 }
  }
}

export function rssOf(pid: number, field: 'VmRSS' | 'VmHWM' = 'VmRSS'): number {
  try {
    const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m ? Number(m[1]) * 1024 : 0
  } catch {
    return 0
  }
}

/** Every app process still running, so an interrupted run can stop them (run.ts). */
const live = new Set<AppProcess>()

export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((p) => p.stop()))
}

interface SpawnOptions {
  name: string
  script: string
  env: Record<string, string>
  dir: string
  port: number
  metricsPort: number | null
  /** Extra node flags, e.g. --cpu-prof. */
  nodeArgs?: string[]
  ready: () => Promise<boolean>
}

async function spawnApp(o: SpawnOptions): Promise<AppProcess> {
  const logFile = join(o.dir, `${o.name}.log`)
  const fd = openSync(logFile, 'a')
  const child: ChildProcess = spawn(process.execPath, [...(o.nodeArgs ?? []), o.script], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...o.env },
    stdio: ['ignore', fd, fd],
  })
  closeSync(fd)
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  let gone = false
  void exited.then(() => (gone = true))
  const deadline = Date.now() + 60_000
  for (;;) {
    if (gone) throw new Error(`${o.name} exited during start; see ${logFile}`)
    if (await o.ready().catch(() => false)) break
    if (Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`${o.name} not ready after 60 s; see ${logFile}`)
    }
    await sleep(50)
  }
  const pid = child.pid!
  const proc: AppProcess = {
    name: o.name,
    pid,
    port: o.port,
    metricsPort: o.metricsPort,
    logFile,
    rss: () => rssOf(pid),
    peakRss: () => rssOf(pid, 'VmHWM'),
    cpu: () => cpuOf(pid),
    exited,
    async stop() {
      if (gone) return
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 40_000)
      await exited
      clearTimeout(timer)
    },
  }
  live.add(proc)
  void exited.then(() => live.delete(proc))
  return proc
}

const ok = async (url: string) => (await fetch(url, { signal: AbortSignal.timeout(2000) })).ok

export async function startGateway(name: string, env: Record<string, string>, dir: string, nodeArgs: string[] = []): Promise<AppProcess> {
  const port = await freePort()
  const metricsPort = await freePort()
  return spawnApp({
    name,
    script: join(repoRoot, 'dist/gateway/server.js'),
    env: roleEnv({ ...env, PORT: String(port), METRICS_PORT: String(metricsPort), PUBLIC_URL: `http://127.0.0.1:${port}` }, 'gateway'),
    dir,
    port,
    metricsPort,
    // Production's flags (shared/node-flags.ts), then BENCH_GATEWAY_NODE_FLAGS for an experiment
    // (a later V8 flag wins: `--max-semi-space-size=16 --trace-gc`), then any the bench adds (--cpu-prof).
    nodeArgs: [...NODE_FLAGS.gateway, ...(process.env.BENCH_GATEWAY_NODE_FLAGS?.split(' ').filter(Boolean) ?? []), ...nodeArgs],
    ready: () => ok(`http://127.0.0.1:${port}/readyz`),
  })
}

export async function startWorker(name: string, env: Record<string, string>, dir: string, nodeArgs: string[] = []): Promise<AppProcess> {
  const metricsPort = await freePort()
  return spawnApp({
    name,
    script: join(repoRoot, 'dist/worker/server.js'),
    env: roleEnv({ ...env, METRICS_PORT: String(metricsPort) }, 'worker'),
    dir,
    port: metricsPort,
    metricsPort,
    nodeArgs,
    ready: () => ok(`http://127.0.0.1:${metricsPort}/healthz`),
  })
}

/** B1/B5: a bare Fastify hello world, plain node like the gateway. */
export async function startHello(dir: string): Promise<AppProcess> {
  const port = await freePort()
  return spawnApp({
    name: 'hello',
    script: join(repoRoot, 'bench/hello-server.mjs'),
    env: { PORT: String(port) },
    dir,
    port,
    metricsPort: null,
    ready: () => ok(`http://127.0.0.1:${port}/`),
  })
}

/** Waits until `p` is nearly idle (under 5% of a core over 250 ms), at most `maxMs`: the work a load left in flight is done. */
export async function settle(p: AppProcess, maxMs = 10_000): Promise<void> {
  const deadline = Date.now() + maxMs
  while (Date.now() < deadline) {
    const before = p.cpu()
    await sleep(250)
    if (p.cpu() - before < 0.0125) return
  }
}

/** Lets a fresh process settle (JIT, lazy init, GC) before its idle RSS is read; the median of a few reads. */
export async function idleRss(p: AppProcess, settleMs = 3000): Promise<number> {
  await sleep(settleMs)
  const reads: number[] = []
  for (let i = 0; i < 5; i++) {
    reads.push(p.rss())
    await sleep(200)
  }
  return reads.sort((a, b) => a - b)[2]!
}

/** The newest .cpuprofile files written under `dir` (node --cpu-prof writes one at exit). */
export function cpuProfiles(dir: string): string[] {
  if (!existsSync(dir)) return []
  return readdirSync(dir)
    .filter((f) => f.endsWith('.cpuprofile'))
    .map((f) => join(dir, f))
}
