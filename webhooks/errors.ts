// The refusals of the webhooks domain. The admin panel and the CLI decide on `code`; the message
// is for the operator.
import { AppError } from '../shared/errors.ts'

export type WebhookErrorCode =
  | 'unknown_workspace'
  | 'unknown_webhook'
  | 'bad_url'
  | 'bad_secret'
  | 'bad_events'
  | 'bad_actor'
  | 'no_deliveries_worker'
  | 'unknown_delivery'
  | 'delivery_not_failed'

export class WebhookError extends AppError {
  constructor(
    readonly code: WebhookErrorCode,
    message: string,
  ) {
    super(message)
  }
}
