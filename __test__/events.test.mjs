// Events: block connects and disconnects through the recorded reorg (live and
// replayed), mempool transactions, and scripthash activity; expected values
// come from chain.json, the oracles and the host's own answers.

import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, test } from 'node:test'

import { atTipA, closeAll, cmpOutpoint, connect, plain, record, scriptHash } from './helpers/client.mjs'
import { ReplayHost, blockByHash, loadChain, loadOracle, oracleUtxos, parseBlock, parseTx, recordedSteps, utxoKey } from './helpers/host.mjs'

const A = loadOracle('A')
const B = loadOracle('B')
const STEPS = recordedSteps()
const BLOCK_EVENTS = ['blockConnected', 'blockDisconnected']

/** What the k-th recorded step (0-based) must produce, outputs counts aside. */
function expectedBlockEvent(k) {
  const step = STEPS[k]
  const block = blockByHash(step.hash)
  const seq = BigInt(k + 1)
  if (step.kind === 'connect') {
    const parsed = parseBlock(block.raw)
    return {
      name: 'blockConnected',
      ev: { seq, block: { height: block.height, hash: block.hash }, prevHash: block.prev, time: parsed.time, txCount: parsed.txCount },
    }
  }
  return { name: 'blockDisconnected', ev: { seq, block: { height: block.height, hash: block.hash }, prevHash: block.prev } }
}

/** Compares recorded block events with steps [from, to) of the recording. */
function assertBlockEvents(list, from, to) {
  const got = list.filter((e) => BLOCK_EVENTS.includes(e.name))
  assert.equal(got.length, to - from, `${got.length} block events, expected ${to - from}`)
  for (let k = from; k < to; k++) {
    const { name, ev } = got[k - from]
    const want = expectedBlockEvent(k)
    assert.equal(name, want.name, `step ${k + 1}`)
    const { outputsAdded, outputsRemoved, ...rest } = ev
    assert.deepEqual(rest, want.ev, `step ${k + 1}`)
    assert.equal(typeof outputsAdded, 'number')
    assert.equal(typeof outputsRemoved, 'number')
    assert.ok(outputsAdded >= 0 && outputsRemoved >= 0)
  }
  for (let i = 1; i < got.length; i++) assert.ok(got[i].ev.seq > got[i - 1].ev.seq, 'seq strictly increasing')
  return got
}

/** Waits until `n` block events are recorded. */
function blockCount(n) {
  return (list) => list.filter((e) => BLOCK_EVENTS.includes(e.name)).length >= n
}

describe('block and scripthash events through the reorg', { timeout: 120_000 }, () => {
  let host
  let blocksClient
  let watchClient
  let replayClient
  let blocks
  let activity
  // A P2WPKH script the reorg changes: an output of A's 169 goes, B's 168, 170 and 172 pay it.
  const WATCHED = loadChain().script_kinds['p2wpkh/3']
  // A P2PKH script: outputs of 57 and 137 are spent on B, one of 127 spent on A comes back.
  const SECOND = loadChain().script_kinds['p2pkh/0']

  before(async () => {
    host = await ReplayHost.start()
    await host.ok('step 170')
    await host.ok('sync')
    blocksClient = await connect(host)
    watchClient = await connect(host)
  })

  after(async () => {
    await closeAll(blocksClient, watchClient, replayClient)
    await host?.cleanup()
  })

  test('live: subscribe({blocks: true}), run through the reorg: the recorded order, heights, hashes and seqs', async () => {
    blocks = record(blocksClient, [...BLOCK_EVENTS, 'mempoolTx', 'scripthashActivity', 'gap', 'indexRebuilt'])
    await blocksClient.subscribe({ blocks: true })

    assert.equal(await watchClient.subscribeScripthashes([WATCHED, SECOND]), 2)
    assert.equal(await watchClient.subscribeScripthashes([WATCHED]), 2, 'idempotent')
    activity = record(watchClient, [...BLOCK_EVENTS, 'scripthashActivity', 'gap'])
    await watchClient.subscribe({ blocks: true, scripthashes: true })

    await sleep(200)
    assert.deepEqual(blocks.list, [], 'subscribing from now replays nothing')

    const lines = await host.ok('run')
    assert.deepEqual(
      lines,
      STEPS.slice(170).map((s) => `${s.kind} ${s.height} ${s.hash}`),
    )
    await host.ok('sync')
    await blocks.until(blockCount(8), 20_000, '8 block events')
    await sleep(200)
    const got = assertBlockEvents(blocks.list, 170, 178)
    assert.deepEqual(
      got.map((e) => [e.name, e.ev.block.height]),
      [
        ['blockDisconnected', 170],
        ['blockDisconnected', 169],
        ['blockDisconnected', 168],
        ['blockConnected', 168],
        ['blockConnected', 169],
        ['blockConnected', 170],
        ['blockConnected', 171],
        ['blockConnected', 172],
      ],
    )
    // Blocks only were asked for: no mempool, activity, gap or rebuild events.
    assert.equal(blocks.list.length, 8, 'nothing but the block events')
  })

  test('scripthash activity of the watched scripts during the reorg matches the oracles', async () => {
    const watched = new Map([WATCHED, SECOND].map((s) => [scriptHash(s), s]))
    await activity.until(
      (l) => l.some((e) => e.name === 'scripthashActivity' && e.ev.block?.height === 172 && e.ev.final),
      20_000,
      'activity of block 172',
    )
    await sleep(200)
    const events = activity.of('scripthashActivity')
    assert.ok(events.length > 0)
    const blockEvents = activity.list.filter((e) => BLOCK_EVENTS.includes(e.name)).map((e) => e.ev)
    const bySeq = new Map(blockEvents.map((b) => [b.seq, b]))
    const net = new Map([...watched.keys()].map((sh) => [sh, new Map()]))
    for (const ev of events) {
      assert.equal(typeof ev.seq, 'bigint')
      assert.equal(ev.txid, null)
      assert.equal(typeof ev.final, 'boolean')
      // It belongs to the block event of the same number.
      const b = bySeq.get(ev.seq)
      assert.ok(b, `activity seq ${ev.seq} has no block event`)
      assert.deepEqual(ev.block, b.block)
      const k = Number(ev.seq) - 1
      assert.equal(ev.cause, STEPS[k].kind === 'connect' ? 'blockConnected' : 'blockDisconnected')
      for (const e of ev.entries) {
        assert.ok(watched.has(e.scripthash), `activity of an unwatched scripthash ${e.scripthash}`)
        assert.ok(['added', 'removed'].includes(e.change), e.change)
        assert.equal(typeof e.value, 'bigint')
        const key = `${e.txid}:${e.vout}`
        const m = net.get(e.scripthash)
        m.set(key, (m.get(key) ?? 0) + (e.change === 'added' ? 1 : -1))
      }
    }
    // Each seq's parts end with one final part.
    for (const s of new Set(events.map((e) => e.seq))) {
      const parts = events.filter((e) => e.seq === s)
      assert.equal(parts.at(-1).final, true)
      assert.ok(parts.slice(0, -1).every((p) => !p.final))
    }
    for (const [sh, script] of watched) {
      // Netted over the reorg, the activity turns oracle-A's set into oracle-B's.
      const a = new Set(oracleUtxos(A, script).map(utxoKey))
      const b = new Set(oracleUtxos(B, script).map(utxoKey))
      const want = []
      for (const k of a) if (!b.has(k)) want.push([k, -1])
      for (const k of b) if (!a.has(k)) want.push([k, 1])
      assert.ok(want.length > 0)
      const got = [...net.get(sh)].filter(([, v]) => v !== 0)
      assert.deepEqual(got.sort(), want.sort(), script)
      // Outputs of A's disconnected blocks are removed by their disconnect; those
      // of B's blocks are added by their connect, with their value and height.
      const entriesOf = (cause, height) =>
        events
          .filter((e) => e.cause === cause && e.block.height === height)
          .flatMap((e) => e.entries)
          .filter((e) => e.scripthash === sh)
      for (const u of oracleUtxos(A, script).filter((u) => u.height >= 168)) {
        assert.ok(
          entriesOf('blockDisconnected', u.height).some(
            (e) => e.txid === u.txid && e.vout === u.vout && e.change === 'removed' && e.value === u.value,
          ),
          `removal of ${utxoKey(u)}`,
        )
      }
      for (const u of oracleUtxos(B, script).filter((u) => u.height >= 168)) {
        assert.ok(
          entriesOf('blockConnected', u.height).some(
            (e) =>
              e.txid === u.txid && e.vout === u.vout && e.change === 'added' && e.value === u.value && e.height === u.height,
          ),
          `addition of ${utxoKey(u)}`,
        )
      }
    }
    assert.equal(await watchClient.unsubscribeScripthashes([SECOND]), 1)
    assert.equal(await watchClient.unsubscribeScripthashes([SECOND]), 1, 'idempotent')
  })

  test('replay: subscribe({fromSeq: 0n}) delivers the whole history in order, seq 1..178', async () => {
    replayClient = await connect(host)
    const rec = record(replayClient, [...BLOCK_EVENTS, 'gap'])
    await replayClient.subscribe({ fromSeq: 0n })
    await rec.until(blockCount(178), 30_000, '178 block events')
    await sleep(200)
    assert.deepEqual(rec.of('gap'), [])
    const got = assertBlockEvents(rec.list, 0, 178)
    assert.deepEqual(
      got.map((e) => e.ev.seq),
      Array.from({ length: 178 }, (_, i) => BigInt(i + 1)),
    )
    // The outputs counts add up to the oracles' UTXO counts, and a disconnect
    // undoes its block's connect.
    const delta = (list) => list.reduce((n, { ev }) => n + ev.outputsAdded - ev.outputsRemoved, 0)
    assert.equal(delta(got.slice(0, 170)), A.txouts)
    assert.equal(delta(got), B.txouts)
    const connects = new Map(got.filter((e) => e.name === 'blockConnected').map((e) => [e.ev.block.hash, e.ev]))
    for (const { name, ev } of got) {
      if (name !== 'blockDisconnected') continue
      const c = connects.get(ev.block.hash)
      assert.equal(ev.outputsAdded, c.outputsRemoved, `disconnect ${ev.block.height} restores what its connect spent`)
      assert.equal(ev.outputsRemoved, c.outputsAdded, `disconnect ${ev.block.height} removes what its connect made`)
    }
    rec.stop()
  })

  test('a new subscribe() replaces the old one: fromSeq 170n gives just the reorg', async () => {
    const rec = record(replayClient, [...BLOCK_EVENTS, 'gap'])
    await replayClient.subscribe({ blocks: true, fromSeq: 170n })
    await rec.until(blockCount(8), 20_000, '8 block events')
    await sleep(200)
    assertBlockEvents(rec.list, 170, 178)
    rec.stop()
  })

  test('subscribe({fromBlock}) replays what followed that block', async () => {
    const b165 = blockByHash(STEPS[164].hash)
    assert.equal(b165.height, 165)
    const c = await connect(host)
    try {
      const rec = record(c, [...BLOCK_EVENTS, 'gap'])
      await c.subscribe({ fromBlock: { height: 165, hash: b165.hash } })
      await rec.until(blockCount(13), 20_000, '13 block events')
      await sleep(200)
      assert.deepEqual(rec.of('gap'), [])
      assertBlockEvents(rec.list, 165, 178)
    } finally {
      await c.close()
    }
  })

  test('subscribe({fromBlock}) of an unknown block: a gap (historyUnavailable), then live events', async () => {
    const c = await connect(host)
    try {
      const rec = record(c, [...BLOCK_EVENTS, 'gap'])
      await c.subscribe({ fromBlock: { height: 100, hash: 'ab'.repeat(32) } })
      await rec.until((l) => l.some((e) => e.name === 'gap'), 10_000, 'a gap')
      const [gap] = rec.of('gap')
      assert.equal(gap.reason, 'historyUnavailable')
      assert.equal(gap.last, 0n)
      assert.equal(gap.next, 179n)
      assert.equal(typeof gap.seq, 'bigint')
      await sleep(200)
      assert.equal(rec.of('blockConnected').length + rec.of('blockDisconnected').length, 0)
    } finally {
      await c.close()
    }
  })

  test('subscribe({fromSeq}) beyond the latest event is refused', async () => {
    const c = await connect(host)
    try {
      let err
      try {
        await c.subscribe({ fromSeq: 10_000n })
      } catch (e) {
        err = e
      }
      assert.ok(err, 'refused')
      // MALFORMED from the server (ERR_SERVER, status 1), or the client's own check.
      assert.ok(['ERR_SERVER', 'ERR_INVALID_ARG'].includes(err.code), `code ${err.code}: ${err.message}`)
      if (err.code === 'ERR_SERVER') assert.equal(err.status, 1)
    } finally {
      await c.close()
    }
    assert.deepEqual(blocksClient.seenErrors, [])
    assert.deepEqual(watchClient.seenErrors, [])
  })
})

describe('mempool events and the mempool view', { timeout: 120_000 }, () => {
  const chain = loadChain()
  const RECEIVER = chain.script_kinds['p2wpkh/1'] // every mempool tx pays it
  const txs = chain.mempool.map(parseTx)
  // The confirmed outputs the mempool spends, from oracle-A.
  const spent = txs.map((t) => {
    const { txid, vout } = t.inputs[0]
    for (const [script, list] of Object.entries(A.by_script)) {
      const u = list.find((x) => x.txid === txid && x.vout === vout)
      if (u) return { script, ...u }
    }
    throw new Error(`input ${txid}:${vout} is not in oracle-A`)
  })
  let host
  let client
  let rec
  let txids

  atTipA((h, c) => {
    host = h
    client = c
  })

  test("subscribe({mempool: true}) then 'mempool I' for each recorded transaction: one 'added' event each, in order", async () => {
    assert.equal(await client.subscribeScripthashes([RECEIVER, spent[0].script, spent[1].script]), 3)
    rec = record(client, [...BLOCK_EVENTS, 'mempoolTx', 'scripthashActivity', 'gap'])
    await client.subscribe({ blocks: true, mempool: true, scripthashes: true })
    // One at a time, so each line names the transaction of that index.
    txids = []
    for (let i = 0; i < chain.mempool.length; i++) {
      const lines = await host.ok(`mempool ${i}`)
      assert.equal(lines.length, 1)
      const m = /^mempool ([0-9a-f]{64})$/.exec(lines[0])
      assert.ok(m, lines[0])
      txids.push(m[1])
    }
    await host.ok('sync')
    await rec.until((l) => l.filter((e) => e.name === 'mempoolTx').length >= 5, 20_000, '5 mempoolTx')
    const events = rec.of('mempoolTx')
    assert.equal(events.length, 5)
    events.forEach((ev, i) => {
      const fee = BigInt(spent[i].sats) - txs[i].outputs.reduce((s, o) => s + o.value, 0n)
      assert.deepEqual(ev, {
        seq: ev.seq,
        txid: txids[i],
        change: 'added',
        fee,
        vsize: txs[i].vsize,
        inputs: txs[i].inputs.length,
        outputs: txs[i].outputs.length,
      })
      assert.equal(typeof ev.seq, 'bigint')
      assert.ok(ev.seq > 170n)
      if (i > 0) assert.ok(ev.seq > events[i - 1].seq)
    })
    assert.equal(rec.of('blockConnected').length, 0)
  })

  test('mempool scripthash activity: pending outputs added, confirmed outputs spent in the mempool', async () => {
    await rec.until(
      (l) => l.filter((e) => e.name === 'scripthashActivity' && e.ev.final).length >= 5,
      20_000,
      'activity of 5 mempool txs',
    )
    await sleep(200)
    const events = rec.of('scripthashActivity')
    const shReceiver = scriptHash(RECEIVER)
    const mempoolSeqs = rec.of('mempoolTx').map((e) => e.seq)
    for (let i = 0; i < 5; i++) {
      const parts = events.filter((e) => e.txid === txids[i])
      assert.ok(parts.length >= 1, `activity of ${txids[i]}`)
      for (const p of parts) {
        assert.equal(p.cause, 'mempoolAdded')
        assert.equal(p.block, null)
        assert.equal(p.seq, mempoolSeqs[i])
      }
      const entries = parts.flatMap((p) => p.entries)
      const want = txs[i].outputs
        .map((o, vout) => ({ o, vout }))
        .filter(({ o }) => o.script === RECEIVER)
        .map(({ o, vout }) => ({ scripthash: shReceiver, txid: txids[i], vout, change: 'added', value: o.value, height: 0 }))
      if (i < 2) {
        want.push({
          scripthash: scriptHash(spent[i].script),
          txid: spent[i].txid,
          vout: spent[i].vout,
          change: 'spentInMempool',
          value: BigInt(spent[i].sats),
          height: spent[i].height,
        })
      }
      const key = (e) => `${e.scripthash}${e.txid}${e.vout}${e.change}`
      assert.deepEqual([...entries].sort((a, b) => (key(a) < key(b) ? -1 : 1)), want.sort((a, b) => (key(a) < key(b) ? -1 : 1)))
    }
  })

  test('getSyncStatus counts the mempool view; queryUtxos includeMempool shows pending outputs and spenders', async () => {
    const s = await client.getSyncStatus()
    assert.equal(s.mempoolTxs, 5)
    // The receiver: its confirmed outputs, plus one pending output per transaction.
    const page = await client.queryUtxos(RECEIVER, { includeMempool: true })
    const pending = txs.flatMap((t, i) =>
      t.outputs
        .map((o, vout) => ({ o, vout }))
        .filter(({ o }) => o.script === RECEIVER)
        .map(({ o, vout }) => ({
          txid: txids[i],
          vout,
          value: o.value,
          height: 0,
          coinbase: false,
          script: RECEIVER,
          pending: true,
          spentBy: null,
        })),
    )
    assert.equal(pending.length, 5)
    const want = [...oracleUtxos(A, RECEIVER), ...pending].sort(cmpOutpoint)
    assert.deepEqual(page.utxos.map(plain).sort(cmpOutpoint), want)
    assert.deepEqual(page.utxos.map(plain), want, 'in outpoint order')
    // Without the flag: the confirmed set only.
    assert.deepEqual((await client.queryUtxos(RECEIVER)).utxos.map(plain), oracleUtxos(A, RECEIVER).sort(cmpOutpoint))
    // Pending outputs are excluded by maxHeight and minConfirmations.
    const confirmed = oracleUtxos(A, RECEIVER).sort(cmpOutpoint)
    assert.deepEqual((await client.queryUtxos(RECEIVER, { includeMempool: true, maxHeight: 170 })).utxos.map(plain), confirmed)
    assert.deepEqual((await client.queryUtxos(RECEIVER, { includeMempool: true, minConfirmations: 1 })).utxos.map(plain), confirmed)
    // Spent scripts: the spent output is still listed, with its spender.
    for (let i = 0; i < 5; i++) {
      const script = spent[i].script
      const got = (await client.queryUtxos(script, { includeMempool: true })).utxos.map(plain)
      const expected = oracleUtxos(A, script)
        .map((u) => (u.txid === spent[i].txid && u.vout === spent[i].vout ? { ...u, spentBy: txids[i] } : u))
        .sort(cmpOutpoint)
      assert.deepEqual(got, expected, script)
    }
  })

  test('getTransaction of a mempool transaction is its raw bytes, with no block', async () => {
    for (let i = 0; i < 5; i++) {
      const tx = await client.getTransaction(txids[i])
      assert.equal(tx.txid, txids[i])
      assert.equal(tx.hex, chain.mempool[i])
      assert.equal(tx.block, null)
    }
  })

  test("'remove TXID 2': a 'removed' event (replaced) and the output is no longer pending", async () => {
    const before = rec.list.length
    const lines = await host.ok(`remove ${txids[0]} 2`)
    assert.deepEqual(lines, [`removed ${txids[0]}`])
    await host.ok('sync')
    await rec.until(
      (l) => l.slice(before).some((e) => e.name === 'mempoolTx' && e.ev.change === 'removed'),
      20_000,
      'the removal',
    )
    const removed = rec.list.slice(before).filter((e) => e.name === 'mempoolTx').map((e) => e.ev)
    assert.equal(removed.length, 1)
    assert.deepEqual(removed[0], { seq: removed[0].seq, txid: txids[0], change: 'removed', reason: 'replaced' })
    assert.ok(removed[0].seq > rec.of('mempoolTx')[4].seq)
    await rec.until(
      (l) => l.slice(before).some((e) => e.name === 'scripthashActivity' && e.ev.cause === 'mempoolRemoved' && e.ev.final),
      20_000,
      'its activity',
    )
    const entries = rec.list
      .slice(before)
      .filter((e) => e.name === 'scripthashActivity')
      .flatMap((e) => e.ev.entries)
    const changes = entries.map((e) => `${e.txid}:${e.vout} ${e.change}`).sort()
    assert.deepEqual(changes, [`${spent[0].txid}:${spent[0].vout} unspentInMempool`, `${txids[0]}:0 removed`].sort())

    await waitMempool(client, 4)
    const page = await client.queryUtxos(RECEIVER, { includeMempool: true })
    assert.deepEqual(
      page.utxos.filter((u) => u.pending).map((u) => u.txid).sort(),
      txids.slice(1).sort(),
    )
    const first = (await client.queryUtxos(spent[0].script, { includeMempool: true })).utxos.map(plain)
    assert.deepEqual(first, oracleUtxos(A, spent[0].script).sort(cmpOutpoint), 'its input is no longer spent')
    assert.deepEqual(client.seenErrors, [])
  })
})

async function waitMempool(client, n) {
  const deadline = Date.now() + 10_000
  for (;;) {
    const s = await client.getSyncStatus()
    if (s.mempoolTxs === n) return
    if (Date.now() > deadline) assert.fail(`mempool view has ${s.mempoolTxs} transactions, expected ${n}`)
    await sleep(50)
  }
}
