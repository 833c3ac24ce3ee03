// getBlockTxids, getBlockHeader and getTransaction against chain.json's raw
// blocks (parsed here) and the oracles' txids.

import assert from 'node:assert/strict'
import { describe, test } from 'node:test'

import { atTipA } from './helpers/client.mjs'
import { blockByHash, blockOnBranch, loadOracle, parseBlock } from './helpers/host.mjs'

const A = loadOracle('A')
const B = loadOracle('B')

/** Every oracle UTXO with its script, grouped by height. */
function utxosByHeight(oracle) {
  const m = new Map()
  for (const [script, list] of Object.entries(oracle.by_script)) {
    for (const u of list) {
      if (!m.has(u.height)) m.set(u.height, [])
      m.get(u.height).push({ script, ...u })
    }
  }
  return m
}

describe('blocks and transactions', { timeout: 120_000 }, () => {
  let host
  let client
  const HEIGHTS = [1, 2, 50, 100, 110, 111, 131, 150, 167, 168, 169, 170]

  atTipA((h, c) => {
    host = h
    client = c
  })

  test('getBlockHeader by height and by hash: the first 80 bytes of the raw block, decoded', async () => {
    for (const h of HEIGHTS) {
      const block = blockOnBranch(h, 'A')
      const parsed = parseBlock(block.raw)
      const want = {
        block: { height: h, hash: block.hash },
        hex: block.raw.slice(0, 160),
        prevHash: block.prev,
        merkleRoot: parsed.merkleRoot,
        time: parsed.time,
        bits: parsed.bits,
        nonce: parsed.nonce,
        version: parsed.version,
      }
      assert.deepEqual(await client.getBlockHeader(h), want, `height ${h}`)
      assert.deepEqual(await client.getBlockHeader(block.hash), want, `hash of ${h}`)
    }
  })

  test('getBlockTxids by height and by hash: the block, its transaction count, and the oracle txids it holds', async () => {
    const byHeight = utxosByHeight(A)
    for (const h of HEIGHTS) {
      const block = blockOnBranch(h, 'A')
      const parsed = parseBlock(block.raw)
      const r = await client.getBlockTxids(h)
      assert.deepEqual(r.block, { height: h, hash: block.hash })
      assert.equal(r.txids.length, parsed.txCount, `height ${h}`)
      for (const t of r.txids) assert.match(t, /^[0-9a-f]{64}$/)
      assert.equal(new Set(r.txids).size, r.txids.length)
      for (const u of byHeight.get(h) ?? []) {
        assert.ok(r.txids.includes(u.txid), `${u.txid} in block ${h}`)
        // A coinbase output's transaction is the block's first.
        if (u.coinbase) assert.equal(r.txids[0], u.txid)
        else assert.notEqual(r.txids[0], u.txid)
      }
      assert.deepEqual(await client.getBlockTxids(block.hash), r, `hash of ${h}`)
    }
  })

  test('getTransaction(coinbase txid, block hash): its hex is in the raw block, as the first transaction', async () => {
    const byHeight = utxosByHeight(A)
    let checked = 0
    for (const [h, list] of byHeight) {
      const cb = list.find((u) => u.coinbase)
      if (!cb || checked >= 15) continue
      const block = blockOnBranch(h, 'A')
      const parsed = parseBlock(block.raw)
      const tx = await client.getTransaction(cb.txid, block.hash)
      assert.equal(tx.txid, cb.txid)
      assert.deepEqual(tx.block, { height: h, hash: block.hash })
      assert.ok(block.raw.includes(tx.hex), 'a substring of the raw block')
      assert.equal(tx.hex, parsed.txs[0].hex)
      // The oracle's output is in it.
      assert.equal(parsed.txs[0].outputs[cb.vout].value, BigInt(cb.sats))
      assert.equal(parsed.txs[0].outputs[cb.vout].script, cb.script)
      checked++
    }
    assert.equal(checked, 15)
  })

  test('getTransaction of spends, with and without the block hash (the replay chain has a tx index)', async () => {
    const byHeight = utxosByHeight(A)
    let checked = 0
    for (const h of [131, 140, 150, 160, 165, 170]) {
      const block = blockOnBranch(h, 'A')
      const parsed = parseBlock(block.raw)
      for (const u of (byHeight.get(h) ?? []).filter((x) => !x.coinbase).slice(0, 3)) {
        const tx = await client.getTransaction(u.txid, block.hash)
        assert.equal(tx.txid, u.txid)
        assert.deepEqual(tx.block, { height: h, hash: block.hash })
        const inBlock = parsed.txs.find((t) => t.hex === tx.hex)
        assert.ok(inBlock, `${u.txid} is one of block ${h}'s transactions`)
        assert.equal(inBlock.outputs[u.vout].value, BigInt(u.sats))
        assert.equal(inBlock.outputs[u.vout].script, u.script)
        const again = await client.getTransaction(u.txid)
        assert.equal(again.txid, u.txid)
        assert.equal(again.hex, tx.hex)
        if (again.block !== null) assert.deepEqual(again.block, { height: h, hash: block.hash })
        checked++
      }
    }
    assert.ok(checked >= 10, `${checked}`)
  })

  test("after the reorg: heights 168..172 are branch B's blocks, A's stale blocks are still found by hash", async () => {
    await host.ok('run')
    await host.ok('sync')
    for (const h of [167, 168, 169, 170, 171, 172]) {
      const block = blockOnBranch(h, 'B')
      const header = await client.getBlockHeader(h)
      assert.deepEqual(header.block, { height: h, hash: block.hash })
      assert.equal(header.hex, block.raw.slice(0, 160))
      const r = await client.getBlockTxids(h)
      assert.deepEqual(r.block, { height: h, hash: block.hash })
      assert.equal(r.txids.length, parseBlock(block.raw).txCount)
      for (const u of utxosByHeight(B).get(h) ?? []) assert.ok(r.txids.includes(u.txid))
    }
    assert.equal(blockOnBranch(172, 'B').hash, B.tip_hash)
    const stale = blockByHash(A.tip_hash)
    assert.equal(stale.height, 170)
    // Branch A's tip is no longer on the active chain; asking by its hash either
    // finds the stale block (its header is in the block files) or says NOT_FOUND.
    try {
      const h = await client.getBlockHeader(stale.hash)
      assert.equal(h.hex, stale.raw.slice(0, 160))
      assert.equal(h.block.hash, stale.hash)
    } catch (e) {
      assert.equal(e.code, 'ERR_NOT_FOUND')
    }
  })
})
