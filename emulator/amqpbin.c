#include "amqpbin.h"

#include <string.h>

static uint32_t be32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* Descriptors nest only in pathological input; bound the recursion. */
#define EMU_AMQP_MAX_DEPTH 8

static bool value_size(const unsigned char *p, size_t n, size_t *size, int depth)
{
    if (n < 1 || depth > EMU_AMQP_MAX_DEPTH) {
        return false;
    }
    unsigned c = p[0];
    size_t s;
    if (c == 0x00) {
        size_t d, v;
        if (!value_size(p + 1, n - 1, &d, depth + 1)) {
            return false;
        }
        if (!value_size(p + 1 + d, n - 1 - d, &v, depth + 1)) {
            return false;
        }
        *size = 1 + d + v;
        return true;
    }
    /* The high nibble of a constructor is its width class (AMQP 1.0 §1.6). */
    switch (c >> 4) {
    case 0x4:
        s = 1;
        break;
    case 0x5:
        s = 2;
        break;
    case 0x6:
        s = 3;
        break;
    case 0x7:
        s = 5;
        break;
    case 0x8:
        s = 9;
        break;
    case 0x9:
        s = 17;
        break;
    case 0xa:
    case 0xc:
    case 0xe:
        if (n < 2) {
            return false;
        }
        s = 2 + (size_t)p[1];
        break;
    case 0xb:
    case 0xd:
    case 0xf:
        if (n < 5) {
            return false;
        }
        s = 5 + (size_t)be32(p + 1);
        break;
    default:
        return false;
    }
    if (s > n) {
        return false;
    }
    *size = s;
    return true;
}

bool emu_amqp_value_size(const unsigned char *p, size_t n, size_t *size)
{
    return value_size(p, n, size, 0);
}

static const struct {
    const char *name;
    unsigned code;
} section_names[] = {
    {"amqp:header:list", EMU_SEC_HEADER},
    {"amqp:delivery-annotations:map", EMU_SEC_DELIVERY_ANN},
    {"amqp:message-annotations:map", EMU_SEC_MESSAGE_ANN},
    {"amqp:properties:list", EMU_SEC_PROPERTIES},
    {"amqp:application-properties:map", EMU_SEC_APP_PROPS},
    {"amqp:data:binary", EMU_SEC_DATA},
    {"amqp:amqp-sequence:list", EMU_SEC_SEQUENCE},
    {"amqp:amqp-value:*", EMU_SEC_VALUE},
    {"amqp:footer:map", EMU_SEC_FOOTER},
};

bool emu_amqp_section(const unsigned char *p, size_t n, size_t *size, unsigned *code,
                      size_t *value_at)
{
    size_t total, dsize;
    if (!emu_amqp_value_size(p, n, &total) || p[0] != 0x00) {
        return false;
    }
    if (!emu_amqp_value_size(p + 1, n - 1, &dsize)) {
        return false;
    }
    const unsigned char *d = p + 1;
    unsigned found = 0;
    if (d[0] == 0x53) {
        found = d[1];
    } else if (d[0] == 0x80) {
        uint64_t v = ((uint64_t)be32(d + 1) << 32) | be32(d + 5);
        found = v <= 0xff ? (unsigned)v : 0;
    } else if (d[0] == 0xa3 || d[0] == 0xb3) {
        const unsigned char *s;
        size_t len;
        if (emu_amqp_bytes(d, dsize, &s, &len)) {
            for (size_t i = 0; i < sizeof section_names / sizeof section_names[0]; i++) {
                if (strlen(section_names[i].name) == len &&
                    memcmp(section_names[i].name, s, len) == 0) {
                    found = section_names[i].code;
                }
            }
        }
    }
    *size = total;
    *code = (found >= EMU_SEC_HEADER && found <= EMU_SEC_FOOTER) ? found : 0;
    *value_at = 1 + dsize;
    return true;
}

bool emu_amqp_bytes(const unsigned char *p, size_t n, const unsigned char **out, size_t *len)
{
    size_t size;
    if (!emu_amqp_value_size(p, n, &size)) {
        return false;
    }
    switch (p[0]) {
    case 0xa0:
    case 0xa1:
    case 0xa3:
        *out = p + 2;
        *len = size - 2;
        return true;
    case 0xb0:
    case 0xb1:
    case 0xb3:
        *out = p + 5;
        *len = size - 5;
        return true;
    default:
        return false;
    }
}

bool emu_amqp_map(const unsigned char *p, size_t n, uint32_t *count, size_t *items_at)
{
    size_t size;
    if (!emu_amqp_value_size(p, n, &size)) {
        return false;
    }
    if (p[0] == 0xc1 && size >= 3) {
        *count = p[2];
        *items_at = 3;
        return true;
    }
    if (p[0] == 0xd1 && size >= 9) {
        *count = be32(p + 5);
        *items_at = 9;
        return true;
    }
    return false;
}

static void put_be(sw_buf *b, uint64_t v, int bytes)
{
    unsigned char tmp[8];
    for (int i = 0; i < bytes; i++) {
        tmp[i] = (unsigned char)(v >> (8 * (bytes - 1 - i)));
    }
    sw_buf_append(b, tmp, (size_t)bytes);
}

static void put_var_header(sw_buf *b, unsigned char code8, unsigned char code32, size_t len)
{
    if (len <= 0xff) {
        unsigned char h[2] = {code8, (unsigned char)len};
        sw_buf_append(b, h, 2);
    } else {
        sw_buf_append_char(b, (char)code32);
        put_be(b, len, 4);
    }
}

static void put_var(sw_buf *b, unsigned char code8, unsigned char code32, const void *p, size_t len)
{
    put_var_header(b, code8, code32, len);
    sw_buf_append(b, p, len);
}

void emu_amqp_put_binary_header(sw_buf *b, size_t len)
{
    put_var_header(b, 0xa0, 0xb0, len);
}

void emu_amqp_put_symbol(sw_buf *b, const char *s, size_t len)
{
    put_var(b, 0xa3, 0xb3, s, len);
}

void emu_amqp_put_string(sw_buf *b, const char *s, size_t len)
{
    put_var(b, 0xa1, 0xb1, s, len);
}

void emu_amqp_put_binary(sw_buf *b, const void *p, size_t len)
{
    put_var(b, 0xa0, 0xb0, p, len);
}

void emu_amqp_put_long(sw_buf *b, int64_t v)
{
    sw_buf_append_char(b, (char)0x81);
    put_be(b, (uint64_t)v, 8);
}

void emu_amqp_put_timestamp(sw_buf *b, int64_t ms)
{
    sw_buf_append_char(b, (char)0x83);
    put_be(b, (uint64_t)ms, 8);
}

void emu_amqp_put_descriptor(sw_buf *b, unsigned code)
{
    unsigned char h[3] = {0x00, 0x53, (unsigned char)code};
    sw_buf_append(b, h, 3);
}

void emu_amqp_put_map32_header(sw_buf *b, uint32_t count, size_t body_len)
{
    sw_buf_append_char(b, (char)0xd1);
    put_be(b, (uint64_t)body_len + 4, 4);
    put_be(b, count, 4);
}
