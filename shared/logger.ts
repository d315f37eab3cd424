// Structured logging. The DSN token sits in the URL path, so every URL is scrubbed before it
// can reach a log line; tokens must never appear in logs.
import type { LoggerOptions } from 'pino'

const DSN_IN_PATH = /\/ingest\/[^/?#]*/g

/** Replaces the token segment of any ingest URL with a fixed marker. */
export function redactUrl(url: string): string {
  return url.replace(DSN_IN_PATH, '/ingest/[dsn]')
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
