// The refusals of the tokens domain. Callers (the admin panel, the CLI) decide on the class and
// `code`; the message is for the operator.
import { AppError } from '../shared/errors.ts'

export type TokenAdminErrorCode =
  | 'unknown_workspace'
  | 'unknown_token'
  | 'duplicate_slug'
  | 'bad_shard'
  | 'same_shard'
  | 'concurrent_change'
  | 'bad_slug'
  | 'bad_name'
  | 'bad_label'
  | 'bad_permission'
  | 'bad_expiry'
  | 'bad_token_id'
  | 'bad_actor'
  | 'bad_rate_limit'
  | 'bad_retention'
  | 'bad_session_id'

/** A refused workspace or token action. `message` is meant for the operator; `code` for programs (e.g. HTTP status mapping). */
export class TokenAdminError extends AppError {
  constructor(
    readonly code: TokenAdminErrorCode,
    message: string,
  ) {
    super(message)
  }
}

export type AdminUserErrorCode =
  'bad_email' | 'bad_password' | 'duplicate_admin' | 'unknown_admin' | 'bad_role' | 'unknown_workspace' | 'last_superadmin'

/** A refused admin-user action (`admin create|disable|reset-password|grant|revoke|superadmin`). */
export class AdminUserError extends AppError {
  constructor(
    readonly code: AdminUserErrorCode,
    message: string,
  ) {
    super(message)
  }
}
