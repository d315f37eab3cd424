// Removes every key under a test's (or a bench run's) own Redis prefix, so a shared local Redis
// does not fill up with finished runs. SCAN in pages, never KEYS: another run's keys may be many.
import type { Redis } from 'ioredis'

export async function deleteKeysWithPrefix(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0'
  do {
    const [next, found] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)
    cursor = next
    if (found.length) await redis.del(...found)
  } while (cursor !== '0')
}
