// S-shard: accepted session PUTs/s on the Redis Cluster with the work on 1 shard (one master)
// against 3 shards (one per master), same cluster, same gateway, same load as T1. Only a gateway
// runs, as in T1. On 2 shared cores this cannot show a cluster's speed: it shows that spreading
// the work over shards costs nothing and breaks nothing (every answer is counted by status).
import type { DistBench } from './distributed.ts'
import { SHARDS } from './distributed.ts'
import { runLoad } from './load.ts'
import type { AutocannonSummary } from './load-child.ts'
import { settle, startGateway, type AppProcess } from './procs.ts'
import { median } from './stats.ts'

export interface ShardRound {
  shards: number
  rps: number
  statuses: Record<string, number>
  /** CPU microseconds per accepted request: the gateway, and every Redis node (replicas included). */
  cpu_us_per_accept: { gateway: number; redis: number }
  /** Keys on each master after the round: 1 shard puts the jobs on one master, 3 on all three. */
  keys_per_master: number[]
}

export interface ShardScaling {
  shards_1_rps: number
  shards_3_rps: number
  /** Median of each interleaved pair's 3-shard / 1-shard ratio: steadier than the ratio of medians when the machine's load drifts. */
  paired_ratio_median: number
  rounds: ShardRound[]
}

export async function measureShards(d: DistBench): Promise<ShardScaling> {
  const { opts } = d
  const gateways: Record<number, AppProcess> = {}
  try {
    for (const n of [1, SHARDS]) gateways[n] = await startGateway(`gateway-shards-${n}`, { ...d.appEnv, REDIS_SHARDS: String(n) }, d.dir)
    const rounds: ShardRound[] = []
    // Interleaved (1, 3, 1, 3, ...) so that drift in the machine's load falls on both alike.
    for (let r = 0; r < opts.rounds; r++) {
      for (const n of [1, SHARDS]) {
        const g = gateways[n]!
        await d.resetRedis()
        const gw = g.cpu()
        const rc = d.redisCpu()
        const res = await runLoad<AutocannonSummary>(d.dir, {
          mode: 'autocannon',
          target: { host: '127.0.0.1', port: g.port },
          kind: 'sessions',
          connections: opts.connections,
          pipelining: opts.pipelining,
          durationS: opts.closedSeconds,
          warmupS: opts.warmupSeconds,
          tokensFile: d.tokensFiles[n]!,
        })
        // autocannon abandons the requests in flight when it stops; the gateway still serves them.
        // Let it finish before the next round's reset, so they neither land in it nor take its CPU.
        await settle(g)
        const accepted = Math.max(1, res.totalExpected)
        const round: ShardRound = {
          shards: n,
          rps: res.rps,
          statuses: res.statuses,
          cpu_us_per_accept: { gateway: ((g.cpu() - gw) / accepted) * 1e6, redis: ((d.redisCpu() - rc) / accepted) * 1e6 },
          keys_per_master: await d.keysPerMaster(),
        }
        rounds.push(round)
        d.log(
          `  S-shard round ${r + 1}, ${n} shard(s): ${Math.round(res.rps)} accepted/s (p99 ${res.p99} ms closed loop), statuses ${JSON.stringify(res.statuses)}; ` +
            `CPU us/accept: gateway ${round.cpu_us_per_accept.gateway.toFixed(0)}, redis (6 nodes) ${round.cpu_us_per_accept.redis.toFixed(0)}; keys per master ${JSON.stringify(round.keys_per_master)}`,
        )
      }
    }
    const of = (n: number) => median(rounds.filter((x) => x.shards === n).map((x) => x.rps))
    const one = rounds.filter((x) => x.shards === 1)
    const three = rounds.filter((x) => x.shards === SHARDS)
    const paired = three.map((x, i) => x.rps / one[i]!.rps)
    return { shards_1_rps: of(1), shards_3_rps: of(SHARDS), paired_ratio_median: median(paired), rounds }
  } finally {
    await Promise.all(Object.values(gateways).map((g) => g.stop()))
  }
}
