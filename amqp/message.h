/*
 * Decoder of the parts of an AMQP 1.0 message an Event Hubs consumer needs,
 * straight from the delivery bytes. proton's pn_message_decode is avoided on
 * the hot path: it allocates per message and keeps only the last data
 * section of a multi-section body.
 *
 * Ownership: the result points into buf (or into scratch when several data
 * sections had to be joined); both must outlive its use.
 * Thread safety: reentrant.
 */
#ifndef SW_AMQP_MESSAGE_H
#define SW_AMQP_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scanwatch/amqp.h"
#include "scanwatch/buf.h"
#include "scanwatch/error.h"

/* 9999-12-31T23:59:59.999Z in milliseconds: the latest x-opt-enqueued-time accepted. */
#define SW_AMQP_MAX_TIME_MS 253402300799999LL

typedef struct sw_amqp_msg {
    const unsigned char *body;
    size_t body_len;
    sw_amqp_body_kind body_kind;
    bool has_sequence;
    int64_t sequence;
    const char *offset; /* not NUL-terminated */
    size_t offset_len;
    bool has_enqueued; /* false also for a time outside 0..SW_AMQP_MAX_TIME_MS */
    int64_t enqueued_ms;
    const char *partition_key; /* not NUL-terminated; NULL if absent */
    size_t partition_key_len;
} sw_amqp_msg;

/* Decodes buf. scratch (cleared first) holds joined data sections. */
bool sw_amqp_msg_decode(const unsigned char *buf, size_t len, sw_amqp_msg *out, sw_buf *scratch,
                        sw_err *err);

#endif
