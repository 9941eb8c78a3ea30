/*
 * AMQP 1.0 message section decoder (types: AMQP 1.0 part 1 §1.6; sections:
 * part 3 §3.2). Only what the consumer needs is interpreted; every other
 * value is skipped by its encoded width, with bounds checked at each step.
 */
#include "message.h"

#include <string.h>

typedef struct rd {
    const unsigned char *p;
    const unsigned char *end;
} rd;

static bool need(const rd *r, size_t n)
{
    return (size_t)(r->end - r->p) >= n;
}

static uint32_t be32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static uint64_t be64(const unsigned char *p)
{
    return ((uint64_t)be32(p) << 32) | be32(p + 4);
}

/* Skips one encoded value (with its constructor) at r->p. */
static bool skip_value(rd *r, int depth)
{
    if (depth > 32 || !need(r, 1)) {
        return false;
    }
    unsigned char c = *r->p++;
    if (c == 0x00) { /* described: descriptor, then value */
        return skip_value(r, depth + 1) && skip_value(r, depth + 1);
    }
    size_t n;
    switch (c >> 4) {
    case 0x4:
        n = 0;
        break;
    case 0x5:
        n = 1;
        break;
    case 0x6:
        n = 2;
        break;
    case 0x7:
        n = 4;
        break;
    case 0x8:
        n = 8;
        break;
    case 0x9:
        n = 16;
        break;
    case 0xa:
    case 0xc:
    case 0xe:
        if (!need(r, 1)) {
            return false;
        }
        n = 1 + (size_t)r->p[0];
        break;
    case 0xb:
    case 0xd:
    case 0xf:
        if (!need(r, 4)) {
            return false;
        }
        n = 4 + (size_t)be32(r->p);
        break;
    default:
        return false;
    }
    if (!need(r, n)) {
        return false;
    }
    r->p += n;
    return true;
}

/* Reads a string/symbol/binary value without copying. */
static bool read_bytes(rd *r, const unsigned char **out, size_t *len)
{
    if (!need(r, 1)) {
        return false;
    }
    unsigned char c = *r->p;
    size_t n;
    if (c == 0xa0 || c == 0xa1 || c == 0xa3) {
        if (!need(r, 2)) {
            return false;
        }
        n = r->p[1];
        r->p += 2;
    } else if (c == 0xb0 || c == 0xb1 || c == 0xb3) {
        if (!need(r, 5)) {
            return false;
        }
        n = be32(r->p + 1);
        r->p += 5;
    } else {
        return false;
    }
    if (!need(r, n)) {
        return false;
    }
    *out = r->p;
    *len = n;
    r->p += n;
    return true;
}

/* Reads any integer or timestamp encoding as int64. */
static bool read_int(rd *r, int64_t *out)
{
    if (!need(r, 1)) {
        return false;
    }
    unsigned char c = *r->p;
    size_t w;
    switch (c) {
    case 0x43:
    case 0x44:
        *out = 0;
        r->p++;
        return true;
    case 0x50:
    case 0x52:
    case 0x53:
        w = 1;
        break;
    case 0x51:
    case 0x54:
    case 0x55:
        w = 1;
        break;
    case 0x60:
    case 0x61:
        w = 2;
        break;
    case 0x70:
    case 0x71:
        w = 4;
        break;
    case 0x80:
    case 0x81:
    case 0x83:
        w = 8;
        break;
    default:
        return false;
    }
    if (!need(r, 1 + w)) {
        return false;
    }
    const unsigned char *v = r->p + 1;
    bool is_signed =
        c == 0x51 || c == 0x54 || c == 0x55 || c == 0x61 || c == 0x71 || c == 0x81 || c == 0x83;
    uint64_t u = w == 1   ? v[0]
                 : w == 2 ? (uint64_t)((v[0] << 8) | v[1])
                 : w == 4 ? be32(v)
                          : be64(v);
    if (is_signed && w < 8 && (u >> (w * 8 - 1)) != 0) {
        u |= ~(uint64_t)0 << (w * 8); /* sign-extend */
    }
    if (!is_signed && u > (uint64_t)INT64_MAX) {
        return false;
    }
    *out = (int64_t)u;
    r->p += 1 + w;
    return true;
}

enum {
    SEC_HEADER = 0x70,
    SEC_DELIVERY_ANN = 0x71,
    SEC_MESSAGE_ANN = 0x72,
    SEC_PROPERTIES = 0x73,
    SEC_APP_PROPS = 0x74,
    SEC_DATA = 0x75,
    SEC_SEQUENCE = 0x76,
    SEC_VALUE = 0x77,
    SEC_FOOTER = 0x78,
};

static const char *const section_names[] = {
    "amqp:header:list",
    "amqp:delivery-annotations:map",
    "amqp:message-annotations:map",
    "amqp:properties:list",
    "amqp:application-properties:map",
    "amqp:data:binary",
    "amqp:amqp-sequence:list",
    "amqp:amqp-value:*",
    "amqp:footer:map",
};

/* Reads a section descriptor (after the 0x00): numeric or symbolic. */
static bool read_descriptor(rd *r, uint64_t *code)
{
    if (need(r, 2) && r->p[0] == 0x53) {
        *code = r->p[1];
        r->p += 2;
        return true;
    }
    if (need(r, 9) && r->p[0] == 0x80) {
        *code = be64(r->p + 1);
        r->p += 9;
        return true;
    }
    const unsigned char *s;
    size_t n;
    if (!read_bytes(r, &s, &n)) {
        return false;
    }
    for (size_t i = 0; i < sizeof section_names / sizeof section_names[0]; i++) {
        if (strlen(section_names[i]) == n && memcmp(section_names[i], s, n) == 0) {
            *code = SEC_HEADER + i;
            return true;
        }
    }
    *code = 0; /* unknown section: skipped */
    return true;
}

/* want is a string literal: its length is known at compile time */
#define key_is(k, n, want) ((n) == sizeof(want) - 1 && memcmp((k), (want), (n)) == 0)

/* Map header: returns the number of entries (keys + values) and sets r->end to the map's end. */
static bool enter_map(rd *r, uint32_t *count, const unsigned char **map_end)
{
    if (!need(r, 1)) {
        return false;
    }
    unsigned char c = *r->p;
    if (c == 0xc1) {
        if (!need(r, 3) || r->p[1] < 1 || !need(r, 2 + (size_t)r->p[1])) {
            return false;
        }
        *map_end = r->p + 2 + r->p[1];
        *count = r->p[2];
        r->p += 3;
    } else if (c == 0xd1) {
        if (!need(r, 9)) {
            return false;
        }
        uint32_t size = be32(r->p + 1);
        if (size < 4 || !need(r, 5 + (size_t)size)) {
            return false;
        }
        *map_end = r->p + 5 + size;
        *count = be32(r->p + 5);
        r->p += 9;
    } else if (c == 0x40) { /* null map */
        r->p++;
        *count = 0;
        *map_end = r->p;
    } else {
        return false;
    }
    return (*count % 2) == 0;
}

static bool parse_annotations(rd *r, sw_amqp_msg *m)
{
    uint32_t count;
    const unsigned char *map_end;
    if (!enter_map(r, &count, &map_end)) {
        return false;
    }
    rd in = {r->p, map_end};
    for (uint32_t i = 0; i < count; i += 2) {
        const unsigned char *k;
        size_t kn;
        if (!read_bytes(&in, &k, &kn)) {
            if (!skip_value(&in, 0)) { /* non-symbol key (ulong): allowed, ignored */
                return false;
            }
            kn = 0;
            k = NULL;
        }
        const unsigned char *v;
        size_t vn;
        if (k != NULL && key_is(k, kn, "x-opt-sequence-number")) {
            if (!read_int(&in, &m->sequence)) {
                return false;
            }
            m->has_sequence = true;
        } else if (k != NULL && key_is(k, kn, "x-opt-enqueued-time")) {
            if (!read_int(&in, &m->enqueued_ms)) {
                return false;
            }
            /* A time outside 1970..9999 is not a hub's: treated as absent, so that
             * converting it to microseconds cannot overflow. */
            m->has_enqueued = m->enqueued_ms >= 0 && m->enqueued_ms <= SW_AMQP_MAX_TIME_MS;
        } else if (k != NULL && key_is(k, kn, "x-opt-offset") && read_bytes(&in, &v, &vn)) {
            m->offset = (const char *)v;
            m->offset_len = vn;
        } else if (k != NULL && key_is(k, kn, "x-opt-offset") && need(&in, 1)) {
            return false; /* an offset that is neither string nor symbol */
        } else if (k != NULL && key_is(k, kn, "x-opt-partition-key") && read_bytes(&in, &v, &vn)) {
            m->partition_key = (const char *)v;
            m->partition_key_len = vn;
        } else if (!skip_value(&in, 0)) {
            return false;
        }
    }
    r->p = map_end;
    return true;
}

static bool add_data(rd *r, sw_amqp_msg *m, sw_buf *scratch, int *data_sections)
{
    const unsigned char *v;
    size_t n;
    if (!read_bytes(r, &v, &n)) {
        return false;
    }
    (*data_sections)++;
    if (*data_sections == 1) {
        m->body = v;
        m->body_len = n;
        return true;
    }
    if (*data_sections == 2) { /* move the first section into scratch, then append */
        if (!sw_buf_append(scratch, m->body, m->body_len)) {
            return false;
        }
    }
    if (!sw_buf_append(scratch, v, n)) {
        return false;
    }
    m->body = (const unsigned char *)scratch->data;
    m->body_len = scratch->len;
    return true;
}

static bool add_value(rd *r, sw_amqp_msg *m)
{
    const unsigned char *start = r->p;
    if (need(r, 1) && (*r->p == 0xa1 || *r->p == 0xb1 || *r->p == 0xa0 || *r->p == 0xb0)) {
        m->body_kind = (*r->p == 0xa1 || *r->p == 0xb1) ? SW_AMQP_BODY_STRING : SW_AMQP_BODY_BINARY;
        return read_bytes(r, &m->body, &m->body_len);
    }
    if (!skip_value(r, 0)) {
        return false;
    }
    m->body_kind = SW_AMQP_BODY_VALUE;
    m->body = start;
    m->body_len = (size_t)(r->p - start);
    return true;
}

bool sw_amqp_msg_decode(const unsigned char *buf, size_t len, sw_amqp_msg *out, sw_buf *scratch,
                        sw_err *err)
{
    memset(out, 0, sizeof *out);
    sw_buf_reset(scratch);
    scratch->len = 0;
    rd r = {buf, buf + len};
    int data_sections = 0;
    const unsigned char *seq_start = NULL;
    while (r.p < r.end) {
        const unsigned char *section = r.p;
        uint64_t code = 0;
        if (*r.p != 0x00) {
            return sw_err_set(err, SW_E_PARSE, "AMQP message: byte %zu is not a section",
                              (size_t)(section - buf));
        }
        r.p++;
        bool ok = read_descriptor(&r, &code);
        if (ok && code == SEC_MESSAGE_ANN) {
            ok = parse_annotations(&r, out);
        } else if (ok && code == SEC_DATA) {
            ok = add_data(&r, out, scratch, &data_sections);
            out->body_kind = SW_AMQP_BODY_DATA;
        } else if (ok && code == SEC_VALUE) {
            ok = add_value(&r, out);
        } else if (ok && code == SEC_SEQUENCE) {
            seq_start = seq_start != NULL ? seq_start : section;
            ok = skip_value(&r, 0);
            out->body_kind = SW_AMQP_BODY_SEQUENCE;
            out->body = seq_start;
            out->body_len = (size_t)(r.p - seq_start);
        } else if (ok) {
            ok = skip_value(&r, 0);
        }
        if (!ok) {
            if (scratch->failed) {
                return sw_err_set(err, SW_E_TOO_LARGE, "AMQP message: body exceeds %zu bytes",
                                  scratch->max);
            }
            return sw_err_set(err, SW_E_PARSE,
                              "AMQP message: malformed section at byte %zu (descriptor 0x%llx)",
                              (size_t)(section - buf), (unsigned long long)code);
        }
    }
    return true;
}
