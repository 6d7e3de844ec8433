// Drives one published @segment/analytics-node version against a server: `node send.mjs <package> <spec>`,
// spec = {"host", "writeKey", "calls": [{"method", "args"}], "options"?: {more constructor options, e.g. "path"}}.
// Prints {"errors", "requests"} as JSON.
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const [, , pkg, raw] = process.argv
const spec = JSON.parse(raw)
const { Analytics } = require(pkg)
const analytics = new Analytics({ writeKey: spec.writeKey, host: spec.host, flushAt: 50, flushInterval: 200,
  maxRetries: 3, ...spec.options })
const errors = []
let requests = 0
analytics.on('error', (err) => errors.push(String(err?.reason ?? err?.message ?? err?.code ?? err)))
analytics.on('http_request', () => { requests += 1 })
for (const call of spec.calls) analytics[call.method](call.args)
await analytics.closeAndFlush({ timeout: 20000 })
console.log(JSON.stringify({ errors, requests }))
