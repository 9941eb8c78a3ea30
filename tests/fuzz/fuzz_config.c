/*
 * libFuzzer target for the configuration file: the input is a YAML document
 * loaded with sw_config_load_yaml_string into a fresh config (the settings
 * table's per-type validation runs on every value), and when it loads, every
 * consumer of settings validates what it reads: the routes (sw_notify_routes_parse),
 * the mail sink, the Event Hubs options (sw_amqp_options_from_config) and
 * connection string (sw_amqp_connstr_parse), the Entra options, the state and decoder
 * options, and both print forms of check-config.
 *
 * Inputs naming a `<setting>_file` key are skipped: that form reads a file
 * (a secret) from disk, and the fuzzer must not read /dev/stdin or devices.
 *
 * Invariants: a failed load names the problem (a non-empty message); a
 * loaded config prints as JSON that parses back; a failed load leaves no
 * partially owned memory (ASan's leak check).
 *
 * Built as fuzz_config with -DSW_FUZZ=ON (clang); otherwise linked with
 * fuzz_main.c and replays tests/fuzz/corpus/config as a regression test.
 */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "notify_internal.h"
#include "scanwatch/amqp.h"
#include "scanwatch/amqp_connstr.h"
#include "scanwatch/decode.h"
#include "scanwatch/entra.h"
#include "scanwatch/settings.h"
#include "scanwatch/state.h"
#include "scanwatch/state_engine.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void must(bool cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_config: invariant violated: %s\n", what);
        abort();
    }
}

static void check_print(const sw_config *cfg)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (f == NULL) {
        return;
    }
    sw_config_print(cfg, f, true);
    fclose(f);
    cJSON *doc = cJSON_ParseWithLength(text, len);
    must(doc != NULL, "check-config --json prints JSON");
    cJSON_Delete(doc);
    free(text);
    f = open_memstream(&text, &len);
    if (f != NULL) {
        sw_config_print(cfg, f, false);
        fclose(f);
        free(text);
    }
}

static void validate(const sw_config *cfg)
{
    sw_err err;
    sw_routes routes;
    if (sw_notify_routes_parse(sw_cfg_str(cfg, SW_CFG_ROUTES), sw_cfg_str(cfg, SW_CFG_MAIL_TO),
                               &routes, &err)) {
        sw_notify_routes_free(&routes);
    } else {
        must(err.msg[0] != '\0', "routes error has a message");
    }
    sw_sink_spec spec;
    if (!sw_sink_spec_parse(sw_cfg_str(cfg, SW_CFG_MAIL_SINK), &spec, &err)) {
        must(err.msg[0] != '\0', "mail_sink error has a message");
    }
    sw_amqp_options ao;
    sw_amqp_position start;
    if (!sw_amqp_options_from_config(cfg, &ao, &start, &err)) {
        must(err.msg[0] != '\0', "event hub options error has a message");
    }
    sw_amqp_connstr cs;
    if (sw_amqp_connstr_parse(sw_cfg_str(cfg, SW_CFG_CONNECTION_STRING), &cs, &err)) {
        sw_amqp_connstr_free(&cs);
    } else {
        must(err.msg[0] != '\0', "connection string error has a message");
    }
    sw_entra_opts eo;
    if (!sw_entra_opts_from_config(&eo, cfg, &err)) {
        must(err.msg[0] != '\0', "entra options error has a message");
    }
    sw_state_opts so;
    sw_state_opts_from_config(&so, cfg);
    sw_state_engine_opts seo;
    sw_state_engine_opts_from_config(&seo, cfg);
    sw_decode_opts dop;
    sw_decode_opts_from_config(&dop, cfg);
    check_print(cfg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 64 * 1024 || memmem(data, size, "_file", 5) != NULL) {
        return 0;
    }
    sw_config *cfg = sw_config_new();
    if (cfg == NULL) {
        return 0;
    }
    sw_err err;
    if (sw_config_load_yaml_string(cfg, (const char *)data, size, "fuzz.yaml", &err)) {
        validate(cfg);
    } else {
        must(err.msg[0] != '\0', "a failed load has a message");
    }
    sw_config_free(cfg);
    return 0;
}
