// The mongo-init service of compose.yaml runs this with mongosh as the root user, on every
// `docker compose up`. Idempotent: it creates or updates two users, so changing a password in
// .env and running `docker compose up -d` again rotates it (then recreate the processes).
//
//   rdt_app      readWrite on the application database: the worker, the admin panel and the CLI
//                (the deliveries worker only reads `webhooks`; the panel and the CLI write it)
//                (the gateway never talks to MongoDB and has no MongoDB user)
//   rdt_analyst  find on the analysts' collections only (README "MongoDB collections"): not
//                admin_users (password hashes) or admin_sessions. Read-only in every case.
//
// Both users live in the admin database: connection strings say authSource=admin.
const dbName = process.env.MONGO_DB || 'rdt'
const admin = db.getSiblingDB('admin')

function secret(name) {
  const v = process.env[name] || ''
  if (v.startsWith('change-me')) {
    print(`mongo-init: ${name} is still the .env.example placeholder: set a real secret in .env`)
    quit(1)
  }
  // It goes into MONGODB_URL unencoded, so URL-safe characters only.
  if (!/^[A-Za-z0-9._~-]{16,}$/.test(v)) {
    print(`mongo-init: ${name} must be at least 16 characters of A-Z a-z 0-9 . _ ~ - (see .env.example)`)
    quit(1)
  }
  return v
}

function upsertRole(role, privileges) {
  if (admin.getRole(role)) admin.updateRole(role, { privileges, roles: [] })
  else admin.createRole({ role, privileges, roles: [] })
}

function upsertUser(user, pwd, roles) {
  if (admin.getUser(user)) admin.updateUser(user, { pwd, roles })
  else admin.createUser({ user, pwd, roles })
  print(`mongo-init: user ${user} ready`)
}

// The analysts' interface. A collection added to it later is added here too (and this runs again).
// Not `webhooks`: it holds each endpoint's signing secret (README "Forwarding").
const ANALYST_COLLECTIONS = [
  'test_sessions',
  'test_session_conflicts',
  'test_session_log_batches',
  'test_session_logs',
  'test_session_media',
  'workspaces',
  'tokens',
  'audit_log',
]

upsertRole('rdtAnalyst', [
  { resource: { db: dbName, collection: '' }, actions: ['listCollections'] },
  ...ANALYST_COLLECTIONS.map((collection) => ({ resource: { db: dbName, collection }, actions: ['find', 'listIndexes', 'collStats'] })),
])

// The root password was set by the image on the first start; refuse the placeholder here too.
secret('MONGO_ROOT_PASSWORD')

upsertUser('rdt_app', secret('MONGO_APP_PASSWORD'), [{ role: 'readWrite', db: dbName }])
upsertUser('rdt_analyst', secret('MONGO_ANALYST_PASSWORD'), [{ role: 'rdtAnalyst', db: 'admin' }])
