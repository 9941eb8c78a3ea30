/*
 * The processing pipeline shared by `scanwatch run` and `scanwatch process`:
 * one event body -> decode -> records into the rescan engine, or the dead
 * letter for a bad event -> the event marked done (its checkpoint candidate).
 * Counts go to the metrics registry when one is given.
 *
 * Ownership: the pipeline borrows the engine and the metrics registry (both
 * must outlive it) and owns its decoder.
 * Thread safety: one thread (the engine's).
 */
#ifndef SCANWATCH_PIPELINE_H
#define SCANWATCH_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>

#include "scanwatch/decode.h"
#include "scanwatch/error.h"
#include "scanwatch/metrics.h"
#include "scanwatch/settings.h"
#include "scanwatch/state_engine.h"

typedef struct sw_pipeline sw_pipeline;

typedef enum {
    /* Event time is the event's enqueued time (live partitions). */
    SW_CLOCK_ENQUEUED,
    /* Event time is the highest scan time seen so far (offline input has no
     * enqueued times; the running maximum keeps it monotonic like a hub's). */
    SW_CLOCK_SCAN_TIME,
} sw_pipeline_clock;

sw_pipeline *sw_pipeline_new(const sw_config *cfg, sw_state_engine *eng, sw_metrics *metrics,
                             sw_pipeline_clock clock, sw_err *err);
void sw_pipeline_free(sw_pipeline *pl);

/* SW_CLOCK_SCAN_TIME: where the clock resumes (the checkpoint's max event time). */
void sw_pipeline_set_clock(sw_pipeline *pl, sw_time_us event_time);
sw_time_us sw_pipeline_clock_now(const sw_pipeline *pl);

/*
 * Processes one event. pos->enqueued is the event's enqueued time (ignored
 * with SW_CLOCK_SCAN_TIME). A bad event (undecodable, too large) is written
 * to the dead letter and counted; that is not a failure. Returns false only
 * when the state engine failed (err set): the caller must stop.
 * `oversize` > 0 tells that the body was cut at that many bytes of a larger
 * message (the body passed is the kept prefix).
 */
bool sw_pipeline_event(sw_pipeline *pl, const sw_state_pos *pos, const void *body, size_t len,
                       size_t oversize, sw_err *err);

/*
 * Forward mode (several replicas, SPEC §6): findings go to fn instead of the
 * state engine (bad events still go to the dead letter, and the event is still
 * marked done, so its checkpoint commits with the engine's next batch).
 */
typedef bool (*sw_forward_fn)(void *ctx, const sw_finding *f, const sw_state_pos *pos, sw_err *err);
void sw_pipeline_set_forward(sw_pipeline *pl, sw_forward_fn fn, void *ctx);

/*
 * One event of the route hub: a routed record (route.h) into the engine, its
 * event time the export event's enqueued time. A malformed one is
 * dead-lettered. false only when the engine failed.
 */
bool sw_pipeline_routed_event(sw_pipeline *pl, const sw_state_pos *pos, const void *body,
                              size_t len, sw_err *err);

/*
 * Decoding ahead (SPEC: the service's `decode_ahead`): an event is decoded on
 * another thread into an sw_decoded, which the engine's thread then applies.
 * The engine's thread keeps only what must be in order (the engine, the dead
 * letter, counts); JSON parsing and the finding's canonical JSON move to the
 * decoding thread.
 *
 * Ownership: an sw_predecoder is one thread's (its decoder and scratch); an
 * sw_decoded is owned by the caller of sw_predecode and freed with
 * sw_decoded_free. Thread safety: sw_predecode on the predecoder's thread;
 * sw_pipeline_apply on the pipeline's. Live clock only (SW_CLOCK_ENQUEUED).
 */
typedef struct sw_predecoder sw_predecoder;
typedef struct sw_decoded sw_decoded;

sw_predecoder *sw_predecoder_new(const sw_config *cfg, sw_err *err);
void sw_predecoder_free(sw_predecoder *pd);

/* Decodes one event (arguments as sw_pipeline_event). NULL only when out of
 * memory: the caller then passes the event to sw_pipeline_event instead. */
sw_decoded *sw_predecode(sw_predecoder *pd, sw_time_us enqueued, const void *body, size_t len,
                         size_t oversize);
void sw_decoded_free(sw_decoded *d);
/* Whether sw_pipeline_apply needs the body (a bad event goes to the dead letter whole);
 * when not, the caller may drop it before applying. */
bool sw_decoded_needs_body(const sw_decoded *d);

/* sw_pipeline_event for an event decoded ahead: body/len are the same bytes
 * (for the dead letter). Same results and errors as sw_pipeline_event. */
bool sw_pipeline_apply(sw_pipeline *pl, const sw_state_pos *pos, const sw_decoded *d,
                       const void *body, size_t len, sw_err *err);

/* Totals since creation. */
const sw_decode_stats *sw_pipeline_stats(const sw_pipeline *pl);

#endif
