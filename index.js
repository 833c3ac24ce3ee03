// opnet-native: the Node.js client of the OPNet plugin's socket. The work is
// done in Rust (crates/napi, loaded by native.js); this file only gives it the
// shape index.d.ts promises: an EventEmitter, an async iterator, a Readable,
// errors with a stable `code`. Nothing is parsed, filtered or hashed here.
'use strict'

const { EventEmitter } = require('node:events')
const { Readable } = require('node:stream')
const native = require('./native.js')

/** UTXOs per page of utxoStream() when no limit is given. */
const STREAM_PAGE = 2000

const CODED = /^\[(ERR_[A-Z_]+)(?: status=(\d+) detail=(\d+))?\] /

/** Moves the stable code from the native message into `err.code`. */
function coded(err) {
  if (!(err instanceof Error)) return err
  const m = CODED.exec(err.message)
  if (!m) return err
  const message = err.message.slice(m[0].length)
  const out = m[1] === 'ERR_INVALID_ARG' ? new TypeError(message) : new Error(message)
  out.code = m[1]
  if (m[2] !== undefined) {
    out.status = Number(m[2])
    out.detail = Number(m[3])
  }
  return out
}

function invalidArg(message) {
  const err = new TypeError(message)
  err.code = 'ERR_INVALID_ARG'
  return err
}

async function call(promise) {
  try {
    return await promise
  } catch (err) {
    throw coded(err)
  }
}

function sync(fn) {
  try {
    return fn()
  } catch (err) {
    throw coded(err)
  }
}

function checkTarget(target) {
  if (typeof target !== 'string' || target.length === 0) {
    throw invalidArg('target must be an address, a scriptPubKey hex or a scripthash (a non-empty string)')
  }
}

function checkOptions(options, allowCursor) {
  if (options === undefined || options === null) return undefined
  if (typeof options !== 'object') throw invalidArg('options must be an object')
  const out = {}
  for (const key of ['limit', 'maxHeight', 'minConfirmations']) {
    const v = options[key]
    if (v === undefined) continue
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) {
      throw invalidArg(`${key} must be an integer from 0 to 4294967295`)
    }
    out[key] = v
  }
  if (options.minValue !== undefined) {
    const v = options.minValue
    if (typeof v === 'bigint') out.minValue = v
    else if (Number.isSafeInteger(v)) out.minValue = BigInt(v)
    else throw invalidArg('minValue must be a bigint or a safe integer of sats')
    if (out.minValue < 0n) throw invalidArg('minValue must not be negative')
  }
  if (options.sort !== undefined) {
    if (typeof options.sort !== 'string') throw invalidArg("sort must be 'outpoint', 'value', 'height' or 'heightDesc'")
    out.sort = options.sort
  }
  if (options.includeMempool !== undefined) {
    if (typeof options.includeMempool !== 'boolean') throw invalidArg('includeMempool must be a boolean')
    out.includeMempool = options.includeMempool
  }
  if (options.cursor !== undefined && options.cursor !== null) {
    if (!allowCursor) throw invalidArg('utxos() and utxoStream() take no cursor; use queryUtxos()')
    if (typeof options.cursor !== 'string') throw invalidArg('cursor must be the string a page returned')
    out.cursor = options.cursor
  }
  return out
}

function blockArgs(block) {
  if (Number.isInteger(block) && block >= 0 && block <= 0xffffffff) return [block, undefined]
  if (typeof block === 'string' && block.length > 0) return [undefined, block]
  throw invalidArg('block must be a height (integer) or a block hash (hex string)')
}

function checkTargets(targets) {
  if (!Array.isArray(targets) || targets.some((t) => typeof t !== 'string' || t.length === 0)) {
    throw invalidArg('targets must be an array of addresses, scriptPubKeys or scripthashes')
  }
}

/** The events index.d.ts documents, from the native event objects. */
function shape(e) {
  switch (e.kind) {
    case 'blockConnected':
      return { seq: e.seq, block: e.block, prevHash: e.prevHash, time: e.time, txCount: e.txCount, outputsAdded: e.outputsAdded, outputsRemoved: e.outputsRemoved }
    case 'blockDisconnected':
      return { seq: e.seq, block: e.block, prevHash: e.prevHash, outputsAdded: e.outputsAdded, outputsRemoved: e.outputsRemoved }
    case 'mempoolTx':
      return e.change === 'added'
        ? { seq: e.seq, txid: e.txid, change: 'added', fee: e.fee, vsize: e.vsize, inputs: e.inputs, outputs: e.outputs }
        : { seq: e.seq, txid: e.txid, change: 'removed', reason: e.reason }
    case 'scripthashActivity':
      return { seq: e.seq, cause: e.cause, block: e.block, txid: e.txid, final: e.final, entries: e.entries }
    case 'indexRebuilt':
      return { seq: e.seq, tip: e.block }
    case 'gap':
      return { seq: e.seq, last: e.last, next: e.next, reason: e.reason }
    case 'reconnected':
      return { eventSeq: e.eventSeq, resumeAfter: e.resumeAfter }
    default:
      return e
  }
}

class OpnetClient extends EventEmitter {
  constructor(nativeClient, key) {
    if (key !== CONSTRUCT) throw new TypeError('use OpnetClient.connect(socketPath, options)')
    super()
    this._native = nativeClient
    this._subscription = null
    this._closed = false
  }

  static async connect(socketPath, options) {
    if (typeof socketPath !== 'string' || socketPath.length === 0) {
      throw invalidArg('socketPath must be the path of opnet.sock')
    }
    let opts
    if (options !== undefined && options !== null) {
      if (typeof options !== 'object') throw invalidArg('options must be an object')
      opts = {}
      if (options.clientName !== undefined) {
        if (typeof options.clientName !== 'string') throw invalidArg('clientName must be a string')
        opts.clientName = options.clientName
      }
      if (options.network !== undefined) {
        if (typeof options.network !== 'string') throw invalidArg('network must be a string')
        opts.network = options.network
      }
      if (options.reconnect !== undefined) {
        if (typeof options.reconnect !== 'boolean') throw invalidArg('reconnect must be a boolean')
        opts.reconnect = options.reconnect
      }
      if (options.connectTimeoutMs !== undefined) {
        const v = options.connectTimeoutMs
        if (!Number.isInteger(v) || v <= 0 || v > 0xffffffff) throw invalidArg('connectTimeoutMs must be a positive integer')
        opts.connectTimeoutMs = v
      }
    }
    const n = await call(native.NativeClient.connect(socketPath, opts))
    return new OpnetClient(n, CONSTRUCT)
  }

  get network() {
    return this._native.network
  }

  get serverName() {
    return this._native.serverName
  }

  getSyncStatus() {
    return call(this._native.syncStatus())
  }

  async queryUtxos(target, options) {
    checkTarget(target)
    const opts = checkOptions(options, true)
    return call(this._native.queryUtxos(target, opts))
  }

  utxos(target, options) {
    checkTarget(target)
    const cursor = sync(() => this._native.utxoCursor(target, checkOptions(options, false)))
    let page = []
    let at = 0
    let done = false
    const iterator = {
      [Symbol.asyncIterator]() {
        return iterator
      },
      async next() {
        while (!done && at >= page.length) {
          const p = await call(cursor.next())
          if (p === null) {
            done = true
            break
          }
          page = p.utxos
          at = 0
        }
        if (done) return { value: undefined, done: true }
        return { value: page[at++], done: false }
      },
      async return() {
        done = true
        page = []
        await cursor.close()
        return { value: undefined, done: true }
      },
    }
    return iterator
  }

  utxoStream(target, options) {
    checkTarget(target)
    const opts = checkOptions(options, false) ?? {}
    // Pages of STREAM_PAGE unless asked otherwise: a page is pushed whole, so its
    // size bounds what a slow consumer makes the stream hold.
    if (opts.limit === undefined) opts.limit = STREAM_PAGE
    const cursor = sync(() => this._native.utxoCursor(target, opts))
    let reading = false
    return new Readable({
      objectMode: true,
      // One page is already in memory when it arrives; pull the next only when
      // the consumer has taken most of it.
      highWaterMark: 1024,
      read() {
        if (reading) return
        reading = true
        cursor.next().then(
          (p) => {
            reading = false
            if (p === null) {
              this.push(null)
              return
            }
            for (const u of p.utxos) this.push(u)
            if (p.utxos.length === 0) this.read(0)
          },
          (err) => {
            reading = false
            this.destroy(coded(err))
          },
        )
      },
      destroy(err, callback) {
        cursor.close().then(
          () => callback(err),
          () => callback(err),
        )
      },
    })
  }

  getBlockTxids(block) {
    const [height, hash] = blockArgs(block)
    return call(this._native.blockTxids(height, hash))
  }

  getTransaction(txid, blockHash) {
    if (typeof txid !== 'string') throw invalidArg('txid must be a hex string')
    if (blockHash !== undefined && typeof blockHash !== 'string') throw invalidArg('blockHash must be a hex string')
    return call(this._native.transaction(txid, blockHash))
  }

  getBlockHeader(block) {
    const [height, hash] = blockArgs(block)
    return call(this._native.blockHeader(height, hash))
  }

  async subscribe(options) {
    const o = options === undefined || options === null ? {} : options
    if (typeof o !== 'object') throw invalidArg('options must be an object')
    for (const key of ['blocks', 'mempool', 'scripthashes']) {
      if (o[key] !== undefined && typeof o[key] !== 'boolean') throw invalidArg(`${key} must be a boolean`)
    }
    if (o.fromSeq !== undefined && typeof o.fromSeq !== 'bigint') throw invalidArg('fromSeq must be a bigint')
    if (o.fromBlock !== undefined && (typeof o.fromBlock !== 'object' || o.fromBlock === null || !Number.isInteger(o.fromBlock.height) || typeof o.fromBlock.hash !== 'string')) {
      throw invalidArg('fromBlock must be { height, hash }')
    }
    const stream = await call(
      this._native.subscribe(o.blocks ?? true, o.mempool ?? false, o.scripthashes ?? false, o.fromSeq, o.fromBlock),
    )
    const previous = this._subscription
    this._subscription = stream
    if (previous) await previous.close()
    this._pump(stream)
  }

  async _pump(stream) {
    for (;;) {
      let e
      try {
        e = await stream.next()
      } catch (err) {
        if (this._subscription === stream && !this._closed) this.emit('error', coded(err))
        return
      }
      if (e === null || this._subscription !== stream) return
      if (e.kind === 'disconnected') {
        const err = coded(new Error(e.message))
        this.emit('disconnected', err)
        continue
      }
      if (e.kind === 'closing') continue
      this.emit(e.kind, shape(e))
    }
  }

  async subscribeScripthashes(targets) {
    checkTargets(targets)
    return call(this._native.subscribeScripthashes(targets))
  }

  async unsubscribeScripthashes(targets) {
    checkTargets(targets)
    return call(this._native.unsubscribeScripthashes(targets))
  }

  async close() {
    if (this._closed) return
    this._closed = true
    const stream = this._subscription
    this._subscription = null
    this._native.close()
    if (stream) await stream.close()
  }
}

const CONSTRUCT = Symbol('OpnetClient')

function scriptHash(addressOrScript, network) {
  if (typeof addressOrScript !== 'string' || addressOrScript.length === 0) {
    throw invalidArg('scriptHash takes an address or a scriptPubKey hex')
  }
  if (network !== undefined && typeof network !== 'string') throw invalidArg('network must be a string')
  return sync(() => native.scriptHash(addressOrScript, network))
}

module.exports = { OpnetClient, scriptHash }
