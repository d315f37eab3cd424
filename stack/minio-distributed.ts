// MinIO in distributed mode, as a cluster runs it: NODES server processes on loopback ports, each
// with DRIVES drive folders, erasure-coded across the nodes as one set, behind a TCP load balancer
// (stack/tcp-balancer.ts) that is the one S3 endpoint the app is given. Losing one node keeps
// every object readable and writable (8 drives, parity 4 by default: one node is 2 drives).
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { ChildService, type ServiceHandle } from './service.ts'
import { freePort } from './ports.ts'
import { minioEnv, pingS3, type S3Options } from './services.ts'
import { startBalancer, type Balancer } from './tcp-balancer.ts'

const NODES = 4
const DRIVES = 2

export interface DistributedS3 extends ServiceHandle {
  /** The server processes, for fault tests that kill one. */
  readonly nodes: ServiceHandle[]
}

export async function startMinioDistributed(bin: string, opts: S3Options): Promise<DistributedS3> {
  const ports = await distinctFreePorts(NODES * 2)
  const [serverPorts, consolePorts] = [ports.slice(0, NODES), ports.slice(NODES)]
  // Every node is given the same explicit list of all endpoints. MinIO's `{1...4}` pattern over
  // both ports and paths would multiply them (4 x 4 x 2 = 32 endpoints).
  const endpoints = serverPorts.flatMap((port, n) =>
    Array.from({ length: DRIVES }, (_, d) => `http://127.0.0.1:${port}${join(opts.dataDir, `n${n + 1}`, `d${d + 1}`)}`),
  )
  for (let n = 1; n <= NODES; n++)
    for (let d = 1; d <= DRIVES; d++) await mkdir(join(opts.dataDir, `n${n}`, `d${d}`), { recursive: true, mode: 0o700 })
  const nodes = serverPorts.map(
    (port, i) =>
      new ChildService({
        name: `s3-node${i + 1}`,
        port,
        url: `http://127.0.0.1:${port}`,
        logFile: opts.logFile.replace(/\.log$/, `-node${i + 1}.log`),
        command: bin,
        args: ['server', '--quiet', '--address', `127.0.0.1:${port}`, '--console-address', `127.0.0.1:${consolePorts[i]}`, ...endpoints],
        // These machines are containers: without _MINIO_SERVER_LOCAL a node waits for ever for
        // 127.0.0.1 to "resolve to a valid IP" before it recognises its own endpoints.
        env: minioEnv(opts, { _MINIO_SERVER_LOCAL: `127.0.0.1:${port}` }),
        probe: () => nodeLive(port),
        readyTimeoutMs: opts.readyTimeoutMs,
        onSpawn: (pid) => opts.onSpawn?.(pid, `s3-node${i + 1}`),
      }),
  )
  await Promise.all(nodes.map((n) => n.start()))
  const balancer = await startBalancer(serverPorts, opts.port)
  const handle = composite(nodes, serverPorts, balancer, opts)
  await handle.ready(opts.readyTimeoutMs ?? 60_000)
  return handle
}

/**
 * One handle for the whole cluster: the balancer's address, and every node started, stopped or
 * killed together. Stopping closes the balancer too (the stack must not leave a listener behind);
 * starting opens it again on the same port, so S3_ENDPOINT stays right.
 */
function composite(nodes: ChildService[], serverPorts: number[], first: Balancer, opts: S3Options): DistributedS3 {
  const all = (f: (n: ChildService) => Promise<unknown>) => Promise.all(nodes.map(f)).then(() => undefined)
  const { port, url } = first
  let balancer: Balancer | null = first
  return {
    name: 's3',
    port,
    url,
    nodes,
    get pid() {
      return nodes[0]!.pid
    },
    logFile: nodes[0]!.logFile,
    start: async () => {
      await all((n) => n.start())
      balancer ??= await startBalancer(serverPorts, port)
    },
    stop: async () => {
      await all((n) => n.stop())
      await balancer?.close()
      balancer = null
    },
    kill: (signal) => all((n) => n.kill(signal)),
    // Ready once the erasure set answers S3 through the balancer and every node that runs sees a
    // write quorum (/minio/health/cluster); a node can answer S3 before it does.
    ready: async (timeoutMs = 60_000) => {
      const deadline = Date.now() + timeoutMs
      for (;;) {
        try {
          await pingS3(port, opts)
          await Promise.all(serverPorts.filter((_, i) => nodes[i]!.pid !== undefined).map((p) => clusterHealthy(p)))
          return
        } catch (err) {
          if (Date.now() > deadline)
            throw new Error(`distributed MinIO not ready after ${timeoutMs} ms: ${(err as Error).message}`, { cause: err })
          await new Promise((r) => setTimeout(r, 200))
        }
      }
    },
    exited: () => Promise.all(nodes.map((n) => n.exited())).then((why) => why.join('; ')),
  }
}

/** 200 when this node sees a write quorum of the erasure set. */
async function clusterHealthy(port: number): Promise<void> {
  const res = await fetch(`http://127.0.0.1:${port}/minio/health/cluster`, { signal: AbortSignal.timeout(2000) })
  if (!res.ok) throw new Error(`node ${port}: health/cluster answered ${res.status}`)
}

/** A node's own liveness (the process answers), before the cluster has formed. */
async function nodeLive(port: number): Promise<void> {
  const res = await fetch(`http://127.0.0.1:${port}/minio/health/live`, { signal: AbortSignal.timeout(2000) })
  if (!res.ok) throw new Error(`health/live answered ${res.status}`)
}

async function distinctFreePorts(n: number): Promise<number[]> {
  const ports = new Set<number>()
  while (ports.size < n) ports.add(await freePort())
  return [...ports]
}
