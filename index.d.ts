// Types of the `opnet-native` package: the Node.js client of the OPNet plugin's
// socket (opnet.sock). Every method is implemented in Rust (crates/napi); this
// file is the contract the JavaScript side and its tests rely on.

import { EventEmitter } from 'node:events'
import { Readable } from 'node:stream'

/** Bitcoin Core's chain names. */
export type Network = 'main' | 'test' | 'testnet4' | 'signet' | 'regtest'

/** What a UTXO query is about: an address, a scriptPubKey (hex) or a
 * scripthash (64 hex: SHA-256 of the scriptPubKey, not reversed). Prefix with
 * `addr:`, `script:` or `sh:` to say which when it is ambiguous. */
export type Target = string

/** A block: height and hash (hex, RPC byte order). */
export interface BlockRef {
  height: number
  hash: string
}

/** Stable error codes (the `code` of every error this package throws). */
export type ErrorCode =
  | 'ERR_INVALID_ARG' // bad argument (also thrown as a TypeError)
  | 'ERR_CONNECT' // the socket could not be reached
  | 'ERR_CLOSED' // the connection closed (or close() was called)
  | 'ERR_WRONG_NETWORK' // the server serves another network than asked
  | 'ERR_PROTOCOL' // the server answered something undecodable
  | 'ERR_TIMEOUT' // connecting timed out
  | 'ERR_NOT_FOUND' // server status NOT_FOUND
  | 'ERR_LIMIT_EXCEEDED' // server status LIMIT_EXCEEDED
  | 'ERR_BAD_CURSOR' // server status BAD_CURSOR
  | 'ERR_NOT_READY' // server status NOT_READY (index not built yet)
  | 'ERR_UNAVAILABLE' // server status UNAVAILABLE (e.g. no txindex)
  | 'ERR_RATE_LIMITED'
  | 'ERR_SERVER' // any other server status; `status` has its number

/** An error from this package. Bad arguments are `TypeError`s with code
 * `ERR_INVALID_ARG`; everything else is an `Error`. */
export interface OpnetError extends Error {
  code: ErrorCode
  /** The server's status number, for server errors. */
  status?: number
  /** The server's detail word, for server errors. */
  detail?: number
}

export interface ConnectOptions {
  /** Shown in the server's logs. Default `"opnet-native"`. */
  clientName?: string
  /** Refuse a server of another network. */
  network?: Network
  /** Reconnect after a lost connection and resume events from the last sequence
   * number delivered, losing none. Default true. */
  reconnect?: boolean
  /** Limit for connecting and the handshake. Default 5000. */
  connectTimeoutMs?: number
}

/**
 * 'stale': a reorg went deeper than the undo log and the index awaits a rebuild.
 * 'failed': the plugin's index thread stopped, on an internal error or a damaged
 * index (queries then fail too); answers come from its last committed block until
 * the node (or opnet-host) is restarted, or the index rebuilt.
 */
export type SyncMode = 'starting' | 'scanning' | 'catchingUp' | 'synced' | 'stale' | 'failed'

export interface SyncStatus {
  mode: SyncMode
  /** True when the index is at the host's tip. */
  synced: boolean
  /** The index's tip; null before the first scan completes. */
  indexTip: BlockRef | null
  /** The host's tip; null when unknown. */
  hostTip: BlockRef | null
  utxoCount: bigint
  totalSats: bigint
  /** The latest event number. */
  eventSeq: bigint
  /** Progress of a running chainstate scan; null when none runs. */
  scan: { bytesDone: bigint; bytesTotal: bigint; utxos: bigint } | null
  /** Transactions in the mempool view. */
  mempoolTxs: number
}

export type Sort = 'outpoint' | 'value' | 'height' | 'heightDesc'

export interface UtxoQueryOptions {
  /** Most UTXOs per page (default: the server's maximum, 10,000; 2,000 for
   * utxoStream()). For utxos() and utxoStream() it is the page size, not a total. */
  limit?: number
  /** Only outputs worth at least this many sats. */
  minValue?: bigint | number
  /** Only outputs confirmed at or below this height (excludes mempool outputs). */
  maxHeight?: number
  /** Only outputs with at least this many confirmations. */
  minConfirmations?: number
  /** Order (default 'outpoint'); 'value' is largest first. */
  sort?: Sort
  /** Add the mempool view: pending outputs (height 0) and spends. Default false. */
  includeMempool?: boolean
  /** Resume after the page that returned this cursor. */
  cursor?: string
}

export interface Utxo {
  /** Creating transaction (hex, RPC byte order). */
  txid: string
  vout: number
  /** Sats. */
  value: bigint
  /** Confirming height; 0 for an output of a mempool transaction. */
  height: number
  coinbase: boolean
  /** scriptPubKey (hex). */
  script: string
  /** Created by a mempool transaction. */
  pending: boolean
  /** The mempool transaction spending it, or null. */
  spentBy: string | null
}

export interface UtxoPage {
  utxos: Utxo[]
  /** The index tip the page was read at. */
  tip: BlockRef
  /** Pass to the next query to continue; null on the last page. */
  cursor: string | null
}

export interface BlockTxids {
  block: BlockRef
  txids: string[]
}

export interface TransactionReply {
  txid: string
  /** The raw transaction (consensus serialization, hex). */
  hex: string
  /** The block holding it, when known. */
  block: BlockRef | null
}

export interface BlockHeader {
  block: BlockRef
  /** The 80-byte header (hex). */
  hex: string
  prevHash: string
  merkleRoot: string
  time: number
  bits: number
  nonce: number
  version: number
}

export interface SubscribeOptions {
  /** Block connected/disconnected and index-rebuilt events. Default true. */
  blocks?: boolean
  /** Mempool transactions added and removed. Default false. */
  mempool?: boolean
  /** Activity of the scripthashes given to subscribeScripthashes. Default false. */
  scripthashes?: boolean
  /** Replay every event after this sequence number first (0n: everything the
   * server still holds). A number beyond the latest event is refused
   * (ERR_SERVER, status 1). */
  fromSeq?: bigint
  /** Replay what happened after this block: if it was since disconnected, its
   * disconnect and the rest follow. A block the server no longer knows gives a
   * `gap` with reason 'historyUnavailable'. */
  fromBlock?: BlockRef
}

export interface BlockConnectedEvent {
  seq: bigint
  block: BlockRef
  prevHash: string
  time: number
  txCount: number
  outputsAdded: number
  outputsRemoved: number
}

export interface BlockDisconnectedEvent {
  seq: bigint
  block: BlockRef
  /** The new tip's hash. */
  prevHash: string
  outputsAdded: number
  outputsRemoved: number
}

export type RemovalReason = 'unknown' | 'block' | 'replaced' | 'conflict' | 'expiry' | 'sizeLimit' | 'reorg'

export type MempoolTxEvent =
  | { seq: bigint; txid: string; change: 'added'; fee: bigint; vsize: number; inputs: number; outputs: number }
  | { seq: bigint; txid: string; change: 'removed'; reason: RemovalReason }

export interface ScripthashActivityEntry {
  scripthash: string
  txid: string
  vout: number
  change: 'added' | 'removed' | 'spentInMempool' | 'unspentInMempool'
  value: bigint
  height: number
}

export interface ScripthashActivityEvent {
  seq: bigint
  cause: 'blockConnected' | 'blockDisconnected' | 'mempoolAdded' | 'mempoolRemoved'
  /** The block, for block causes. */
  block: BlockRef | null
  /** The transaction, for mempool causes. */
  txid: string | null
  /** False when more activity of the same cause follows. */
  final: boolean
  entries: ScripthashActivityEntry[]
}

export interface IndexRebuiltEvent {
  seq: bigint
  tip: BlockRef
}

export interface GapEvent {
  seq: bigint
  /** The last event delivered before the gap. */
  last: bigint
  /** The next event that will be delivered. */
  next: bigint
  reason: 'historyUnavailable' | 'mempoolHistoryLost' | 'activityLost'
}

export interface ReconnectedEvent {
  /** The server's latest event number. */
  eventSeq: bigint
  /** Events after this number follow. */
  resumeAfter: bigint
}

/** Events of a subscribed client. `disconnected` and `reconnected` come only
 * while subscribed with `reconnect` on (the default): events missed meanwhile are
 * replayed after `reconnected`. `error` ends the subscription (e.g. the
 * connection is lost with `reconnect: false`); as with every EventEmitter, an
 * `error` without a listener throws, so listen for it. A subscribed client keeps
 * the process alive until close(); an unsubscribed one does not. */
export interface OpnetClientEvents {
  blockConnected: [BlockConnectedEvent]
  blockDisconnected: [BlockDisconnectedEvent]
  indexRebuilt: [IndexRebuiltEvent]
  mempoolTx: [MempoolTxEvent]
  scripthashActivity: [ScripthashActivityEvent]
  gap: [GapEvent]
  disconnected: [OpnetError]
  reconnected: [ReconnectedEvent]
  error: [OpnetError]
}

/** A connection to opnet.sock. */
export declare class OpnetClient extends EventEmitter {
  private constructor()
  /** Connects and does the handshake. */
  static connect(socketPath: string, options?: ConnectOptions): Promise<OpnetClient>
  /** The server's network. */
  readonly network: Network
  /** The server's name and version. */
  readonly serverName: string
  getSyncStatus(): Promise<SyncStatus>
  /** One page of `target`'s UTXOs. */
  queryUtxos(target: Target, options?: UtxoQueryOptions): Promise<UtxoPage>
  /** Every UTXO of `target`, fetched a page at a time as the loop asks. */
  utxos(target: Target, options?: Omit<UtxoQueryOptions, 'cursor'>): AsyncIterableIterator<Utxo>
  /** Every UTXO of `target` as an object-mode Readable; the socket is read only
   * while the consumer drains it. */
  utxoStream(target: Target, options?: Omit<UtxoQueryOptions, 'cursor'>): Readable
  /** Txids of a block by height or hash. */
  getBlockTxids(block: number | string): Promise<BlockTxids>
  /** A confirmed (or mempool) transaction; `blockHash` helps a server without a
   * txindex. `block` is null when it was not given and the server does not say. */
  getTransaction(txid: string, blockHash?: string): Promise<TransactionReply>
  getBlockHeader(block: number | string): Promise<BlockHeader>
  /** Starts (or replaces) the event subscription; events arrive on this emitter. */
  subscribe(options?: SubscribeOptions): Promise<void>
  /** Watches scripthashes; returns how many are now watched. */
  subscribeScripthashes(targets: Target[]): Promise<number>
  /** Stops watching them; returns how many are still watched. */
  unsubscribeScripthashes(targets: Target[]): Promise<number>
  /** Ends the connection and every pending call; the process may then exit. */
  close(): Promise<void>

  on<K extends keyof OpnetClientEvents>(event: K, listener: (...args: OpnetClientEvents[K]) => void): this
  once<K extends keyof OpnetClientEvents>(event: K, listener: (...args: OpnetClientEvents[K]) => void): this
  off<K extends keyof OpnetClientEvents>(event: K, listener: (...args: OpnetClientEvents[K]) => void): this
  emit<K extends keyof OpnetClientEvents>(event: K, ...args: OpnetClientEvents[K]): boolean
}

/** The scripthash (64 hex) of an address or a scriptPubKey (hex), computed in
 * Rust. `network` is needed for addresses (default 'main'). */
export declare function scriptHash(addressOrScript: string, network?: Network): string
