/*
 * libFuzzer target for the HTTP responses the notifier parses:
 *   byte 0, bit 0 = 0: a token endpoint response (Entra ID client credentials,
 *                      or managed identity / IMDS, whose numbers are strings),
 *                      through sw_entra_parse_token_response;
 *                  = 1: a Graph sendMail error body, through sw_graph_parse_error;
 *   byte 1: the HTTP status, from a table of the ones that occur;
 *   the rest: the response body.
 *
 * Invariants: a token is returned only for 200 and is non-empty; its expiry
 * is after `now` when the response said expires_in; a failure names the
 * endpoint and status in err and fills last_error; Graph's code and message
 * fields stay NUL-terminated within their arrays.
 *
 * Built as fuzz_graph with -DSW_FUZZ=ON (clang); otherwise linked with
 * fuzz_main.c and replays tests/fuzz/corpus/graph as a regression test.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "notify_internal.h"
#include "scanwatch/entra.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const long statuses[] = {200, 200, 200, 200, 400, 401, 403, 404,
                                408, 410, 413, 429, 500, 502, 503, 504};

static void must(bool cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_graph: invariant violated: %s\n", what);
        abort();
    }
}

static void token_response(long status, const char *body, size_t len)
{
    const sw_time_us now = 1767225600LL * SW_US_PER_SEC; /* 2026-01-01 */
    char *token = NULL;
    sw_time_us expires = 0;
    char last_error[300];
    memset(last_error, 'x', sizeof last_error);
    sw_err err;
    if (sw_entra_parse_token_response("Entra ID token endpoint", status, body, len, now, &token,
                                      &expires, last_error, sizeof last_error, &err)) {
        must(status == 200, "a token only from HTTP 200");
        must(token != NULL && token[0] != '\0', "token non-empty");
        must(expires > 0, "expiry set");
        must(last_error[0] == '\0', "last_error cleared on success");
        free(token);
    } else {
        must(token == NULL, "no token on failure");
        must(strstr(err.msg, "Entra ID token endpoint") != NULL, "error names the endpoint");
        must(memchr(last_error, '\0', sizeof last_error) != NULL && last_error[0] != '\0',
             "last_error set and terminated");
    }
}

static void graph_error(const char *body, size_t len)
{
    sw_graph_result res;
    memset(&res, 'x', sizeof res);
    sw_graph_parse_error(body, len, &res);
    must(memchr(res.code, '\0', sizeof res.code) != NULL, "code terminated");
    must(memchr(res.message, '\0', sizeof res.message) != NULL, "message terminated");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size > 256 * 1024) {
        return 0;
    }
    /* An exact-size copy: the parsers take (pointer, length), no terminator. */
    size_t len = size - 2;
    char *body = malloc(len > 0 ? len : 1);
    if (body == NULL) {
        return 0;
    }
    memcpy(body, data + 2, len);
    long status = statuses[data[1] % (sizeof statuses / sizeof statuses[0])];
    if ((data[0] & 1) == 0) {
        token_response(status, body, len);
    } else {
        graph_error(body, len);
    }
    free(body);
    return 0;
}
