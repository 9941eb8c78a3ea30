/* Emulator store, batch splitting, annotations, filters and key routing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <proton/codec.h>
#include <proton/message.h>

#include "amqpbin.h"
#include "filter.h"
#include "lineio.h"
#include "store.h"

/* Vectors from @azure/event-hubs 6.0.4 mapPartitionKeyToId (tests/sdk). */
static void test_key_hash_matches_sdk(void **state)
{
    (void)state;
    static const struct {
        const char *key;
        int p4, p32;
    } v[] = {
        {"", 0, 0},
        {"a", 0, 28},
        {"abc", 1, 17},
        {"image-sha256:0123456789abcdef", 0, 0},
        {"twelve bytes", 2, 14},
        {"thirteen byte", 1, 1},
        {"partition-key-\xc3\xbc", 1, 13},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        int got4 = emu_partition_for_key(v[i].key, strlen(v[i].key), 4);
        int got32 = emu_partition_for_key(v[i].key, strlen(v[i].key), 32);
        if (got4 != v[i].p4 || got32 != v[i].p32) {
            print_error("key '%s': got %d/%d want %d/%d\n", v[i].key, got4, got32, v[i].p4,
                        v[i].p32);
        }
        assert_int_equal(got4, v[i].p4);
        assert_int_equal(got32, v[i].p32);
    }
}

static emu_store *new_store(size_t count, size_t bytes)
{
    sw_err err;
    emu_store *s = emu_store_new(count, bytes, &err);
    assert_non_null(s);
    assert_true(emu_store_add_hub_spec(s, "h:2:cg1,CG2", &err));
    return s;
}

static void test_hub_spec(void **state)
{
    (void)state;
    sw_err err;
    emu_store *s = new_store(0, 0);
    emu_hub *h = emu_store_hub(s, "h", 1);
    assert_non_null(h);
    assert_int_equal(h->partition_count, 2);
    assert_int_equal(emu_hub_group(h, "$default", 8), 0);
    assert_int_equal(emu_hub_group(h, "cg2", 3), 2);
    assert_int_equal(emu_hub_group(h, "nope", 4), -1);
    assert_null(emu_hub_partition(h, "2", 1));
    assert_null(emu_hub_partition(h, "01", 2));
    assert_non_null(emu_hub_partition(h, "1", 1));
    assert_false(emu_store_add_hub_spec(s, "bad", &err));
    assert_non_null(strstr(err.msg, "NAME:PARTITIONS"));
    assert_false(emu_store_add_hub_spec(s, "x:0", &err));
    assert_false(emu_store_add_hub_spec(s, "x:abc", &err));
    assert_false(emu_store_add_hub_spec(s, "h:3", &err));
    assert_non_null(strstr(err.msg, "twice"));
    emu_store_free(s);
}

/* Encodes a message with proton (what a real client sends). */
static size_t encode(pn_message_t *m, char *buf, size_t size)
{
    size_t n = size;
    assert_int_equal(pn_message_encode(m, buf, &n), 0);
    return n;
}

typedef struct {
    int64_t seq;
    char offset[24];
    int64_t time;
    char pkey[64];
    char body[64];
    char user_ann[32];
} decoded;

static void decode_event(const emu_event *e, decoded *out)
{
    memset(out, 0, sizeof *out);
    pn_message_t *m = pn_message();
    assert_int_equal(pn_message_decode(m, (const char *)e->bytes, e->len), 0);
    pn_data_t *a = pn_message_annotations(m);
    pn_data_rewind(a);
    assert_true(pn_data_next(a));
    assert_int_equal(pn_data_type(a), PN_MAP);
    pn_data_enter(a);
    while (pn_data_next(a)) {
        pn_bytes_t k = pn_data_get_symbol(a);
        assert_true(pn_data_next(a));
        if (k.size == 21 && memcmp(k.start, "x-opt-sequence-number", 21) == 0) {
            assert_int_equal(pn_data_type(a), PN_LONG);
            out->seq = pn_data_get_long(a);
        } else if (k.size == 12 && memcmp(k.start, "x-opt-offset", 12) == 0) {
            assert_int_equal(pn_data_type(a), PN_STRING);
            pn_bytes_t v = pn_data_get_string(a);
            memcpy(out->offset, v.start, v.size);
        } else if (k.size == 19 && memcmp(k.start, "x-opt-enqueued-time", 19) == 0) {
            assert_int_equal(pn_data_type(a), PN_TIMESTAMP);
            out->time = pn_data_get_timestamp(a);
        } else if (k.size == 19 && memcmp(k.start, "x-opt-partition-key", 19) == 0) {
            pn_bytes_t v = pn_data_get_string(a);
            memcpy(out->pkey, v.start, v.size);
        } else if (k.size == 4 && memcmp(k.start, "user", 4) == 0) {
            pn_bytes_t v = pn_data_get_string(a);
            memcpy(out->user_ann, v.start, v.size);
        }
    }
    pn_data_t *b = pn_message_body(m);
    pn_data_rewind(b);
    if (pn_data_next(b) && pn_data_type(b) == PN_BINARY) {
        pn_bytes_t v = pn_data_get_binary(b);
        memcpy(out->body, v.start, v.size < 63 ? v.size : 63);
    }
    pn_message_free(m);
}

typedef struct {
    emu_store *s;
    emu_partition *p;
    const char *pkey;
    size_t pkey_len;
    int n;
} ctx_t;

static bool append_cb(void *c, const unsigned char *ev, size_t len, sw_err *err)
{
    ctx_t *x = c;
    x->n++;
    return emu_partition_append(x->s, x->p, ev, len, x->pkey, x->pkey_len, 1700000000000LL, err);
}

static size_t event_msg(char *buf, size_t size, const char *body, const char *user_ann)
{
    pn_message_t *m = pn_message();
    pn_message_set_inferred(m, true);
    pn_data_t *b = pn_message_body(m);
    pn_data_put_binary(b, pn_bytes(strlen(body), body));
    if (user_ann != NULL) {
        pn_data_t *a = pn_message_annotations(m);
        pn_data_put_map(a);
        pn_data_enter(a);
        pn_data_put_symbol(a, pn_bytes(4, "user"));
        pn_data_put_string(a, pn_bytes(strlen(user_ann), user_ann));
        /* A sender's own x-opt-offset must not survive. */
        pn_data_put_symbol(a, pn_bytes(12, "x-opt-offset"));
        pn_data_put_string(a, pn_bytes(3, "999"));
        pn_data_exit(a);
    }
    size_t n = encode(m, buf, size);
    pn_message_free(m);
    return n;
}

/* The JS SDK's batch: an envelope whose data sections are encoded messages. */
static void test_batch_split_and_annotations(void **state)
{
    (void)state;
    sw_err err;
    emu_store *s = new_store(0, 0);
    emu_hub *h = emu_store_hub(s, "h", 1);
    char e1[256], e2[256], batch[1024];
    size_t n1 = event_msg(e1, sizeof e1, "{\"n\":1}", "u1");
    size_t n2 = event_msg(e2, sizeof e2, "{\"n\":2}", NULL);
    pn_message_t *env = pn_message();
    pn_data_t *a = pn_message_annotations(env);
    pn_data_put_map(a);
    pn_data_enter(a);
    pn_data_put_symbol(a, pn_bytes(19, "x-opt-partition-key"));
    pn_data_put_string(a, pn_bytes(3, "key"));
    pn_data_exit(a);
    size_t envn = encode(env, batch, sizeof batch);
    pn_message_free(env);
    sw_buf b = SW_BUF_INIT;
    sw_buf_init(&b, 4096);
    sw_buf_append(&b, batch, envn);
    emu_amqp_put_descriptor(&b, EMU_SEC_DATA);
    emu_amqp_put_binary(&b, e1, n1);
    emu_amqp_put_descriptor(&b, EMU_SEC_DATA);
    emu_amqp_put_binary(&b, e2, n2);
    ctx_t c = {.s = s, .p = &h->partitions[1]};
    assert_true(emu_split_message((const unsigned char *)b.data, b.len, &c.pkey, &c.pkey_len,
                                  append_cb, &c, &err));
    assert_int_equal(c.n, 2);
    assert_int_equal(c.pkey_len, 3);
    assert_memory_equal(c.pkey, "key", 3);
    emu_partition *p = &h->partitions[1];
    assert_int_equal(p->next_seq, 2);
    decoded d;
    decode_event(emu_partition_get(p, 0), &d);
    assert_int_equal(d.seq, 0);
    assert_string_equal(d.offset, "0");
    assert_int_equal(d.time, 1700000000000LL);
    assert_string_equal(d.pkey, "key");
    assert_string_equal(d.body, "{\"n\":1}");
    assert_string_equal(d.user_ann, "u1");
    const emu_event *ev0 = emu_partition_get(p, 0);
    decode_event(emu_partition_get(p, 1), &d);
    assert_int_equal(d.seq, 1);
    char want_off[24];
    snprintf(want_off, sizeof want_off, "%zu", ev0->len);
    assert_string_equal(d.offset, want_off);
    assert_string_equal(d.body, "{\"n\":2}");
    sw_buf_free(&b);
    emu_store_free(s);
}

/* .NET sends a single event as a plain message: it is one event, not a batch. */
static void test_single_message_is_one_event(void **state)
{
    (void)state;
    sw_err err;
    emu_store *s = new_store(0, 0);
    emu_hub *h = emu_store_hub(s, "h", 1);
    char e1[256];
    size_t n1 = event_msg(e1, sizeof e1, "plain body", NULL);
    ctx_t c = {.s = s, .p = &h->partitions[0]};
    assert_true(emu_split_message((const unsigned char *)e1, n1, &c.pkey, &c.pkey_len, append_cb,
                                  &c, &err));
    assert_int_equal(c.n, 1);
    decoded d;
    decode_event(emu_partition_get(&h->partitions[0], 0), &d);
    assert_string_equal(d.body, "plain body");
    assert_null(c.pkey);
    /* Garbage is refused with a parse error, not a crash. */
    unsigned char junk[] = {0x00, 0x53, 0x75, 0xb0, 0xff, 0xff, 0xff, 0x00, 0x01};
    assert_false(emu_split_message(junk, sizeof junk, &c.pkey, &c.pkey_len, append_cb, &c, &err));
    assert_int_equal(err.code, SW_E_PARSE);
    emu_store_free(s);
}

static void test_retention_and_seek(void **state)
{
    (void)state;
    sw_err err;
    emu_store *s = new_store(5, 0);
    emu_hub *h = emu_store_hub(s, "h", 1);
    emu_partition *p = &h->partitions[0];
    int64_t offsets[10];
    for (int i = 0; i < 10; i++) {
        char body[16];
        snprintf(body, sizeof body, "%d", i);
        offsets[i] = p->next_offset;
        assert_true(emu_partition_append_body(s, p, body, strlen(body), NULL, 0, 1000 + i, &err));
    }
    assert_int_equal(p->begin_seq, 5);
    assert_int_equal(p->next_seq, 10);
    assert_int_equal(p->count, 5);
    assert_null(emu_partition_get(p, 4));
    assert_non_null(emu_partition_get(p, 5));
    assert_int_equal(emu_partition_seek_offset(p, offsets[7], false), 8);
    assert_int_equal(emu_partition_seek_offset(p, offsets[7], true), 7);
    assert_int_equal(emu_partition_seek_offset(p, offsets[1], false), 5);
    assert_int_equal(emu_partition_seek_offset(p, offsets[9], false), 10);
    assert_int_equal(emu_partition_seek_time(p, 1006, false), 7);
    assert_int_equal(emu_partition_seek_time(p, 1006, true), 6);
    /* Enqueued time never goes backwards within a partition. */
    assert_true(emu_partition_append_body(s, p, "x", 1, NULL, 0, 5, &err));
    assert_int_equal(p->last_enq_ms, 1009);
    emu_store_free(s);

    s = new_store(0, 300);
    h = emu_store_hub(s, "h", 1);
    p = &h->partitions[0];
    char big[100];
    memset(big, 'b', sizeof big);
    for (int i = 0; i < 10; i++) {
        assert_true(emu_partition_append_body(s, p, big, sizeof big, NULL, 0, 1, &err));
    }
    assert_true(p->bytes <= 300);
    assert_true(p->count >= 1);
    assert_int_equal(p->begin_seq + (int64_t)p->count, 10);
    emu_store_free(s);
}

static void test_filters(void **state)
{
    (void)state;
    static const struct {
        const char *expr;
        emu_pos_kind kind;
        bool inclusive, start, latest;
        int64_t value;
    } ok[] = {
        {"amqp.annotation.x-opt-offset > '-1'", EMU_POS_OFFSET, false, true, false, 0},
        {"amqp.annotation.x-opt-offset > -1", EMU_POS_OFFSET, false, true, false, 0},
        {"amqp.annotation.x-opt-offset > '@latest'", EMU_POS_OFFSET, false, false, true, 0},
        {"amqp.annotation.x-opt-offset > @latest", EMU_POS_OFFSET, false, false, true, 0},
        {"amqp.annotation.x-opt-offset >= '1234'", EMU_POS_OFFSET, true, false, false, 1234},
        {"amqp.annotation.x-opt-sequence-number > 17", EMU_POS_SEQUENCE, false, false, false, 17},
        {"amqp.annotation.x-opt-sequence-number >= '17'", EMU_POS_SEQUENCE, true, false, false, 17},
        {"amqp.annotation.x-opt-enqueued-time > '1700000000000'", EMU_POS_TIME, false, false, false,
         1700000000000LL},
        {"  amqp.annotation.x-opt-enqueued-time>1700000000000 ", EMU_POS_TIME, false, false, false,
         1700000000000LL},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        emu_position pos;
        sw_err err;
        sw_err_clear(&err);
        bool r = emu_filter_parse(ok[i].expr, strlen(ok[i].expr), &pos, &err);
        if (!r) {
            print_error("'%s': %s\n", ok[i].expr, err.msg);
        }
        assert_true(r);
        assert_int_equal(pos.kind, ok[i].kind);
        assert_int_equal(pos.inclusive, ok[i].inclusive);
        assert_int_equal(pos.start, ok[i].start);
        assert_int_equal(pos.latest, ok[i].latest);
        assert_int_equal(pos.value, ok[i].value);
    }
    static const char *bad[] = {
        "amqp.annotation.x-opt-offset > no offset",
        "amqp.annotation.x-opt-offset < 5",
        "amqp.annotation.x-opt-other > 5",
        "amqp.annotation.x-opt-sequence-number > '@latest'",
        "amqp.annotation.x-opt-offset > '-7'",
        "",
        "amqp.annotation.x-opt-offset > 99999999999999999999999",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        emu_position pos;
        sw_err err;
        assert_false(emu_filter_parse(bad[i], strlen(bad[i]), &pos, &err));
        assert_non_null(strstr(err.msg, "is not a valid amqp filter"));
    }
}

static void test_read_line(void **state)
{
    (void)state;
    static const char text[] = "abc\n0123456789ABCDEF-too-long\nx\r\n\nlast";
    FILE *fp = fmemopen((void *)text, sizeof text - 1, "r");
    assert_non_null(fp);
    char buf[8];
    size_t n = 99;
    assert_int_equal(emu_read_line(fp, buf, sizeof buf, &n), EMU_LINE_OK);
    assert_string_equal(buf, "abc");
    assert_int_equal(n, 3);
    assert_int_equal(emu_read_line(fp, buf, sizeof buf, &n), EMU_LINE_TOO_LONG);
    assert_int_equal(emu_read_line(fp, buf, sizeof buf, &n), EMU_LINE_OK);
    assert_string_equal(buf, "x");
    assert_int_equal(emu_read_line(fp, buf, sizeof buf, &n), EMU_LINE_OK);
    assert_int_equal(n, 0);
    assert_int_equal(emu_read_line(fp, buf, sizeof buf, &n), EMU_LINE_OK);
    assert_string_equal(buf, "last");
    assert_int_equal(emu_read_line(fp, buf, sizeof buf, &n), EMU_LINE_EOF);
    fclose(fp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_hash_matches_sdk),
        cmocka_unit_test(test_hub_spec),
        cmocka_unit_test(test_batch_split_and_annotations),
        cmocka_unit_test(test_single_message_is_one_event),
        cmocka_unit_test(test_retention_and_seek),
        cmocka_unit_test(test_filters),
        cmocka_unit_test(test_read_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
