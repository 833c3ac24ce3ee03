// A typed use of every method and event of index.d.ts, checked (not run) with
//   tsc -p __test__/tsconfig.json
// Lines marked @ts-expect-error must stay errors: they pin what the types refuse.

import { Readable, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'

import {
  OpnetClient,
  scriptHash,
  type BlockConnectedEvent,
  type BlockDisconnectedEvent,
  type BlockHeader,
  type BlockRef,
  type BlockTxids,
  type ConnectOptions,
  type ErrorCode,
  type GapEvent,
  type IndexRebuiltEvent,
  type MempoolTxEvent,
  type Network,
  type OpnetError,
  type ReconnectedEvent,
  type RemovalReason,
  type ScripthashActivityEntry,
  type ScripthashActivityEvent,
  type Sort,
  type SubscribeOptions,
  type SyncMode,
  type SyncStatus,
  type Target,
  type TransactionReply,
  type Utxo,
  type UtxoPage,
  type UtxoQueryOptions,
} from '../index.js'

const WHALE: Target = '00142a941deed62839991916d8a04ec99b548ee3f398'

function isOpnetError(e: unknown): e is OpnetError {
  return e instanceof Error && typeof (e as Partial<OpnetError>).code === 'string'
}

function describeError(e: OpnetError): string {
  const code: ErrorCode = e.code
  switch (code) {
    case 'ERR_INVALID_ARG':
    case 'ERR_CONNECT':
    case 'ERR_CLOSED':
    case 'ERR_WRONG_NETWORK':
    case 'ERR_PROTOCOL':
    case 'ERR_TIMEOUT':
    case 'ERR_NOT_FOUND':
    case 'ERR_LIMIT_EXCEEDED':
    case 'ERR_BAD_CURSOR':
    case 'ERR_NOT_READY':
    case 'ERR_UNAVAILABLE':
    case 'ERR_RATE_LIMITED':
    case 'ERR_SERVER': {
      const status: number | undefined = e.status
      const detail: number | undefined = e.detail
      return `${code} ${status ?? '-'} ${detail ?? '-'} ${e.message}`
    }
  }
}

function blockText(b: BlockRef | null): string {
  return b === null ? 'none' : `${b.height} ${b.hash}`
}

function sats(v: bigint): string {
  return `${v / 100_000_000n}.${(v % 100_000_000n).toString().padStart(8, '0')}`
}

function utxoText(u: Utxo): string {
  const txid: string = u.txid
  const vout: number = u.vout
  const value: bigint = u.value
  const height: number = u.height
  const coinbase: boolean = u.coinbase
  const script: string = u.script
  const pending: boolean = u.pending
  const spentBy: string | null = u.spentBy
  return `${txid}:${vout} ${sats(value)} @${height}${coinbase ? ' coinbase' : ''} ${script}${pending ? ' pending' : ''}${
    spentBy ? ` spent by ${spentBy}` : ''
  }`
}

function statusText(s: SyncStatus): string {
  const mode: SyncMode = s.mode
  const synced: boolean = s.synced
  const count: bigint = s.utxoCount
  const total: bigint = s.totalSats
  const seq: bigint = s.eventSeq
  const mempool: number = s.mempoolTxs
  const scan = s.scan
  const progress = scan === null ? '' : ` scan ${scan.bytesDone}/${scan.bytesTotal} (${scan.utxos} UTXOs)`
  return `${mode} ${synced} ${blockText(s.indexTip)} host ${blockText(s.hostTip)} ${count} ${sats(total)} #${seq} mempool ${mempool}${progress}`
}

function onBlockConnected(ev: BlockConnectedEvent): void {
  const seq: bigint = ev.seq
  const { height, hash }: BlockRef = ev.block
  const prev: string = ev.prevHash
  const time: number = ev.time
  const n: number = ev.txCount + ev.outputsAdded + ev.outputsRemoved
  console.log(seq, height, hash, prev, time, n)
}

function onBlockDisconnected(ev: BlockDisconnectedEvent): void {
  const seq: bigint = ev.seq
  console.log(seq, blockText(ev.block), ev.prevHash, ev.outputsAdded, ev.outputsRemoved)
}

function onMempoolTx(ev: MempoolTxEvent): void {
  if (ev.change === 'added') {
    const fee: bigint = ev.fee
    const vsize: number = ev.vsize
    console.log(ev.seq, ev.txid, fee, vsize, ev.inputs, ev.outputs)
    // @ts-expect-error an added transaction has no reason
    console.log(ev.reason)
  } else {
    const reason: RemovalReason = ev.reason
    console.log(ev.seq, ev.txid, reason)
    // @ts-expect-error a removed transaction has no fee
    console.log(ev.fee)
  }
}

function onActivity(ev: ScripthashActivityEvent): void {
  const cause: 'blockConnected' | 'blockDisconnected' | 'mempoolAdded' | 'mempoolRemoved' = ev.cause
  const txid: string | null = ev.txid
  const final: boolean = ev.final
  for (const e of ev.entries) {
    const entry: ScripthashActivityEntry = e
    const change: 'added' | 'removed' | 'spentInMempool' | 'unspentInMempool' = entry.change
    const value: bigint = entry.value
    console.log(ev.seq, cause, blockText(ev.block), txid, final, entry.scripthash, entry.txid, entry.vout, change, value, entry.height)
  }
}

function onGap(ev: GapEvent): void {
  const reason: 'historyUnavailable' | 'mempoolHistoryLost' | 'activityLost' = ev.reason
  const span: bigint = ev.next - ev.last
  console.log(ev.seq, reason, span)
}

function onRebuilt(ev: IndexRebuiltEvent): void {
  console.log(ev.seq, blockText(ev.tip))
}

function onReconnected(ev: ReconnectedEvent): void {
  const latest: bigint = ev.eventSeq
  const after: bigint = ev.resumeAfter
  console.log(latest, after)
}

export async function main(socket: string): Promise<void> {
  const network: Network = 'regtest'
  const options: ConnectOptions = { clientName: 'typed', network, reconnect: true, connectTimeoutMs: 2_000 }
  const client: OpnetClient = await OpnetClient.connect(socket, options)
  await OpnetClient.connect(socket).then((c) => c.close())
  const serverNetwork: Network = client.network
  const name: string = client.serverName
  console.log(serverNetwork, name)
  // @ts-expect-error network is read-only
  client.network = 'main'
  // @ts-expect-error the constructor is private: use connect()
  new OpnetClient()

  console.log(statusText(await client.getSyncStatus()))

  // Queries: every option, a page and its cursor.
  const sorts: Sort[] = ['outpoint', 'value', 'height', 'heightDesc']
  const query: UtxoQueryOptions = {
    limit: 300,
    minValue: 1_000n,
    maxHeight: 170,
    minConfirmations: 6,
    sort: sorts[1],
    includeMempool: true,
  }
  let page: UtxoPage = await client.queryUtxos(WHALE, query)
  while (page.cursor !== null) {
    page.utxos.forEach((u) => console.log(utxoText(u)))
    console.log(blockText(page.tip))
    page = await client.queryUtxos(WHALE, { ...query, cursor: page.cursor })
  }
  await client.queryUtxos(`sh:${scriptHash(WHALE)}`, { minValue: 5 })
  await client.queryUtxos(`addr:${'bcrt1q922pmmkk9quejxgkmzsyajvm2j8w8uucezpzjt'}`)
  // @ts-expect-error an unknown sort
  await client.queryUtxos(WHALE, { sort: 'random' })
  // @ts-expect-error a target is a string
  await client.queryUtxos(123)

  // Every UTXO: an async iterator and an object-mode Readable.
  for await (const u of client.utxos(WHALE, { limit: 500, sort: 'height' })) {
    console.log(utxoText(u))
    break
  }
  const iterator: AsyncIterableIterator<Utxo> = client.utxos(WHALE)
  const first: IteratorResult<Utxo> = await iterator.next()
  if (!first.done) console.log(utxoText(first.value))
  await iterator.return?.()
  // @ts-expect-error utxos() takes no cursor: it follows them itself
  client.utxos(WHALE, { cursor: 'x' })

  const stream: Readable = client.utxoStream(WHALE, { includeMempool: false })
  let total = 0n
  await pipeline(
    stream,
    new Writable({
      objectMode: true,
      write(u: Utxo, _enc, cb) {
        total += u.value
        cb()
      },
    }),
  )
  console.log(sats(total))
  client.utxoStream(WHALE).destroy()

  // Blocks and transactions.
  const byHeight: BlockTxids = await client.getBlockTxids(170)
  const byHash: BlockTxids = await client.getBlockTxids(byHeight.block.hash)
  const coinbase: string | undefined = byHash.txids[0]
  const header: BlockHeader = await client.getBlockHeader(170)
  const fields: [string, string, string, number, number, number, number] = [
    header.hex,
    header.prevHash,
    header.merkleRoot,
    header.time,
    header.bits,
    header.nonce,
    header.version,
  ]
  console.log(fields, blockText(header.block), (await client.getBlockHeader(header.prevHash)).block.height)
  if (coinbase !== undefined) {
    const tx: TransactionReply = await client.getTransaction(coinbase, byHash.block.hash)
    const again: TransactionReply = await client.getTransaction(tx.txid)
    console.log(tx.hex.length, blockText(again.block))
  }
  // @ts-expect-error a block is a height or a hash
  await client.getBlockTxids({ height: 1 })

  // Events.
  client.on('blockConnected', onBlockConnected)
  client.on('blockDisconnected', onBlockDisconnected)
  client.on('indexRebuilt', onRebuilt)
  client.on('mempoolTx', onMempoolTx)
  client.on('scripthashActivity', onActivity)
  client.on('gap', onGap)
  client.on('disconnected', (e) => console.log('disconnected', describeError(e)))
  client.once('reconnected', onReconnected)
  client.on('error', (e) => console.log(describeError(e)))
  client.off('gap', onGap)
  const handled: boolean = client.emit('gap', { seq: 1n, last: 0n, next: 2n, reason: 'activityLost' })
  console.log(handled)
  // @ts-expect-error no such event
  client.on('blockConnectd', () => {})
  // @ts-expect-error a listener of the wrong event shape
  client.on('blockConnected', (ev: MempoolTxEvent) => console.log(ev))

  const watched: number = await client.subscribeScripthashes([WHALE, `sh:${scriptHash(WHALE)}`])
  const left: number = await client.unsubscribeScripthashes([WHALE])
  console.log(watched, left)
  const subscriptions: SubscribeOptions[] = [
    {},
    { blocks: true, mempool: true, scripthashes: true },
    { fromSeq: 0n },
    { fromBlock: header.block },
  ]
  for (const s of subscriptions) await client.subscribe(s)
  await client.subscribe()
  // @ts-expect-error fromSeq is a bigint
  await client.subscribe({ fromSeq: 5 })

  // scriptHash of a script and of an address.
  const sh: string = scriptHash(WHALE)
  const fromAddress: string = scriptHash('bcrt1q922pmmkk9quejxgkmzsyajvm2j8w8uucezpzjt', 'regtest')
  console.log(sh === fromAddress)
  // @ts-expect-error not a network
  scriptHash(WHALE, 'moon')

  try {
    await client.queryUtxos('zz')
  } catch (e) {
    if (isOpnetError(e)) console.log(describeError(e))
  }
  const done: Promise<void> = client.close()
  await done
}
