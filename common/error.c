#include "scanwatch/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct code_info {
    sw_code code;
    const char *name;
    bool retriable;
    const char *text;
};

static const struct code_info code_table[] = {
#define SW_ERR_ROW(name, num, retriable, text) {name, #name, retriable, text},
    SW_ERROR_TABLE(SW_ERR_ROW)
#undef SW_ERR_ROW
};

static const struct code_info *lookup(sw_code code)
{
    for (size_t i = 0; i < sizeof code_table / sizeof code_table[0]; i++) {
        if (code_table[i].code == code) {
            return &code_table[i];
        }
    }
    return &code_table[SW_E_INTERNAL];
}

void sw_err_clear(sw_err *err)
{
    if (err != NULL) {
        err->code = SW_OK;
        err->retriable = false;
        err->msg[0] = '\0';
    }
}

static void set_va(sw_err *err, sw_code code, bool retriable, const char *fmt, va_list ap)
{
    err->code = code;
    err->retriable = retriable;
    int n = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    if (n < 0) {
        snprintf(err->msg, sizeof err->msg, "%s", lookup(code)->text);
    }
}

bool sw_err_set(sw_err *err, sw_code code, const char *fmt, ...)
{
    if (err == NULL) {
        return false;
    }
    va_list ap;
    va_start(ap, fmt);
    set_va(err, code, lookup(code)->retriable, fmt, ap);
    va_end(ap);
    return false;
}

bool sw_err_set_retriable(sw_err *err, sw_code code, bool retriable, const char *fmt, ...)
{
    if (err == NULL) {
        return false;
    }
    va_list ap;
    va_start(ap, fmt);
    set_va(err, code, retriable, fmt, ap);
    va_end(ap);
    return false;
}

void sw_err_prefix(sw_err *err, const char *fmt, ...)
{
    if (err == NULL) {
        return;
    }
    char prefix[SW_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    /* Assemble by hand: the result is cut at SW_ERR_MSG_MAX on purpose. */
    char joined[SW_ERR_MSG_MAX];
    size_t plen = strnlen(prefix, sizeof joined - 3);
    memcpy(joined, prefix, plen);
    memcpy(joined + plen, ": ", 2);
    size_t room = sizeof joined - plen - 3;
    size_t mlen = strnlen(err->msg, room);
    memcpy(joined + plen + 2, err->msg, mlen);
    joined[plen + 2 + mlen] = '\0';
    memcpy(err->msg, joined, sizeof joined);
}

const char *sw_code_name(sw_code code)
{
    return lookup(code)->name;
}

const char *sw_code_text(sw_code code)
{
    return lookup(code)->text;
}

bool sw_code_retriable(sw_code code)
{
    return lookup(code)->retriable;
}
