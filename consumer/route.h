/*
 * Routed records (SPEC §6): with several replicas, each replica forwards the
 * normalized findings of its export-hub partitions to the route hub, on the
 * partition chosen by a stable hash of the image key, so that every record of
 * one image reaches the one replica that keeps that image's state.
 *
 * A routed record is one AMQP message whose body is
 *   {"scanwatch_routed":1,"enqueued":"<RFC 3339>","clean_marker":false,"finding":{...}}
 * with the finding exactly as `scanwatch decode` prints it and the enqueued
 * time of the export event that carried it.
 *
 * Thread safety: all functions are reentrant.
 */
#ifndef SCANWATCH_ROUTE_H
#define SCANWATCH_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scanwatch/buf.h"
#include "scanwatch/error.h"
#include "scanwatch/finding.h"
#include "scanwatch/state_engine.h"

/* FNV-1a 64 of the image key, mod n_partitions (> 0). Stable across versions. */
uint32_t sw_route_partition(const char *image, uint32_t n_partitions);

/* Appends the routed record of f to out (reset first by the caller). */
bool sw_route_encode(const sw_finding *f, sw_time_us enqueued, sw_buf *out);

/* A decoded routed record; strings live in `scratch` until the next decode. */
typedef struct sw_routed {
    sw_state_record rec;
    sw_time_us enqueued;
} sw_routed;

typedef struct sw_route_scratch sw_route_scratch;
sw_route_scratch *sw_route_scratch_new(void);
void sw_route_scratch_free(sw_route_scratch *s);

/* Parses one routed record; false with a reason for anything else. */
bool sw_route_decode(sw_route_scratch *s, const void *body, size_t len, sw_routed *out,
                     sw_err *err);

#endif
