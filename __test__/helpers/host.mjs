// Test helpers: an `opnet-host` in replay mode (the recorded regtest chain of
// testdata/regtest-small, stepped on command through stdin/stdout), the fixture
// loaders (chain.json, oracle-A.json, oracle-B.json) and small parsers for the
// raw blocks and transactions the fixture holds (parsing only: no hashing here).

import { spawn } from 'node:child_process'
import { once } from 'node:events'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import readline from 'node:readline'
import { fileURLToPath } from 'node:url'
import { createRequire } from 'node:module'

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
export const FIXTURES = path.join(ROOT, 'testdata', 'regtest-small')
export const CHAIN_PATH = path.join(FIXTURES, 'chain.json')
const BIN_DIR = process.env.OPNET_BIN_DIR ?? path.join(ROOT, 'target', 'release')
export const HOST_BIN = path.join(BIN_DIR, 'opnet-host')

/** The package under test (CommonJS), loaded the way users of `require` get it. */
export function loadPackage() {
  return createRequire(import.meta.url)(path.join(ROOT, 'index.js'))
}

/** The "whale": one P2WPKH script with 1,984 UTXOs at both tips. */
export const WHALE = '00142a941deed62839991916d8a04ec99b548ee3f398'

// ---------------------------------------------------------------------------
// Fixtures

let chainCache
/** chain.json: {network, blocks, events, mempool, script_kinds}. */
export function loadChain() {
  chainCache ??= JSON.parse(fs.readFileSync(CHAIN_PATH, 'utf8'))
  return chainCache
}

const oracleCache = new Map()
/** oracle-A.json or oracle-B.json (`which` is 'A' or 'B'). */
export function loadOracle(which) {
  if (!oracleCache.has(which)) {
    oracleCache.set(which, JSON.parse(fs.readFileSync(path.join(FIXTURES, `oracle-${which}.json`), 'utf8')))
  }
  return oracleCache.get(which)
}

/** The oracle's UTXOs of `script` in the shape the client returns (confirmed ones). */
export function oracleUtxos(oracle, script) {
  return (oracle.by_script[script] ?? []).map((u) => ({
    txid: u.txid,
    vout: u.vout,
    value: BigInt(u.sats),
    height: u.height,
    coinbase: u.coinbase,
    script,
    pending: false,
    spentBy: null,
  }))
}

/** Every script of the oracle with at least one UTXO. */
export function oracleScripts(oracle) {
  return Object.keys(oracle.by_script).filter((s) => oracle.by_script[s].length > 0)
}

/** The recorded steps as {kind: 'connect'|'disconnect', height, hash}. */
export function recordedSteps() {
  const chain = loadChain()
  const heights = new Map(chain.blocks.map((b) => [b.hash, b.height]))
  return chain.events.map(([kind, hash]) => ({ kind, height: heights.get(hash), hash }))
}

/** The block of chain.json with this hash (any branch). */
export function blockByHash(hash) {
  return loadChain().blocks.find((b) => b.hash === hash)
}

/** The block at `height` on branch A (the tip at step 170) or B (step 178). */
export function blockOnBranch(height, branch) {
  const steps = recordedSteps().slice(0, branch === 'A' ? 170 : 178)
  const active = new Map()
  for (const s of steps) {
    if (s.kind === 'connect') active.set(s.height, s.hash)
    else active.delete(s.height)
  }
  const hash = active.get(height)
  return hash === undefined ? undefined : blockByHash(hash)
}

/** A UTXO as a comparable string key. */
export function utxoKey(u) {
  return `${u.txid}:${u.vout}`
}

/** Sorts UTXOs by outpoint key, for order-independent comparisons. */
export function byKey(list) {
  return [...list].sort((a, b) => (utxoKey(a) < utxoKey(b) ? -1 : utxoKey(a) > utxoKey(b) ? 1 : 0))
}

/** sats as "B.XXXXXXXX" BTC, from BigInt arithmetic. */
export function btc(sats) {
  const s = BigInt(sats)
  const neg = s < 0n
  const a = neg ? -s : s
  return `${neg ? '-' : ''}${a / 100_000_000n}.${(a % 100_000_000n).toString().padStart(8, '0')}`
}

// ---------------------------------------------------------------------------
// Parsing raw blocks and transactions (consensus serialization)

/** Reads hex as a byte cursor. */
class Reader {
  constructor(hex) {
    this.buf = Buffer.from(hex, 'hex')
    this.pos = 0
  }
  bytes(n) {
    if (this.pos + n > this.buf.length) throw new Error('truncated')
    const b = this.buf.subarray(this.pos, this.pos + n)
    this.pos += n
    return b
  }
  u8() {
    return this.bytes(1)[0]
  }
  u32() {
    return this.bytes(4).readUInt32LE(0)
  }
  u64() {
    return this.bytes(8).readBigUInt64LE(0)
  }
  compactSize() {
    const first = this.u8()
    if (first < 0xfd) return first
    if (first === 0xfd) return this.bytes(2).readUInt16LE(0)
    if (first === 0xfe) return this.u32()
    return Number(this.u64())
  }
}

/** A hash32 (internal order) as RPC-order hex. */
function displayHash(bytes) {
  return Buffer.from(bytes).reverse().toString('hex')
}

/** One transaction at the reader's position: inputs' prevouts, outputs, and its
 * serialization (hex) with witness. */
function readTx(r) {
  const start = r.pos
  r.u32() // version
  let segwit = false
  if (r.buf[r.pos] === 0 && r.buf[r.pos + 1] !== 0) {
    segwit = true
    r.bytes(2)
  }
  const nIn = r.compactSize()
  const inputs = []
  for (let i = 0; i < nIn; i++) {
    const txid = displayHash(r.bytes(32))
    const vout = r.u32()
    r.bytes(r.compactSize()) // scriptSig
    r.u32() // sequence
    inputs.push({ txid, vout })
  }
  const nOut = r.compactSize()
  const outputs = []
  for (let i = 0; i < nOut; i++) {
    const value = r.u64()
    const script = r.bytes(r.compactSize()).toString('hex')
    outputs.push({ value, script })
  }
  let witnessBytes = 0
  if (segwit) {
    const w = r.pos
    for (let i = 0; i < nIn; i++) {
      const items = r.compactSize()
      for (let j = 0; j < items; j++) r.bytes(r.compactSize())
    }
    witnessBytes = r.pos - w + 2 // the witness and the marker and flag bytes
  }
  r.u32() // locktime
  const total = r.pos - start
  const base = total - witnessBytes
  // BIP 141: weight = base size × 3 + total size; vsize = weight / 4 rounded up.
  const vsize = Math.ceil((base * 3 + total) / 4)
  return { inputs, outputs, vsize, hex: r.buf.subarray(start, r.pos).toString('hex') }
}

/** A raw transaction (hex): {inputs: [{txid, vout}], outputs: [{value, script}], vsize, hex}. */
export function parseTx(hex) {
  const r = new Reader(hex)
  const tx = readTx(r)
  if (r.pos !== r.buf.length) throw new Error('bytes left after the transaction')
  return tx
}

/** A raw block (hex): its 80-byte header fields and transactions. */
export function parseBlock(hex) {
  const r = new Reader(hex)
  const header = r.bytes(80)
  const h = new Reader(header.toString('hex'))
  const version = h.bytes(4).readInt32LE(0)
  const prevHash = displayHash(h.bytes(32))
  const merkleRoot = displayHash(h.bytes(32))
  const time = h.u32()
  const bits = h.u32()
  const nonce = h.u32()
  const txCount = r.compactSize()
  const txs = []
  for (let i = 0; i < txCount; i++) txs.push(readTx(r))
  return { headerHex: header.toString('hex'), version, prevHash, merkleRoot, time, bits, nonce, txCount, txs }
}

// ---------------------------------------------------------------------------
// Addresses (bech32 / bech32m per BIP 173 and BIP 350; a checksum, no hashing)

const BECH32_CHARSET = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l'

function polymod(values) {
  const gen = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3]
  let chk = 1
  for (const v of values) {
    const top = chk >>> 25
    chk = ((chk & 0x1ffffff) << 5) ^ v
    for (let i = 0; i < 5; i++) if ((top >>> i) & 1) chk ^= gen[i]
  }
  return chk >>> 0
}

function hrpExpand(hrp) {
  const out = []
  for (const c of hrp) out.push(c.charCodeAt(0) >> 5)
  out.push(0)
  for (const c of hrp) out.push(c.charCodeAt(0) & 31)
  return out
}

function toFiveBits(bytes) {
  const out = []
  let acc = 0
  let bits = 0
  for (const b of bytes) {
    acc = (acc << 8) | b
    bits += 8
    while (bits >= 5) {
      bits -= 5
      out.push((acc >> bits) & 31)
    }
    acc &= (1 << bits) - 1
  }
  if (bits > 0) out.push((acc << (5 - bits)) & 31)
  return out
}

/** The segwit address of a v0/v1 witness scriptPubKey (hex), or null for other scripts. */
export function segwitAddress(scriptHex, hrp = 'bcrt') {
  const s = Buffer.from(scriptHex, 'hex')
  let version
  if (s[0] === 0x00) version = 0
  else if (s[0] >= 0x51 && s[0] <= 0x60) version = s[0] - 0x50
  else return null
  const program = s.subarray(2)
  if (s[1] !== program.length || program.length < 2 || program.length > 40) return null
  const data = [version, ...toFiveBits(program)]
  const constant = version === 0 ? 1 : 0x2bc830a3
  const mod = polymod([...hrpExpand(hrp), ...data, 0, 0, 0, 0, 0, 0]) ^ constant
  const checksum = []
  for (let i = 0; i < 6; i++) checksum.push((mod >>> (5 * (5 - i))) & 31)
  return `${hrp}1${[...data, ...checksum].map((d) => BECH32_CHARSET[d]).join('')}`
}

// ---------------------------------------------------------------------------
// The replay host

/** Resolves when `cond()` is truthy, polling; rejects after `timeoutMs`. */
export async function waitFor(cond, { timeoutMs = 20_000, intervalMs = 25, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await cond()
    if (v) return v
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, intervalMs))
  }
}

/** Every host child still running, killed if the test process exits early. */
const running = new Set()
process.on('exit', () => {
  for (const child of running) {
    try {
      child.kill('SIGKILL')
    } catch {}
  }
})

/** A running `opnet-host --replay chain.json --opnet-dir DIR`. */
export class ReplayHost {
  /**
   * Starts a host. `dir` is the temp dir holding `opnet/` (the index and socket)
   * and the logs; a fresh one is made when none is given.
   */
  static async start({ dir, extraArgs = [], waitSocket = true } = {}) {
    if (!fs.existsSync(HOST_BIN)) {
      throw new Error(
        `${HOST_BIN} is missing: build it first (cargo build --release --locked -p opnet-plugin -p opnet-host, or npm run build:server)`,
      )
    }
    const host = new ReplayHost(dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'opnet-native-test-')), extraArgs)
    if (waitSocket) await host.waitForSocket()
    return host
  }

  constructor(dir, extraArgs) {
    this.dir = dir
    this.opnetDir = path.join(dir, 'opnet')
    this.socket = path.join(this.opnetDir, 'opnet.sock')
    this.extraArgs = extraArgs
    this.generation = ReplayHost.#countLogs(dir)
    this.logPath = path.join(dir, `host-${this.generation}.log`)
    this.#spawn()
  }

  static #countLogs(dir) {
    return fs.readdirSync(dir).filter((f) => /^host-\d+\.log$/.test(f)).length
  }

  #spawn() {
    const logFd = fs.openSync(this.logPath, 'w')
    this.child = spawn(
      HOST_BIN,
      ['--replay', CHAIN_PATH, '--opnet-dir', this.opnetDir, ...this.extraArgs],
      { stdio: ['pipe', 'pipe', logFd], env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'info' } },
    )
    fs.closeSync(logFd)
    running.add(this.child)
    this.exited = false
    this.exitPromise = new Promise((resolve) => {
      this.child.once('error', () => {
        if (this.child.pid === undefined) resolve({ code: null, signal: null })
      })
      this.child.once('exit', (code, signal) => {
        running.delete(this.child)
        this.exited = true
        this.exitCode = code
        this.exitSignal = signal
        resolve({ code, signal })
      })
    })
    this.child.once('error', (e) => {
      // Spawning failed: no 'exit' follows.
      if (this.child.pid === undefined) {
        running.delete(this.child)
        this.exited = true
        this.exitCode = null
        this.exitSignal = null
        this.spawnError = e
      }
      this.#failWaiters(e)
    })
    // Writing to a host that died must not crash the test process.
    this.child.stdin.on('error', () => {})
    this.lines = []
    this.lineWaiters = []
    this.queue = Promise.resolve()
    this.rl = readline.createInterface({ input: this.child.stdout })
    this.rl.on('line', (line) => {
      const w = this.lineWaiters.shift()
      if (w) w.resolve(line)
      else this.lines.push(line)
    })
    // Its stdout ended (it exited): what was written was read; nothing more comes.
    this.stdoutClosed = false
    this.rl.on('close', () => {
      this.stdoutClosed = true
      this.#failWaiters(new Error(`opnet-host closed its stdout (exited?); log:\n${this.log()}`))
    })
  }

  #failWaiters(err) {
    for (const w of this.lineWaiters.splice(0)) w.reject(err)
  }

  #nextLine() {
    if (this.lines.length) return Promise.resolve(this.lines.shift())
    if (this.stdoutClosed) return Promise.reject(new Error(`opnet-host has exited; log:\n${this.log()}`))
    return new Promise((resolve, reject) => this.lineWaiters.push({ resolve, reject }))
  }

  /** The host's log (stderr) so far. */
  log() {
    try {
      return fs.readFileSync(this.logPath, 'utf8')
    } catch {
      return ''
    }
  }

  get pid() {
    return this.child.pid
  }

  /**
   * Sends one replay command; resolves with its answer's lines, the final
   * `ok` / `ok quit` / `error ...` line included. Commands are serialized.
   */
  command(line) {
    const run = async () => {
      if (this.exited) throw new Error(`opnet-host has exited; log:\n${this.log()}`)
      this.child.stdin.write(`${line}\n`)
      const out = []
      for (;;) {
        const l = await this.#nextLine()
        out.push(l)
        if (l === 'ok' || l === 'ok quit' || l.startsWith('error')) return out
      }
    }
    const p = this.queue.then(run, run)
    this.queue = p.catch(() => {})
    return p
  }

  /** Like command(), but throws unless the answer ends with `ok`. */
  async ok(line) {
    const out = await this.command(line)
    if (out.at(-1) !== 'ok' && out.at(-1) !== 'ok quit') {
      throw new Error(`command '${line}' failed: ${out.join('\n')}`)
    }
    return out.slice(0, -1)
  }

  /** Sends `quit` (answered `ok quit`) and waits for the exit; resolves with {code, signal}. */
  async quit() {
    const out = await this.command('quit')
    if (out.at(-1) !== 'ok quit') throw new Error(`quit: ${out.join('\n')}`)
    return this.exitPromise
  }

  /** Resolves once the socket accepts connections. */
  async waitForSocket(timeoutMs = 20_000) {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      if (this.exited) throw new Error(`opnet-host exited before serving; log:\n${this.log()}`)
      const ok = await new Promise((resolve) => {
        const s = net.createConnection(this.socket)
        s.once('connect', () => {
          s.destroy()
          resolve(true)
        })
        s.once('error', () => resolve(false))
      })
      if (ok) return
      if (Date.now() > deadline) throw new Error(`socket ${this.socket} never answered; log:\n${this.log()}`)
      await new Promise((r) => setTimeout(r, 25))
    }
  }

  /** SIGTERM, then waits for the exit; resolves with {code, signal}. */
  async stop(timeoutMs = 15_000) {
    if (this.exited) return { code: this.exitCode, signal: this.exitSignal }
    this.child.kill('SIGTERM')
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs)
    try {
      return await this.exitPromise
    } finally {
      clearTimeout(timer)
      this.rl.close()
    }
  }

  /** SIGKILL (a crash), then waits for the exit. */
  async kill() {
    if (!this.exited) this.child.kill('SIGKILL')
    const r = await this.exitPromise
    this.rl.close()
    return r
  }

  /**
   * Starts a new host on the same directory (the index persists there); this one
   * must have exited (stop() or kill()). The new host's replay starts again at
   * genesis: step it again; the index catches up once the chain passes it.
   */
  async restart({ waitSocket = true } = {}) {
    if (!this.exited) throw new Error('restart(): stop() or kill() the host first')
    // The directory now belongs to the new host: cleaning this one up keeps it.
    this.handedOver = true
    return ReplayHost.start({ dir: this.dir, extraArgs: this.extraArgs, waitSocket })
  }

  /** Stops the host if it runs (SIGKILL after a grace period) and removes its dir. */
  async cleanup() {
    try {
      await this.stop(5_000)
    } finally {
      if (!this.handedOver) fs.rmSync(this.dir, { recursive: true, force: true })
    }
  }
}

/** Parses a `synced tip H HASH step a/b` (or `tip ...`) answer line. */
export function parseTipLine(line) {
  const m = /^(?:synced )?tip (\d+) ([0-9a-f]{64}) step (\d+)\/(\d+)$/.exec(line)
  if (!m) throw new Error(`not a tip line: ${line}`)
  return { height: Number(m[1]), hash: m[2], step: Number(m[3]), steps: Number(m[4]) }
}

/** Collects `count` events named `name` from an emitter (rejects on timeout). */
export function collectEvents(emitter, name, count, timeoutMs = 20_000) {
  const got = []
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(name, on)
      reject(new Error(`timed out: ${got.length} of ${count} '${name}' events`))
    }, timeoutMs)
    function on(ev) {
      got.push(ev)
      if (got.length >= count) {
        clearTimeout(timer)
        emitter.off(name, on)
        resolve(got)
      }
    }
    emitter.on(name, on)
  })
}

export { once }
