// A small TCP load balancer for the local distributed topology: what production puts in front of
// distributed object storage (a load balancer, or a Kubernetes Service). Each client connection
// goes to the next upstream in turn; an upstream that refuses is skipped and left alone for a
// second, so losing one node costs a client only the connections it had open to that node.
import { connect, createServer, type Socket } from 'node:net'

export interface Balancer {
  readonly port: number
  readonly url: string
  close(): Promise<void>
}

const DOWN_FOR_MS = 1000

export async function startBalancer(upstreams: number[], port = 0): Promise<Balancer> {
  const downUntil = new Map<number, number>()
  let next = 0
  const open = new Set<Socket>()

  const forward = (client: Socket, tried: number) => {
    if (tried >= upstreams.length) return void client.destroy()
    const target = upstreams[next++ % upstreams.length]!
    if ((downUntil.get(target) ?? 0) > Date.now()) return forward(client, tried + 1)
    const up = connect(target, '127.0.0.1')
    let connected = false
    open.add(up)
    up.once('close', () => open.delete(up))
    up.once('error', () => {
      // Refused before it connected: try the next node; after, the client sees the cut.
      if (!connected) {
        downUntil.set(target, Date.now() + DOWN_FOR_MS)
        forward(client, tried + 1)
      } else client.destroy()
    })
    up.once('connect', () => {
      connected = true
      up.setNoDelay(true)
      client.pipe(up).pipe(client)
      client.resume()
      client.once('error', () => up.destroy())
      client.once('close', () => up.destroy())
      up.once('close', () => client.destroy())
    })
  }

  const server = createServer({ pauseOnConnect: true }, (client) => {
    client.setNoDelay(true)
    open.add(client)
    client.once('close', () => open.delete(client))
    client.on('error', () => {})
    forward(client, 0)
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => resolve())
  })
  const bound = (server.address() as { port: number }).port
  return {
    port: bound,
    url: `http://127.0.0.1:${bound}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy()
        server.close(() => resolve())
      }),
  }
}
