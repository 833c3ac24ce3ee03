// examples/demo.mjs (what `npm run demo` runs) works end to end and exits by itself.

import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import path from 'node:path'
import { test } from 'node:test'

import { ROOT, WHALE, btc, loadOracle } from './helpers/host.mjs'

test('the demo runs, prints what Bitcoin Core says, and exits 0 by itself', { timeout: 60_000 }, async () => {
  const { code, stdout, stderr } = await new Promise((resolve) => {
    execFile(
      process.execPath,
      [path.join(ROOT, 'examples', 'demo.mjs')],
      { cwd: ROOT, timeout: 45_000 },
      (err, stdout, stderr) => resolve({ code: err ? (err.code ?? err.signal) : 0, stdout, stderr }),
    )
  })
  assert.equal(code, 0, `stdout:\n${stdout}\nstderr:\n${stderr}`)
  const A = loadOracle('A')
  const B = loadOracle('B')
  assert.ok(stdout.includes(`${A.txouts} UTXOs holding ${btc(A.total_amount_sats)} BTC`), stdout)
  const whale = A.by_script[WHALE].reduce((s, u) => s + BigInt(u.sats), 0n)
  assert.ok(stdout.includes(`1984 UTXOs, ${btc(whale)} BTC`), stdout)
  assert.equal((stdout.match(/ disconnected 1(68|69|70) /g) ?? []).length, 3, stdout)
  assert.equal((stdout.match(/ connected {4}1(68|69|70|71|72) /g) ?? []).length, 5, stdout)
  assert.ok(stdout.includes(`${B.txouts} UTXOs, ${btc(B.total_amount_sats)} BTC`), stdout)
  assert.match(stdout, /== done\n$/)
})
