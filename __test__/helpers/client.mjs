// The package under test and small assertion helpers shared by the test files.

import assert from 'node:assert/strict'
import { after, before } from 'node:test'
import pkg from '../../index.js'
import { ReplayHost } from './host.mjs'

export const { OpnetClient, scriptHash } = pkg

/**
 * Connects to `host`'s socket. The client records its 'error' and
 * 'disconnected' events (an EventEmitter throws on an unheard 'error').
 */
export async function connect(host, options) {
  const client = await OpnetClient.connect(host.socket, options)
  client.seenErrors = []
  client.seenDisconnects = []
  client.on('error', (e) => client.seenErrors.push(e))
  client.on('disconnected', (e) => client.seenDisconnects.push(e))
  return client
}

/** Closes clients, ignoring those already closed. */
export async function closeAll(...clients) {
  for (const c of clients) {
    if (c) await c.close().catch(() => {})
  }
}

/**
 * Asserts that calling `fn` throws or rejects with an error whose `code` is
 * `code` (and, with `typeError`, that it is a TypeError). Returns the error.
 */
export async function expectCode(fn, code, { typeError = false, what = '' } = {}) {
  let err
  try {
    await fn()
  } catch (e) {
    err = e
  }
  assert.ok(err, `${what || fn.toString()}: expected an error with code ${code}, got none`)
  assert.equal(err.code, code, `${what || fn.toString()}: code (message: ${err.message})`)
  if (typeError) assert.ok(err instanceof TypeError, `${what || fn.toString()}: expected a TypeError, got ${err.constructor?.name}`)
  assert.equal(typeof err.message, 'string')
  return err
}

/** The fields a test compares of a Utxo (all of them, in a fixed key order). */
export function plain(u) {
  return {
    txid: u.txid,
    vout: u.vout,
    value: u.value,
    height: u.height,
    coinbase: u.coinbase,
    script: u.script,
    pending: u.pending,
    spentBy: u.spentBy,
  }
}

/** The hash32 order the server sorts outpoints by: txid bytes in internal order. */
export function internalTxid(txid) {
  return Buffer.from(txid, 'hex').reverse().toString('hex')
}

/** Compares outpoints as the server's sort 0 does (txid internal bytes, then vout). */
export function cmpOutpoint(a, b) {
  const ta = internalTxid(a.txid)
  const tb = internalTxid(b.txid)
  if (ta !== tb) return ta < tb ? -1 : 1
  return a.vout - b.vout
}

/**
 * Records every event of `names` the client emits, in arrival order, as
 * {name, ev}. `rec.until(pred, timeoutMs)` resolves once pred(rec.list) holds.
 */
export function record(client, names) {
  const list = []
  const waiters = new Set()
  const handlers = names.map((name) => {
    const h = (ev) => {
      list.push({ name, ev })
      for (const w of waiters) w()
    }
    client.on(name, h)
    return [name, h]
  })
  return {
    list,
    of(name) {
      return list.filter((e) => e.name === name).map((e) => e.ev)
    },
    stop() {
      for (const [name, h] of handlers) client.off(name, h)
    },
    until(pred, timeoutMs = 20_000, what = 'events') {
      return new Promise((resolve, reject) => {
        const check = () => {
          let ok = false
          try {
            ok = pred(list)
          } catch (e) {
            waiters.delete(check)
            clearTimeout(timer)
            reject(e)
            return
          }
          if (ok) {
            waiters.delete(check)
            clearTimeout(timer)
            resolve(list)
          }
        }
        const timer = setTimeout(() => {
          waiters.delete(check)
          reject(new Error(`timed out waiting for ${what}; got ${list.length}: ${describeEvents(list)}`))
        }, timeoutMs)
        waiters.add(check)
        check()
      })
    },
  }
}

/** A short description of recorded events for failure messages. */
export function describeEvents(list) {
  return list
    .slice(-30)
    .map(({ name, ev }) => `${name}(${ev?.seq ?? ''}${ev?.block ? ` ${ev.block.height}` : ''})`)
    .join(', ')
}

/**
 * Registers the hooks most suites share: before them, a replay host stepped to
 * branch A's tip (170) and synced, and a client connected to it, handed to
 * `set(host, client)`; after them, both closed.
 */
export function atTipA(set) {
  let host
  let client
  before(async () => {
    host = await ReplayHost.start()
    await host.ok('step 170')
    await host.ok('sync')
    client = await connect(host)
    set(host, client)
  })
  after(async () => {
    await closeAll(client)
    await host?.cleanup()
  })
}
