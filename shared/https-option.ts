// Fastify's `https` option for the gateway and the admin panel when TLS_CERT_FILE/TLS_KEY_FILE are
// set (shared/config.ts). Its type is erased on purpose: given `https`, Fastify's overloads type the
// instance as an http2/https server, while the code (and Node) treat it as what it is, an
// http.Server underneath TLS, with the same timeouts, events and closeAllConnections().
import type { ServerOptions } from 'node:https'
import type { TlsFiles } from './config.ts'

/** Spread into Fastify's options: `{ https: {...} }` with TLS, nothing without. */
export function httpsOption(tls: TlsFiles | null, serverOptions: ServerOptions = {}): object {
  return tls ? { https: { ...serverOptions, cert: tls.cert, key: tls.key } } : {}
}
