// A Redis server of a test's own, for tests that stop, restart or fill it: doing that to the
// suite's shared Redis would disturb every test running beside it.
import { randomBytes } from 'node:crypto'
import { mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import type { Test } from 'tap'
import { ensureBinaries } from '../../stack/install.ts'
import { defaultStackDir } from '../../stack/paths.ts'
import { startRedis, type ServiceHandle } from '../../stack/services.ts'

/** Started with the stack's settings (AOF, noeviction) plus `extraArgs`; stopped and removed at teardown. */
export async function privateRedis(t: Test, extraArgs: string[] = []): Promise<ServiceHandle> {
  const { redisServer } = await ensureBinaries()
  const dir = join(defaultStackDir, 'test-redis', `${process.pid}-${randomBytes(3).toString('hex')}`)
  await mkdir(dir, { recursive: true })
  const redis = await startRedis(redisServer, { dataDir: dir, logFile: join(dir, 'redis.log'), extraArgs })
  t.teardown(async () => {
    await redis.stop()
    await rm(dir, { recursive: true, force: true })
  })
  return redis
}
