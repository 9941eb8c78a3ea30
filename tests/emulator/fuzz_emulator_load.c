/*
 * Fuzz target for --load files (emulator/load.c and the store's file-backed
 * events). The first byte picks plain (even) or timed (odd), and whether
 * events are keyed (bit 1); the rest is the file. Properties: a load either
 * succeeds or fails with a message naming a line; after a successful load
 * every indexed event reads back (pread + re-encoding) with the indexed size,
 * as one data section whose body holds no newline, and enqueued times never
 * decrease within a partition. The corpus in corpus-load/ runs as a unit test
 * through fuzz_main.c; with -DSW_FUZZ=ON (clang) this is a libFuzzer target.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "amqpbin.h"
#include "load.h"
#include "store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The data section's binary of an event; false when the event has none. */
static bool event_body(const emu_event *e, const unsigned char **body, size_t *len)
{
    for (size_t at = 0; at < e->len;) {
        size_t sz, vat;
        unsigned code;
        if (!emu_amqp_section(e->bytes + at, e->len - at, &sz, &code, &vat)) {
            return false;
        }
        if (code == EMU_SEC_DATA) {
            return emu_amqp_bytes(e->bytes + at + vat, sz - vat, body, len);
        }
        at += sz;
    }
    return false;
}

static void check_partition(const emu_partition *p)
{
    int64_t last_enq = INT64_MIN;
    for (int64_t seq = p->begin_seq; seq < p->next_seq; seq++) {
        const emu_event *e = emu_partition_get(p, seq);
        const unsigned char *body;
        size_t len;
        if (e == NULL || e->seq != seq || !event_body(e, &body, &len) || len == 0 ||
            memchr(body, '\n', len) != NULL || e->enqueued_ms < last_enq) {
            fprintf(stderr, "partition %s seq %lld: bad file-backed event\n", p->id,
                    (long long)seq);
            abort();
        }
        last_enq = e->enqueued_ms;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    int fd = memfd_create("fuzz-load", MFD_CLOEXEC);
    if (fd < 0 || write(fd, data + 1, size - 1) != (ssize_t)(size - 1)) {
        abort();
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    sw_err err;
    emu_store *s = emu_store_new(0, 0, &err);
    if (s == NULL || !emu_store_add_hub_spec(s, "f:3", &err)) {
        abort();
    }
    emu_load_options o = {.path = path,
                          .format = (data[0] & 1) ? EMU_LOAD_TIMED : EMU_LOAD_PLAIN,
                          .key = (data[0] & 2) ? "k" : NULL};
    long long events = 0;
    if (emu_load_file(s, &o, &events, &err)) {
        emu_hub *h = emu_store_hub_at(s, 0);
        int64_t total = 0;
        for (int i = 0; i < h->partition_count; i++) {
            check_partition(&h->partitions[i]);
            total += h->partitions[i].next_seq;
        }
        if (total != events) {
            abort();
        }
    } else if (strstr(err.msg, " line ") == NULL) {
        fprintf(stderr, "load error without a line: %s\n", err.msg);
        abort();
    }
    emu_store_free(s);
    close(fd);
    return 0;
}
