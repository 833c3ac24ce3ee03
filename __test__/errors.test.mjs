// Bad arguments are TypeErrors with code ERR_INVALID_ARG, before anything is
// sent; connection failures and server statuses have their own codes.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { describe, test } from 'node:test'

import { atTipA, connect, expectCode, OpnetClient, scriptHash } from './helpers/client.mjs'
import { WHALE, blockOnBranch, loadOracle, segwitAddress } from './helpers/host.mjs'

const A = loadOracle('A')

describe('errors', { timeout: 120_000 }, () => {
  let host
  let client

  atTipA((h, c) => {
    host = h
    client = c
  })

  const invalid = (fn, what) => expectCode(fn, 'ERR_INVALID_ARG', { typeError: true, what })

  test('queryUtxos with a bad target or bad options: TypeError ERR_INVALID_ARG', async () => {
    await invalid(() => client.queryUtxos(123), 'queryUtxos(123)')
    await invalid(() => client.queryUtxos('zz'), "queryUtxos('zz')")
    await invalid(() => client.queryUtxos(), 'queryUtxos()')
    await invalid(() => client.queryUtxos(null), 'queryUtxos(null)')
    await invalid(() => client.queryUtxos(''), "queryUtxos('')")
    await invalid(() => client.queryUtxos('abc'), 'odd hex')
    await invalid(() => client.queryUtxos('sh:1234'), 'a short scripthash')
    await invalid(() => client.queryUtxos('addr:notanaddress'), 'not an address')
    // An address of another network than the server's.
    await invalid(() => client.queryUtxos(segwitAddress(WHALE, 'bc')), 'a mainnet address on regtest')
    await invalid(() => client.queryUtxos(WHALE, { limit: -1 }), 'limit -1')
    await invalid(() => client.queryUtxos(WHALE, { limit: 1.5 }), 'limit 1.5')
    await invalid(() => client.queryUtxos(WHALE, { limit: 'ten' }), "limit 'ten'")
    await invalid(() => client.queryUtxos(WHALE, { minValue: -1n }), 'minValue -1n')
    await invalid(() => client.queryUtxos(WHALE, { minValue: 2n ** 64n }), 'minValue 2^64')
    await invalid(() => client.queryUtxos(WHALE, { maxHeight: -5 }), 'maxHeight -5')
    await invalid(() => client.queryUtxos(WHALE, { minConfirmations: -1 }), 'minConfirmations -1')
    await invalid(() => client.queryUtxos(WHALE, { sort: 'random' }), "sort 'random'")
    await invalid(() => client.queryUtxos(WHALE, { cursor: 42 }), 'cursor 42')
    await invalid(() => client.queryUtxos(WHALE, 'options'), 'options not an object')
  })

  test('the other methods check their arguments too', async () => {
    await invalid(() => client.getBlockTxids({}), 'getBlockTxids({})')
    await invalid(() => client.getBlockTxids(), 'getBlockTxids()')
    await invalid(() => client.getBlockTxids(-1), 'getBlockTxids(-1)')
    await invalid(() => client.getBlockTxids('xyz'), "getBlockTxids('xyz')")
    await invalid(() => client.getBlockHeader(1.5), 'getBlockHeader(1.5)')
    await invalid(() => client.getBlockHeader('00'), "getBlockHeader('00')")
    await invalid(() => client.getTransaction(), 'getTransaction()')
    await invalid(() => client.getTransaction('12'), "getTransaction('12')")
    await invalid(() => client.getTransaction('00'.repeat(32), 'nothex'), 'a bad block hash')
    await invalid(() => client.subscribeScripthashes('notalist'), 'subscribeScripthashes(string)')
    await invalid(() => client.subscribeScripthashes([WHALE, 'zz']), 'a bad target in the list')
    await invalid(() => client.unsubscribeScripthashes([7]), 'unsubscribeScripthashes([7])')
    await invalid(() => client.subscribe({ fromSeq: -1n }), 'fromSeq -1n')
    await invalid(() => client.subscribe({ fromBlock: { height: 1 } }), 'fromBlock without a hash')
    await invalid(() => client.subscribe({ blocks: false, mempool: false, scripthashes: false }), 'no kind')
    await invalid(() => client.utxos(42).next(), 'utxos(42)')
    let streamErr
    try {
      const s = client.utxoStream(42)
      streamErr = await new Promise((resolve) => {
        s.once('error', resolve)
        s.resume()
        s.once('end', () => resolve(null))
      })
    } catch (e) {
      streamErr = e
    }
    assert.ok(streamErr, 'utxoStream(42) fails')
    assert.equal(streamErr.code, 'ERR_INVALID_ARG')
    // Nothing of that broke the connection.
    const page = await client.queryUtxos(WHALE, { limit: 1 })
    assert.equal(page.utxos.length, 1)
  })

  test('OpnetClient.connect with bad arguments: TypeError ERR_INVALID_ARG', async () => {
    await invalid(() => OpnetClient.connect(42), 'connect(42)')
    await invalid(() => OpnetClient.connect(), 'connect()')
    await invalid(() => OpnetClient.connect(host.socket, { network: 'moon' }), "network 'moon'")
    await invalid(() => OpnetClient.connect(host.socket, { connectTimeoutMs: -1 }), 'connectTimeoutMs -1')
    await invalid(() => OpnetClient.connect(host.socket, { clientName: 5 }), 'clientName 5')
  })

  test('scriptHash with a bad argument: TypeError ERR_INVALID_ARG', async () => {
    await invalid(() => scriptHash('zz'), "scriptHash('zz')")
    await invalid(() => scriptHash(5), 'scriptHash(5)')
    await invalid(() => scriptHash(WHALE, 'moon'), "network 'moon'")
    // A regtest address read as mainnet (the default network).
    await invalid(() => scriptHash(segwitAddress(WHALE, 'bcrt')), 'a regtest address as main')
  })

  test('connecting to a missing socket: ERR_CONNECT', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'opnet-native-missing-'))
    try {
      const err = await expectCode(() => OpnetClient.connect(path.join(dir, 'nothing.sock')), 'ERR_CONNECT')
      assert.ok(err instanceof Error)
      // A file that is not a socket.
      fs.writeFileSync(path.join(dir, 'plain'), 'x')
      await expectCode(() => OpnetClient.connect(path.join(dir, 'plain')), 'ERR_CONNECT')
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  test('a server of another network than asked: ERR_WRONG_NETWORK', async () => {
    await expectCode(() => OpnetClient.connect(host.socket, { network: 'main' }), 'ERR_WRONG_NETWORK')
  })

  test('a socket that accepts but never answers the handshake: ERR_TIMEOUT within connectTimeoutMs', async () => {
    const net = await import('node:net')
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'opnet-native-silent-'))
    const sockets = []
    const server = net.createServer((s) => sockets.push(s))
    await new Promise((r) => server.listen(path.join(dir, 'silent.sock'), r))
    try {
      const t0 = Date.now()
      await expectCode(() => OpnetClient.connect(path.join(dir, 'silent.sock'), { connectTimeoutMs: 300, reconnect: false }), 'ERR_TIMEOUT')
      const took = Date.now() - t0
      assert.ok(took >= 250 && took < 5_000, `took ${took} ms`)
    } finally {
      for (const s of sockets) s.destroy()
      await new Promise((r) => server.close(r))
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  test('server statuses: ERR_NOT_FOUND for unknown blocks and transactions', async () => {
    await expectCode(() => client.getBlockTxids(100_000), 'ERR_NOT_FOUND')
    await expectCode(() => client.getBlockHeader('ab'.repeat(32)), 'ERR_NOT_FOUND')
    await expectCode(() => client.getTransaction('ab'.repeat(32)), 'ERR_NOT_FOUND')
    // A transaction that is not in the block named.
    const coinbase = A.by_script[Object.keys(A.by_script).find((s) => A.by_script[s].some((u) => u.coinbase))].find(
      (u) => u.coinbase,
    )
    const other = blockOnBranch(coinbase.height === 1 ? 2 : 1, 'A')
    const err = await expectCode(() => client.getTransaction(coinbase.txid, other.hash), 'ERR_NOT_FOUND')
    assert.equal(err.status, 6)
  })

  test('calls after close() fail with ERR_CLOSED', async () => {
    const c = await connect(host)
    await c.close()
    await expectCode(() => c.queryUtxos(WHALE), 'ERR_CLOSED')
    await expectCode(() => c.getSyncStatus(), 'ERR_CLOSED')
    await expectCode(() => c.subscribe(), 'ERR_CLOSED')
    await c.close() // a second close is harmless
  })

  test('a call in flight when close() is called fails with ERR_CLOSED or completes', async () => {
    const c = await connect(host)
    const pending = c.queryUtxos(WHALE).then(
      (p) => ({ ok: p.utxos.length }),
      (e) => ({ code: e.code }),
    )
    await c.close()
    const r = await pending
    if ('code' in r) assert.equal(r.code, 'ERR_CLOSED')
    else assert.equal(r.ok, 1984)
  })
})
