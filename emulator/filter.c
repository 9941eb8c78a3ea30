#include "filter.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    emu_pos_kind kind;
} fields[] = {
    {"amqp.annotation.x-opt-offset", EMU_POS_OFFSET},
    {"amqp.annotation.x-opt-sequence-number", EMU_POS_SEQUENCE},
    {"amqp.annotation.x-opt-enqueued-time", EMU_POS_TIME},
};

static void skip_space(const char **p, const char *end)
{
    while (*p < end && (**p == ' ' || **p == '\t')) {
        (*p)++;
    }
}

static bool bad(const char *expr, size_t len, sw_err *err)
{
    return sw_err_set(err, SW_E_PARSE,
                      "The filter '%.*s' is not a valid amqp filter for "
                      "EventHub entities",
                      (int)(len > 300 ? 300 : len), expr);
}

bool emu_filter_parse(const char *expr, size_t len, emu_position *out, sw_err *err)
{
    const char *p = expr, *end = expr + len;
    memset(out, 0, sizeof *out);
    skip_space(&p, end);
    bool found = false;
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        size_t fl = strlen(fields[i].name);
        if ((size_t)(end - p) > fl && strncasecmp(p, fields[i].name, fl) == 0 &&
            (p[fl] == ' ' || p[fl] == '>')) {
            out->kind = fields[i].kind;
            p += fl;
            found = true;
            break;
        }
    }
    if (!found) {
        return bad(expr, len, err);
    }
    skip_space(&p, end);
    if (p >= end || *p != '>') {
        return bad(expr, len, err);
    }
    p++;
    if (p < end && *p == '=') {
        out->inclusive = true;
        p++;
    }
    skip_space(&p, end);
    const char *v = p, *ve = end;
    while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) {
        ve--;
    }
    if (ve - v >= 2 && ((*v == '\'' && ve[-1] == '\'') || (*v == '"' && ve[-1] == '"'))) {
        v++;
        ve--;
    }
    size_t vl = (size_t)(ve - v);
    if (out->kind == EMU_POS_OFFSET && vl == 7 && memcmp(v, "@latest", 7) == 0) {
        out->latest = true;
        return true;
    }
    char buf[32];
    if (vl == 0 || vl >= sizeof buf) {
        return bad(expr, len, err);
    }
    memcpy(buf, v, vl);
    buf[vl] = '\0';
    char *num_end = NULL;
    errno = 0;
    long long n = strtoll(buf, &num_end, 10);
    if (errno != 0 || *num_end != '\0') {
        return bad(expr, len, err);
    }
    if (out->kind == EMU_POS_OFFSET && n == -1) {
        out->start = true;
        return true;
    }
    if (n < 0 && !(out->kind == EMU_POS_SEQUENCE && n == -1)) {
        return bad(expr, len, err);
    }
    out->value = n;
    return true;
}
