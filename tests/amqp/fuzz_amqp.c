/*
 * Fuzz target for amqp/'s parsers: the AMQP message-section decoder (first byte 0) and the
 * connection-string parser (first byte 1). Built as a libFuzzer target with -DSW_FUZZ=ON
 * (clang); otherwise linked with fuzz_regress_main.c, which replays tests/amqp/corpus as a
 * regression test.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../amqp/message.h"
#include "scanwatch/amqp_connstr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    sw_err err;
    if (data[0] == 0) {
        sw_buf scratch;
        sw_buf_init(&scratch, 1 << 20);
        sw_amqp_msg m;
        if (sw_amqp_msg_decode(data + 1, size - 1, &m, &scratch, &err)) {
            /* everything returned must lie inside the input or the scratch buffer */
            volatile unsigned char sink = 0;
            for (size_t i = 0; i < m.body_len; i++) {
                sink ^= m.body[i];
            }
            for (size_t i = 0; m.offset != NULL && i < m.offset_len; i++) {
                sink ^= (unsigned char)m.offset[i];
            }
            for (size_t i = 0; m.partition_key != NULL && i < m.partition_key_len; i++) {
                sink ^= (unsigned char)m.partition_key[i];
            }
            (void)sink;
        }
        sw_buf_free(&scratch);
    } else {
        char *s = malloc(size);
        if (s == NULL) {
            return 0;
        }
        memcpy(s, data + 1, size - 1);
        s[size - 1] = '\0';
        sw_amqp_connstr cs;
        if (sw_amqp_connstr_parse(s, &cs, &err)) {
            sw_amqp_connstr_free(&cs);
        }
        free(s);
    }
    return 0;
}
