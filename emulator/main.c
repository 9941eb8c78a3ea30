/*
 * scanwatch-emulator: a local Azure Event Hubs emulator for tests and demos.
 * Usage and the control-channel syntax: docs/emulator.md.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "load.h"
#include "scanwatch/swtime.h"
#include "scanwatch/log.h"
#include "server.h"
#include "store.h"

#define EMU_MAX_HUB_SPECS EMU_MAX_HUBS
#define EMU_MAX_KEY_SPECS EMU_AUTH_MAX_KEYS

typedef struct {
    emu_options opt;
    const char *hubs[EMU_MAX_HUB_SPECS];
    int hub_count;
    const char *keys[EMU_MAX_KEY_SPECS];
    int key_count;
    const char *bearer;
    long long retain_count;
    long long retain_bytes;
    const char *load_file;
    const char *load_hub;
    const char *load_partition;
    const char *load_key;
    const char *load_format;
    const char *log_level;
} emu_args;

static void usage(FILE *out)
{
    fputs("usage: scanwatch-emulator [options]\n"
          "  --host H                listen host, loopback only (default 127.0.0.1)\n"
          "  --port N                AMQP port, 0 = ephemeral (default 5672)\n"
          "  --hub NAME:P[:CG,...]   a hub with P partitions and extra consumer groups\n"
          "                          ($Default always exists; repeatable; default eh1:4)\n"
          "  --retain-count N        events kept per partition, 0 = unlimited (default 1000000)\n"
          "  --retain-bytes N        bytes kept per partition, 0 = unlimited (default 268435456)\n"
          "  --sas-key NAME=KEY      accepted SAS policy (repeatable; default\n"
          "                          RootManageSharedAccessKey=SAS_KEY_VALUE)\n"
          "  --bearer-token TOKEN    token accepted for put-token type jwt\n"
          "  --no-auth               accept any token; links need no put-token\n"
          "  --tls-cert PEM --tls-key PEM  also accept TLS on the same port\n"
          "  --control-port N        control channel on a loopback TCP port (0 = ephemeral)\n"
          "  --no-control-stdin      do not read control commands on stdin\n"
          "  --load FILE             publish each non-empty line of FILE as an event at start\n"
          "                          (indexed; bodies are read from FILE when delivered)\n"
          "  --load-format F         plain: a line is a body, enqueued now (default);\n"
          "                          timed: <RFC 3339 enqueued time><TAB><body>\n"
          "  --load-hub NAME         hub for --load (default: the first hub)\n"
          "  --load-partition ID     --load into one partition (default round-robin)\n"
          "  --load-key KEY          --load with this partition key (hashed like the service)\n"
          "  --idle-timeout-ms N     connection idle timeout; half is advertised (default 120000)\n"
          "  --log-level L           debug|info|warn|error|off (default warn)\n",
          out);
}

static bool parse_ll(const char *flag, const char *v, long long min, long long max, long long *out,
                     sw_err *err)
{
    char *end = NULL;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || n < min || n > max) {
        return sw_err_set(err, SW_E_CONFIG, "%s '%s': expected an integer in %lld..%lld", flag, v,
                          min, max);
    }
    *out = n;
    return true;
}

static bool loopback(const char *host)
{
    return strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0 ||
           strcmp(host, "localhost") == 0;
}

static bool parse_args(int argc, char **argv, emu_args *a, sw_err *err)
{
    long long v;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes = true;
        if (strcmp(f, "--no-auth") == 0) {
            a->opt.no_auth = true;
            takes = false;
        } else if (strcmp(f, "--no-control-stdin") == 0) {
            a->opt.control_stdin = false;
            takes = false;
        } else if (strcmp(f, "--help") == 0 || strcmp(f, "-h") == 0) {
            usage(stdout);
            exit(0);
        } else if (val == NULL) {
            return sw_err_set(err, SW_E_CONFIG, "%s: unknown option or missing value", f);
        } else if (strcmp(f, "--host") == 0) {
            a->opt.host = val;
        } else if (strcmp(f, "--port") == 0) {
            if (!parse_ll(f, val, 0, 65535, &v, err)) {
                return false;
            }
            a->opt.port = (int)v;
        } else if (strcmp(f, "--control-port") == 0) {
            if (!parse_ll(f, val, 0, 65535, &v, err)) {
                return false;
            }
            a->opt.control_port = (int)v;
        } else if (strcmp(f, "--idle-timeout-ms") == 0) {
            if (!parse_ll(f, val, 0, 3600000, &v, err)) {
                return false;
            }
            a->opt.idle_timeout_ms = (int)v;
        } else if (strcmp(f, "--hub") == 0) {
            if (a->hub_count >= EMU_MAX_HUB_SPECS) {
                return sw_err_set(err, SW_E_CONFIG, "--hub: at most %d hubs", EMU_MAX_HUB_SPECS);
            }
            a->hubs[a->hub_count++] = val;
        } else if (strcmp(f, "--sas-key") == 0) {
            if (a->key_count >= EMU_MAX_KEY_SPECS) {
                return sw_err_set(err, SW_E_CONFIG, "--sas-key: at most %d keys",
                                  EMU_MAX_KEY_SPECS);
            }
            a->keys[a->key_count++] = val;
        } else if (strcmp(f, "--bearer-token") == 0) {
            a->bearer = val;
        } else if (strcmp(f, "--retain-count") == 0) {
            if (!parse_ll(f, val, 0, 1LL << 40, &a->retain_count, err)) {
                return false;
            }
        } else if (strcmp(f, "--retain-bytes") == 0) {
            if (!parse_ll(f, val, 0, 1LL << 50, &a->retain_bytes, err)) {
                return false;
            }
        } else if (strcmp(f, "--tls-cert") == 0) {
            a->opt.tls_cert = val;
        } else if (strcmp(f, "--tls-key") == 0) {
            a->opt.tls_key = val;
        } else if (strcmp(f, "--load") == 0) {
            a->load_file = val;
        } else if (strcmp(f, "--load-hub") == 0) {
            a->load_hub = val;
        } else if (strcmp(f, "--load-partition") == 0) {
            a->load_partition = val;
        } else if (strcmp(f, "--load-key") == 0) {
            a->load_key = val;
        } else if (strcmp(f, "--load-format") == 0) {
            a->load_format = val;
        } else if (strcmp(f, "--log-level") == 0) {
            a->log_level = val;
        } else {
            return sw_err_set(err, SW_E_CONFIG, "unknown option %s (see --help)", f);
        }
        if (takes) {
            i++;
        }
    }
    if (!loopback(a->opt.host)) {
        return sw_err_set(err, SW_E_CONFIG, "--host '%s': only loopback addresses are allowed",
                          a->opt.host);
    }
    emu_load_format fmt;
    if (!emu_load_format_parse(a->load_format, &fmt)) {
        return sw_err_set(err, SW_E_CONFIG, "--load-format '%s': use plain or timed",
                          a->load_format);
    }
    if (a->load_partition != NULL && a->load_key != NULL) {
        return sw_err_set(err, SW_E_CONFIG, "--load-partition and --load-key exclude each other");
    }
    return true;
}

static bool load_file(emu_store *store, const emu_args *a, sw_err *err)
{
    emu_load_options o = {.path = a->load_file,
                          .hub = a->load_hub,
                          .partition = a->load_partition,
                          .key = a->load_key};
    if (!emu_load_format_parse(a->load_format, &o.format)) {
        return sw_err_set(err, SW_E_CONFIG, "--load-format '%s': use plain or timed",
                          a->load_format);
    }
    long long events = 0;
    if (!emu_load_file(store, &o, &events, err)) {
        return false;
    }
    SW_LOG(SW_LOG_INFO, "loaded events", SW_LF_STR("file", a->load_file),
           SW_LF_INT("events", events), SW_LF_STR("format", a->load_format));
    return true;
}

int main(int argc, char **argv)
{
    emu_args a = {
        .opt = {.host = "127.0.0.1",
                .port = 5672,
                .control_port = -1,
                .control_stdin = true,
                .idle_timeout_ms = 120000},
        .retain_count = 1000000,
        .retain_bytes = 268435456,
        .load_format = "plain",
        .log_level = "warn",
    };
    sw_err err;
    sw_err_clear(&err);
    emu_store *store = NULL;
    emu_auth *auth = NULL;
    emu_server *srv = NULL;
    int rc = 1;
    sw_log_level lvl;
    /* A control client that hangs up must not kill the emulator. */
    signal(SIGPIPE, SIG_IGN);
    if (!parse_args(argc, argv, &a, &err)) {
        goto fail;
    }
    if (!sw_log_level_parse(a.log_level, &lvl)) {
        sw_err_set(&err, SW_E_CONFIG, "--log-level '%s': use debug|info|warn|error|off",
                   a.log_level);
        goto fail;
    }
    sw_log_set_level(lvl);
    store = emu_store_new((size_t)a.retain_count, (size_t)a.retain_bytes, &err);
    auth = emu_auth_new(&err);
    if (store == NULL || auth == NULL) {
        goto fail;
    }
    if (a.hub_count == 0) {
        a.hubs[a.hub_count++] = "eh1:4";
    }
    for (int i = 0; i < a.hub_count; i++) {
        if (!emu_store_add_hub_spec(store, a.hubs[i], &err)) {
            goto fail;
        }
    }
    if (a.key_count == 0) {
        a.keys[a.key_count++] = "RootManageSharedAccessKey=SAS_KEY_VALUE";
    }
    for (int i = 0; i < a.key_count; i++) {
        if (!emu_auth_add_key_spec(auth, a.keys[i], &err)) {
            goto fail;
        }
    }
    if (a.bearer != NULL && !emu_auth_set_bearer(auth, a.bearer, &err)) {
        goto fail;
    }
    if (a.load_file != NULL && !load_file(store, &a, &err)) {
        goto fail;
    }
    srv = emu_server_new(store, auth, &a.opt, &err);
    if (srv == NULL) {
        goto fail;
    }
    int control_port;
    if (!emu_control_start(srv, &a.opt, &control_port, &err)) {
        goto fail;
    }
    if (!emu_server_run(srv, &err)) {
        goto fail;
    }
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "scanwatch-emulator: %s\n", err.msg);
out:
    emu_server_free(srv);
    emu_auth_free(auth);
    emu_store_free(store);
    return rc;
}
