/*
 * The rescan engine (SPEC §3): groups finding records of each image into
 * rescan windows, applies closed windows to the image's finding set S, and
 * writes one diff record per non-empty diff to the outbox -- all in one
 * RocksDB WriteBatch per processed batch of events, together with the
 * checkpoint of the last event whose effects the batch holds.
 *
 * Usage (one partition stream or several):
 *   for each event:   sw_state_engine_add(...) for each of its records
 *                     (or sw_state_engine_dead_letter for a bad event),
 *                     then sw_state_engine_event_done(pos)
 *   periodically:     sw_state_engine_tick(now, caught_up)
 *   every N events:   sw_state_engine_commit()   -> durable, checkpointed
 *   end of input:     sw_state_engine_close_all(); sw_state_engine_commit()
 * Nothing is durable before sw_state_engine_commit returns true; a crash
 * before that replays from the previous checkpoint, which reproduces the
 * same windows because open windows are durable and closing rules depend
 * only on scan and enqueued times (and, live, on wall time).
 *
 * state/ knows nothing of Defender JSON or AMQP: a record carries the
 * image key, the finding key, status, scan time, flags, tags and the
 * finding's canonical JSON (opaque here; kept as the summary in S and
 * printed in the diff record's "new").
 *
 * Ownership: the engine borrows the sw_state (which must outlive it);
 * everything passed in is copied.
 * Thread safety: an engine is used by one thread. Other threads may use the
 * same sw_state concurrently (e.g. the notifier draining the outbox).
 */
#ifndef SCANWATCH_STATE_ENGINE_H
#define SCANWATCH_STATE_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "scanwatch/error.h"
#include "scanwatch/state.h"
#include "scanwatch/swtime.h"

typedef enum {
    SW_RESCAN_AUTO = 0,
    SW_RESCAN_FULL = 1,
    SW_RESCAN_DELTA = 2,
} sw_rescan_semantics;

typedef enum {
    SW_FIRST_SCAN_NOTIFY = 0,
    SW_FIRST_SCAN_BASELINE = 1,
} sw_first_scan;

typedef enum {
    SW_DIFF_BASIS_DIGEST = 0,
    SW_DIFF_BASIS_TAG = 1,
} sw_diff_basis;

typedef struct sw_state_engine_opts {
    int64_t scan_quiet_us; /* scan_quiet */
    sw_rescan_semantics semantics;
    sw_first_scan first_scan;
    sw_time_us baseline_until; /* SW_TIME_UNSET = off */
    sw_diff_basis diff_basis;
    /* max_window_records: a window reaching it is applied at once, as a
     * non-full window (a cut scan must not resolve what it did not see),
     * and the next record opens a new window. 0 = 100000. */
    size_t max_window_records;
    /* state_window_cache: RAM kept for copies of open windows' durable
     * records, so applying a window reads nothing back; windows beyond it
     * are read from RocksDB at apply. 0 = no copies. */
    size_t window_cache_bytes;
    /* diff_log: NULL or "" = off, "-" = stdout, else a file opened for
     * append. Lines are written after the batch that holds their outbox
     * entries is durable; for a file, lines a crash left unwritten are
     * written on the next start (from the outbox entries that still exist)
     * and lines already written are not written again. */
    const char *diff_log;
    /* Closing windows by rules (b) and (c) stops once the batch holds this
     * many bytes and sw_state_engine_more_due says so; the caller commits
     * and calls sw_state_engine_tick to go on. 0 = 4 MiB. */
    size_t batch_bytes_max;
} sw_state_engine_opts;

typedef struct sw_state_engine sw_state_engine;

/* From loaded settings (scan_quiet, rescan_semantics, first_scan,
 * baseline_until, diff_basis, diff_log, max_window_records); strings stay
 * owned by cfg. */
struct sw_config;
void sw_state_engine_opts_from_config(sw_state_engine_opts *opts, const struct sw_config *cfg);

/* The position of the event a record came from. Strings are copied. */
typedef struct sw_state_pos {
    const char *partition;
    const char *offset;
    int64_t sequence;
    sw_time_us enqueued; /* event time: rule (b) and baseline_until */
} sw_state_pos;

typedef struct sw_state_record {
    const char *image;      /* canonical image key */
    const char *repository; /* "<registryHost>/<repository>" (diff_basis = tag) */
    const char *const *tags;
    size_t n_tags;
    const char *key; /* finding key; NULL for a clean marker */
    bool resolved;   /* status resolved (else active) */
    bool snapshot;
    bool clean_marker;
    sw_time_us scan_time;
    const char *finding_json; /* canonical finding JSON (sw_finding_to_json) */
    size_t finding_len;
} sw_state_record;

typedef struct sw_state_engine_stats {
    uint64_t records; /* records accepted into windows */
    uint64_t stale;   /* ignored: older than T - scan_quiet */
    uint64_t windows_opened;
    uint64_t windows_applied;
    uint64_t windows_capped; /* applied early at max_window_records */
    uint64_t diff_records;   /* written to the outbox */
    uint64_t silent_applies; /* non-empty diff kept silent (baseline) */
    uint64_t new_findings;
    uint64_t resolved_findings;
    uint64_t dead_letters;
    uint64_t commits;
    uint64_t open_windows; /* now */
} sw_state_engine_stats;

/* Loads open windows and the per-partition event times from the store. */
sw_state_engine *sw_state_engine_new(sw_state *st, const sw_state_engine_opts *opts, sw_err *err);
/* Frees without committing (pending work is lost; open windows stay durable
 * as of the last commit). */
void sw_state_engine_free(sw_state_engine *e);

/* Feeds one record of the event at pos. */
bool sw_state_engine_add(sw_state_engine *e, const sw_state_pos *pos, const sw_state_record *r,
                         sw_err *err);
/* Records a bad event in the dead letter, in the current batch. */
bool sw_state_engine_dead_letter(sw_state_engine *e, const sw_state_pos *pos, const char *kind,
                                 const char *reason, const void *bytes, size_t len, sw_err *err);
/* Marks the event at pos fully processed: its partition's checkpoint
 * candidate. Also closes windows by event time (rule b), up to
 * batch_bytes_max of batch (see sw_state_engine_more_due). */
bool sw_state_engine_event_done(sw_state_engine *e, const sw_state_pos *pos, sw_err *err);
/*
 * Rule (b): closes windows whose last record's event time is more than
 * scan_quiet behind max_event_time (the highest enqueued time seen on the
 * owned partitions; SW_TIME_UNSET = use the engine's own maximum).
 * Rule (c): when caught_up, closes windows whose last record arrived more
 * than scan_quiet of wall time before now.
 */
bool sw_state_engine_tick(sw_state_engine *e, sw_time_us now, sw_time_us max_event_time,
                          bool caught_up, sw_err *err);
/* Rule (d): closes every open window (end of offline input). */
bool sw_state_engine_close_all(sw_state_engine *e, sw_err *err);
/* Writes the batch atomically (synced when sync is on and a checkpoint
 * advanced), then appends its diff records to diff_log. After a failed
 * commit (or any failed call) the engine's RAM state is ahead of the store:
 * free it and create a new engine, which resumes from the last commit, and
 * replay the events after each partition's checkpoint. */
bool sw_state_engine_commit(sw_state_engine *e, sw_err *err);
/* Events marked done since the last commit (for the caller's batch size). */
size_t sw_state_engine_pending_events(const sw_state_engine *e);
/*
 * True when the last event_done or tick left due windows open because the
 * batch reached batch_bytes_max (a gap in event time can make every open
 * window due at once: ~700 windows, 18 MB in one batch, on a 100,000-image
 * tenant). The caller commits, then calls sw_state_engine_tick (same
 * caught_up) until this is false. A caller that does not (the next add
 * closes what is due first, whatever the batch size) gets the same
 * diff records in one bigger batch; so does a restart between the commits.
 */
bool sw_state_engine_more_due(const sw_state_engine *e);
void sw_state_engine_get_stats(const sw_state_engine *e, sw_state_engine_stats *out);

/*
 * image_ttl: drops images whose last applied window is older than
 * now - ttl_us and that have no open window: their set, their record and
 * tag pointers to them. Commits first; writes its own batch.
 */
bool sw_state_engine_sweep(sw_state_engine *e, sw_time_us now, int64_t ttl_us, uint64_t *dropped,
                           sw_err *err);

#endif
