// The opnet-native demo: starts opnet-host in replay mode on the bundled regtest
// chain (testdata/regtest-small, made by a real Bitcoin Core), then uses the npm
// package as an application would: sync status, UTXO queries, a stream of the
// "whale" script's 1,984 UTXOs, and the block events of a live reorg.
//
//   node examples/demo.mjs        (needs target/release/opnet-host and the built addon)
//
// Everything runs in a temp dir that is removed at the end; exits 0 on success.

import { createRequire } from 'node:module'
import { Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'

import { ReplayHost, WHALE, btc, loadChain, loadOracle, parseTipLine } from '../__test__/helpers/host.mjs'

const { OpnetClient } = createRequire(import.meta.url)('../index.js')

const chain = loadChain()
const say = (...a) => console.log(...a)
const short = (hash) => `${hash.slice(0, 16)}…`

let host
let client
let failed = false
try {
  say('== starting opnet-host --replay testdata/regtest-small/chain.json (the plugin libopnet_core.so inside)')
  host = await ReplayHost.start()
  say(`   socket ${host.socket}`)

  say("== replaying branch A's 170 blocks")
  const steps = await host.ok('step 170')
  say(`   ${steps.length} blocks connected, the last: ${steps.at(-1)}`)
  const tip = parseTipLine((await host.ok('sync'))[0])
  say(`   the plugin is synced at ${tip.height} ${short(tip.hash)}`)

  client = await OpnetClient.connect(host.socket, { clientName: 'opnet-native demo', network: 'regtest' })
  client.on('error', (e) => say(`   client error: ${e.code} ${e.message}`))
  say(`== connected to ${client.serverName} on ${client.network}`)

  const s = await client.getSyncStatus()
  say(
    `   mode ${s.mode}, index tip ${s.indexTip?.height} ${short(s.indexTip?.hash ?? '')}, ` +
      `${s.utxoCount} UTXOs holding ${btc(s.totalSats)} BTC, event #${s.eventSeq}`,
  )
  const oracle = loadOracle('A')
  say(`   (Bitcoin Core said: ${oracle.txouts} UTXOs, ${btc(oracle.total_amount_sats)} BTC)`)

  say('== UTXOs of a few scripts (one page each)')
  for (const kind of ['p2pkh/0', 'p2wpkh/0', 'p2sh_multi/0', 'p2tr/0', 'bare_multi/0', 'nonstd_hash/0', 'op_true']) {
    const script = chain.script_kinds[kind]
    const page = await client.queryUtxos(script)
    const sum = page.utxos.reduce((t, u) => t + u.value, 0n)
    const largest = page.utxos.reduce((m, u) => (u.value > m ? u.value : m), 0n)
    say(
      `   ${kind.padEnd(14)} ${String(page.utxos.length).padStart(4)} UTXOs  ${btc(sum).padStart(16)} BTC` +
        `  largest ${btc(largest)}`,
    )
  }
  const top = await client.queryUtxos(chain.script_kinds['p2tr/0'], { sort: 'value', limit: 3 })
  say(`   p2tr/0's three largest: ${top.utxos.map((u) => `${btc(u.value)} (${short(u.txid)}:${u.vout})`).join(', ')}`)

  say("== streaming the whale's UTXOs (utxoStream, pages of 500)")
  let count = 0
  let total = 0n
  await pipeline(
    client.utxoStream(WHALE, { limit: 500 }),
    new Writable({
      objectMode: true,
      write(u, _enc, cb) {
        count++
        total += u.value
        cb()
      },
    }),
  )
  say(`   ${count} UTXOs, ${btc(total)} BTC`)

  say('== watching blocks while the host replays the reorg (3 blocks of A disconnected, 5 of B connected)')
  let seen = 0
  const done = new Promise((resolve) => {
    const tick = () => {
      if (++seen === 8) resolve()
    }
    client.on('blockDisconnected', (ev) => {
      say(`   #${ev.seq} disconnected ${ev.block.height} ${short(ev.block.hash)}  (-${ev.outputsRemoved} +${ev.outputsAdded} UTXOs)`)
      tick()
    })
    client.on('blockConnected', (ev) => {
      say(
        `   #${ev.seq} connected    ${ev.block.height} ${short(ev.block.hash)}  ${ev.txCount} txs  ` +
          `(+${ev.outputsAdded} -${ev.outputsRemoved} UTXOs)`,
      )
      tick()
    })
  })
  await client.subscribe({ blocks: true })
  await host.ok('run')
  await host.ok('sync')
  let timer
  await Promise.race([
    done,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`only ${seen} of 8 block events arrived`)), 20_000)
    }),
  ]).finally(() => clearTimeout(timer))

  const after = await client.getSyncStatus()
  say(`   now at ${after.indexTip?.height} ${short(after.indexTip?.hash ?? '')}: ${after.utxoCount} UTXOs, ${btc(after.totalSats)} BTC`)
  const b = loadOracle('B')
  say(`   (Bitcoin Core said: ${b.txouts} UTXOs, ${btc(b.total_amount_sats)} BTC)`)
  if (after.utxoCount !== BigInt(b.txouts) || after.totalSats !== BigInt(b.total_amount_sats)) {
    throw new Error('the index disagrees with Bitcoin Core')
  }
} catch (e) {
  failed = true
  console.error(`demo failed: ${e?.stack ?? e}`)
  if (host) console.error(`host log (last lines):\n${host.log().split('\n').slice(-20).join('\n')}`)
} finally {
  await client?.close().catch(() => {})
  await host?.cleanup().catch(() => {})
}
say(failed ? '== failed' : '== done')
process.exitCode = failed ? 1 : 0
