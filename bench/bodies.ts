// Request bodies shaped like the real RDToolkit client's (testing/fixtures/session-rdtoolkit.json:
// 4-space indent, "+00:00" times, string flags, result.images, metrics.data), made 2-5 KB the way
// real sessions grow: more capture attempts (each adds images), more diagnoses, more metrics.
import { randomBytes } from 'node:crypto'

/** A small deterministic PRNG, so that every run (and both sides of a ratio) sees the same sizes. */
export function prng(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s + 0x6d2b79f5) >>> 0
    let t = s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const PROFILES = [
  { id: 'sd_bioline_mal_pf_pv', diagnoses: ['mal_pf', 'mal_pv'] },
  { id: 'carestart_mal_pf_pan', diagnoses: ['mal_pf', 'mal_pan'] },
  { id: 'abbott_panbio_covid_ag', diagnoses: ['covid_ag'] },
  { id: 'sd_bioline_hiv_syphilis_duo', diagnoses: ['hiv', 'syphilis'] },
]

const iso = (ms: number) => new Date(ms).toISOString().replace('Z', '+00:00')

/**
 * One session body as `[before, after]`: the full text is `before + id + after`, so a load
 * generator can give every request a fresh GUID (in the URL and the body's `id`) with one concat.
 */
export function sessionTemplate(rand: () => number): [string, string] {
  const profile = PROFILES[Math.floor(rand() * PROFILES.length)]!
  const attempts = 1 + Math.floor(rand() * 9)
  const started = Date.UTC(2024, 0, 1) + Math.floor(rand() * 365 * 864e5)
  const stamp = new Date(started).toISOString().slice(0, 19).replace(/[-:]/g, '').replace('T', '_')
  const path = (name: string) => `/data/user/0/org.rdtoolkit/files/${stamp}_${name}.jpg`
  const images: Record<string, string> = { raw: path('raw'), cropped: path('cropped') }
  for (let a = 1; a < attempts; a++) {
    images[`attempt_${a}_raw`] = path(`attempt_${a}_raw`)
    images[`attempt_${a}_cropped`] = path(`attempt_${a}_cropped`)
  }
  const value = (d: string) => `${d}_${rand() < 0.2 ? 'pos' : 'neg'}`
  const results = Object.fromEntries(profile.diagnoses.map((d) => [d, value(d)]))
  const classifier = Object.fromEntries(profile.diagnoses.map((d) => [d, rand() < 0.9 ? results[d] : value(d)]))
  const metricsData: Record<string, string> = {
    instructions_viewed: String(rand() < 0.5),
    job_aid_viewed: String(rand() < 0.5),
    image_capture_attempts: String(attempts),
    device_type: ['SM-A105F', 'SM-A125F', 'TECNO KE5', 'moto e(7)'][Math.floor(rand() * 4)]!,
    android_sdk: String(26 + Math.floor(rand() * 8)),
    toolkit_version: '0.9.12',
  }
  for (let a = 0; a < attempts; a++) {
    metricsData[`attempt_${a}_capture_ms`] = String(Math.floor(rand() * 9000))
    metricsData[`attempt_${a}_classifier_confidence`] = rand().toFixed(6)
    metricsData[`attempt_${a}_blur_score`] = rand().toFixed(6)
    metricsData[`attempt_${a}_lighting`] = ['ok', 'dim', 'glare'][Math.floor(rand() * 3)]!
  }
  const marker = '@@SESSION_ID@@'
  const body = {
    id: marker,
    state: 'QUEUED',
    test_profile_id: profile.id,
    time_started: iso(started),
    time_resolved: iso(started + 15 * 60_000),
    time_expired: iso(started + 30 * 60_000),
    configuration: {
      session_type: 'TWO_PHASE',
      provision_mode: 'TEST_PROFILE',
      provision_mode_data: profile.id,
      classifier_mode: 'CHECK_YOUR_WORK',
      cloudworks_context: `district_${Math.floor(rand() * 40)}`,
      flags: {
        FLAG_CLOUDWORKS_CAPTURE_TRACE: 'TRUE',
        FLAG_SESSION_CLOUDWORKS_FULL_IMAGE_SUBMISSION: rand() < 0.5 ? 'TRUE' : 'FALSE',
        FLAG_NO_EARLY_READS: 'TRUE',
      },
    },
    result: {
      time_read: iso(started + 16 * 60_000 + Math.floor(rand() * 600_000)),
      main_image_path: path('cropped'),
      images,
      results,
      results_classifier: classifier,
    },
    metrics: { data: metricsData },
  }
  const text = JSON.stringify(body, null, 4)
  const i = text.indexOf(marker)
  return [text.slice(0, i), text.slice(i + marker.length)]
}

/** `count` templates whose full bodies (with a 36-character GUID) are 2-5 KB; seeded, so identical every run. */
export function sessionTemplates(count: number, seed = 1): [string, string][] {
  const rand = prng(seed)
  const out: [string, string][] = []
  while (out.length < count) {
    const t = sessionTemplate(rand)
    const size = Buffer.byteLength(t[0] + t[1]) + 36
    if (size >= 2048 && size <= 5120) out.push(t)
  }
  return out
}

/** Bytes that sniff as JPEG (SOI + APP0/JFIF) followed by incompressible data, like a photo. */
export function jpegLike(size: number, rand: () => number = Math.random): Buffer {
  const head = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00])
  const buf = Buffer.concat([head, randomBytes(Math.max(0, size - head.length))])
  // Vary the first payload byte from the seeded stream so equal sizes still differ.
  if (buf.length > head.length) buf[head.length] = Math.floor(rand() * 256)
  return buf
}

/** Photo sizes for the media figures: uniform in 1-5 MiB, the same sequence for B4 and T3. */
export function photoSizes(count: number, seed = 7): number[] {
  const rand = prng(seed)
  return Array.from({ length: count }, () => Math.floor((1 + rand() * 4) * 1024 * 1024))
}
