/*
 * The Event Hubs selector filter a receiver sends on attach, e.g.
 *   amqp.annotation.x-opt-offset > '1234'
 *   amqp.annotation.x-opt-sequence-number >= 17
 *   amqp.annotation.x-opt-enqueued-time > '1700000000000'
 * Values may be quoted or not; offset '-1' means the start and '@latest'
 * means events appended after the attach.
 *
 * Thread safety: pure functions. Ownership: the expression is borrowed.
 */
#ifndef SW_EMULATOR_FILTER_H
#define SW_EMULATOR_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scanwatch/error.h"

typedef enum {
    EMU_POS_OFFSET,
    EMU_POS_SEQUENCE,
    EMU_POS_TIME,
} emu_pos_kind;

typedef struct emu_position {
    emu_pos_kind kind;
    bool inclusive; /* >= rather than > */
    bool start;     /* offset -1: from the first retained event */
    bool latest;    /* @latest: only events appended after the attach */
    int64_t value;  /* offset, sequence number or enqueued time in ms */
} emu_position;

/* Errors are SW_E_PARSE with the service's wording ("... is not a valid amqp filter"). */
bool emu_filter_parse(const char *expr, size_t len, emu_position *out, sw_err *err);

#endif
