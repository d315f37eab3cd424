// When the gateway takes a PUT's ETag as the body's MD5 (shared/s3-stream-put.ts etagAsMd5): a
// server whose ETags are not MD5s must never make every photo a 503, so anything that may not be
// one is not compared. A pure function of the response headers; the servers' real answers are
// checked in test/gateway-media.test.ts (MinIO, and the Versity gateway under STACK_S3=versity).
import t from 'tap'
import { etagAsMd5 } from '../shared/s3-stream-put.ts'

const md5 = '0411199af48caa8968d7fd3b7303c051'

t.equal(etagAsMd5({ etag: `"${md5}"` }), md5, 'a quoted plain MD5')
t.equal(etagAsMd5({ etag: md5 }), md5, 'an unquoted one')
t.equal(etagAsMd5({ etag: `"${md5.toUpperCase()}"` }), md5, 'upper-case hex is the same MD5')
t.equal(etagAsMd5({}), null, 'no ETag')
t.equal(etagAsMd5({ etag: `"${md5}-3"` }), null, 'a multipart ETag')
t.equal(etagAsMd5({ etag: '"a1b2c3"' }), null, 'too short')
t.equal(etagAsMd5({ etag: `"${md5}00"` }), null, 'too long')
t.equal(etagAsMd5({ etag: '"zz11199af48caa8968d7fd3b7303c051"' }), null, 'not hex')
t.equal(etagAsMd5({ etag: `W/"${md5}"` }), null, 'a weak ETag')
t.equal(etagAsMd5({ etag: `"${md5}"`, 'x-amz-server-side-encryption': 'aws:kms' }), null, 'SSE-KMS: not the MD5')
t.equal(etagAsMd5({ etag: `"${md5}"`, 'x-amz-server-side-encryption': 'aws:kms:dsse' }), null, 'DSSE-KMS: not the MD5')
t.equal(etagAsMd5({ etag: `"${md5}"`, 'x-amz-server-side-encryption-customer-algorithm': 'AES256' }), null, 'SSE-C: not the MD5')
t.equal(etagAsMd5({ etag: `"${md5}"`, 'x-amz-server-side-encryption': 'AES256' }), md5, 'SSE-S3 keeps the MD5')
