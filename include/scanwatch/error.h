/*
 * The project's one error type: a code from one append-only table, a message,
 * and whether retrying may help.
 *
 * Every function that can fail takes an `sw_err *err` out-parameter (it may be
 * NULL when the caller does not care) and returns false / NULL / -1 on failure.
 * Foreign error conventions (RocksDB errptr, proton conditions, CURLcode, cJSON)
 * are turned into an sw_err in the module that calls the foreign library.
 *
 * Ownership: sw_err is a plain value type, owned by the caller; it holds no
 * heap memory. Thread safety: an sw_err is used by one thread at a time.
 */
#ifndef SCANWATCH_ERROR_H
#define SCANWATCH_ERROR_H

#include <stdbool.h>
#include <stddef.h>

/*
 * The table. APPEND ONLY: codes are stable numbers that appear in logs,
 * metrics and dead-letter records. Columns: name, number, retriable, text.
 */
#define SW_ERROR_TABLE(X)                                                                          \
    X(SW_OK, 0, false, "ok")                                                                       \
    X(SW_E_INTERNAL, 1, false, "internal error")                                                   \
    X(SW_E_NOMEM, 2, true, "out of memory")                                                        \
    X(SW_E_INVALID_ARG, 3, false, "invalid argument")                                              \
    X(SW_E_IO, 4, true, "I/O error")                                                               \
    X(SW_E_CONFIG, 5, false, "invalid configuration")                                              \
    X(SW_E_PARSE, 6, false, "malformed input")                                                     \
    X(SW_E_TOO_LARGE, 7, false, "input exceeds a limit")                                           \
    X(SW_E_UNSUPPORTED, 8, false, "unsupported input")                                             \
    X(SW_E_NOT_FOUND, 9, false, "not found")                                                       \
    X(SW_E_STATE, 10, false, "state store error")                                                  \
    X(SW_E_SCHEMA, 11, false, "incompatible state schema")                                         \
    X(SW_E_AMQP, 12, true, "AMQP error")                                                           \
    X(SW_E_AUTH, 13, false, "authentication or authorization failed")                              \
    X(SW_E_TIMEOUT, 14, true, "timed out")                                                         \
    X(SW_E_HTTP, 15, true, "HTTP error")                                                           \
    X(SW_E_OWNERSHIP_LOST, 16, false, "partition ownership lost")                                  \
    X(SW_E_SHUTDOWN, 17, false, "shutting down")                                                   \
    X(SW_E_BUSY, 18, true, "server busy")

typedef enum {
#define SW_ERR_ENUM(name, num, retriable, text) name = num,
    SW_ERROR_TABLE(SW_ERR_ENUM)
#undef SW_ERR_ENUM
} sw_code;

#define SW_ERR_MSG_MAX 512

typedef struct sw_err {
    sw_code code;
    bool retriable;
    char msg[SW_ERR_MSG_MAX];
} sw_err;

/* Resets err to SW_OK with an empty message. NULL is allowed. */
void sw_err_clear(sw_err *err);

/*
 * Sets err (if not NULL) to code, with the table's retriable flag and a
 * printf-style message (truncated to SW_ERR_MSG_MAX-1 bytes). Returns false so
 * that failing paths can `return sw_err_set(...)`.
 */
bool sw_err_set(sw_err *err, sw_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Like sw_err_set, but overrides the table's retriable flag. */
bool sw_err_set_retriable(sw_err *err, sw_code code, bool retriable, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Prepends "context: " to err's message (keeps code and flag). NULL is allowed. */
void sw_err_prefix(sw_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Stable symbolic name ("SW_E_PARSE") and default text of a code. Never NULL. */
const char *sw_code_name(sw_code code);
const char *sw_code_text(sw_code code);
/* The table's retriable flag for code. */
bool sw_code_retriable(sw_code code);

static inline bool sw_err_ok(const sw_err *err)
{
    return err == NULL || err->code == SW_OK;
}

#endif
