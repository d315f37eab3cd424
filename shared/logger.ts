// Structured logging. The DSN token sits in the URL path, so every URL is scrubbed before it
// can reach a log line; tokens must never appear in logs.
import type { LoggerOptions } from 'pino'

const DSN_IN_PATH = /\/ingest\/[^/?#]*/g

/**
 * Replaces the token segment of any ingest URL with a fixed marker, and drops the query string:
 * our API has no query parameters, so anything there is noise or a pasted secret.
 */
export function redactUrl(url: string): string {
  const q = url.indexOf('?')
  return (q >= 0 ? url.slice(0, q) : url).replace(DSN_IN_PATH, '/ingest/[dsn]')
}

export function loggerOptions(level: string, name: string): LoggerOptions {
  return {
    level,
    name,
    redact: { paths: ['req.headers.authorization', 'req.headers.cookie', 'token', '*.token', 'dsn', '*.dsn'], censor: '[redacted]' },
    serializers: {
      req: (req: { method?: string; url?: string; id?: string; ip?: string }) => ({
        method: req.method,
        url: redactUrl(req.url ?? ''),
        id: req.id,
        ip: req.ip,
      }),
    },
  }
}
