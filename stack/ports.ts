import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'

/**
 * A free TCP port on 127.0.0.1, checked by listening on it, then released for the service to
 * bind. A preferred port (e.g. the one from the last run) is used when free, which keeps
 * `.stack/env` stable across restarts.
 *
 * Ports are drawn below the kernel's ephemeral range, not from it (port 0). Why: every outgoing
 * connection on this machine takes a port from that range, so a port found free there could be
 * taken by a client socket before the service binds it. That happened to a Redis Cluster node
 * started while the bench's load had thousands of connections open ("Address already in use",
 * and a cluster's nodes cannot be retried one by one). Below the range only another listener can
 * take it, and callers still retry a service that fails with EADDRINUSE.
 */
export async function freePort(preferred?: number): Promise<number> {
  if (preferred) {
    try {
      return await listenOnce(preferred)
    } catch {
      // taken: fall through to a port of our choosing
    }
  }
  const [low, high] = LISTENER_RANGE
  for (let i = 0; i < 50 && high > low; i++) {
    // One process walks the range from a random start, so it never hands out a port twice (two
    // services of one stack could otherwise get the same port before either binds it); processes
    // start at different places.
    cursor = cursor === undefined ? Math.floor(Math.random() * (high - low)) : (cursor + 1) % (high - low)
    try {
      return await listenOnce(low + cursor)
    } catch {
      // in use (another service, or another process's pick): the next one
    }
  }
  return listenOnce(0)
}

let cursor: number | undefined

const LISTENER_LOW = 20_000

/** [from, to) for our listeners: from LISTENER_LOW up to the start of the ephemeral range (empty if that starts lower). Read once. */
const LISTENER_RANGE = listenerRange()

function listenerRange(): [number, number] {
  let start = 32_768
  try {
    start = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || start
  } catch {
    // not Linux: the usual default
  }
  return [LISTENER_LOW, start]
}

function listenOnce(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.unref()
    srv.once('error', reject)
    srv.listen({ port, host: '127.0.0.1', exclusive: true }, () => {
      const addr = srv.address()
      const got = typeof addr === 'object' && addr ? addr.port : 0
      srv.close(() => (got ? resolve(got) : reject(new Error('no port assigned'))))
    })
  })
}
