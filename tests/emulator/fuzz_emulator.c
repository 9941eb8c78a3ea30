/*
 * Fuzz target for the emulator's parsers of untrusted input. The first byte
 * picks the parser: 0 = a published delivery (batch split, section parsing,
 * annotation rewrite, append), 1 = a selector filter, 2 = a SAS token,
 * 3 = an address / audience path. The corpus in corpus/ runs as a unit test
 * through fuzz_main.c; with -DSW_FUZZ=ON (clang) this is a libFuzzer target.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "filter.h"
#include "store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static emu_store *store;
static emu_auth *auth;

typedef struct {
    emu_partition *p;
    const char *pkey;
    size_t pkey_len;
} fuzz_ctx;

static bool append(void *c, const unsigned char *ev, size_t len, sw_err *err)
{
    fuzz_ctx *x = c;
    return emu_partition_append(store, x->p, ev, len, x->pkey, x->pkey_len, 1, err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (store == NULL) {
        /* Retention keeps the fuzzer's memory flat across millions of inputs. */
        store = emu_store_new(64, 1 << 20, NULL);
        auth = emu_auth_new(NULL);
        if (store == NULL || auth == NULL || !emu_store_add_hub_spec(store, "f:4", NULL) ||
            !emu_auth_add_key_spec(auth, "RootManageSharedAccessKey=SAS_KEY_VALUE", NULL)) {
            abort();
        }
    }
    if (size < 1) {
        return 0;
    }
    const uint8_t *in = data + 1;
    size_t n = size - 1;
    sw_err err;
    switch (data[0] % 4) {
    case 0: {
        emu_hub *h = emu_store_hub_at(store, 0);
        fuzz_ctx c = {.p = &h->partitions[0]};
        (void)emu_split_message(in, n, &c.pkey, &c.pkey_len, append, &c, &err);
        break;
    }
    case 1: {
        emu_position pos;
        (void)emu_filter_parse((const char *)in, n, &pos, &err);
        break;
    }
    case 2: {
        int64_t exp;
        char *tok = malloc(n + 1);
        if (tok == NULL) {
            return 0;
        }
        memcpy(tok, in, n);
        tok[n] = '\0';
        (void)emu_auth_check_sas(auth, tok, n, "sb://127.0.0.1:5672/f", 1000, &exp, &err);
        free(tok);
        break;
    }
    default: {
        char out[EMU_PATH_MAX];
        if (emu_entity_path((const char *)in, n, out, sizeof out)) {
            (void)emu_claim_covers(out, "f/ConsumerGroups/$Default/Partitions/0");
        }
        break;
    }
    }
    return 0;
}
