/*
 * Value and key encodings of the state store (internal to state/).
 *
 * Values are sequences of fields: unsigned varints, zigzag signed varints and
 * length-prefixed byte strings. A C string is stored with its terminating NUL
 * (length 0 = NULL), so a decoded string points straight into the value and is
 * usable as a C string while the value's memory lives.
 * Sequence keys are 8-byte big-endian so that byte order = numeric order.
 *
 * Thread safety: reentrant. Ownership: decoders borrow the input bytes.
 */
#ifndef SW_STATE_CODEC_H
#define SW_STATE_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scanwatch/buf.h"

void sw_enc_u64(sw_buf *b, uint64_t v);
void sw_enc_i64(sw_buf *b, int64_t v);
void sw_enc_bytes(sw_buf *b, const void *p, size_t n);
void sw_enc_str(sw_buf *b, const char *s);
void sw_enc_be64(unsigned char out[8], uint64_t v);
uint64_t sw_dec_be64(const unsigned char in[8]);

/*
 * Per-image key prefixes start with 8 bytes of a hash of the image key, so
 * that a fixed-length prefix bloom filter lets a prefix seek skip SST files
 * that hold nothing of that image.
 */
#define SW_KEY_HASH_LEN 8
void sw_enc_image_hash(sw_buf *b, const char *image);
/* The sets CF prefix of an image: hash8 image '\0' (replaces b's content). */
void sw_key_set_prefix(sw_buf *b, const char *image);

typedef struct sw_dec {
    const unsigned char *p;
    const unsigned char *end;
    bool bad; /* set on truncation or an unterminated string; sticky */
} sw_dec;

static inline sw_dec sw_dec_init(const void *p, size_t n)
{
    sw_dec d = {(const unsigned char *)p, (const unsigned char *)p + n, false};
    return d;
}
uint64_t sw_dec_u64(sw_dec *d);
int64_t sw_dec_i64(sw_dec *d);
/* Returns a pointer into the input (NULL when n is 0). */
const void *sw_dec_bytes(sw_dec *d, size_t *n);
/* NULL for a stored NULL; "" + bad set if malformed. */
const char *sw_dec_str(sw_dec *d);

#endif
