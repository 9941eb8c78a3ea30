/*
 * libFuzzer target for the Defender decoder (sw_decode_body). Built with
 * -DSW_FUZZ=ON and clang (-fsanitize=fuzzer,address,undefined); in the normal
 * build the same function is linked with fuzz_main.c and replays the corpus
 * in tests/fuzz/corpus/decode as a regression test.
 *
 * Beyond "no crash", it checks the decoder's promises: a failed call names a
 * reason and a message; every emitted finding has an image key of the form
 * host/repo@digest, a key unless it is a clean marker, and serializes to JSON
 * that parses back.
 */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scanwatch/decode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void must(bool cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_decode: invariant violated: %s\n", what);
        abort();
    }
}

static bool check_finding(void *ctx, const sw_finding *f)
{
    sw_buf *b = ctx;
    must(f->image != NULL && f->registry != NULL && f->repository != NULL && f->digest != NULL,
         "image parts present");
    must(strchr(f->image, '@') != NULL && strchr(f->image, '/') != NULL, "image key shape");
    must(f->clean_marker ? f->key == NULL : (f->key != NULL && f->vuln_id != NULL),
         "key iff not a clean marker");
    must((unsigned)f->severity < SW_SEV_COUNT && (unsigned)f->shape < SW_SHAPE_COUNT,
         "enums in range");
    sw_buf_reset(b);
    must(sw_finding_to_json(f, b), "serializes");
    cJSON *j = cJSON_ParseWithLength(b->data, b->len);
    must(j != NULL, "serialized finding is JSON");
    cJSON_Delete(j);
    return true;
}

static void run(sw_decoder *d, const uint8_t *data, size_t size, sw_buf *b)
{
    sw_decode_result res;
    sw_err err;
    bool ok = sw_decode_body(d, data, size, check_finding, b, &res, &err);
    if (ok) {
        must(res.bad == SW_DECODE_BAD_NONE, "no reason on success");
        must(res.findings + res.skipped <= res.records, "counts add up");
    } else {
        must(res.bad != SW_DECODE_BAD_NONE && res.bad < SW_DECODE_BAD_COUNT, "reason on failure");
        must(err.msg[0] != '\0' && err.code != SW_OK, "message on failure");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* One decoder with the defaults, one with tight limits to reach those paths. */
    static sw_decoder *wide, *tight;
    static sw_buf b;
    if (wide == NULL) {
        sw_decode_opts o;
        sw_decode_opts_default(&o);
        wide = sw_decoder_new(&o, NULL);
        o.max_json_depth = 6;
        o.max_message_size = 4096;
        tight = sw_decoder_new(&o, NULL);
        sw_buf_init(&b, 0);
        must(wide != NULL && tight != NULL, "decoders created");
    }
    run(wide, data, size, &b);
    run(tight, data, size, &b);
    return 0;
}
