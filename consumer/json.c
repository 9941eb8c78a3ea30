#include "json.h"

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

typedef struct jp {
    const unsigned char *p, *end;
    sw_json_alloc_fn alloc;
    void *ctx;
    int depth;
} jp;

static cJSON *parse_value(jp *j);

/* JSON's four whitespace bytes. cJSON skips every byte <= 32; other control
 * bytes where a token is due make this parser give up, and cJSON decide. */
static void skip_ws(jp *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t')) {
        j->p++;
    }
}

static cJSON *new_node(jp *j, int type)
{
    cJSON *n = j->alloc(j->ctx, sizeof *n);
    if (n != NULL) {
        memset(n, 0, sizeof *n);
        n->type = type;
    }
    return n;
}

static int hex4(const unsigned char *h)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char c = h[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0) {
            return -1;
        }
        v = v * 16 + d;
    }
    return v;
}

static size_t put_utf8(unsigned char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* One escape sequence at s ('\\'), written to o; returns bytes read (0: give up). */
static size_t unescape(const unsigned char *s, const unsigned char *end, unsigned char *o,
                       size_t *wrote)
{
    if (end - s < 2) {
        return 0;
    }
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    const char *hit = s[1] != '\0' ? strchr(from, s[1]) : NULL;
    if (hit != NULL) {
        *o = (unsigned char)to[hit - from];
        *wrote = 1;
        return 2;
    }
    if (s[1] != 'u' || end - s < 6) {
        return 0;
    }
    int hi = hex4(s + 2);
    if (hi <= 0 || (hi >= 0xDC00 && hi <= 0xDFFF)) {
        return 0; /* \u0000 (a NUL inside the string) and lone low surrogates: cJSON's call */
    }
    uint32_t cp = (uint32_t)hi;
    size_t used = 6;
    if (hi >= 0xD800 && hi <= 0xDBFF) {
        if (end - s < 12 || s[6] != '\\' || s[7] != 'u') {
            return 0;
        }
        int lo = hex4(s + 8);
        if (lo < 0xDC00 || lo > 0xDFFF) {
            return 0;
        }
        cp = 0x10000 + ((((uint32_t)hi & 0x3FF) << 10) | ((uint32_t)lo & 0x3FF));
        used = 12;
    }
    *wrote = put_utf8(o, cp);
    return used;
}

/*
 * Skips string bytes that need no attention ('"', '\\' and control bytes do)
 * eight at a time; the caller finishes byte by byte. Bytes >= 0x80 are plain.
 */
static const unsigned char *skip_plain(const unsigned char *p, const unsigned char *end)
{
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    while (end - p >= 8) {
        uint64_t w;
        memcpy(&w, p, sizeof w);
        uint64_t quote = w ^ (ones * '"'), bslash = w ^ (ones * '\\');
        uint64_t hit = ((quote - ones) & ~quote) | ((bslash - ones) & ~bslash) |
                       ((w - ones * 0x20) & ~w); /* a zero byte, or one below 0x20 */
        if ((hit & highs) != 0) {
            break;
        }
        p += 8;
    }
    return p;
}

/* A string at j->p (the opening quote); NULL = give up. */
static char *parse_string(jp *j)
{
    const unsigned char *s = j->p + 1, *q = skip_plain(s, j->end);
    while (q < j->end && *q != '"' && *q != '\\' && *q >= 0x20) {
        q++;
    }
    if (q >= j->end || *q < 0x20) {
        return NULL;
    }
    if (*q == '"') { /* the common case: no escapes */
        size_t n = (size_t)(q - s);
        char *out = j->alloc(j->ctx, n + 1);
        if (out != NULL) {
            memcpy(out, s, n);
            out[n] = '\0';
            j->p = q + 1;
        }
        return out;
    }
    /* Escapes: the closing quote first (output is never longer than input). */
    const unsigned char *e = q;
    while (e < j->end && *e != '"') {
        if (*e < 0x20) {
            return NULL;
        }
        e += *e == '\\' ? 2 : 1;
    }
    if (e >= j->end) {
        return NULL;
    }
    unsigned char *out = j->alloc(j->ctx, (size_t)(e - s) + 1);
    if (out == NULL) {
        return NULL;
    }
    size_t n = (size_t)(q - s);
    memcpy(out, s, n);
    for (const unsigned char *r = q; r < e;) {
        if (*r != '\\') {
            out[n++] = *r++;
            continue;
        }
        size_t wrote = 0;
        size_t used = unescape(r, e, out + n, &wrote);
        if (used == 0) {
            return NULL;
        }
        r += used;
        n += wrote;
    }
    out[n] = '\0';
    j->p = e + 1;
    return (char *)out;
}

/*
 * -?(0|[1-9][0-9]*)(\.[0-9]+)? with at most 15 significant digits: the value
 * is then m / 10^k with m and 10^k exact doubles, one correctly rounded
 * division, which is what strtod (cJSON's parser) returns. Exponents, longer
 * numbers and forms strtod takes but JSON does not ("01", "1.", "-.5") give up.
 */
static cJSON *parse_number(jp *j)
{
    static const double pow10[] = {1e0, 1e1, 1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                   1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
    const unsigned char *c = j->p;
    bool neg = c < j->end && *c == '-';
    c += neg;
    if (c >= j->end || *c < '0' || *c > '9' ||
        (*c == '0' && c + 1 < j->end && c[1] >= '0' && c[1] <= '9')) {
        return NULL;
    }
    uint64_t m = 0;
    int digits = 0, frac = 0;
    while (c < j->end && *c >= '0' && *c <= '9') {
        m = m * 10 + (uint64_t)(*c++ - '0');
        digits++;
    }
    if (c < j->end && *c == '.') {
        c++;
        if (c >= j->end || *c < '0' || *c > '9') {
            return NULL;
        }
        while (c < j->end && *c >= '0' && *c <= '9') {
            m = m * 10 + (uint64_t)(*c++ - '0');
            digits++;
            frac++;
        }
    }
    if (digits > 15 || (c < j->end && (*c == 'e' || *c == 'E'))) {
        return NULL;
    }
    cJSON *n = new_node(j, cJSON_Number);
    if (n == NULL) {
        return NULL;
    }
    double v = frac > 0 ? (double)m / pow10[frac] : (double)m;
    n->valuedouble = neg ? -v : v;
    /* cJSON's saturating valueint */
    n->valueint = n->valuedouble >= INT_MAX           ? INT_MAX
                  : n->valuedouble <= (double)INT_MIN ? INT_MIN
                                                      : (int)n->valuedouble;
    j->p = c;
    return n;
}

static cJSON *parse_literal(jp *j, const char *word, size_t len, int type)
{
    if ((size_t)(j->end - j->p) < len || memcmp(j->p, word, len) != 0) {
        return NULL;
    }
    cJSON *n = new_node(j, type);
    if (n != NULL) {
        n->valueint = type == cJSON_True;
        j->p += len;
    }
    return n;
}

/* Arrays and objects: cJSON's links (next, prev; the head's prev is the last). */
static cJSON *parse_container(jp *j, bool object)
{
    if (++j->depth > SW_JSON_FAST_MAX_DEPTH) {
        return NULL;
    }
    cJSON *node = new_node(j, object ? cJSON_Object : cJSON_Array);
    if (node == NULL) {
        return NULL;
    }
    unsigned char close = object ? '}' : ']';
    j->p++;
    skip_ws(j);
    if (j->p < j->end && *j->p == close) {
        j->p++;
        j->depth--;
        return node;
    }
    cJSON *last = NULL;
    for (;;) {
        char *key = NULL;
        if (object) {
            if (j->p >= j->end || *j->p != '"' || (key = parse_string(j)) == NULL) {
                return NULL;
            }
            skip_ws(j);
            if (j->p >= j->end || *j->p != ':') {
                return NULL;
            }
            j->p++;
            skip_ws(j);
        }
        cJSON *child = parse_value(j);
        if (child == NULL) {
            return NULL;
        }
        child->string = key;
        if (last == NULL) {
            node->child = child;
        } else {
            last->next = child;
            child->prev = last;
        }
        last = child;
        skip_ws(j);
        if (j->p >= j->end) {
            return NULL;
        }
        if (*j->p == ',') {
            j->p++;
            skip_ws(j);
            continue;
        }
        if (*j->p != close) {
            return NULL;
        }
        j->p++;
        break;
    }
    node->child->prev = last;
    j->depth--;
    return node;
}

static cJSON *parse_value(jp *j)
{
    if (j->p >= j->end) {
        return NULL;
    }
    switch (*j->p) {
    case '"': {
        char *s = parse_string(j);
        if (s == NULL) {
            return NULL;
        }
        cJSON *n = new_node(j, cJSON_String);
        if (n != NULL) {
            n->valuestring = s;
        }
        return n;
    }
    case '{':
        return parse_container(j, true);
    case '[':
        return parse_container(j, false);
    case 't':
        return parse_literal(j, "true", 4, cJSON_True);
    case 'f':
        return parse_literal(j, "false", 5, cJSON_False);
    case 'n':
        return parse_literal(j, "null", 4, cJSON_NULL);
    default:
        return parse_number(j);
    }
}

cJSON *sw_json_parse_fast(const char *p, size_t len, size_t *end, sw_json_alloc_fn alloc, void *ctx)
{
    jp j = {(const unsigned char *)p, (const unsigned char *)p + len, alloc, ctx, 0};
    skip_ws(&j);
    cJSON *root = parse_value(&j);
    if (root != NULL) {
        *end = (size_t)(j.p - (const unsigned char *)p);
    }
    return root;
}
