#include "codec.h"

#include <string.h>

void sw_enc_u64(sw_buf *b, uint64_t v)
{
    unsigned char tmp[10];
    size_t n = 0;
    while (v >= 0x80) {
        tmp[n++] = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    tmp[n++] = (unsigned char)v;
    sw_buf_append(b, tmp, n);
}

void sw_enc_i64(sw_buf *b, int64_t v)
{
    sw_enc_u64(b, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

void sw_enc_bytes(sw_buf *b, const void *p, size_t n)
{
    sw_enc_u64(b, n);
    if (n > 0) {
        sw_buf_append(b, p, n);
    }
}

void sw_enc_str(sw_buf *b, const char *s)
{
    if (s == NULL) {
        sw_enc_u64(b, 0);
        return;
    }
    sw_enc_bytes(b, s, strlen(s) + 1);
}

void sw_enc_be64(unsigned char out[8], uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        out[i] = (unsigned char)(v & 0xff);
        v >>= 8;
    }
}

uint64_t sw_dec_be64(const unsigned char in[8])
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = (v << 8) | in[i];
    }
    return v;
}

uint64_t sw_dec_u64(sw_dec *d)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (d->p >= d->end) {
            d->bad = true;
            return 0;
        }
        unsigned char c = *d->p++;
        v |= (uint64_t)(c & 0x7f) << shift;
        if ((c & 0x80) == 0) {
            return v;
        }
    }
    d->bad = true;
    return 0;
}

int64_t sw_dec_i64(sw_dec *d)
{
    uint64_t u = sw_dec_u64(d);
    return (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
}

const void *sw_dec_bytes(sw_dec *d, size_t *n)
{
    uint64_t len = sw_dec_u64(d);
    if (d->bad || len > (uint64_t)(d->end - d->p)) {
        d->bad = true;
        *n = 0;
        return NULL;
    }
    const void *p = len > 0 ? d->p : NULL;
    d->p += len;
    *n = (size_t)len;
    return p;
}

const char *sw_dec_str(sw_dec *d)
{
    size_t n;
    const char *s = sw_dec_bytes(d, &n);
    if (d->bad) {
        return "";
    }
    if (n == 0) {
        return NULL;
    }
    if (s[n - 1] != '\0') {
        d->bad = true;
        return "";
    }
    return s;
}

void sw_enc_image_hash(sw_buf *b, const char *image)
{
    uint64_t h = 1469598103934665603ULL;
    for (const char *c = image; *c != '\0'; c++) {
        h = (h ^ (unsigned char)*c) * 1099511628211ULL;
    }
    unsigned char be[8];
    sw_enc_be64(be, h);
    sw_buf_append(b, be, 8);
}

void sw_key_set_prefix(sw_buf *b, const char *image)
{
    sw_buf_reset(b);
    sw_enc_image_hash(b, image);
    sw_buf_append(b, image, strlen(image) + 1);
}
