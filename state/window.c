#include "window.h"

#include <string.h>

#include "codec.h"

void sw_win_meta_key(sw_buf *out, const char *image)
{
    sw_buf_reset(out);
    sw_buf_append_char(out, SW_WIN_META);
    sw_buf_append_str(out, image);
}

void sw_win_rec_prefix(sw_buf *out, const char *image)
{
    sw_buf_reset(out);
    sw_buf_append_char(out, SW_WIN_REC);
    sw_enc_image_hash(out, image);
    sw_buf_append(out, image, strlen(image) + 1);
}

void sw_win_rec_key(sw_buf *out, const char *image, uint64_t idx)
{
    unsigned char be[8];
    sw_win_rec_prefix(out, image);
    sw_enc_be64(be, idx);
    sw_buf_append(out, be, 8);
}

void sw_win_meta_encode(const sw_win_meta *m, sw_buf *out)
{
    sw_enc_str(out, m->image);
    sw_enc_str(out, m->repository);
    sw_enc_i64(out, m->min_scan);
    sw_enc_i64(out, m->max_scan);
    sw_enc_i64(out, m->last_event);
    sw_enc_u64(out, m->n_records);
    sw_enc_u64(out, m->n_chunks);
    sw_enc_u64(out, (m->all_snapshot ? 1u : 0u) | (m->has_clean ? 2u : 0u) | (m->capped ? 4u : 0u));
    sw_enc_u64(out, m->n_tags);
    for (size_t i = 0; i < m->n_tags; i++) {
        sw_enc_str(out, m->tags[i]);
    }
    sw_enc_str(out, m->first_partition);
    sw_enc_str(out, m->first_offset);
    sw_enc_str(out, m->last_partition);
    sw_enc_str(out, m->last_offset);
}

bool sw_win_meta_decode(const void *v, size_t n, sw_win_meta *m)
{
    sw_dec d = sw_dec_init(v, n);
    memset(m, 0, sizeof *m);
    m->image = sw_dec_str(&d);
    m->repository = sw_dec_str(&d);
    m->min_scan = sw_dec_i64(&d);
    m->max_scan = sw_dec_i64(&d);
    m->last_event = sw_dec_i64(&d);
    m->n_records = sw_dec_u64(&d);
    m->n_chunks = sw_dec_u64(&d);
    uint64_t flags = sw_dec_u64(&d);
    m->all_snapshot = (flags & 1u) != 0;
    m->has_clean = (flags & 2u) != 0;
    m->capped = (flags & 4u) != 0;
    uint64_t nt = sw_dec_u64(&d);
    for (uint64_t i = 0; i < nt && !d.bad; i++) {
        const char *t = sw_dec_str(&d);
        if (t != NULL && m->n_tags < SW_WIN_MAX_TAGS) {
            m->tags[m->n_tags++] = t;
        }
    }
    m->first_partition = sw_dec_str(&d);
    m->first_offset = sw_dec_str(&d);
    m->last_partition = sw_dec_str(&d);
    m->last_offset = sw_dec_str(&d);
    return !d.bad && m->image != NULL;
}

void sw_win_rec_encode(const sw_win_rec *r, sw_buf *out)
{
    sw_enc_i64(out, r->scan_time);
    sw_enc_u64(out, (r->resolved ? 1u : 0u) | (r->snapshot ? 2u : 0u) |
                        (r->clean_marker ? 4u : 0u) | (r->omitted ? 8u : 0u));
    sw_enc_str(out, r->key);
    sw_enc_bytes(out, r->omitted ? NULL : r->json, r->omitted ? 0 : r->json_len);
    sw_enc_u64(out, r->hash);
}

bool sw_win_rec_next(const unsigned char **p, const unsigned char *end, sw_win_rec *r)
{
    if (*p == NULL || *p >= end) {
        return false;
    }
    sw_dec d = sw_dec_init(*p, (size_t)(end - *p));
    r->scan_time = sw_dec_i64(&d);
    uint64_t flags = sw_dec_u64(&d);
    r->resolved = (flags & 1u) != 0;
    r->snapshot = (flags & 2u) != 0;
    r->clean_marker = (flags & 4u) != 0;
    r->omitted = (flags & 8u) != 0;
    r->key = sw_dec_str(&d);
    r->json = sw_dec_bytes(&d, &r->json_len);
    r->hash = sw_dec_u64(&d);
    if (d.bad) {
        return false;
    }
    *p = d.p;
    return true;
}
