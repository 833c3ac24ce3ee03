// The Node side of `cargo bench -p opnet --bench protocol -- --only node`: run by
// the Rust bench as a child against the server it built, printing one JSON line
// per measurement. Modes:
//   latency SOCKET TARGET N      sequential queryUtxos, p50/p99 in µs
//   stream SOCKET TARGET         every UTXO through utxoStream into JS objects
//   slow SOCKET TARGET SECONDS   the same with a consumer that sleeps, RSS sampled
//   events SOCKET                prints "ready", then one line per blockConnected
import { createRequire } from 'node:module'
import { Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { setTimeout as sleep } from 'node:timers/promises'

const require = createRequire(import.meta.url)
const { OpnetClient } = require('../index.js')

const [mode, socket, target, arg] = process.argv.slice(2)
const client = await OpnetClient.connect(socket, { reconnect: false })
const mib = (bytes) => bytes / (1 << 20)

if (mode === 'latency') {
  const n = Number(arg)
  for (let i = 0; i < 1000; i++) await client.queryUtxos(target)
  const samples = new Float64Array(n)
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint()
    const page = await client.queryUtxos(target)
    samples[i] = Number(process.hrtime.bigint() - t) / 1000
    if (page.utxos.length !== 10) throw new Error(`expected 10 UTXOs, got ${page.utxos.length}`)
  }
  samples.sort()
  const at = (p) => samples[Math.min(n - 1, Math.floor(p * n))]
  console.log(JSON.stringify({ n, p50_us: at(0.5), p99_us: at(0.99), max_us: samples[n - 1] }))
} else if (mode === 'stream') {
  const before = process.memoryUsage().rss
  const t = process.hrtime.bigint()
  let count = 0
  let sats = 0n
  await pipeline(
    client.utxoStream(target),
    new Writable({
      objectMode: true,
      highWaterMark: 1024,
      write(u, _enc, done) {
        count++
        sats += u.value
        done()
      },
    }),
  )
  const secs = Number(process.hrtime.bigint() - t) / 1e9
  const peak = process.resourceUsage().maxRSS * 1024
  console.log(JSON.stringify({ utxos: count, sats: String(sats), seconds: secs, per_sec: count / secs, rss_before_mib: mib(before), peak_rss_mib: mib(peak) }))
} else if (mode === 'slow') {
  const seconds = Number(arg)
  const start = process.memoryUsage().rss
  let max = start
  let count = 0
  const sampler = setInterval(() => {
    max = Math.max(max, process.memoryUsage().rss)
  }, 50)
  const deadline = Date.now() + seconds * 1000
  const stream = client.utxoStream(target)
  for await (const u of stream) {
    void u
    count++
    // A consumer far slower than the socket: 1 ms pause every 50 UTXOs.
    if (count % 50 === 0) await sleep(1)
    if (Date.now() > deadline) break
  }
  clearInterval(sampler)
  max = Math.max(max, process.memoryUsage().rss)
  console.log(JSON.stringify({ consumed: count, seconds, rss_start_mib: mib(start), rss_max_mib: mib(max), growth_mib: mib(max - start) }))
} else if (mode === 'events') {
  client.on('blockConnected', (e) => {
    process.stdout.write(`${e.seq}\n`)
  })
  await client.subscribe({ blocks: true })
  process.stdout.write('ready\n')
  // Runs until the bench closes stdin.
  process.stdin.resume()
  await new Promise((resolve) => process.stdin.on('end', resolve))
} else {
  throw new Error(`unknown mode ${mode}`)
}
await client.close()
