// A Redis Cluster as production runs one, on loopback: 3 masters with 1 replica each (Debian's
// redis-server in cluster mode), with the same ACL users and durability settings as the single
// server. The slots are given out so that each shard's hash tag (shared/redis-shards.ts) lands on
// its own master: an even split (`redis-cli --cluster create`) puts {rdt} and {rdt:1} on the same
// master, and adding shards would then add nothing.
//
// A short cluster-node-timeout (2 s) makes a failover quick enough for the fault suite; production
// keeps Redis's default (15 s) or what its operator chooses.
//
// Ports are kept in <dataDir>/ports.json, so a restarted stack finds its cluster again (each
// node's nodes.conf names its peers by port). If one of them is taken, the cluster is formed anew
// in an empty directory: the old data would be unreachable anyway.
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { keySlot, shardPrefixes } from '../shared/redis-shards.ts'
import { freePort } from './ports.ts'
import { ChildService, type ServiceHandle } from './service.ts'
import { REDIS_BASE_ARGS, pingRedis, type RedisOptions } from './services.ts'

const MASTERS = 3
const REPLICAS_PER_MASTER = 1
export const CLUSTER_NODE_TIMEOUT_MS = 2000

export interface RedisClusterOptions extends RedisOptions {
  /** The user the stack forms the cluster with, and that replicas authenticate to their master as (local only: stack/redis-acl.ts). */
  adminUser: { username: string; password: string }
  /** REDIS_PREFIX: shard k's tag is placed on master k. */
  prefix: string
}

export interface RedisClusterHandle extends ServiceHandle {
  /** Every node, masters first (as formed; a failover may since have swapped roles). */
  readonly nodes: ServiceHandle[]
  /** REDIS_CLUSTER_NODES: host:port of every node. */
  readonly clusterNodes: string
}

interface Layout {
  ports: number[]
  busPorts: number[]
}

export async function startRedisCluster(bin: string, opts: RedisClusterOptions): Promise<RedisClusterHandle> {
  const count = MASTERS * (1 + REPLICAS_PER_MASTER)
  const layout = await reuseOrNewLayout(opts.dataDir, count)
  const nodes = layout.ports.map((port, i) => clusterNode(bin, opts, port, layout.busPorts[i]!, i))
  for (const [i] of nodes.entries()) await writeNodeConfig(opts, i)
  await Promise.all(nodes.map((n) => n.start()))
  const handle = composite(nodes, layout, opts)
  try {
    await formCluster(layout, opts)
    await handle.ready(opts.readyTimeoutMs ?? 60_000)
  } catch (err) {
    await handle.stop()
    throw err
  }
  return handle
}

/** Last run's ports when every one is still free (the cluster's nodes.conf files name them), or new ones in a wiped directory. */
async function reuseOrNewLayout(dir: string, count: number): Promise<Layout> {
  const file = join(dir, 'ports.json')
  const prev = JSON.parse(await readFile(file, 'utf8').catch(() => 'null')) as Layout | null
  if (prev && prev.ports.length === count) {
    const got = await Promise.all([...prev.ports, ...prev.busPorts].map((p) => freePort(p)))
    if (got.every((p, i) => p === [...prev.ports, ...prev.busPorts][i])) return prev
  }
  await rm(dir, { recursive: true, force: true })
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const used = new Set<number>()
  while (used.size < count * 2) used.add(await freePort())
  const all = [...used]
  const layout = { ports: all.slice(0, count), busPorts: all.slice(count) }
  await writeFile(file, JSON.stringify(layout))
  return layout
}

function clusterNode(bin: string, opts: RedisClusterOptions, port: number, busPort: number, i: number): ChildService {
  const dir = join(opts.dataDir, `n${i + 1}`)
  return new ChildService({
    name: `redis-node${i + 1}`,
    port,
    url: `redis://127.0.0.1:${port}`,
    logFile: opts.logFile.replace(/\.log$/, `-node${i + 1}.log`),
    command: bin,
    // The config file first (it holds the replication password, kept out of argv); later flags win.
    args: [
      join(dir, 'redis.conf'),
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      dir,
      '--aclfile',
      opts.aclFile!,
      '--cluster-enabled',
      'yes',
      '--cluster-config-file',
      'nodes.conf',
      '--cluster-port',
      String(busPort),
      '--cluster-node-timeout',
      String(CLUSTER_NODE_TIMEOUT_MS),
      // While one shard's master is failing over, the other shards keep serving.
      '--cluster-require-full-coverage',
      'no',
      ...REDIS_BASE_ARGS,
      ...(opts.extraArgs ?? []),
    ],
    probe: () => pingRedis(port, opts.probeUser),
    readyTimeoutMs: opts.readyTimeoutMs,
    onSpawn: (pid) => opts.onSpawn?.(pid, `redis-node${i + 1}`),
  })
}

/** Mode 0600: a replica logs in to its master with these (the default user is off). */
async function writeNodeConfig(opts: RedisClusterOptions, i: number): Promise<void> {
  const dir = join(opts.dataDir, `n${i + 1}`)
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const { username, password } = opts.adminUser
  await writeFile(join(dir, 'redis.conf'), `masteruser ${username}\nmasterauth ${password}\n`, { mode: 0o600 })
}

/**
 * Slot ranges, one per master, each holding one shard's slot: the shards' slots sorted, and the
 * boundaries half-way between neighbours.
 */
export function slotRanges(prefix: string, masters: number): { shard: number; from: number; to: number }[] {
  const slots = shardPrefixes(prefix, masters)
    .map((p, shard) => ({ shard, slot: keySlot(p) }))
    .sort((a, b) => a.slot - b.slot)
  return slots.map(({ shard }, i) => ({
    shard,
    from: i === 0 ? 0 : Math.floor((slots[i - 1]!.slot + slots[i]!.slot) / 2) + 1,
    to: i === slots.length - 1 ? 16383 : Math.floor((slots[i]!.slot + slots[i + 1]!.slot) / 2),
  }))
}

/** Forms the cluster unless the nodes already are one (a restarted stack). */
async function formCluster(layout: Layout, opts: RedisClusterOptions): Promise<void> {
  const clients = layout.ports.map(
    (port) => new Redis({ host: '127.0.0.1', port, ...opts.adminUser, lazyConnect: true, maxRetriesPerRequest: 1 }),
  )
  try {
    await Promise.all(clients.map((c) => c.connect()))
    const known = String(await clients[0]!.cluster('INFO'))
    if (/cluster_known_nodes:(\d+)/.exec(known)?.[1] === String(clients.length)) return
    const masters = clients.slice(0, MASTERS)
    const ranges = slotRanges(opts.prefix, MASTERS)
    for (const [i, r] of ranges.entries()) await masters[i]!.call('CLUSTER', 'ADDSLOTSRANGE', String(r.from), String(r.to))
    for (const [i, port] of layout.ports.entries()) {
      if (i > 0) await clients[0]!.call('CLUSTER', 'MEET', '127.0.0.1', String(port), String(layout.busPorts[i]))
    }
    await until(async () => {
      const infos = await Promise.all(clients.map((c) => c.cluster('INFO') as Promise<string>))
      return infos.every((t) => t.includes(`cluster_known_nodes:${clients.length}`))
    }, 'every node to know the others')
    const ids = await Promise.all(masters.map((m) => m.call('CLUSTER', 'MYID') as Promise<string>))
    for (const [j, replica] of clients.slice(MASTERS).entries()) await replica.call('CLUSTER', 'REPLICATE', ids[j % MASTERS]!)
  } finally {
    for (const c of clients) c.disconnect()
  }
}

async function until(check: () => Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await check().catch(() => false)) return
    if (Date.now() > deadline) throw new Error(`Redis Cluster: timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

/** The cluster is ready when every node says cluster_state:ok and every master has its replica in sync. */
async function clusterReady(layout: Layout, opts: RedisClusterOptions): Promise<boolean> {
  const clients = layout.ports.map(
    (port) =>
      new Redis({ host: '127.0.0.1', port, ...opts.adminUser, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null }),
  )
  try {
    await Promise.all(clients.map((c) => c.connect()))
    const infos = await Promise.all(clients.map((c) => c.cluster('INFO') as Promise<string>))
    if (!infos.every((t) => t.includes('cluster_state:ok'))) return false
    const repl = await Promise.all(clients.map((c) => c.info('replication')))
    const masters = repl.filter((t) => t.includes('role:master'))
    return masters.length === MASTERS && masters.every((t) => new RegExp(`connected_slaves:${REPLICAS_PER_MASTER}\\b`).test(t))
  } finally {
    for (const c of clients) c.disconnect()
  }
}

/** One handle for the whole cluster; the first node's address is REDIS_URL's (one more seed). */
function composite(nodes: ChildService[], layout: Layout, opts: RedisClusterOptions): RedisClusterHandle {
  const all = (f: (n: ChildService) => Promise<unknown>) => Promise.all(nodes.map(f)).then(() => undefined)
  const first = nodes[0]!
  return {
    name: 'redis',
    port: first.port,
    url: first.url,
    nodes,
    clusterNodes: layout.ports.map((p) => `127.0.0.1:${p}`).join(','),
    get pid() {
      return first.pid
    },
    logFile: first.logFile,
    start: async () => {
      await all((n) => n.start())
      await composite(nodes, layout, opts).ready(opts.readyTimeoutMs ?? 60_000)
    },
    stop: () => all((n) => n.stop()),
    kill: (signal) => all((n) => n.kill(signal)),
    ready: (timeoutMs = 60_000) => until(() => clusterReady(layout, opts), 'cluster_state:ok and every replica in sync', timeoutMs),
    exited: () => Promise.all(nodes.map((n) => n.exited())).then((why) => why.join('; ')),
  }
}
