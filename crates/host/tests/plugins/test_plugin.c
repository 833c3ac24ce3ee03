/*
 * A minimal plugin in C, for the loader's tests: it proves the header compiles as
 * C (-std=c99 -pedantic -Werror) and gives the loader plugins that misbehave in
 * one chosen way. Built by crates/host/tests/host.rs with:
 *   TEST_API_VERSION  the api_version it declares (default: the header's)
 *   TEST_CAPS         the capabilities it asks for (default: none)
 *   TEST_INIT_OK      what plugin_init returns (default 1)
 *   TEST_NAME         its name, also in every log line
 *   TEST_STALL_MS     if set, it registers callbacks and stays this long in the
 *                     first block_connected (for the watchdog)
 */
#define _POSIX_C_SOURCE 199309L
#include "opnet_plugin.h"

#include <stdio.h>
#include <time.h>

#ifndef TEST_API_VERSION
#define TEST_API_VERSION OPNET_PLUGIN_API_VERSION
#endif
#ifndef TEST_CAPS
#define TEST_CAPS 0u
#endif
#ifndef TEST_INIT_OK
#define TEST_INIT_OK 1
#endif
#ifndef TEST_NAME
#define TEST_NAME "c-test"
#endif

const struct PluginInfo plugin_info = {TEST_API_VERSION, TEST_NAME, "1.0", "loader test plugin"};
const uint32_t plugin_capabilities = TEST_CAPS;

static void say(PluginContext *ctx, const char *what) {
    char line[256];
    snprintf(line, sizeof line, "%s: %s", TEST_NAME, what);
    ctx->log(ctx->host, OPNET_LOG_INFO, "test", line);
}

#ifdef TEST_STALL_MS
static int stalled = 0;

static void on_block(void *user, const uint8_t *block, size_t block_len, uint32_t height,
                     const uint8_t *spent, size_t spent_len, uint32_t spent_format) {
    struct timespec t;
    (void)user; (void)block; (void)block_len; (void)height;
    (void)spent; (void)spent_len; (void)spent_format;
    if (stalled) {
        return;
    }
    stalled = 1;
    t.tv_sec = TEST_STALL_MS / 1000;
    t.tv_nsec = (long)(TEST_STALL_MS % 1000) * 1000000L;
    nanosleep(&t, NULL);
}

static opnet_validation_callbacks callbacks = {sizeof(opnet_validation_callbacks), &callbacks,
                                               on_block, NULL, NULL, NULL};
#endif

bool plugin_init(PluginContext *ctx) {
    uint32_t height = 0;
    uint8_t hash[32];
    char line[128];
    if (ctx->size < sizeof(PluginContext) || ctx->api_version != OPNET_PLUGIN_API_VERSION) {
        return false;
    }
    if (ctx->get_tip(ctx->host, &height, hash, NULL) == OPNET_OK) {
        snprintf(line, sizeof line, "init on %s at height %u, undodepth %lld", ctx->network,
                 (unsigned)height, (long long)ctx->get_int_arg(ctx->host, "opnetundodepth", -1));
        say(ctx, line);
    }
    if (!TEST_INIT_OK) {
        say(ctx, "refusing to start");
        return false;
    }
#ifdef TEST_STALL_MS
    if (ctx->register_validation_interface(ctx->host, &callbacks) != OPNET_OK) {
        return false;
    }
#endif
    return true;
}

void plugin_shutdown(PluginContext *ctx) {
#ifdef TEST_STALL_MS
    ctx->unregister_validation_interface(ctx->host, &callbacks);
#endif
    say(ctx, "shutdown");
}
