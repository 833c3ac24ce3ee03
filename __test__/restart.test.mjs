// The host dies (SIGKILL mid-step, or SIGTERM) and a new one starts on the same
// index: the client reconnects by itself ('reconnected') and resumes its events
// after the last one it delivered, none missing and none repeated.
//
// What a restarted replay host does (observed): its chain starts at genesis
// again while the index stays where it was; the index reports catching up, and
// carries on (with the event numbers after its last) once the replayed chain
// passes its tip.

import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, test } from 'node:test'

import { closeAll, cmpOutpoint, connect, plain, record } from './helpers/client.mjs'
import { ReplayHost, WHALE, blockByHash, loadOracle, oracleUtxos, recordedSteps } from './helpers/host.mjs'

const B = loadOracle('B')
const STEPS = recordedSteps()
const BLOCK_EVENTS = ['blockConnected', 'blockDisconnected']

/** A compact list of block events for failure messages. */
function compact(list) {
  return list
    .map(({ name, ev }) =>
      BLOCK_EVENTS.includes(name) ? `${name === 'blockConnected' ? '+' : '-'}${ev.block.height}#${ev.seq}` : name,
    )
    .join(' ')
}

/**
 * Asserts that the block events are numbered 1, 2, 3, ... (none missing, none
 * repeated) and walk a valid chain from genesis (each connect on the current
 * tip, each disconnect of the current tip; blocks, heights and prevHash as in
 * chain.json) to `finalTip`. Which blocks it walks through depends on where the
 * index was when the host died: one that catches up after the replayed chain
 * already switched to branch B never sees branch A's last blocks.
 */
function assertValidWalk(list, finalTip) {
  const got = list.filter((e) => BLOCK_EVENTS.includes(e.name))
  const seqs = got.map((e) => e.ev.seq)
  const dup = seqs.filter((s, i) => seqs.indexOf(s) !== i)
  assert.deepEqual(dup, [], `no event repeated: ${compact(list)}`)
  assert.deepEqual(seqs, Array.from({ length: got.length }, (_, i) => BigInt(i + 1)), `seq 1..n: ${compact(list)}`)
  const chain = [] // hashes by height - 1
  for (const { name, ev } of got) {
    const block = blockByHash(ev.block.hash)
    assert.ok(block, `#${ev.seq}: unknown block ${ev.block.hash}`)
    assert.equal(ev.block.height, block.height, `#${ev.seq}: height`)
    assert.equal(ev.prevHash, block.prev, `#${ev.seq}: prevHash`)
    if (name === 'blockConnected') {
      assert.equal(block.height, chain.length + 1, `#${ev.seq}: connects on the tip`)
      if (chain.length) assert.equal(block.prev, chain.at(-1), `#${ev.seq}: connects on the tip`)
      chain.push(block.hash)
    } else {
      assert.equal(block.hash, chain.at(-1), `#${ev.seq}: disconnects the tip`)
      chain.pop()
    }
  }
  assert.deepEqual({ height: chain.length, hash: chain.at(-1) }, finalTip, 'ends at the tip')
  return got
}

/** Asserts the block events are exactly steps 1..n of the recording, seq 1..n. */
function assertWholeHistory(list, n) {
  const got = list.filter((e) => BLOCK_EVENTS.includes(e.name))
  assert.equal(got.length, n, compact(list))
  got.forEach(({ name, ev }, k) => {
    const step = STEPS[k]
    assert.equal(ev.seq, BigInt(k + 1))
    assert.equal(name, step.kind === 'connect' ? 'blockConnected' : 'blockDisconnected', `step ${k + 1}`)
    assert.deepEqual(ev.block, { height: step.height, hash: step.hash }, `step ${k + 1}`)
    assert.equal(ev.prevHash, blockByHash(step.hash).prev, `step ${k + 1}`)
  })
}

const blockCount = (n) => (list) => list.filter((e) => BLOCK_EVENTS.includes(e.name)).length >= n

async function restartScenario(how, resume) {
  let host = await ReplayHost.start()
  let client
  let plainClient
  try {
    await host.ok('step 100')
    await host.ok('sync')
    client = await connect(host)
    // A client that only makes requests reconnects too.
    plainClient = await connect(host)
    assert.equal((await plainClient.getSyncStatus()).indexTip.height, 100)
    const rec = record(client, [...BLOCK_EVENTS, 'gap', 'indexRebuilt', 'disconnected', 'reconnected', 'error'])
    await client.subscribe({ blocks: true, fromSeq: 0n })
    await rec.until(blockCount(100), 20_000, '100 block events')

    if (how === 'SIGKILL') {
      // Mid-way: blocks are still being applied (and their events sent) when the host dies.
      await host.ok('step 20')
      await rec.until(blockCount(103), 20_000, '103 block events')
      await host.kill()
    } else {
      await host.ok('step 20')
      await host.ok('sync')
      await rec.until(blockCount(120), 20_000, '120 block events')
      const r = await host.stop()
      assert.equal(r.code, 0, `exit ${JSON.stringify(r)}`)
    }
    await rec.until((l) => l.some((e) => e.name === 'disconnected'), 10_000, "'disconnected'")
    const atDeath = rec.list.filter((e) => BLOCK_EVENTS.includes(e.name)).length
    assert.ok(atDeath >= 100 && atDeath <= 120, `${atDeath} block events before the host died`)
    const disc = rec.of('disconnected')[0]
    assert.ok(disc instanceof Error)
    assert.equal(typeof disc.code, 'string')

    host = await host.restart()
    await rec.until((l) => l.some((e) => e.name === 'reconnected'), 20_000, "'reconnected'")
    const idx = rec.list.findIndex((e) => e.name === 'reconnected')
    const reconnected = rec.list[idx].ev
    const delivered = rec.list.slice(0, idx).filter((e) => BLOCK_EVENTS.includes(e.name))
    assert.equal(typeof reconnected.eventSeq, 'bigint')
    assert.equal(typeof reconnected.resumeAfter, 'bigint')
    assert.equal(reconnected.resumeAfter, delivered.at(-1).ev.seq, 'resumes after the last event delivered')
    assert.ok(reconnected.eventSeq >= reconnected.resumeAfter)
    assert.ok(reconnected.eventSeq <= 120n)

    // The new host replays the chain from genesis; the index catches up past its tip.
    if (resume === 'stepSyncRun') {
      // Up to where the old host was, synced, then the rest live: the index
      // follows the recording exactly, reorg included.
      assert.equal((await host.ok('step 120')).length, 120)
      await host.ok('sync')
      assert.equal((await host.ok('run')).length, 58)
    } else {
      assert.equal((await host.ok('run')).length, 178)
    }
    await host.ok('sync')
    const B_TIP = { height: B.tip_height, hash: B.tip_hash }
    await rec.until(
      (l) => l.some((e) => e.name === 'blockConnected' && e.ev.block.hash === B.tip_hash),
      30_000,
      "B's tip",
    )
    await sleep(300)
    assert.deepEqual(rec.of('gap'), [], 'no gap')
    assert.deepEqual(rec.of('indexRebuilt'), [])
    assert.deepEqual(rec.of('error'), [])
    assert.equal(rec.of('reconnected').length, 1)
    const after = rec.list.slice(idx + 1).filter((e) => BLOCK_EVENTS.includes(e.name))
    assert.ok(after.length > 0)
    assert.equal(after[0].ev.seq, reconnected.resumeAfter + 1n, 'the first event after reconnecting')
    const walked = assertValidWalk(rec.list, B_TIP)
    // Stepped back to its old tip before the rest, the index saw the whole recording.
    if (resume === 'stepSyncRun') assertWholeHistory(rec.list, 178)

    // The index and the client agree with oracle-B; the last event is the latest.
    const s = await client.getSyncStatus()
    assert.deepEqual(s.indexTip, B_TIP)
    assert.equal(s.utxoCount, BigInt(B.txouts))
    assert.equal(s.eventSeq, walked.at(-1).ev.seq)
    const page = await client.queryUtxos(WHALE)
    assert.deepEqual(page.utxos.map(plain), oracleUtxos(B, WHALE).sort(cmpOutpoint))
    const deadline = Date.now() + 10_000
    for (;;) {
      const r = await plainClient.getSyncStatus().catch((e) => e)
      if (!(r instanceof Error)) {
        assert.deepEqual(r.indexTip, B_TIP)
        break
      }
      assert.ok(Date.now() < deadline, `the request-only client never came back: ${r.code} ${r.message}`)
      await sleep(100)
    }
    assert.deepEqual(plainClient.seenErrors, [])
  } finally {
    await closeAll(client, plainClient)
    await host.cleanup()
  }
}

describe('host restart', { timeout: 180_000 }, () => {
  test('SIGKILL mid-step, a new host on the same index, stepped to the old tip then on: reconnected, every event once, the recorded order', async () => {
    await restartScenario('SIGKILL', 'stepSyncRun')
  })

  test('SIGKILL mid-step, a new host run to the end at once: reconnected, every event once, a valid walk to B', async () => {
    // The index catches up once the replayed chain passes it; by then the chain
    // may already be on branch B, so A's last blocks may never be connected.
    await restartScenario('SIGKILL', 'run')
  })

  test('SIGTERM (the server says it is shutting down), a new host stepped to the old tip then on: the same', async () => {
    await restartScenario('SIGTERM', 'stepSyncRun')
  })

  test('reconnect: false: the client stays disconnected and its calls fail with ERR_CLOSED', async () => {
    let host = await ReplayHost.start()
    let client
    try {
      await host.ok('step 10')
      await host.ok('sync')
      client = await connect(host, { reconnect: false })
      const rec = record(client, ['disconnected', 'reconnected', 'blockConnected', 'error'])
      await client.subscribe()
      await host.kill()
      // The loss is reported: as 'disconnected', or (nothing being retried) as an
      // 'error' with code ERR_CLOSED.
      await rec.until((l) => l.some((e) => e.name === 'disconnected' || e.name === 'error'), 10_000, "'disconnected' or 'error'")
      for (const { ev } of rec.list.filter((e) => e.name === 'disconnected' || e.name === 'error')) {
        assert.equal(ev.code, 'ERR_CLOSED')
      }
      host = await host.restart()
      await host.ok('step 12')
      await sleep(1_500)
      assert.deepEqual(rec.of('reconnected'), [])
      assert.deepEqual(rec.of('blockConnected'), [])
      await assert.rejects(client.getSyncStatus(), (e) => e.code === 'ERR_CLOSED')
    } finally {
      await closeAll(client)
      await host.cleanup()
    }
  })
})
