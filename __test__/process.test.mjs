// Whole-process behaviour, each in a child `node`: close() lets the process exit
// by itself, and a slow consumer streaming the whale over and over keeps its
// memory bounded.

import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import path from 'node:path'
import readline from 'node:readline'
import { after, before, describe, test } from 'node:test'

import { ROOT, ReplayHost, WHALE, loadOracle } from './helpers/host.mjs'

const PKG = path.join(ROOT, 'index.js')

/**
 * Runs `node -e script` with OPNET_SOCKET and OPNET_PKG set; resolves with its
 * exit, output and duration. Killed (and reported as such) after `timeoutMs`.
 * `onLine(line, child)` sees its stdout lines as they come.
 */
function runNode(script, { socket, timeoutMs = 10_000, args = [], onLine } = {}) {
  return new Promise((resolve) => {
    const t0 = Date.now()
    const child = spawn(process.execPath, [...args, '-e', script], {
      env: { ...process.env, OPNET_SOCKET: socket, OPNET_PKG: PKG, OPNET_WHALE: WHALE },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    let timedOut = false
    const rl = readline.createInterface({ input: child.stdout })
    rl.on('line', (l) => {
      stdout += `${l}\n`
      onLine?.(l, child)
    })
    child.stderr.on('data', (d) => (stderr += d))
    const timer = setTimeout(() => {
      timedOut = true
      child.kill('SIGKILL')
    }, timeoutMs)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr, timedOut, ms: Date.now() - t0 })
    })
  })
}

function assertExitedAlone(r, what) {
  const detail = `${what}: code ${r.code} signal ${r.signal} after ${r.ms} ms\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`
  assert.equal(r.timedOut, false, `did not exit by itself: ${detail}`)
  assert.equal(r.code, 0, detail)
}

describe('process lifetime', { timeout: 180_000 }, () => {
  let host

  before(async () => {
    host = await ReplayHost.start()
    await host.ok('step 170')
    await host.ok('sync')
  })

  after(async () => {
    await host?.cleanup()
  })

  test('connect, subscribe, close(): the process exits by itself with code 0', async () => {
    const r = await runNode(
      `
      const { OpnetClient } = require(process.env.OPNET_PKG)
      ;(async () => {
        const c = await OpnetClient.connect(process.env.OPNET_SOCKET)
        await c.subscribe({ blocks: true })
        await c.close()
        console.log('closed')
      })().catch((e) => { console.error(e); process.exit(2) })
      `,
      { socket: host.socket, timeoutMs: 8_000 },
    )
    assertExitedAlone(r, 'subscribe then close')
    assert.match(r.stdout, /closed/)
    assert.ok(r.ms < 5_000, `${r.ms} ms`)
  })

  test('after every kind of use (queries, iterators broken off, destroyed streams, watches), close() lets it exit', async () => {
    const r = await runNode(
      `
      const { OpnetClient } = require(process.env.OPNET_PKG)
      const WHALE = process.env.OPNET_WHALE
      ;(async () => {
        const c = await OpnetClient.connect(process.env.OPNET_SOCKET, { clientName: 'exit-test' })
        c.on('error', (e) => console.log('error event', e.code))
        await c.subscribeScripthashes([WHALE])
        await c.subscribe({ blocks: true, mempool: true, scripthashes: true })
        await c.getSyncStatus()
        await c.queryUtxos(WHALE, { limit: 10 })
        let n = 0
        for await (const u of c.utxos(WHALE, { limit: 100 })) { if (++n === 150) break }
        const s = c.utxoStream(WHALE, { limit: 100 })
        await new Promise((resolve) => { s.once('data', () => { s.destroy(); resolve() }) })
        // A stream left paused with data buffered, and an iterator left mid-way.
        const paused = c.utxoStream(WHALE, { limit: 50 })
        paused.pause()
        const it = c.utxos(WHALE, { limit: 50 })
        await it.next()
        await c.close()
        console.log('closed', n)
      })().catch((e) => { console.error(e); process.exit(2) })
      `,
      { socket: host.socket, timeoutMs: 10_000 },
    )
    assertExitedAlone(r, 'busy client then close')
    assert.match(r.stdout, /closed 150/)
  })

  test('close() from an event handler while blocks arrive: the process exits', async () => {
    // A fresh host, so that there are blocks to step through.
    const h = await ReplayHost.start()
    try {
      await h.ok('step 3')
      await h.ok('sync')
      let stepped
      const r = await runNode(
        `
        const { OpnetClient } = require(process.env.OPNET_PKG)
        ;(async () => {
          const c = await OpnetClient.connect(process.env.OPNET_SOCKET)
          let n = 0
          c.on('blockConnected', async (ev) => {
            if (++n === 2) { await c.close(); console.log('closed at', ev.block.height) }
          })
          await c.subscribe({ blocks: true })
          console.log('subscribed')
        })().catch((e) => { console.error(e); process.exit(2) })
        `,
        {
          socket: h.socket,
          timeoutMs: 15_000,
          onLine: (l) => {
            if (l === 'subscribed') stepped = h.ok('step 10')
          },
        },
      )
      await stepped
      assertExitedAlone(r, 'close from a handler')
      assert.match(r.stdout, /closed at 5/)
    } finally {
      await h.cleanup()
    }
  })

  test('a slow consumer streaming the whale 8 times: RSS grows by less than 64 MiB', { timeout: 120_000 }, async (t) => {
    assert.equal(loadOracle('A').by_script[WHALE].length, 1984)
    const r = await runNode(
      `
      const { OpnetClient } = require(process.env.OPNET_PKG)
      const { Writable } = require('node:stream')
      const { pipeline } = require('node:stream/promises')
      const WHALE = process.env.OPNET_WHALE
      const LOOPS = 8
      ;(async () => {
        const c = await OpnetClient.connect(process.env.OPNET_SOCKET)
        let peak = 0
        const sample = () => { peak = Math.max(peak, process.memoryUsage().rss) }
        const timer = setInterval(sample, 10)
        const slowSink = (slowItems) => {
          let n = 0
          const w = new Writable({
            objectMode: true,
            highWaterMark: 1,
            write(_u, _e, cb) { if (++n <= slowItems) setTimeout(cb, 1); else setImmediate(cb) },
          })
          w.count = () => n
          return w
        }
        // Warm up (code paths, buffers), then measure.
        { const w = slowSink(0); await pipeline(c.utxoStream(WHALE), w) }
        global.gc?.()
        const baseline = process.memoryUsage().rss
        peak = baseline
        let total = 0
        for (let i = 0; i < LOOPS; i++) {
          const w = slowSink(300)
          await pipeline(c.utxoStream(WHALE, { limit: i % 2 ? 100 : 10000 }), w)
          total += w.count()
          let m = 0
          for await (const _u of c.utxos(WHALE, { limit: 200 })) { if (++m % 500 === 0) await new Promise((r) => setTimeout(r, 1)) }
          total += m
          sample()
        }
        clearInterval(timer)
        global.gc?.()
        const final = process.memoryUsage().rss
        await c.close()
        console.log(JSON.stringify({ baseline, peak, final, total }))
      })().catch((e) => { console.error(e); process.exit(2) })
      `,
      { socket: host.socket, timeoutMs: 110_000, args: ['--expose-gc'] },
    )
    assertExitedAlone(r, 'rss run')
    const m = JSON.parse(r.stdout.trim().split('\n').at(-1))
    assert.equal(m.total, 8 * 2 * 1984)
    const MiB = 1024 * 1024
    const growth = Math.max(m.peak, m.final) - m.baseline
    t.diagnostic(
      `RSS baseline ${(m.baseline / MiB).toFixed(1)} MiB, peak ${(m.peak / MiB).toFixed(1)} MiB, final ${(m.final / MiB).toFixed(1)} MiB`,
    )
    assert.ok(growth < 64 * MiB, `RSS grew by ${(growth / MiB).toFixed(1)} MiB (baseline ${(m.baseline / MiB).toFixed(1)} MiB)`)
  })
})
