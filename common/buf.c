#include "scanwatch/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_MAX (SIZE_MAX / 2)

void sw_buf_init(sw_buf *b, size_t max)
{
    memset(b, 0, sizeof *b);
    b->max = max;
}

void sw_buf_free(sw_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

void sw_buf_reset(sw_buf *b)
{
    b->len = 0;
    b->failed = false;
    b->oom = false;
    if (b->data != NULL) {
        b->data[0] = '\0';
    }
}

static size_t limit(const sw_buf *b)
{
    return b->max == 0 ? DEFAULT_MAX : b->max;
}

bool sw_buf_reserve(sw_buf *b, size_t extra)
{
    if (b->failed) {
        return false;
    }
    if (extra > limit(b) || b->len > limit(b) - extra) {
        b->failed = true;
        return false;
    }
    size_t need = b->len + extra + 1;
    if (need <= b->cap) {
        return true;
    }
    size_t cap = b->cap < 64 ? 64 : b->cap;
    while (cap < need) {
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    }
    char *p = realloc(b->data, cap);
    if (p == NULL) {
        b->failed = true;
        b->oom = true;
        return false;
    }
    b->data = p;
    b->cap = cap;
    return true;
}

bool sw_buf_append(sw_buf *b, const void *p, size_t n)
{
    if (!sw_buf_reserve(b, n)) {
        return false;
    }
    if (n > 0) {
        memcpy(b->data + b->len, p, n);
    }
    b->len += n;
    b->data[b->len] = '\0';
    return true;
}

bool sw_buf_append_str(sw_buf *b, const char *s)
{
    return sw_buf_append(b, s, strlen(s));
}

bool sw_buf_append_char(sw_buf *b, char c)
{
    return sw_buf_append(b, &c, 1);
}

bool sw_buf_printf(sw_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !sw_buf_reserve(b, (size_t)n)) {
        b->failed = true;
        return false;
    }
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return true;
}

/* Length of the valid UTF-8 sequence starting at s (1..4), or 0 if invalid. */
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned int cp;
    if (c < 0x80) {
        return 1;
    } else if ((c & 0xE0) == 0xC0) {
        len = 2;
        cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3;
        cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (len > n) {
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    static const unsigned int min_cp[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        return 0;
    }
    return len;
}

bool sw_buf_append_json_str(sw_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    if (!sw_buf_reserve(b, n + 2)) {
        return false;
    }
    sw_buf_append_char(b, '"');
    size_t run = 0; /* start of the pending run of bytes that need no escaping */
    size_t i = 0;
    while (i < n) {
        unsigned char c = u[i];
        const char *esc = NULL;
        char ubuf[7];
        size_t adv = 1;
        if (c == '"') {
            esc = "\\\"";
        } else if (c == '\\') {
            esc = "\\\\";
        } else if (c == '\n') {
            esc = "\\n";
        } else if (c == '\r') {
            esc = "\\r";
        } else if (c == '\t') {
            esc = "\\t";
        } else if (c < 0x20 || c == 0x7F) {
            ubuf[0] = '\\';
            ubuf[1] = 'u';
            ubuf[2] = '0';
            ubuf[3] = '0';
            ubuf[4] = hex[c >> 4];
            ubuf[5] = hex[c & 15];
            ubuf[6] = '\0';
            esc = ubuf;
        } else if (c >= 0x80) {
            adv = utf8_seq_len(u + i, n - i);
            if (adv == 0) {
                esc = "\xEF\xBF\xBD"; /* U+FFFD */
                adv = 1;
            }
        }
        if (esc != NULL) {
            sw_buf_append(b, s + run, i - run);
            sw_buf_append_str(b, esc);
            run = i + adv;
        }
        i += adv;
    }
    sw_buf_append(b, s + run, n - run);
    return sw_buf_append_char(b, '"');
}

bool sw_buf_append_json_cstr(sw_buf *b, const char *s)
{
    if (s == NULL) {
        return sw_buf_append(b, "null", 4);
    }
    return sw_buf_append_json_str(b, s, strlen(s));
}

char *sw_buf_detach(sw_buf *b, size_t *len)
{
    char *p = b->data;
    if (len != NULL) {
        *len = b->len;
    }
    if (p == NULL) {
        p = calloc(1, 1);
    }
    size_t max = b->max;
    memset(b, 0, sizeof *b);
    b->max = max;
    return p;
}

bool sw_buf_check(const sw_buf *b, sw_err *err)
{
    if (!b->failed) {
        return true;
    }
    if (b->oom) {
        return sw_err_set(err, SW_E_NOMEM, "out of memory growing a buffer");
    }
    return sw_err_set(err, SW_E_TOO_LARGE, "buffer limit of %zu bytes reached", limit(b));
}
