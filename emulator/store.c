#include "store.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "amqpbin.h"
#include "scanwatch/buf.h"
#include "scanwatch/log.h"
#include "scanwatch/swtime.h"

struct emu_store {
    emu_hub *hubs[EMU_MAX_HUBS];
    int hub_count;
    size_t retain_count;
    size_t retain_bytes;
    sw_buf scratch;  /* encoding of the event being appended */
    sw_buf ann_tail; /* sender's own message annotations, re-used per append */
    sw_buf ours;     /* the emulator's annotations, re-used per append */
    sw_buf msg;      /* a body wrapped in a data section, re-used per append / read */
    int file_fd;     /* the load file of file-backed events, -1 if none */
    char *file_key;  /* partition key of file-backed events, NULL if none */
    size_t file_key_len;
    emu_event *file_event; /* the last file-backed event read (scratch) */
};

emu_store *emu_store_new(size_t retain_count, size_t retain_bytes, sw_err *err)
{
    emu_store *s = calloc(1, sizeof *s);
    if (s == NULL) {
        sw_err_set(err, SW_E_NOMEM, "emulator store");
        return NULL;
    }
    s->retain_count = retain_count;
    s->retain_bytes = retain_bytes;
    /* An event never exceeds the max message size plus our annotations. */
    sw_buf_init(&s->scratch, 2 * EMU_MAX_MESSAGE_SIZE);
    sw_buf_init(&s->ann_tail, 2 * EMU_MAX_MESSAGE_SIZE);
    sw_buf_init(&s->ours, 4096);
    sw_buf_init(&s->msg, EMU_MAX_MESSAGE_SIZE + 16);
    s->file_fd = -1;
    return s;
}

static void slot_free(emu_slot *e)
{
    if (e->body_len == 0) {
        free(e->where.mem);
    }
}

static void partition_free(emu_partition *p)
{
    for (size_t i = 0; i < p->count; i++) {
        slot_free(&p->ring[(p->head + i) % p->cap]);
    }
    free(p->ring);
}

void emu_store_free(emu_store *s)
{
    if (s == NULL) {
        return;
    }
    for (int i = 0; i < s->hub_count; i++) {
        emu_hub *h = s->hubs[i];
        for (int j = 0; j < h->partition_count; j++) {
            partition_free(&h->partitions[j]);
        }
        free(h->partitions);
        free(h);
    }
    sw_buf_free(&s->scratch);
    sw_buf_free(&s->ann_tail);
    sw_buf_free(&s->ours);
    sw_buf_free(&s->msg);
    if (s->file_fd >= 0) {
        close(s->file_fd);
    }
    free(s->file_key);
    free(s->file_event);
    free(s);
}

static bool valid_name(const char *s, size_t n)
{
    if (n == 0 || n >= EMU_NAME_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(isalnum(c) || c == '-' || c == '_' || c == '.' || c == '$')) {
            return false;
        }
    }
    return true;
}

static bool add_group(emu_hub *h, const char *name, size_t n, sw_err *err)
{
    if (!valid_name(name, n)) {
        return sw_err_set(err, SW_E_CONFIG,
                          "hub %s: consumer group name '%.*s' must be 1-%d characters of "
                          "[A-Za-z0-9._$-]",
                          h->name, (int)(n > 64 ? 64 : n), name, EMU_NAME_MAX - 1);
    }
    if (emu_hub_group(h, name, n) >= 0) {
        return true;
    }
    if (h->group_count >= EMU_MAX_GROUPS) {
        return sw_err_set(err, SW_E_CONFIG, "hub %s: more than %d consumer groups", h->name,
                          EMU_MAX_GROUPS);
    }
    memcpy(h->groups[h->group_count], name, n);
    h->groups[h->group_count][n] = '\0';
    h->group_count++;
    return true;
}

bool emu_store_add_hub_spec(emu_store *s, const char *spec, sw_err *err)
{
    const char *c1 = strchr(spec, ':');
    if (c1 == NULL) {
        return sw_err_set(err, SW_E_CONFIG, "--hub '%s': expected NAME:PARTITIONS[:GROUP,GROUP...]",
                          spec);
    }
    size_t name_len = (size_t)(c1 - spec);
    if (!valid_name(spec, name_len)) {
        return sw_err_set(err, SW_E_CONFIG,
                          "--hub '%s': hub name must be 1-%d characters of "
                          "[A-Za-z0-9._$-]",
                          spec, EMU_NAME_MAX - 1);
    }
    if (emu_store_hub(s, spec, name_len) != NULL) {
        return sw_err_set(err, SW_E_CONFIG, "--hub '%s': hub defined twice", spec);
    }
    if (s->hub_count >= EMU_MAX_HUBS) {
        return sw_err_set(err, SW_E_CONFIG, "--hub: at most %d hubs", EMU_MAX_HUBS);
    }
    char *end = NULL;
    errno = 0;
    long n = strtol(c1 + 1, &end, 10);
    if (errno != 0 || end == c1 + 1 || (*end != '\0' && *end != ':') || n < 1 ||
        n > EMU_MAX_PARTITIONS) {
        return sw_err_set(err, SW_E_CONFIG, "--hub '%s': partition count must be 1-%d", spec,
                          EMU_MAX_PARTITIONS);
    }
    emu_hub *h = calloc(1, sizeof *h);
    if (h == NULL) {
        return sw_err_set(err, SW_E_NOMEM, "hub");
    }
    h->partitions = calloc((size_t)n, sizeof *h->partitions);
    if (h->partitions == NULL) {
        free(h);
        return sw_err_set(err, SW_E_NOMEM, "hub partitions");
    }
    memcpy(h->name, spec, name_len);
    h->store = s;
    h->partition_count = (int)n;
    h->created_ms = sw_time_now() / 1000;
    for (int i = 0; i < h->partition_count; i++) {
        emu_partition *p = &h->partitions[i];
        p->hub = h;
        p->index = i;
        snprintf(p->id, sizeof p->id, "%d", i);
        p->last_offset = -1;
    }
    bool ok = add_group(h, "$Default", 8, err);
    if (ok && *end == ':') {
        const char *g = end + 1;
        while (ok) {
            const char *comma = strchr(g, ',');
            size_t gl = comma != NULL ? (size_t)(comma - g) : strlen(g);
            ok = add_group(h, g, gl, err);
            if (comma == NULL) {
                break;
            }
            g = comma + 1;
        }
    }
    if (!ok) {
        free(h->partitions);
        free(h);
        return false;
    }
    s->hubs[s->hub_count++] = h;
    return true;
}

int emu_store_hub_count(const emu_store *s)
{
    return s->hub_count;
}

emu_hub *emu_store_hub_at(emu_store *s, int i)
{
    return (i >= 0 && i < s->hub_count) ? s->hubs[i] : NULL;
}

emu_hub *emu_store_hub(emu_store *s, const char *name, size_t name_len)
{
    for (int i = 0; i < s->hub_count; i++) {
        if (strlen(s->hubs[i]->name) == name_len && memcmp(s->hubs[i]->name, name, name_len) == 0) {
            return s->hubs[i];
        }
    }
    return NULL;
}

emu_partition *emu_hub_partition(emu_hub *h, const char *id, size_t id_len)
{
    if (id_len == 0 || id_len > 5 || (id_len > 1 && id[0] == '0')) {
        return NULL;
    }
    int v = 0;
    for (size_t i = 0; i < id_len; i++) {
        if (id[i] < '0' || id[i] > '9') {
            return NULL;
        }
        v = v * 10 + (id[i] - '0');
    }
    return v < h->partition_count ? &h->partitions[v] : NULL;
}

int emu_hub_group(const emu_hub *h, const char *name, size_t name_len)
{
    for (int i = 0; i < h->group_count; i++) {
        if (strlen(h->groups[i]) == name_len && strncasecmp(h->groups[i], name, name_len) == 0) {
            return i;
        }
    }
    return -1;
}

/* Bob Jenkins' lookup3 hashlittle2 (public domain), as the service uses it. */
#define ROT(x, k) (((x) << (k)) | ((x) >> (32 - (k))))

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static void lookup3(const unsigned char *k, size_t length, uint32_t *pc, uint32_t *pb)
{
    uint32_t a, b, c;
    a = b = c = 0xdeadbeefu + (uint32_t)length;
    while (length > 12) {
        a += le32(k);
        b += le32(k + 4);
        c += le32(k + 8);
        a -= c, a ^= ROT(c, 4), c += b;
        b -= a, b ^= ROT(a, 6), a += c;
        c -= b, c ^= ROT(b, 8), b += a;
        a -= c, a ^= ROT(c, 16), c += b;
        b -= a, b ^= ROT(a, 19), a += c;
        c -= b, c ^= ROT(b, 4), b += a;
        length -= 12;
        k += 12;
    }
    if (length == 0) {
        *pc = c;
        *pb = b;
        return;
    }
    unsigned char tail[12] = {0};
    memcpy(tail, k, length);
    a += le32(tail);
    b += le32(tail + 4);
    c += le32(tail + 8);
    c ^= b, c -= ROT(b, 14);
    a ^= c, a -= ROT(c, 11);
    b ^= a, b -= ROT(a, 25);
    c ^= b, c -= ROT(b, 16);
    a ^= c, a -= ROT(c, 4);
    b ^= a, b -= ROT(a, 14);
    c ^= b, c -= ROT(b, 24);
    *pc = c;
    *pb = b;
}

int emu_partition_for_key(const char *key, size_t key_len, int partition_count)
{
    uint32_t c, b;
    lookup3((const unsigned char *)key, key_len, &c, &b);
    int16_t h = (int16_t)(uint16_t)((c ^ b) & 0xffffu);
    int r = (int)h % partition_count;
    return r < 0 ? -r : r;
}

emu_partition *emu_hub_route(emu_hub *h, const char *key, size_t key_len)
{
    if (key != NULL) {
        return &h->partitions[emu_partition_for_key(key, key_len, h->partition_count)];
    }
    unsigned i = h->rr++ % (unsigned)h->partition_count;
    return &h->partitions[i];
}

static void evict(emu_store *s, emu_partition *p)
{
    while (p->count > 0 && ((s->retain_count > 0 && p->count > s->retain_count) ||
                            (s->retain_bytes > 0 && p->bytes > s->retain_bytes))) {
        emu_slot *e = &p->ring[p->head];
        p->bytes -= e->len;
        slot_free(e);
        p->head = (p->head + 1) % p->cap;
        p->count--;
        p->begin_seq++;
    }
}

static bool ring_grow(emu_partition *p, sw_err *err)
{
    /* x1.5, not x2: a 10M-event load file's index is most of the emulator's RAM. */
    size_t ncap = p->cap < 1024 ? 1024 : p->cap + p->cap / 2;
    if (ncap > SIZE_MAX / sizeof *p->ring) {
        return sw_err_set(err, SW_E_NOMEM, "partition %s ring of %zu events", p->id, ncap);
    }
    if (p->head == 0) {
        /* Nothing wraps (always so while loading): realloc can remap instead of copying. */
        emu_slot *nr = realloc(p->ring, ncap * sizeof *nr);
        if (nr == NULL) {
            return sw_err_set(err, SW_E_NOMEM, "partition %s ring of %zu events", p->id, ncap);
        }
        p->ring = nr;
        p->cap = ncap;
        return true;
    }
    emu_slot *nr = malloc(ncap * sizeof *nr);
    if (nr == NULL) {
        return sw_err_set(err, SW_E_NOMEM, "partition %s ring of %zu events", p->id, ncap);
    }
    for (size_t i = 0; i < p->count; i++) {
        nr[i] = p->ring[(p->head + i) % p->cap];
    }
    free(p->ring);
    p->ring = nr;
    p->cap = ncap;
    p->head = 0;
    return true;
}

/* Appends the slot of the next event (its offset and seq are the partition's next ones). */
static bool ring_push(emu_store *s, emu_partition *p, const emu_slot *e, sw_err *err)
{
    if (p->count == p->cap && !ring_grow(p, err)) {
        return false;
    }
    p->ring[(p->head + p->count) % p->cap] = *e;
    p->count++;
    p->bytes += e->len;
    p->last_offset = e->offset;
    p->last_enq_ms = e->enqueued_ms;
    p->next_seq++;
    p->next_offset += (int64_t)e->len;
    evict(s, p);
    return true;
}

static bool sym_is(const unsigned char *p, size_t n, const char *name)
{
    const unsigned char *s;
    size_t len;
    if (n < 1 || (p[0] != 0xa3 && p[0] != 0xb3) || !emu_amqp_bytes(p, n, &s, &len)) {
        return false;
    }
    return len == strlen(name) && memcmp(s, name, len) == 0;
}

/* The annotations the emulator sets; a sender's own values for them are dropped. */
static bool reserved_key(const unsigned char *p, size_t n)
{
    return sym_is(p, n, "x-opt-sequence-number") || sym_is(p, n, "x-opt-offset") ||
           sym_is(p, n, "x-opt-enqueued-time");
}

/*
 * Copies the sender's message-annotation entries (except reserved keys) into
 * s->ann_tail; reports whether one was x-opt-partition-key.
 */
static bool copy_annotations(emu_store *s, const unsigned char *v, size_t n, uint32_t *kept,
                             bool *has_pkey, sw_err *err)
{
    uint32_t count;
    size_t at;
    if (!emu_amqp_map(v, n, &count, &at) || count % 2 != 0) {
        return sw_err_set(err, SW_E_PARSE, "message-annotations is not a map");
    }
    for (uint32_t i = 0; i < count; i += 2) {
        size_t ks, vs;
        if (!emu_amqp_value_size(v + at, n - at, &ks) ||
            !emu_amqp_value_size(v + at + ks, n - at - ks, &vs)) {
            return sw_err_set(err, SW_E_PARSE, "truncated message-annotations");
        }
        if (!reserved_key(v + at, ks)) {
            if (sym_is(v + at, ks, "x-opt-partition-key")) {
                *has_pkey = true;
            }
            sw_buf_append(&s->ann_tail, v + at, ks + vs);
            *kept += 2;
        }
        at += ks + vs;
    }
    return true;
}

/*
 * Appends the message-annotations section to b: ours (seq, offset, enqueued
 * time, and pkey unless NULL) then the sender's kept entries in s->ann_tail.
 */
static void put_annotations(emu_store *s, sw_buf *b, int64_t seq, int64_t offset, int64_t enq_ms,
                            const char *pkey, size_t pkey_len, uint32_t kept)
{
    char off[24];
    int off_len = snprintf(off, sizeof off, "%lld", (long long)offset);
    sw_buf *ours = &s->ours;
    sw_buf_reset(ours);
    emu_amqp_put_symbol(ours, "x-opt-sequence-number", 21);
    emu_amqp_put_long(ours, seq);
    emu_amqp_put_symbol(ours, "x-opt-offset", 12);
    emu_amqp_put_string(ours, off, (size_t)off_len);
    emu_amqp_put_symbol(ours, "x-opt-enqueued-time", 19);
    emu_amqp_put_timestamp(ours, enq_ms);
    uint32_t count = kept + 6;
    if (pkey != NULL) {
        emu_amqp_put_symbol(ours, "x-opt-partition-key", 19);
        emu_amqp_put_string(ours, pkey, pkey_len);
        count += 2;
    }
    emu_amqp_put_descriptor(b, EMU_SEC_MESSAGE_ANN);
    emu_amqp_put_map32_header(b, count, ours->len + s->ann_tail.len);
    sw_buf_append(b, ours->data, ours->len);
    sw_buf_append(b, s->ann_tail.data, s->ann_tail.len);
}

/* Encodes the event with sequence number seq at offset into s->scratch. */
static bool encode_event(emu_store *s, int64_t seq, int64_t offset, const unsigned char *msg,
                         size_t len, const char *pkey, size_t pkey_len, int64_t enq_ms, sw_err *err)
{
    sw_buf_reset(&s->scratch);
    sw_buf_reset(&s->ann_tail);
    uint32_t kept = 0;
    bool has_pkey = false;
    size_t header_len = 0;
    /* First pass: the sender's annotations, and whether a header leads. */
    for (size_t at = 0; at < len;) {
        size_t size, vat;
        unsigned code;
        if (!emu_amqp_section(msg + at, len - at, &size, &code, &vat)) {
            return sw_err_set(err, SW_E_PARSE, "malformed AMQP section at byte %zu", at);
        }
        if (code == EMU_SEC_HEADER && at == 0) {
            header_len = size;
        }
        if (code == EMU_SEC_MESSAGE_ANN &&
            !copy_annotations(s, msg + at + vat, size - vat, &kept, &has_pkey, err)) {
            return false;
        }
        at += size;
    }
    sw_buf *b = &s->scratch;
    sw_buf_append(b, msg, header_len);
    put_annotations(s, b, seq, offset, enq_ms, has_pkey ? NULL : pkey, pkey_len, kept);
    for (size_t at = header_len; at < len;) {
        size_t size, vat;
        unsigned code;
        emu_amqp_section(msg + at, len - at, &size, &code, &vat);
        if (code != EMU_SEC_DELIVERY_ANN && code != EMU_SEC_MESSAGE_ANN) {
            sw_buf_append(b, msg + at, size);
        }
        at += size;
    }
    return sw_buf_check(b, err) && sw_buf_check(&s->ann_tail, err) && sw_buf_check(&s->ours, err);
}

/*
 * Encodes a file-backed event into s->scratch up to the body: annotations and
 * the data section's header. What encode_event makes of the body wrapped in a
 * data section is exactly this followed by the body's bytes.
 */
static bool encode_file_head(emu_store *s, int64_t seq, int64_t offset, int64_t enq_ms,
                             size_t body_len, sw_err *err)
{
    sw_buf_reset(&s->scratch);
    sw_buf_reset(&s->ann_tail);
    put_annotations(s, &s->scratch, seq, offset, enq_ms, s->file_key, s->file_key_len, 0);
    emu_amqp_put_descriptor(&s->scratch, EMU_SEC_DATA);
    emu_amqp_put_binary_header(&s->scratch, body_len);
    return sw_buf_check(&s->scratch, err) && sw_buf_check(&s->ours, err);
}

bool emu_partition_append(emu_store *s, emu_partition *p, const unsigned char *msg, size_t len,
                          const char *pkey, size_t pkey_len, int64_t now_ms, sw_err *err)
{
    int64_t enq = now_ms < p->last_enq_ms ? p->last_enq_ms : now_ms;
    if (!encode_event(s, p->next_seq, p->next_offset, msg, len, pkey, pkey_len, enq, err)) {
        return false;
    }
    emu_event *e = malloc(sizeof *e + s->scratch.len);
    if (e == NULL) {
        return sw_err_set(err, SW_E_NOMEM, "event of %zu bytes", s->scratch.len);
    }
    e->seq = p->next_seq;
    e->offset = p->next_offset;
    e->enqueued_ms = enq;
    e->len = s->scratch.len;
    memcpy(e->bytes, s->scratch.data, e->len);
    emu_slot slot = {
        .offset = e->offset, .enqueued_ms = enq, .where.mem = e, .len = (uint32_t)e->len};
    if (!ring_push(s, p, &slot, err)) {
        free(e);
        return false;
    }
    return true;
}

/* Wraps body in one data section in s->msg. */
static bool body_message(emu_store *s, const void *body, size_t len, sw_err *err)
{
    sw_buf_reset(&s->msg);
    emu_amqp_put_descriptor(&s->msg, EMU_SEC_DATA);
    emu_amqp_put_binary(&s->msg, body, len);
    return sw_buf_check(&s->msg, err);
}

bool emu_partition_append_body(emu_store *s, emu_partition *p, const void *body, size_t len,
                               const char *pkey, size_t pkey_len, int64_t now_ms, sw_err *err)
{
    return body_message(s, body, len, err) &&
           emu_partition_append(s, p, (const unsigned char *)s->msg.data, s->msg.len, pkey,
                                pkey_len, now_ms, err);
}

bool emu_store_set_file(emu_store *s, int fd, const char *pkey, size_t pkey_len, sw_err *err)
{
    if (s->file_fd >= 0) {
        close(fd);
        return sw_err_set(err, SW_E_CONFIG, "the emulator store already has a load file");
    }
    s->file_fd = fd;
    /* An encoded event never exceeds the scratch buffer's bound. */
    s->file_event = malloc(sizeof *s->file_event + 2 * EMU_MAX_MESSAGE_SIZE);
    if (pkey != NULL) {
        s->file_key = malloc(pkey_len + 1);
        if (s->file_key != NULL) {
            memcpy(s->file_key, pkey, pkey_len);
            s->file_key[pkey_len] = '\0';
            s->file_key_len = pkey_len;
        }
    }
    if (s->file_event == NULL || (pkey != NULL && s->file_key == NULL)) {
        return sw_err_set(err, SW_E_NOMEM, "load file buffers");
    }
    return true;
}

bool emu_partition_append_file(emu_store *s, emu_partition *p, int64_t file_pos, size_t len,
                               int64_t enq_ms, sw_err *err)
{
    if (s->file_fd < 0) {
        return sw_err_set(err, SW_E_CONFIG, "file-backed event without a load file");
    }
    if (len == 0 || len > EMU_MAX_MESSAGE_SIZE) {
        return sw_err_set(err, SW_E_TOO_LARGE, "file-backed body of %zu bytes (1..%d)", len,
                          EMU_MAX_MESSAGE_SIZE);
    }
    int64_t enq = enq_ms < p->last_enq_ms ? p->last_enq_ms : enq_ms;
    /* The encoded size fixes the offsets of the events after this one. */
    if (!encode_file_head(s, p->next_seq, p->next_offset, enq, len, err)) {
        return false;
    }
    emu_slot slot = {.offset = p->next_offset,
                     .enqueued_ms = enq,
                     .where.file_pos = file_pos,
                     .len = (uint32_t)(s->scratch.len + len),
                     .body_len = (uint32_t)len};
    return ring_push(s, p, &slot, err);
}

/* Encodes a file-backed event into s->file_event, the body read straight into place. */
static const emu_event *read_file_event(emu_store *s, const emu_partition *p, int64_t seq,
                                        const emu_slot *e)
{
    sw_err err;
    sw_err_clear(&err);
    emu_event *ev = s->file_event;
    bool ok = encode_file_head(s, seq, e->offset, e->enqueued_ms, e->body_len, &err);
    size_t head = s->scratch.len;
    if (ok && head + e->body_len != e->len) {
        ok = sw_err_set(&err, SW_E_IO, "encoded size %zu differs from the indexed %u",
                        head + e->body_len, e->len);
    }
    size_t got = 0;
    while (ok && got < e->body_len) {
        ssize_t n = pread(s->file_fd, ev->bytes + head + got, e->body_len - got,
                          (off_t)(e->where.file_pos + (int64_t)got));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            sw_err_set(&err, SW_E_IO, "reading %u bytes at %lld: %s", e->body_len,
                       (long long)e->where.file_pos,
                       n == 0 ? "end of file (the file shrank since it was loaded)"
                              : strerror(errno));
            ok = false;
            break;
        }
        got += (size_t)n;
    }
    if (!ok) {
        SW_LOG(SW_LOG_ERROR, "cannot read a loaded event", SW_LF_STR("hub", p->hub->name),
               SW_LF_STR("partition", p->id), SW_LF_INT("seq", seq), SW_LF_STR("error", err.msg));
        return NULL;
    }
    memcpy(ev->bytes, s->scratch.data, head);
    ev->seq = seq;
    ev->offset = e->offset;
    ev->enqueued_ms = e->enqueued_ms;
    ev->len = e->len;
    return ev;
}

const emu_event *emu_partition_get(const emu_partition *p, int64_t seq)
{
    if (seq < p->begin_seq || seq >= p->next_seq) {
        return NULL;
    }
    const emu_slot *e = &p->ring[(p->head + (size_t)(seq - p->begin_seq)) % p->cap];
    if (e->body_len == 0) {
        return e->where.mem;
    }
    return read_file_event(p->hub->store, p, seq, e);
}

/* Events are ordered by offset and by enqueued time: binary search on either. */
static int64_t seek(const emu_partition *p, int64_t value, bool inclusive, bool by_time)
{
    size_t lo = 0, hi = p->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const emu_slot *e = &p->ring[(p->head + mid) % p->cap];
        int64_t k = by_time ? e->enqueued_ms : e->offset;
        bool after = inclusive ? k >= value : k > value;
        if (after) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return p->begin_seq + (int64_t)lo;
}

int64_t emu_partition_seek_offset(const emu_partition *p, int64_t value, bool inclusive)
{
    return seek(p, value, inclusive, false);
}

int64_t emu_partition_seek_time(const emu_partition *p, int64_t ms, bool inclusive)
{
    return seek(p, ms, inclusive, true);
}

/* A data section holding an encoded message starts with a section descriptor. */
static bool looks_like_message(const unsigned char *p, size_t n)
{
    return n >= 3 && p[0] == 0x00 && p[1] == 0x53 && p[2] >= EMU_SEC_HEADER &&
           p[2] <= EMU_SEC_FOOTER;
}

bool emu_split_message(const unsigned char *msg, size_t len, const char **pkey, size_t *pkey_len,
                       emu_event_fn fn, void *ctx, sw_err *err)
{
    size_t data_sections = 0;
    bool all_messages = true;
    *pkey = NULL;
    *pkey_len = 0;
    for (size_t at = 0; at < len;) {
        size_t size, vat;
        unsigned code;
        if (!emu_amqp_section(msg + at, len - at, &size, &code, &vat)) {
            return sw_err_set(err, SW_E_PARSE, "malformed AMQP section at byte %zu", at);
        }
        const unsigned char *v = msg + at + vat;
        size_t vn = size - vat;
        if (code == EMU_SEC_DATA) {
            const unsigned char *bin;
            size_t bl;
            if (!emu_amqp_bytes(v, vn, &bin, &bl)) {
                return sw_err_set(err, SW_E_PARSE, "data section is not binary");
            }
            data_sections++;
            all_messages = all_messages && looks_like_message(bin, bl);
        } else if (code == EMU_SEC_MESSAGE_ANN) {
            uint32_t count;
            size_t it;
            if (emu_amqp_map(v, vn, &count, &it)) {
                for (uint32_t i = 0; i + 1 < count; i += 2) {
                    size_t ks, vs;
                    if (!emu_amqp_value_size(v + it, vn - it, &ks) ||
                        !emu_amqp_value_size(v + it + ks, vn - it - ks, &vs)) {
                        break;
                    }
                    const unsigned char *s;
                    size_t sl;
                    if (sym_is(v + it, ks, "x-opt-partition-key") &&
                        emu_amqp_bytes(v + it + ks, vs, &s, &sl) && (v[it + ks] & 0x0f) == 1) {
                        *pkey = (const char *)s;
                        *pkey_len = sl;
                    }
                    it += ks + vs;
                }
            }
        }
        at += size;
    }
    if (data_sections == 0 || !all_messages) {
        return fn(ctx, msg, len, err);
    }
    for (size_t at = 0; at < len;) {
        size_t size, vat;
        unsigned code;
        emu_amqp_section(msg + at, len - at, &size, &code, &vat);
        if (code == EMU_SEC_DATA) {
            const unsigned char *bin;
            size_t bl;
            emu_amqp_bytes(msg + at + vat, size - vat, &bin, &bl);
            if (!fn(ctx, bin, bl, err)) {
                return false;
            }
        }
        at += size;
    }
    return true;
}
