// Sends the shared identity scenario through the published @segment/analytics-node package, unchanged.
// Usage: node send_node.mjs HOST WRITE_KEY USER_ID ANONYMOUS_ID PREVIOUS_ID LABEL
import { Analytics } from '@segment/analytics-node'

const [host, writeKey, userId, anonymousId, previousId, label] = process.argv.slice(2)
const analytics = new Analytics({ writeKey, host, flushAt: 20, flushInterval: 200, maxRetries: 2 })
const errors = []
analytics.on('error', (err) => errors.push(String(err?.reason ?? err?.code ?? err)))

analytics.track({ anonymousId, event: `${label} Order Completed`, properties: { revenue: 9.5 } })
analytics.track({ anonymousId: previousId, event: `${label} Signed Up` })
analytics.identify({ userId, anonymousId, traits: { email: `${label}@example.org`, plan: 'pro' } })
analytics.page({ userId, name: 'Home', category: 'Docs', properties: { url: 'http://127.0.0.1/home' } })
analytics.alias({ userId, previousId })
await analytics.closeAndFlush({ timeout: 20000 })

if (errors.length) {
  console.error(`delivery failed: ${errors.join('; ')}`)
  process.exit(1)
}
console.log('sent')
