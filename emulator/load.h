/*
 * --load: indexes a file of events, one per line, into the store as
 * file-backed events (bodies are re-read when delivered, see store.h).
 *
 * Formats:
 *   plain  each non-empty line is one event body; enqueued time = load time.
 *   timed  "<RFC 3339 time><TAB><body>": replaying a recorded export with its
 *          original enqueue times; times must not decrease within a partition.
 *
 * Ownership: strings in emu_load_options are the caller's and only read
 * during emu_load_file; the file descriptor is handed to the store.
 * Thread safety: call before the server starts (the store has one thread).
 */
#ifndef SW_EMULATOR_LOAD_H
#define SW_EMULATOR_LOAD_H

#include <stdbool.h>

#include "scanwatch/error.h"
#include "store.h"

typedef enum { EMU_LOAD_PLAIN, EMU_LOAD_TIMED } emu_load_format;

typedef struct {
    const char *path;
    const char *hub;       /* NULL = the store's first hub */
    const char *partition; /* NULL = round-robin (or by key) */
    const char *key;       /* partition key, NULL = none */
    emu_load_format format;
} emu_load_options;

/* "plain" / "timed"; false for anything else. */
bool emu_load_format_parse(const char *s, emu_load_format *out);

/*
 * Appends every event of o->path to the store; *events gets their count.
 * Errors name the file and the line (too long, bad time, decreasing time).
 */
bool emu_load_file(emu_store *s, const emu_load_options *o, long long *events, sw_err *err);

#endif
