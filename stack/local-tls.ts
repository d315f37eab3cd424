// `STACK_TLS=1 npm start`: a local certificate authority and a server certificate under
// <stack dir>/tls/, made with the openssl CLI, so that the gateway and the admin panel serve
// HTTPS on this machine as on a single-box deployment (TLS_CERT_FILE/TLS_KEY_FILE). Both are
// reused while they are valid and name the same hosts; the CA survives a change of hosts, so a
// device or browser that trusts it keeps trusting the new server certificate.
import { execFile } from 'node:child_process'
import { X509Certificate, createPrivateKey, randomBytes } from 'node:crypto'
import { chmod, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { isIP } from 'node:net'
import { join } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)

export interface LocalTls {
  dir: string
  /** What clients trust (GATEWAY_CA_FILE). */
  caFile: string
  /** The CA's private key: mode 0600, never leaves this dir. */
  caKeyFile: string
  certFile: string
  keyFile: string
  /** What this call had to make: nothing, a new server certificate, or a new CA and certificate. */
  made: 'nothing' | 'server' | 'ca+server'
}

/** A certificate with less left than this is replaced at the next start. */
const RENEW_BEFORE_MS = 30 * 24 * 3600_000
const CA_DAYS = 3650
// Browsers refuse server certificates valid for more than 398 days (from public CAs; some check all).
const SERVER_DAYS = 397

/** Makes (or reuses) ca.crt/ca.key and server.crt/server.key in `dir` for these host names and addresses. */
export async function ensureLocalTls(dir: string, hosts: readonly string[], now = new Date()): Promise<LocalTls> {
  const names = [...new Set(['localhost', '127.0.0.1', ...hosts].map((h) => h.replace(/^\[(.*)\]$/, '$1').toLowerCase()))]
  await mkdir(dir, { recursive: true, mode: 0o700 })
  await chmod(dir, 0o700)
  const files = {
    dir,
    caFile: join(dir, 'ca.crt'),
    caKeyFile: join(dir, 'ca.key'),
    certFile: join(dir, 'server.crt'),
    keyFile: join(dir, 'server.key'),
  }

  let made: LocalTls['made'] = 'nothing'
  let ca = await loadPair(files.caFile, files.caKeyFile)
  if (!ca || !ca.cert.ca || !fresh(ca.cert, now)) {
    await makeCa(files)
    ca = (await loadPair(files.caFile, files.caKeyFile))!
    made = 'ca+server'
  }
  const server = await loadPair(files.certFile, files.keyFile)
  if (
    made !== 'nothing' ||
    !server ||
    !fresh(server.cert, now) ||
    !server.cert.checkIssued(ca.cert) ||
    !server.cert.verify(ca.cert.publicKey) ||
    !namesExactly(server.cert, names)
  ) {
    await makeServer(files, names)
    if (made === 'nothing') made = 'server'
  }
  return { ...files, made }
}

async function loadPair(certFile: string, keyFile: string): Promise<{ cert: X509Certificate } | null> {
  try {
    const cert = new X509Certificate(await readFile(certFile))
    if (!cert.checkPrivateKey(createPrivateKey(await readFile(keyFile)))) return null
    return { cert }
  } catch {
    return null // missing, unreadable or not PEM: made again
  }
}

function fresh(cert: X509Certificate, now: Date): boolean {
  return new Date(cert.validFrom) <= now && new Date(cert.validTo).getTime() - now.getTime() > RENEW_BEFORE_MS
}

/** The certificate covers every name, and no other (a host dropped from PUBLIC_URL is dropped here too). */
function namesExactly(cert: X509Certificate, names: string[]): boolean {
  const entries = (cert.subjectAltName ?? '').split(', ').filter(Boolean)
  return (
    entries.length === names.length &&
    names.every((n) => (isIP(n) ? cert.checkIP(n) : cert.checkHost(n, { wildcards: false })) !== undefined)
  )
}

async function openssl(args: string[]): Promise<void> {
  try {
    await run('openssl', args)
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string }
    if (e.code === 'ENOENT') throw new Error('STACK_TLS=1 needs the openssl command (Debian: apt-get install openssl)', { cause: err })
    throw new Error(`openssl ${args[0]} failed: ${e.stderr?.trim() || e.message}`, { cause: err })
  }
}

// ECDSA P-256: small, fast, and accepted by Android, browsers and Node alike.
const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']

async function makeCa(f: Omit<LocalTls, 'made'>): Promise<void> {
  // A new CA invalidates the server certificate it signed.
  await rm(f.certFile, { force: true })
  // A distinct name per CA, so that a trust store holding an old one shows which is which.
  const cn = `rdt-ingest local CA ${randomBytes(4).toString('hex')}`
  await openssl([
    'req',
    '-x509',
    '-new',
    ...EC_KEY,
    '-sha256',
    '-days',
    String(CA_DAYS),
    '-subj',
    `/CN=${cn}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE,pathlen:0',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
    '-keyout',
    `${f.caKeyFile}.tmp`,
    '-out',
    `${f.caFile}.tmp`,
  ])
  await chmod(`${f.caKeyFile}.tmp`, 0o600)
  await chmod(`${f.caFile}.tmp`, 0o644)
  await rename(`${f.caKeyFile}.tmp`, f.caKeyFile)
  await rename(`${f.caFile}.tmp`, f.caFile)
}

async function makeServer(f: Omit<LocalTls, 'made'>, names: string[]): Promise<void> {
  const san = names.map((n) => (isIP(n) ? `IP:${n}` : `DNS:${n}`)).join(',')
  const ext = join(f.dir, 'server.ext.tmp')
  const csr = join(f.dir, 'server.csr.tmp')
  await writeFile(
    ext,
    [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature',
      'extendedKeyUsage=serverAuth',
      `subjectAltName=${san}`,
      '',
    ].join('\n'),
    { mode: 0o600 },
  )
  try {
    await openssl(['req', '-new', ...EC_KEY, '-subj', `/CN=${names[0]}`, '-keyout', `${f.keyFile}.tmp`, '-out', csr])
    await chmod(`${f.keyFile}.tmp`, 0o600)
    await openssl([
      'x509',
      '-req',
      '-in',
      csr,
      '-CA',
      f.caFile,
      '-CAkey',
      f.caKeyFile,
      '-set_serial',
      `0x${randomBytes(16).toString('hex')}`,
      '-days',
      String(SERVER_DAYS),
      '-sha256',
      '-extfile',
      ext,
      '-out',
      `${f.certFile}.tmp`,
    ])
    await chmod(`${f.certFile}.tmp`, 0o644)
    await rename(`${f.keyFile}.tmp`, f.keyFile)
    await rename(`${f.certFile}.tmp`, f.certFile)
  } finally {
    await rm(ext, { force: true })
    await rm(csr, { force: true })
  }
}

export interface StackTlsSettings {
  tls: LocalTls
  /** For every app: the https PUBLIC_URL the CLI and the panel print DSNs with. */
  env: Record<string, string>
  /** For the gateway and the admin panel only: their certificate and key. */
  serverEnv: Record<string, string>
  /** Added to the stack's env file, for shells, the CLI and clients. */
  envFile: Record<string, string>
}

/**
 * Reads STACK_TLS ("1"/"true" on; unset, "", "0", "false" off) and, when on, makes the files and
 * the settings that go with them. PUBLIC_URL defaults to https://127.0.0.1:$PORT; an http one is
 * refused, since the gateway then only speaks https.
 */
export async function stackTlsSettings(env: NodeJS.ProcessEnv, stackDir: string): Promise<StackTlsSettings | null> {
  const flag = env.STACK_TLS ?? ''
  if (['', '0', 'false'].includes(flag)) return null
  if (!['1', 'true'].includes(flag)) throw new Error(`STACK_TLS must be 1 or 0, got "${flag}"`)
  const publicUrl = (env.PUBLIC_URL || `https://127.0.0.1:${env.PORT || '8080'}`).replace(/\/+$/, '')
  let host: string
  try {
    const u = new URL(publicUrl)
    if (u.protocol !== 'https:') throw new Error('not https')
    host = u.hostname
  } catch {
    throw new Error(`with STACK_TLS=1, PUBLIC_URL must be an https:// URL (the gateway serves only HTTPS), got "${publicUrl}"`)
  }
  const tls = await ensureLocalTls(join(stackDir, 'tls'), [host])
  return {
    tls,
    env: { PUBLIC_URL: publicUrl },
    serverEnv: { TLS_CERT_FILE: tls.certFile, TLS_KEY_FILE: tls.keyFile },
    envFile: { PUBLIC_URL: publicUrl, GATEWAY_CA_FILE: tls.caFile },
  }
}
