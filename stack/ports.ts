import { createServer } from 'node:net'

/**
 * A free TCP port on 127.0.0.1: the kernel picks one for port 0 and we
 * release it for the service to bind. Another process could grab it in
 * between, so callers retry when the service then fails with EADDRINUSE.
 * A preferred port (e.g. the one from the last run) is used when free, which
 * keeps `.stack/env` stable across restarts.
 */
export async function freePort(preferred?: number): Promise<number> {
  if (preferred) {
    try {
      return await listenOnce(preferred)
    } catch {
      // taken: fall through to a kernel-chosen port
    }
  }
  return listenOnce(0)
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
