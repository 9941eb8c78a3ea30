/*
 * sw_buf: a growable byte buffer with an upper bound. Always NUL-terminated
 * (the terminator is not counted in len). Appends past `max` fail with
 * SW_E_TOO_LARGE and leave the buffer unchanged; a failed allocation fails
 * with SW_E_NOMEM. Once an append failed, `failed` stays set so callers may
 * do a series of appends and check once.
 *
 * Ownership: the caller owns the sw_buf and must sw_buf_free it.
 * Thread safety: none; one thread at a time.
 */
#ifndef SCANWATCH_BUF_H
#define SCANWATCH_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scanwatch/error.h"

typedef struct sw_buf {
    char *data;
    size_t len;
    size_t cap;
    size_t max; /* 0 = SIZE_MAX / 2 */
    bool failed;
    bool oom; /* the failure was an allocation, not the bound */
} sw_buf;

#define SW_BUF_INIT {0}

void sw_buf_init(sw_buf *b, size_t max);
void sw_buf_free(sw_buf *b);
/* Keeps the allocation; clears `failed`. */
void sw_buf_reset(sw_buf *b);
bool sw_buf_reserve(sw_buf *b, size_t extra);
bool sw_buf_append(sw_buf *b, const void *p, size_t n);
bool sw_buf_append_str(sw_buf *b, const char *s);
bool sw_buf_append_char(sw_buf *b, char c);
bool sw_buf_printf(sw_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s (n bytes) as a quoted JSON string; invalid UTF-8 becomes U+FFFD. */
bool sw_buf_append_json_str(sw_buf *b, const char *s, size_t n);
/* Appends a JSON string or `null` when s is NULL. */
bool sw_buf_append_json_cstr(sw_buf *b, const char *s);
/* Detaches the data (caller frees with free()); the buffer becomes empty. */
char *sw_buf_detach(sw_buf *b, size_t *len);
/* SW_E_TOO_LARGE / SW_E_NOMEM when `failed` is set, else ok. */
bool sw_buf_check(const sw_buf *b, sw_err *err);

#endif
