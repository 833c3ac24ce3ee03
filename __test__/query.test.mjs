// queryUtxos against the oracles: every script, addresses, sorts, filters,
// pagination with cursors, and the reorg (oracle-B).

import assert from 'node:assert/strict'
import { describe, test } from 'node:test'

import { atTipA, cmpOutpoint, expectCode, plain } from './helpers/client.mjs'
import { WHALE, loadChain, loadOracle, oracleScripts, oracleUtxos, segwitAddress } from './helpers/host.mjs'

const A = loadOracle('A')
const B = loadOracle('B')
const TIP_A = { height: A.tip_height, hash: A.tip_hash }
const TIP_B = { height: B.tip_height, hash: B.tip_hash }

/** The orders of the protocol's sorts (ties by outpoint). */
const SORTS = {
  outpoint: (a, b) => cmpOutpoint(a, b),
  value: (a, b) => (a.value === b.value ? cmpOutpoint(a, b) : a.value > b.value ? -1 : 1),
  height: (a, b) => (a.height === b.height ? cmpOutpoint(a, b) : a.height - b.height),
  heightDesc: (a, b) => (a.height === b.height ? cmpOutpoint(a, b) : b.height - a.height),
}

function expected(oracle, script, sort = 'outpoint', filter = () => true) {
  return oracleUtxos(oracle, script).filter(filter).sort(SORTS[sort])
}

describe('queryUtxos', { timeout: 180_000 }, () => {
  let host
  let client

  atTipA((h, c) => {
    host = h
    client = c
  })

  test('every script of oracle-A: exactly its UTXOs, in outpoint order, at the tip', async () => {
    let count = 0
    let total = 0n
    const scripts = Object.keys(A.by_script)
    assert.ok(scripts.length > 50)
    for (const script of scripts) {
      const page = await client.queryUtxos(script)
      assert.deepEqual(page.tip, TIP_A, script)
      assert.equal(page.cursor, null, script)
      assert.deepEqual(page.utxos.map(plain), expected(A, script), script)
      for (const u of page.utxos) {
        assert.equal(typeof u.value, 'bigint')
        total += u.value
      }
      count += page.utxos.length
    }
    // The oracle is complete: its listing is the whole UTXO set.
    assert.equal(A.complete, true)
    assert.equal(count, A.txouts)
    assert.equal(total, BigInt(A.total_amount_sats))
  })

  test("the 'script:' prefix and upper-case hex name the same outputs", async () => {
    for (const script of [WHALE, loadChain().script_kinds['p2pkh/0'], loadChain().script_kinds['bare_multi/1']]) {
      const want = expected(A, script)
      assert.deepEqual((await client.queryUtxos(`script:${script}`)).utxos.map(plain), want)
      assert.deepEqual((await client.queryUtxos(script.toUpperCase())).utxos.map(plain), want)
    }
  })

  test('a script with no UTXO gives an empty last page', async () => {
    for (const script of ['6a', 'deadbeef', '0014' + '00'.repeat(20)]) {
      const page = await client.queryUtxos(script)
      assert.deepEqual(page.utxos, [])
      assert.equal(page.cursor, null)
      assert.deepEqual(page.tip, TIP_A)
    }
  })

  test('by address (bech32 and bech32m of every segwit script kind), bare and with addr:', async () => {
    const kinds = Object.entries(loadChain().script_kinds)
    let checked = 0
    for (const [kind, script] of kinds) {
      const address = segwitAddress(script, 'bcrt')
      if (!address) continue
      const want = expected(A, script)
      assert.deepEqual((await client.queryUtxos(address)).utxos.map(plain), want, `${kind} ${address}`)
      assert.deepEqual((await client.queryUtxos(`addr:${address}`)).utxos.map(plain), want, `${kind} ${address}`)
      checked++
    }
    assert.ok(checked >= 19, `${checked} addresses`)
  })

  test('every sort order equals the oracle sorted the same way (ties by outpoint)', async () => {
    const scripts = [WHALE, ...oracleScripts(A).filter((s) => A.by_script[s].length > 20).slice(0, 6)]
    for (const script of scripts) {
      for (const sort of Object.keys(SORTS)) {
        const page = await client.queryUtxos(script, { sort })
        assert.deepEqual(page.utxos.map(plain), expected(A, script, sort), `${script} ${sort}`)
      }
    }
    // 'value' is largest first.
    const p2tr = loadChain().script_kinds['p2tr/0']
    const values = (await client.queryUtxos(p2tr, { sort: 'value' })).utxos.map((u) => u.value)
    assert.ok(values.length > 10)
    for (let i = 1; i < values.length; i++) assert.ok(values[i - 1] >= values[i])
    assert.ok(values[0] > values.at(-1))
  })

  test('minValue, maxHeight and minConfirmations filter as the oracle filtered the same way', async () => {
    const tip = A.tip_height
    const cases = [
      [{ minValue: 1_000_000n }, (u) => u.value >= 1_000_000n],
      [{ minValue: 5_000_000_000 }, (u) => u.value >= 5_000_000_000n],
      [{ maxHeight: 150 }, (u) => u.height <= 150],
      [{ maxHeight: 110 }, (u) => u.height <= 110],
      [{ minConfirmations: 30 }, (u) => tip - u.height + 1 >= 30],
      [{ minConfirmations: 1 }, () => true],
      [{ minConfirmations: 171 }, () => false],
      [
        { minValue: 100_000n, maxHeight: 160, minConfirmations: 20, sort: 'value' },
        (u) => u.value >= 100_000n && u.height <= 160 && tip - u.height + 1 >= 20,
      ],
    ]
    let nonEmpty = 0
    for (const script of oracleScripts(A)) {
      for (const [options, keep] of cases) {
        const page = await client.queryUtxos(script, options)
        const want = expected(A, script, options.sort ?? 'outpoint', keep)
        assert.deepEqual(page.utxos.map(plain), want, `${script} ${JSON.stringify(options, (_, v) => (typeof v === 'bigint' ? `${v}n` : v))}`)
        if (want.length > 0 && want.length < A.by_script[script].length) nonEmpty++
      }
    }
    assert.ok(nonEmpty > 20, 'the filters actually filtered something')
  })

  test('the whale in pages of 300: exactly the oracle, in order, no duplicates, cursor null at the end', async () => {
    for (const sort of ['outpoint', 'value', 'heightDesc']) {
      const want = expected(A, WHALE, sort)
      assert.equal(want.length, 1984)
      const got = []
      const sizes = []
      let cursor
      let pages = 0
      do {
        const page = await client.queryUtxos(WHALE, { limit: 300, sort, ...(cursor ? { cursor } : {}) })
        assert.deepEqual(page.tip, TIP_A)
        sizes.push(page.utxos.length)
        got.push(...page.utxos.map(plain))
        cursor = page.cursor
        if (cursor !== null) assert.equal(typeof cursor, 'string')
        assert.ok(++pages <= 10, 'too many pages')
      } while (cursor !== null)
      assert.deepEqual(sizes, [300, 300, 300, 300, 300, 300, 184], sort)
      assert.equal(new Set(got.map((u) => `${u.txid}:${u.vout}`)).size, got.length, 'no duplicates')
      assert.deepEqual(got, want, sort)
    }
  })

  test('the limit may change from page to page', async () => {
    const want = expected(A, WHALE)
    const first = await client.queryUtxos(WHALE, { limit: 1000 })
    assert.equal(first.utxos.length, 1000)
    const second = await client.queryUtxos(WHALE, { limit: 10, cursor: first.cursor })
    assert.deepEqual(second.utxos.map(plain), want.slice(1000, 1010))
    const rest = await client.queryUtxos(WHALE, { cursor: second.cursor })
    assert.deepEqual(rest.utxos.map(plain), want.slice(1010))
    assert.equal(rest.cursor, null)
  })

  test("a page that ends exactly at the last UTXO: the next page is empty or there is none", async () => {
    const page = await client.queryUtxos(WHALE, { limit: 1984 })
    assert.equal(page.utxos.length, 1984)
    if (page.cursor !== null) {
      const next = await client.queryUtxos(WHALE, { limit: 1984, cursor: page.cursor })
      assert.deepEqual(next.utxos, [])
      assert.equal(next.cursor, null)
    }
  })

  test("a cursor from another sort order is refused with ERR_BAD_CURSOR", async () => {
    const page = await client.queryUtxos(WHALE, { limit: 5 })
    assert.equal(typeof page.cursor, 'string')
    const err = await expectCode(() => client.queryUtxos(WHALE, { limit: 5, sort: 'value', cursor: page.cursor }), 'ERR_BAD_CURSOR')
    assert.equal(err.status, 11)
    // The connection is still usable.
    assert.equal((await client.queryUtxos(WHALE, { limit: 5 })).utxos.length, 5)
  })

  test("a limit above the server's maximum is ERR_LIMIT_EXCEEDED with the limit in detail", async () => {
    const err = await expectCode(() => client.queryUtxos(WHALE, { limit: 10_001 }), 'ERR_LIMIT_EXCEEDED')
    assert.equal(err.status, 9)
    assert.equal(err.detail, 10_000)
  })

  test('concurrent queries are matched to their answers', async () => {
    const scripts = oracleScripts(A)
    const pages = await Promise.all(scripts.map((s) => client.queryUtxos(s)))
    scripts.forEach((s, i) => assert.deepEqual(pages[i].utxos.map(plain), expected(A, s), s))
  })

  test('after the reorg every script equals oracle-B', async () => {
    await host.ok('run')
    await host.ok('sync')
    const scripts = new Set([...Object.keys(A.by_script), ...Object.keys(B.by_script)])
    let count = 0
    for (const script of scripts) {
      const page = await client.queryUtxos(script)
      assert.deepEqual(page.tip, TIP_B)
      assert.deepEqual(page.utxos.map(plain), expected(B, script), script)
      count += page.utxos.length
    }
    assert.equal(count, B.txouts)
    assert.deepEqual(client.seenErrors, [])
  })
})
