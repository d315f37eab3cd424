// Shards. On a Redis Cluster one hash tag is one slot and one slot lives on one master, so all
// work under a single tag would use one master however many the cluster has. The work is
// therefore spread over REDIS_SHARDS shards, each a hash tag of its own: shard 0 is REDIS_PREFIX
// itself (`{rdt}`, so a deployment that never had shards keeps its keys), shard k is `{rdt:k}`.
// A workspace belongs to one shard (workspaces.redis_shard), so its idempotency keys, rate-limit
// state and queue jobs share a slot, and the claim script and the BullMQ add need no cross-slot
// work. The keys every shard shares (the token mirror, its channel, the unknown-token counters,
// the admin log-in limiter) stay under REDIS_PREFIX.
//
// A shard's prefix is persisted in every key of its jobs: shard numbers are never reused for
// another prefix, and REDIS_SHARDS may grow but must not shrink below a shard still in use.

/** An upper bound that keeps a worker's connection count sane (one BullMQ Worker per queue and shard). */
export const MAX_SHARDS = 64

/** `{rdt}`: one whole hash tag, so every key under it maps to one slot. */
export function isHashTag(prefix: string): boolean {
  return /^\{[^{}]+\}$/.test(prefix)
}

/** Shard k's key prefix: the base for shard 0, `{<tag>:k}` for the others. */
export function shardPrefix(base: string, shard: number): string {
  if (!Number.isInteger(shard) || shard < 0) throw new RangeError(`bad shard number ${shard}`)
  if (shard === 0) return base
  // Validated at start (shared/config.ts): with more than one shard the base is a hash tag.
  return `{${base.slice(1, -1)}:${shard}}`
}

/** Every shard's prefix, in shard order. */
export function shardPrefixes(base: string, count: number): string[] {
  return Array.from({ length: count }, (_, k) => shardPrefix(base, k))
}

/** The Redis Cluster slot of a key or prefix (CRC16 of its hash tag, mod 16384), as CLUSTER KEYSLOT computes it. */
export function keySlot(key: string): number {
  const open = key.indexOf('{')
  let tagged = key
  if (open >= 0) {
    const close = key.indexOf('}', open + 1)
    if (close > open + 1) tagged = key.slice(open + 1, close)
  }
  let crc = 0
  for (const byte of Buffer.from(tagged)) {
    crc ^= byte << 8
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff
  }
  return crc % 16384
}
