// A workspace's retention periods (tokens/retention.ts): the form is on the settings page
// (admin/views/retention.ts); this is its POST, an owner's (admin/security/roles.ts). The change
// is audited like the CLI's.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { RETENTION_KINDS, type RetentionSettings } from '../../shared/retention.ts'
import { TokenAdminError } from '../../tokens/errors.ts'
import { seg } from '../views/html.ts'
import { workspaceOf } from '../security/roles.ts'
import { actorOf, sendHtml } from './common.ts'
import { settingsPage } from './workspaces.ts'

type RetentionRequest = FastifyRequest<{ Params: { ws: string }; Body: Record<string, string | undefined> }>

export default async function retentionRoutes(app: FastifyInstance) {
  app.post('/workspaces/:ws/retention', { config: { access: 'owner' } }, async (request: RetentionRequest, reply) => {
    const ws = workspaceOf(request)
    try {
      await app.tokenAdmin.setWorkspaceRetention(ws.id, parseForm(request.body ?? {}), actorOf(request))
    } catch (err) {
      if (!(err instanceof TokenAdminError)) throw err
      return sendHtml(reply, await settingsPage(app, request, ws.id, {}, err.message), 400)
    }
    return reply.redirect(`/workspaces/${seg(ws.id)}/settings?done=retention#retention`, 303)
  })
}

/** Empty = keep; anything else must be whole days (the range is checked by tokens/retention.ts). */
function parseForm(body: Record<string, string | undefined>): Partial<RetentionSettings> {
  const out: Partial<RetentionSettings> = {}
  for (const kind of RETENTION_KINDS) {
    const raw = (body[kind] ?? '').trim()
    if (raw === '' || raw.toLowerCase() === 'keep') out[kind] = null
    else if (/^\d{1,9}$/.test(raw)) out[kind] = Number(raw)
    else
      throw new TokenAdminError(
        'bad_retention',
        `invalid ${kind} retention "${raw.slice(0, 20)}": use a whole number of days, or leave it empty to keep`,
      )
  }
  return out
}
