// utxos() (async iterator) and utxoStream() (object-mode Readable) over the
// whale's 1,984 UTXOs, against oracle-A: all of them, early exits, slow consumers.

import assert from 'node:assert/strict'
import { Readable, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import { before, describe, test } from 'node:test'

import { atTipA, cmpOutpoint, plain } from './helpers/client.mjs'
import { WHALE, loadChain, loadOracle, oracleUtxos } from './helpers/host.mjs'

const A = loadOracle('A')
const WANT = oracleUtxos(A, WHALE).sort(cmpOutpoint)

/** A Writable (object mode) collecting what it gets, `delayMs` per item for the first `slowItems`. */
function collector({ slowItems = 0, delayMs = 0, highWaterMark = 16 } = {}) {
  const items = []
  const w = new Writable({
    objectMode: true,
    highWaterMark,
    write(u, _enc, cb) {
      items.push(u)
      if (items.length <= slowItems) setTimeout(cb, delayMs)
      else cb()
    },
  })
  w.items = items
  return w
}

/** Resolves when `stream` emits 'close' (or at once if it did). */
function closed(stream) {
  if (stream.closed || stream.destroyed) return Promise.resolve()
  return new Promise((resolve) => stream.once('close', resolve))
}

describe('utxos() and utxoStream()', { timeout: 120_000 }, () => {
  let host
  let client

  atTipA((h, c) => {
    host = h
    client = c
  })
  before(() => assert.equal(WANT.length, 1984))

  test('utxos(): the whale, exactly the oracle, in outpoint order', async () => {
    const got = []
    for await (const u of client.utxos(WHALE)) got.push(plain(u))
    assert.deepEqual(got, WANT)
  })

  test('utxos() with small pages (limit is the page size) and another sort', async () => {
    const got = []
    for await (const u of client.utxos(WHALE, { limit: 97 })) got.push(plain(u))
    assert.deepEqual(got, WANT)
    const p2tr = loadChain().script_kinds['p2tr/0']
    const byValue = []
    for await (const u of client.utxos(p2tr, { limit: 7, sort: 'value' })) byValue.push(plain(u))
    const want = oracleUtxos(A, p2tr).sort((a, b) => (a.value === b.value ? cmpOutpoint(a, b) : a.value > b.value ? -1 : 1))
    assert.ok(want.length > 14)
    assert.deepEqual(byValue, want)
  })

  test('utxos() with filters equals the oracle filtered the same way', async () => {
    const script = loadChain().script_kinds['p2pkh/0']
    const got = []
    for await (const u of client.utxos(script, { limit: 3, minValue: 1_000_000n, maxHeight: 160 })) got.push(plain(u))
    const want = oracleUtxos(A, script)
      .filter((u) => u.value >= 1_000_000n && u.height <= 160)
      .sort(cmpOutpoint)
    assert.ok(want.length > 3)
    assert.deepEqual(got, want)
  })

  test('breaking out of a utxos() loop early ends it, and the client carries on', async () => {
    const got = []
    for await (const u of client.utxos(WHALE, { limit: 100 })) {
      got.push(plain(u))
      if (got.length === 150) break
    }
    assert.deepEqual(got, WANT.slice(0, 150))
    // return() was called by the loop; the iterator is done.
    const it = client.utxos(WHALE, { limit: 100 })
    const first = await it.next()
    assert.equal(first.done, false)
    assert.deepEqual(plain(first.value), WANT[0])
    const ret = await it.return?.()
    if (ret) assert.equal(ret.done, true)
    assert.equal((await it.next()).done, true)
    const page = await client.queryUtxos(WHALE, { limit: 2 })
    assert.deepEqual(page.utxos.map(plain), WANT.slice(0, 2))
  })

  test('an iterator of an empty script ends at once', async () => {
    const got = []
    for await (const u of client.utxos('deadbeef')) got.push(u)
    assert.deepEqual(got, [])
  })

  test('utxoStream(): an object-mode Readable; pipeline into a Writable gets exactly the oracle', async () => {
    const stream = client.utxoStream(WHALE)
    assert.ok(stream instanceof Readable)
    assert.equal(stream.readableObjectMode, true)
    const sink = collector()
    await pipeline(stream, sink)
    assert.deepEqual(sink.items.map(plain), WANT)
  })

  test('utxoStream() with small pages and async iteration of the stream', async () => {
    const got = []
    for await (const u of client.utxoStream(WHALE, { limit: 128 })) got.push(plain(u))
    assert.deepEqual(got, WANT)
  })

  test('a slow consumer (highWaterMark 1, a delay per item for the first 300) still gets everything', async () => {
    const sink = collector({ slowItems: 300, delayMs: 2, highWaterMark: 1 })
    await pipeline(client.utxoStream(WHALE, { limit: 100 }), sink)
    assert.deepEqual(sink.items.map(plain), WANT)
  })

  test('the stream reads no further than its consumer drains (backpressure)', async () => {
    const stream = client.utxoStream(WHALE, { limit: 50 })
    let taken = 0
    // Read 5 items, then wait: the buffered amount stays bounded.
    await new Promise((resolve, reject) => {
      stream.on('error', reject)
      const onReadable = () => {
        let u
        while (taken < 5 && (u = stream.read()) !== null) taken++
        if (taken >= 5) {
          stream.off('readable', onReadable)
          resolve()
        }
      }
      stream.on('readable', onReadable)
    })
    await sleep(300)
    // Pages are pushed whole: at most the high-water mark plus one page, well
    // short of the whale's 1,984.
    const bound = stream.readableHighWaterMark + 50
    assert.ok(bound < 1984 - 5, `highWaterMark ${stream.readableHighWaterMark} leaves nothing to test`)
    assert.ok(stream.readableLength <= bound, `buffered ${stream.readableLength} while nobody read (bound ${bound})`)
    await sleep(300)
    assert.ok(stream.readableLength <= bound, `still reading: ${stream.readableLength}`)
    const rest = []
    for await (const u of stream) rest.push(u)
    assert.equal(taken + rest.length, 1984)
    assert.deepEqual(rest.map(plain), WANT.slice(5))
  })

  test('the stream can be destroyed early; the client carries on', async () => {
    const stream = client.utxoStream(WHALE, { limit: 100 })
    const got = []
    await new Promise((resolve, reject) => {
      stream.on('data', (u) => {
        got.push(plain(u))
        if (got.length === 120) {
          stream.destroy()
          resolve()
        }
      })
      stream.on('error', reject)
      stream.on('end', () => reject(new Error('ended instead of being destroyed')))
    })
    await closed(stream)
    assert.equal(stream.destroyed, true)
    assert.deepEqual(got, WANT.slice(0, 120))
    // A pipeline whose consumer fails destroys the stream too.
    const failing = new Writable({
      objectMode: true,
      highWaterMark: 1,
      write(_u, _e, cb) {
        cb(new Error('consumer gave up'))
      },
    })
    const src = client.utxoStream(WHALE, { limit: 100 })
    await assert.rejects(pipeline(src, failing), /consumer gave up/)
    await closed(src)
    assert.equal(src.destroyed, true)
    const page = await client.queryUtxos(WHALE, { limit: 3 })
    assert.deepEqual(page.utxos.map(plain), WANT.slice(0, 3))
    assert.deepEqual(client.seenErrors, [])
  })

  test('several streams and iterators at once on one client', async () => {
    const runs = await Promise.all([
      (async () => {
        const s = collector()
        await pipeline(client.utxoStream(WHALE, { limit: 300 }), s)
        return s.items.map(plain)
      })(),
      (async () => {
        const got = []
        for await (const u of client.utxos(WHALE, { limit: 250 })) got.push(plain(u))
        return got
      })(),
      (async () => {
        const s = collector({ slowItems: 50, delayMs: 1, highWaterMark: 1 })
        await pipeline(client.utxoStream(WHALE, { limit: 500 }), s)
        return s.items.map(plain)
      })(),
    ])
    for (const r of runs) assert.deepEqual(r, WANT)
  })
})
