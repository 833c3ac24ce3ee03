// scriptHash(): the scripthash the server keys its index by (checked through the
// server, never by hashing here), for scripts and for addresses.

import assert from 'node:assert/strict'
import { describe, test } from 'node:test'

import { atTipA, plain, scriptHash } from './helpers/client.mjs'
import { WHALE, loadChain, loadOracle, segwitAddress } from './helpers/host.mjs'

const A = loadOracle('A')

describe('scriptHash()', { timeout: 120_000 }, () => {
  let host
  let client

  atTipA((h, c) => {
    host = h
    client = c
  })

  test('is 64 lower-case hex, deterministic, and differs between scripts', () => {
    const seen = new Set()
    for (const script of Object.values(loadChain().script_kinds)) {
      const sh = scriptHash(script)
      assert.match(sh, /^[0-9a-f]{64}$/)
      assert.equal(scriptHash(script), sh)
      assert.equal(scriptHash(script.toUpperCase()), sh, 'hex case does not matter')
      seen.add(sh)
    }
    assert.equal(seen.size, new Set(Object.values(loadChain().script_kinds)).size)
  })

  test("'sh:' + scriptHash(script) names the same UTXOs as the script, for every script of oracle-A", async () => {
    for (const script of Object.keys(A.by_script)) {
      const sh = scriptHash(script)
      const byScript = await client.queryUtxos(script)
      const bySh = await client.queryUtxos(`sh:${sh}`)
      assert.deepEqual(bySh, byScript, script)
      // A bare 64-hex string is read as a scripthash.
      const bare = await client.queryUtxos(sh)
      assert.deepEqual(bare, byScript, script)
    }
    // The same page, cursor included.
    const a = await client.queryUtxos(WHALE, { limit: 300 })
    const b = await client.queryUtxos(`sh:${scriptHash(WHALE)}`, { limit: 300 })
    assert.deepEqual(b, a)
    assert.deepEqual(b.utxos.map(plain), a.utxos.map(plain))
  })

  test('for an address, equals scriptHash of the script it pays', () => {
    let checked = 0
    for (const [kind, script] of Object.entries(loadChain().script_kinds)) {
      const regtest = segwitAddress(script, 'bcrt')
      if (!regtest) continue
      assert.equal(scriptHash(regtest, 'regtest'), scriptHash(script), `${kind} ${regtest}`)
      assert.equal(scriptHash(segwitAddress(script, 'bc')), scriptHash(script), `${kind} mainnet`)
      assert.equal(scriptHash(segwitAddress(script, 'bc'), 'main'), scriptHash(script), `${kind} mainnet`)
      assert.equal(scriptHash(segwitAddress(script, 'tb'), 'testnet4'), scriptHash(script), `${kind} testnet4`)
      assert.equal(scriptHash(segwitAddress(script, 'tb'), 'signet'), scriptHash(script), `${kind} signet`)
      checked++
    }
    assert.ok(checked >= 19)
  })

  test('scriptHash of an address names the same UTXOs on the server', async () => {
    const address = segwitAddress(WHALE, 'bcrt')
    const sh = scriptHash(address, 'regtest')
    const page = await client.queryUtxos(`sh:${sh}`)
    assert.equal(page.utxos.length, 1984)
    assert.deepEqual(page, await client.queryUtxos(address))
  })

  test('subscribeScripthashes accepts the same target in every form, counted once', async () => {
    const address = segwitAddress(WHALE, 'bcrt')
    const sh = scriptHash(WHALE)
    assert.equal(await client.subscribeScripthashes([WHALE]), 1)
    assert.equal(await client.subscribeScripthashes([`sh:${sh}`, sh, address, `addr:${address}`, `script:${WHALE}`]), 1)
    assert.equal(await client.unsubscribeScripthashes([address]), 0)
  })
})
