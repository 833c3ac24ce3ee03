/*
 * opnet_plugin.h: the C ABI between a Bitcoin Core plugin loader and a plugin
 * (OIP-0004 section 6.1), as implemented by libopnet_core.so and the reference
 * loader opnet-host. docs/PLUGIN.md explains the design; this file is the contract.
 *
 * Conventions, for every function and structure below:
 *  - Hashes and txids are 32 bytes in internal byte order (the order of Bitcoin's
 *    serialization; RPC shows them reversed).
 *  - Blocks and transactions travel in Bitcoin's consensus serialization (with
 *    witness data), so neither side depends on Bitcoin Core's C++ classes.
 *  - Memory: a pointer argument is borrowed for the duration of the call; whoever
 *    wants the data afterwards copies it. A buffer returned through an
 *    `opnet_buffer` belongs to the receiver, which must call its `release` exactly
 *    once. Nothing else crosses the boundary as owned memory.
 *  - Threads: the host calls the validation callbacks from one thread at a time, in
 *    chain order. The plugin may call the context's functions from any thread,
 *    concurrently, until plugin_shutdown returns, but never register or
 *    unregister from inside a callback.
 *  - Nothing unwinds across this boundary: no C++ exception and no Rust panic
 *    may leave a function of either side.
 *  - Errors: functions return an opnet_status. Where a function takes an
 *    `opnet_buffer *error` (which may be NULL), the callee may fill it with a UTF-8
 *    message on failure; the caller releases it.
 *  - Structures start with their own size, so either side can tell which fields
 *    the other knows. A field added later goes at the end.
 */
#ifndef OPNET_PLUGIN_H
#define OPNET_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI version this header describes. A loader refuses a plugin whose
 * plugin_info.api_version differs from its own. */
#define OPNET_PLUGIN_API_VERSION 1u

/* ---- Capabilities (OIP-0004 section 6.1) ---------------------------------- */
/* A plugin lists what it needs in plugin_capabilities; a loader refuses a
 * plugin asking for a bit it does not offer or does not know. The context's
 * `capabilities` field says what this host offers. */
#define PLUGIN_CAP_VALIDATION_INTERFACE (1u << 0) /* block/transaction callbacks */
#define PLUGIN_CAP_CHAINSTATE_READ (1u << 1)      /* <datadir>/chainstate may be read */
#define PLUGIN_CAP_MEMPOOL_READ (1u << 2)         /* mempool transaction callbacks */
#define PLUGIN_CAP_BLOCK_READ (1u << 3)           /* the context's chain access */
#define PLUGIN_CAP_NET_EVENTS (1u << 4)           /* P2P events (no host offers it yet) */
#define PLUGIN_CAP_RPC_REGISTER (1u << 5)         /* custom RPC methods (none yet) */
#define PLUGIN_CAP_KNOWN_MASK 0x3fu               /* every bit defined above */

/* ---- Status codes --------------------------------------------------------- */
typedef int32_t opnet_status;
#define OPNET_OK 0
#define OPNET_ERR_NOT_FOUND 1   /* no such block, height or transaction */
#define OPNET_ERR_UNSUPPORTED 2 /* the host cannot answer this (e.g. no txindex) */
#define OPNET_ERR_UNAVAILABLE 3 /* temporarily failed (I/O, node unreachable) */
#define OPNET_ERR_CORRUPT 4     /* the stored data is malformed */
#define OPNET_ERR_INVALID 5     /* a bad argument (NULL pointer, bad size) */
#define OPNET_ERR_TIMEOUT 6     /* a wait ran out of time */
#define OPNET_ERR_NOT_SYNCED 7  /* the plugin is not at the host's tip */
#define OPNET_ERR_INTERNAL 8    /* a bug: caught panic, broken invariant */

/* ---- Log levels (the context's `log`) -------------------------------------- */
#define OPNET_LOG_ERROR 1
#define OPNET_LOG_WARN 2
#define OPNET_LOG_INFO 3
#define OPNET_LOG_DEBUG 4
#define OPNET_LOG_TRACE 5

/* ---- Serializations of a block's spent outputs ---------------------------- */
/* Bitcoin Core's CBlockUndo: the body of a rev*.dat record (without its magic,
 * length and checksum). Carries heights and coinbase flags; the coinbase has no
 * entry. What bitcoind holds in memory when it connects a block. */
#define OPNET_SPENT_UNDO 1u
/* Bitcoin Core's `GET /rest/spenttxouts/<hash>.bin`: CompactSize(transactions,
 * coinbase included), then per transaction CompactSize(inputs) and per input the
 * spent CTxOut (int64 LE amount, CompactSize script length, script). No heights. */
#define OPNET_SPENT_REST 2u

/* ---- Mempool removal reasons (Bitcoin Core's MemPoolRemovalReason) --------- */
#define OPNET_REMOVED_UNKNOWN 0u
#define OPNET_REMOVED_BLOCK 1u
#define OPNET_REMOVED_REPLACED 2u
#define OPNET_REMOVED_CONFLICT 3u
#define OPNET_REMOVED_EXPIRY 4u
#define OPNET_REMOVED_SIZELIMIT 5u
#define OPNET_REMOVED_REORG 6u

/* ---- Context flags --------------------------------------------------------- */
#define OPNET_CHAIN_TXINDEX (1u << 0) /* get_transaction can find any confirmed tx */

/* A byte buffer handed from one side to the other. `data` stays valid until the
 * receiver calls `release(buffer)`, which frees it; `release` is never NULL when
 * `data` is not NULL. A receiver that gets `data == NULL` does nothing. */
typedef struct opnet_buffer {
    const uint8_t *data;
    size_t len;
    void (*release)(struct opnet_buffer *buffer);
    void *owner; /* private to whoever filled the buffer */
} opnet_buffer;

/* Exported by the plugin as the data symbol `plugin_info`; read before anything
 * else. The strings are static, NUL-terminated UTF-8. */
struct PluginInfo {
    uint32_t api_version;    /* must equal the loader's OPNET_PLUGIN_API_VERSION */
    const char *name;        /* e.g. "opnet-core" */
    const char *version;     /* e.g. "0.1.0" */
    const char *description; /* one line */
};

/* What a plugin registers to hear about the host's chain and mempool
 * (PLUGIN_CAP_VALIDATION_INTERFACE). The transaction callbacks are called only
 * when the host offers PLUGIN_CAP_MEMPOOL_READ (ctx->capabilities), whether or
 * not the plugin asked for it: a plugin that needs them asks for the bit, one
 * that can do without checks ctx->capabilities. Callbacks must return quickly: a
 * plugin hands the work to its own threads. A NULL callback is not called. */
typedef struct opnet_validation_callbacks {
    uint32_t size;   /* sizeof(opnet_validation_callbacks) as the plugin built it */
    void *user_data; /* passed back to every callback; identifies the registration */

    /* A block became the tip: its consensus serialization, its height, and the
     * outputs its inputs spent in format `spent_format` (OPNET_SPENT_*). */
    void (*block_connected)(void *user_data, const uint8_t *block, size_t block_len,
                            uint32_t height, const uint8_t *spent, size_t spent_len,
                            uint32_t spent_format);
    /* The tip block `hash` at `height` was disconnected (a reorg); the new tip is
     * its parent. */
    void (*block_disconnected)(void *user_data, const uint8_t hash[32], uint32_t height);
    /* A transaction entered the mempool, with the outputs its inputs spend (each
     * confirmed or from another mempool transaction), in input order: the
     * OPNET_SPENT_REST layout of a single transaction, i.e. CompactSize(inputs)
     * then one CTxOut per input. */
    void (*transaction_added)(void *user_data, const uint8_t *tx, size_t tx_len,
                              const uint8_t *spent, size_t spent_len);
    /* A transaction left the mempool for `reason` (OPNET_REMOVED_*). */
    void (*transaction_removed)(void *user_data, const uint8_t txid[32], uint32_t reason);
} opnet_validation_callbacks;

/* Built by the loader, passed to plugin_init and plugin_shutdown. Every string
 * and function stays valid until plugin_shutdown returns. */
typedef struct PluginContext {
    uint32_t size;          /* sizeof(PluginContext) as the host built it */
    uint32_t api_version;   /* the host's OPNET_PLUGIN_API_VERSION */
    uint32_t core_version;  /* host version, Bitcoin Core style: 290100 = 29.1.0 */
    uint32_t capabilities;  /* PLUGIN_CAP_* the host offers */
    uint32_t chain_flags;   /* OPNET_CHAIN_* */
    const char *network;    /* "main", "test", "testnet4", "signet" or "regtest" */
    const char *datadir;    /* the network's datadir (holds blocks/, chainstate/) */
    void *host;             /* private to the host; first argument of its functions */
    void *user_data;        /* private to the plugin; the host never reads it */

    /* Logging: one message (no trailing newline) under `category`. */
    void (*log)(void *host, int32_t level, const char *category, const char *message);

    /* Configuration (bitcoind's -name=value arguments and bitcoin.conf lines;
     * `name` without the leading dash). get_arg returns `default_value` when the
     * argument is unset, else a host-owned string. */
    const char *(*get_arg)(void *host, const char *name, const char *default_value);
    int64_t (*get_int_arg)(void *host, const char *name, int64_t default_value);
    bool (*get_bool_arg)(void *host, const char *name, bool default_value);

    /* The validation interface. The host copies *callbacks. After unregister
     * returns, no callback of that registration is running or will run. */
    opnet_status (*register_validation_interface)(void *host,
                                                  const opnet_validation_callbacks *callbacks);
    void (*unregister_validation_interface)(void *host, void *user_data);

    /* Chain access (PLUGIN_CAP_BLOCK_READ), answered from the host's active chain. */
    opnet_status (*get_tip)(void *host, uint32_t *height, uint8_t hash[32],
                            opnet_buffer *error);
    /* OPNET_ERR_NOT_FOUND above the tip. */
    opnet_status (*get_block_hash)(void *host, uint32_t height, uint8_t hash[32],
                                   opnet_buffer *error);
    /* Any block the host stores, active or stale. */
    opnet_status (*get_block)(void *host, const uint8_t hash[32], opnet_buffer *block,
                              opnet_buffer *error);
    /* The block's spent outputs; *format receives OPNET_SPENT_*. */
    opnet_status (*get_block_spent)(void *host, const uint8_t hash[32], uint32_t *format,
                                    opnet_buffer *spent, opnet_buffer *error);
    /* The 80-byte header and the height it sits at. */
    opnet_status (*get_block_header)(void *host, const uint8_t hash[32], uint8_t header[80],
                                     uint32_t *height, opnet_buffer *error);
    /* A confirmed transaction; OPNET_ERR_UNSUPPORTED without OPNET_CHAIN_TXINDEX. */
    opnet_status (*get_transaction)(void *host, const uint8_t txid[32], opnet_buffer *tx,
                                    opnet_buffer *error);

    /* ---- Added after API 1's first fields: present only when `size` covers
     * them (a plugin reads them as NULL from a smaller context). ---- */

    /* Has the node write its UTXO set to <datadir>/chainstate now, so the
     * chainstate's best block is at (or next to) the tip, and returns once it is
     * written. bitcoind otherwise writes it only every 50-70 minutes, when its
     * cache is full and at shutdown, so a node started a minute ago may have none
     * and a node with a large cache one far behind. A plugin calls it before
     * scanning a snapshot of the chainstate (PLUGIN_CAP_CHAINSTATE_READ); never
     * from a validation callback. OPNET_ERR_UNSUPPORTED when the host cannot
     * (no running node), OPNET_ERR_UNAVAILABLE when the node refused or is
     * unreachable. NULL when the host has no such function. */
    opnet_status (*flush_chainstate)(void *host, opnet_buffer *error);
} PluginContext;

/* The size of API 1's first PluginContext (up to get_transaction): the smallest
 * context a plugin accepts. */
#define OPNET_PLUGIN_CONTEXT_MIN_SIZE (offsetof(PluginContext, get_transaction) + sizeof(void *))

/* ---- What the plugin exports ----------------------------------------------- */
/* Progress of a plugin's long work, for the loader's progress display. */
typedef struct opnet_progress {
    uint32_t size;          /* sizeof(opnet_progress) as the host built it */
    uint32_t phase;         /* 0 starting, 1 scanning, 2 catching up, 3 live */
    uint64_t scanned_utxos; /* coins read by a running scan */
    uint64_t written_utxos; /* coins written to the index by a running scan */
    uint64_t scanned_bytes; /* chainstate bytes read by a running scan */
    uint64_t total_bytes;   /* chainstate size being scanned */
    uint32_t height;        /* index tip height */
    uint32_t target_height; /* height being caught up to */
} opnet_progress;

#define OPNET_PHASE_STARTING 0u
#define OPNET_PHASE_SCANNING 1u
#define OPNET_PHASE_CATCHING_UP 2u
#define OPNET_PHASE_LIVE 3u
/* The plugin's index thread stopped, on an internal error or a damaged index
 * (its log says why). */
#define OPNET_PHASE_FAILED 4u

/* Required exports. */
extern const struct PluginInfo plugin_info;
extern const uint32_t plugin_capabilities;
/* Called once after the checks. Returns false (after logging why) to be skipped;
 * the plugin then holds no resources. */
bool plugin_init(PluginContext *ctx);
/* Called once, in reverse load order, before the library is closed. */
void plugin_shutdown(PluginContext *ctx);

/* Optional exports (a loader looks them up; absent means unsupported). A loader
 * may call them from any thread, concurrently with callbacks, but never while
 * plugin_init or plugin_shutdown runs. */
/* Blocks until everything notified before the call has been applied and the
 * plugin is at the host's tip: OPNET_OK, OPNET_ERR_TIMEOUT, or
 * OPNET_ERR_NOT_SYNCED (it failed to reach the tip; the log says why). Never call
 * it from a validation callback. */
opnet_status plugin_wait_synced(PluginContext *ctx, uint32_t timeout_ms);
/* Fills *out (up to out->size bytes, which the caller sets). */
opnet_status plugin_get_progress(PluginContext *ctx, opnet_progress *out);

#ifdef __cplusplus
}
#endif

#endif /* OPNET_PLUGIN_H */
