// Connecting, the handshake's facts and getSyncStatus at both recorded tips,
// against the oracles.

import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'

import { connect, closeAll, OpnetClient } from './helpers/client.mjs'
import { ReplayHost, loadOracle, parseTipLine } from './helpers/host.mjs'

describe('connect and getSyncStatus', { timeout: 120_000 }, () => {
  const A = loadOracle('A')
  const B = loadOracle('B')
  let host
  let client

  before(async () => {
    host = await ReplayHost.start()
    const lines = await host.ok('step 170')
    assert.equal(lines.length, 170)
    assert.equal(lines[169], `connect 170 ${A.tip_hash}`)
    const [synced] = await host.ok('sync')
    assert.deepEqual(parseTipLine(synced), { height: 170, hash: A.tip_hash, step: 170, steps: 178 })
    client = await connect(host, { clientName: 'status-test', network: 'regtest' })
  })

  after(async () => {
    await closeAll(client)
    await host?.cleanup()
  })

  test('the handshake tells the network and the server name', () => {
    assert.ok(client instanceof OpnetClient)
    assert.equal(client.network, 'regtest')
    assert.equal(typeof client.serverName, 'string')
    assert.match(client.serverName, /^opnet-core\/\d+\.\d+\.\d+/)
  })

  test("at branch A's tip (170) the status equals oracle-A", async () => {
    const s = await client.getSyncStatus()
    assert.equal(s.mode, 'synced')
    assert.equal(s.synced, true)
    assert.deepEqual(s.indexTip, { height: A.tip_height, hash: A.tip_hash })
    assert.deepEqual(s.hostTip, { height: A.tip_height, hash: A.tip_hash })
    assert.equal(typeof s.utxoCount, 'bigint')
    assert.equal(s.utxoCount, BigInt(A.txouts))
    assert.equal(typeof s.totalSats, 'bigint')
    assert.equal(s.totalSats, BigInt(A.total_amount_sats))
    // 170 block events were numbered from 1 on a fresh index, and nothing else.
    assert.equal(typeof s.eventSeq, 'bigint')
    assert.equal(s.eventSeq, 170n)
    assert.equal(s.scan, null)
    assert.equal(s.mempoolTxs, 0)
  })

  test('a second client sees the same status, with default options', async () => {
    const other = await OpnetClient.connect(host.socket)
    try {
      assert.equal(other.network, 'regtest')
      const s = await other.getSyncStatus()
      assert.deepEqual(s.indexTip, { height: A.tip_height, hash: A.tip_hash })
      assert.equal(s.utxoCount, BigInt(A.txouts))
    } finally {
      await other.close()
    }
  })

  test("after the reorg (run) the status equals oracle-B at branch B's tip (172)", async () => {
    const lines = await host.ok('run')
    assert.equal(lines.length, 8)
    await host.ok('sync')
    const s = await client.getSyncStatus()
    assert.equal(s.mode, 'synced')
    assert.equal(s.synced, true)
    assert.deepEqual(s.indexTip, { height: B.tip_height, hash: B.tip_hash })
    assert.deepEqual(s.hostTip, { height: B.tip_height, hash: B.tip_hash })
    assert.equal(s.utxoCount, BigInt(B.txouts))
    assert.equal(s.totalSats, BigInt(B.total_amount_sats))
    assert.equal(s.eventSeq, 178n)
    assert.equal(s.scan, null)
    assert.deepEqual(client.seenErrors, [])
  })
})
