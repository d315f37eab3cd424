// Shard prefixes and slot arithmetic (shared/redis-shards.ts), and the local cluster's slot
// layout (stack/redis-cluster.ts): no services needed.
import t from 'tap'
import { keySlot, shardPrefix, shardPrefixes } from '../shared/redis-shards.ts'
import { slotRanges } from '../stack/redis-cluster.ts'

t.test('shard 0 keeps REDIS_PREFIX; the others are hash tags of their own', async (t) => {
  t.same(shardPrefixes('{rdt}', 3), ['{rdt}', '{rdt:1}', '{rdt:2}'])
  t.equal(shardPrefix('{t1}', 12), '{t1:12}')
  t.throws(() => shardPrefix('{rdt}', -1))
  t.throws(() => shardPrefix('{rdt}', 1.5))
})

t.test('keySlot is CLUSTER KEYSLOT: CRC16 of the hash tag, mod 16384', async (t) => {
  // Reference values from Redis's cluster specification and redis-cli CLUSTER KEYSLOT.
  t.equal(keySlot('123456789'), 12739)
  t.equal(keySlot('{user1000}.following'), keySlot('{user1000}.followers'))
  t.not(keySlot('foo{}{bar}'), keySlot('bar'), 'an empty first tag: the whole key is hashed, not a later tag')
  t.equal(keySlot('{rdt}:idem:s:w1:g1'), keySlot('rdt'))
  t.not(keySlot('{rdt}'), keySlot('{rdt:1}'))
})

t.test('the local cluster gives each of 3 masters exactly one shard, and every slot to someone', async (t) => {
  for (const prefix of ['{rdt}', '{f0a1b2c3}', '{t99}']) {
    const ranges = slotRanges(prefix, 3).sort((a, b) => a.from - b.from)
    t.equal(ranges[0]!.from, 0, prefix)
    t.equal(ranges.at(-1)!.to, 16383)
    for (let i = 1; i < ranges.length; i++) t.equal(ranges[i]!.from, ranges[i - 1]!.to + 1, 'contiguous')
    for (const r of ranges) {
      const slot = keySlot(shardPrefix(prefix, r.shard))
      t.ok(slot >= r.from && slot <= r.to, `${prefix} shard ${r.shard} (slot ${slot}) is in its master's range ${r.from}-${r.to}`)
    }
  }
})
