// The CLI's own refusals. runCli prints the message and exits 1; nothing decides on the text.
import { AppError } from '../shared/errors.ts'

export type CliErrorCode =
  'mongo_unavailable' | 'redis_unavailable' | 'no_terminal' | 'prompt_cancelled' | 'passwords_differ' | 's3_unconfigured'

export class CliError extends AppError {
  constructor(
    readonly code: CliErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options)
  }
}
