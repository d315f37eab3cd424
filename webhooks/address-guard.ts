// Where a delivery may go. An endpoint URL is typed by a workspace's administrator; without a
// guard it would let them make the worker send requests to the servers next to it (Redis,
// MongoDB, MinIO, a cloud metadata service at 169.254.169.254). So, unless
// WEBHOOK_ALLOW_PRIVATE=1, only public unicast addresses are allowed, and the check is made on
// the address the socket actually connects to (guardedLookup is the connection's DNS lookup),
// so a name that resolves to a public address for a check and a private one for the connection
// (DNS rebinding) gets nowhere.
import { lookup as dnsLookup, type LookupAddress } from 'node:dns'
import { BlockList, isIP, type LookupFunction } from 'node:net'
import { AppError } from '../shared/errors.ts'

/** A delivery refused before any connection: its host is (or resolves to) a non-public address. */
export class BlockedAddressError extends AppError {
  readonly code = 'blocked_address'
}

const V4_BLOCKED: [string, number][] = [
  ['0.0.0.0', 8], // "this network", unspecified
  ['10.0.0.0', 8], // private
  ['100.64.0.0', 10], // carrier-grade NAT
  ['127.0.0.0', 8], // loopback
  ['169.254.0.0', 16], // link-local (cloud metadata services live here)
  ['172.16.0.0', 12], // private
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.0.2.0', 24], // documentation
  ['192.88.99.0', 24], // 6to4 relay anycast (deprecated)
  ['192.168.0.0', 16], // private
  ['198.18.0.0', 15], // benchmarking
  ['198.51.100.0', 24], // documentation
  ['203.0.113.0', 24], // documentation
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, and 255.255.255.255 broadcast
]

const V6_BLOCKED: [string, number][] = [
  ['::', 128], // unspecified
  ['::1', 128], // loopback
  ['::', 96], // IPv4-compatible (deprecated)
  ['100::', 64], // discard
  ['2001:db8::', 32], // documentation
  ['fc00::', 7], // unique local
  ['fe80::', 10], // link-local
  ['fec0::', 10], // site-local (deprecated)
  ['ff00::', 8], // multicast
]

const v4List = new BlockList()
for (const [net, bits] of V4_BLOCKED) v4List.addSubnet(net, bits, 'ipv4')
const v6List = new BlockList()
for (const [net, bits] of V6_BLOCKED) v6List.addSubnet(net, bits, 'ipv6')

/** The 16 bytes of an IPv6 address in any textual form (with :: and a dotted IPv4 tail). */
function v6Bytes(address: string): number[] {
  let text = address.split('%')[0]!.toLowerCase()
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text)
  if (dotted) {
    const b = dotted[1]!.split('.').map(Number)
    text = text.slice(0, -dotted[1]!.length) + `${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined]
  const h = head ? head.split(':') : []
  const t = tail ? tail.split(':') : []
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t]
  return groups.flatMap((g) => {
    const n = parseInt(g || '0', 16)
    return [n >> 8, n & 0xff]
  })
}

/**
 * The IPv4 address an IPv6 address stands for, when it embeds one that a router or the host
 * would reach: IPv4-mapped (::ffff:a.b.c.d, which a dual-stack socket connects to over IPv4),
 * NAT64 (64:ff9b::/96) and 6to4 (2002::/16). null otherwise.
 */
function embeddedV4(address: string): string | null {
  const b = v6Bytes(address)
  const zero = (from: number, to: number) => b.slice(from, to).every((x) => x === 0)
  const v4 = (at: number) => b.slice(at, at + 4).join('.')
  if (zero(0, 10) && b[10] === 0xff && b[11] === 0xff) return v4(12)
  if (b[0] === 0x00 && b[1] === 0x64 && b[2] === 0xff && b[3] === 0x9b && zero(4, 12)) return v4(12)
  if (b[0] === 0x20 && b[1] === 0x02) return v4(2)
  return null
}

/** Why `address` (an IP literal) is refused, or null when it is a public unicast address. */
export function blockedReason(address: string): string | null {
  const family = isIP(address.split('%')[0]!)
  if (family === 4) return v4List.check(address, 'ipv4') ? `${address} is not a public address` : null
  if (family === 6) {
    const v4 = embeddedV4(address)
    if (v4 !== null) return v4List.check(v4, 'ipv4') ? `${address} (IPv4 ${v4}) is not a public address` : null
    return v6List.check(address.split('%')[0]!, 'ipv6') ? `${address} is not a public address` : null
  }
  return `${address} is not an IP address`
}

/**
 * A `lookup` for http(s).request: resolves like the default, then refuses the connection when
 * any address the name resolves to is not public (a name that mixes public and private
 * addresses is refused as a whole: it is either a mistake or an attack).
 */
export function guardedLookup(resolve: typeof dnsLookup = dnsLookup): LookupFunction {
  return (hostname, options, callback) => {
    resolve(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, '', 0)
      const list = addresses as LookupAddress[]
      for (const a of list) {
        const reason = blockedReason(a.address)
        if (reason) return callback(new BlockedAddressError(`${hostname} resolves to ${reason}`), '', 0)
      }
      if (list.length === 0) return callback(Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' }), '', 0)
      if (options.all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, list)
      callback(null, list[0]!.address, list[0]!.family)
    })
  }
}
