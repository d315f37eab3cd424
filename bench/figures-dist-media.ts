// S-s3: photo MB/s into final storage on distributed MinIO (4 nodes, erasure-coded, behind the
// stack's balancer) against its own direct PUT baseline, both on the distributed stack in the same
// run: T3's method and photo set against B4's (bench/figures-media.ts, bench/baselines.ts). The
// ratio says what our media path costs on a distributed store; the absolute MB/s on 2 cores,
// with 4 MinIO processes sharing them, says nothing about a real cluster's speed.
import { directS3PutMbS } from './baselines.ts'
import { shardPrefixes } from '../shared/redis-shards.ts'
import { PREFIX } from './context.ts'
import { SHARDS, type DistBench } from './distributed.ts'
import { t3Round, type T3Round } from './figures-media.ts'
import { startGateway, startWorker } from './procs.ts'
import { median } from './stats.ts'

export interface DistMediaFigures {
  direct_put_mb_s: number
  media_mb_s: number
  direct_rounds: number[]
  media_rounds: T3Round[]
}

export async function measureDistMedia(d: DistBench): Promise<DistMediaFigures> {
  const { opts } = d
  d.log(`S-s3: B4 and T3 on distributed MinIO, ${opts.photos} photos of 1-5 MB at concurrency ${opts.photoConcurrency}`)
  const direct: number[] = []
  for (let r = 0; r < opts.rounds; r++) {
    direct.push(await directS3PutMbS(d, opts.photos, opts.photoConcurrency))
    d.log(`  S-s3 direct PUT round ${r + 1}: ${direct.at(-1)!.toFixed(1)} MB/s`)
  }
  await d.resetRedis()
  const g = await startGateway('gateway-dist-media', d.appEnv, d.dir)
  const w = await startWorker('worker-dist-media', d.appEnv, d.dir)
  const media: T3Round[] = []
  try {
    for (let r = 0; r < opts.rounds; r++) {
      const round = await t3Round(d, g, opts.photos, opts.photoConcurrency, shardPrefixes(PREFIX, SHARDS))
      media.push(round)
      d.log(
        `  S-s3 media round ${r + 1}: ${round.mb_s_final.toFixed(1)} MB/s into final storage (${round.mb.toFixed(0)} MB in ${round.seconds_final.toFixed(1)} s); ` +
          `${round.mb_s_gateway.toFixed(1)} MB/s accepted by the gateway; statuses ${JSON.stringify(round.statuses)}`,
      )
    }
  } finally {
    await Promise.all([g.stop(), w.stop()])
  }
  return {
    direct_put_mb_s: median(direct),
    media_mb_s: median(media.map((x) => x.mb_s_final)),
    direct_rounds: direct,
    media_rounds: media,
  }
}
