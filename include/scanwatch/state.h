/*
 * The RocksDB state store (SPEC §4): image finding sets, open rescan windows,
 * partition checkpoints, the outbox of diff records, the dead letter, a small
 * generic KV for notifications, and the schema version. No RocksDB type
 * leaves state/; the rescan engine that writes image sets and the outbox
 * lives in state_engine.h.
 *
 * Column families: meta (schema version, counters), images (per image: last
 * applied scan time T, tags, the set S: keys, first/last seen, content
 * hashes), sets (image "\0" finding key -> finding JSON), windows
 * (open windows and their pending records), checkpoints (partition id ->
 * position), outbox (uint64 sequence -> diff record JSON), dead_letter
 * (uint64 sequence -> bad event), tags (repo:tag -> latest image, for
 * diff_basis = tag), notify (free-form, owned by consumer/notify).
 *
 * Ownership: sw_state_open returns a handle the caller frees with
 * sw_state_close (after every engine and batch that uses it is gone).
 * Strings and bytes passed in are copied; strings and bytes handed to
 * callbacks are borrowed and valid only during the callback.
 *
 * Thread safety: one sw_state handle may be shared by several threads (e.g.
 * the processing thread that runs the engine and the notifier thread that
 * drains the outbox). Every function in this header may be called
 * concurrently with every other on the same handle, except sw_state_close,
 * which must be called once, when no other call is running. Sequence
 * counters (outbox, dead letter) are protected by a mutex. An sw_state_batch
 * belongs to one thread at a time.
 */
#ifndef SCANWATCH_STATE_H
#define SCANWATCH_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scanwatch/buf.h"
#include "scanwatch/error.h"
#include "scanwatch/swtime.h"

/* The schema this build writes and reads. A store with another version is
 * refused with a message naming both (2: sets and pending records compacted;
 * see docs/state.md). */
#define SW_STATE_SCHEMA_VERSION 2

typedef struct sw_state sw_state;

typedef struct sw_state_opts {
    const char *dir;              /* state_dir; created when missing (unless read_only) */
    bool read_only;               /* inspection: no writes; works while a writer runs */
    bool sync;                    /* state_sync: fsync the WAL on checkpoint batches */
    size_t block_cache_bytes;     /* state_block_cache; 0 = 8 MiB */
    size_t write_buffer_bytes;    /* per column family memtable; 0 = 8 MiB */
    size_t dead_letter_max_bytes; /* bytes of a bad event kept; 0 = 64 KiB */
} sw_state_opts;

/* From loaded settings (state_dir, state_sync, state_block_cache,
 * state_write_buffer, dead_letter_max_bytes); strings stay owned by cfg. */
struct sw_config;
void sw_state_opts_from_config(sw_state_opts *opts, const struct sw_config *cfg);

/*
 * Opens (creating when allowed) the store in opts->dir. Fails with
 * SW_E_SCHEMA when the stored schema version is newer than this build (the
 * message names both versions), SW_E_STATE on RocksDB errors (with the
 * RocksDB text, e.g. a lock held by another process).
 */
sw_state *sw_state_open(const sw_state_opts *opts, sw_err *err);
void sw_state_close(sw_state *st);
/* The schema version found in (or written to) the store. */
int sw_state_schema_version(const sw_state *st);
bool sw_state_sync_enabled(const sw_state *st);

/* ---- checkpoints (one per partition) ---------------------------------- */

#define SW_STATE_OFFSET_MAX 64

typedef struct sw_state_checkpoint {
    char offset[SW_STATE_OFFSET_MAX]; /* Event Hubs offset string, as received */
    int64_t sequence;
    sw_time_us enqueued; /* enqueued time of the checkpointed event */
    /* Highest enqueued (event) time seen on this partition up to the
     * checkpoint: restores rule (b) of window closing after a restart. */
    sw_time_us max_event_time;
} sw_state_checkpoint;

/* *found tells whether the partition has a checkpoint; out is zeroed if not. */
bool sw_state_checkpoint_get(sw_state *st, const char *partition, sw_state_checkpoint *out,
                             bool *found, sw_err *err);
/* Writes a checkpoint by itself (rebuild, tests). Normal processing writes
 * checkpoints through the engine, in the same batch as their effects. */
bool sw_state_checkpoint_put(sw_state *st, const char *partition, const sw_state_checkpoint *cp,
                             sw_err *err);
/* Return false from a callback to stop early (not an error). */
typedef bool (*sw_state_checkpoint_fn)(void *ctx, const char *partition,
                                       const sw_state_checkpoint *cp);
bool sw_state_checkpoint_iter(sw_state *st, sw_state_checkpoint_fn fn, void *ctx, sw_err *err);

/* ---- outbox ------------------------------------------------------------- */

/*
 * Outbox entries: key = a monotonically increasing uint64 sequence (never
 * reused, also across restarts); value = the diff record JSON exactly as the
 * diff_log line (no trailing newline). Entries are written by the engine and
 * removed by the notifier after delivery.
 */
typedef bool (*sw_state_outbox_fn)(void *ctx, uint64_t seq, const char *json, size_t len);
/* Iterates entries with seq >= from_seq in increasing order. */
bool sw_state_outbox_iter(sw_state *st, uint64_t from_seq, sw_state_outbox_fn fn, void *ctx,
                          sw_err *err);
/* Replaces out's content with the entry's JSON; *found false if absent. */
bool sw_state_outbox_get(sw_state *st, uint64_t seq, sw_buf *out, bool *found, sw_err *err);
/* Deleting an absent entry is not an error. Synced when sync is on. */
bool sw_state_outbox_delete(sw_state *st, uint64_t seq, sw_err *err);
/* Number of entries: counted once at open, then kept by this process's writes
 * (the engine's commits, the notifier's batches, outbox_delete); O(1). */
bool sw_state_outbox_count(sw_state *st, uint64_t *count, sw_err *err);

/* ---- dead letter --------------------------------------------------------- */

typedef struct sw_state_dead_letter {
    uint64_t seq;
    sw_time_us time;       /* wall time it was written */
    const char *kind;      /* "event", "mail", ... */
    const char *reason;    /* human-readable, never a secret */
    const char *partition; /* "" when not from a partition */
    const char *offset;    /* "" when not from a partition */
    const void *bytes;     /* the first min(len, dead_letter_max_bytes) bytes */
    size_t len;
    size_t orig_len; /* the full size before the bound */
} sw_state_dead_letter;

/* Writes one entry by itself (e.g. the notifier's permanent failures). The
 * seq, time and orig_len fields of dl are ignored and filled in. */
bool sw_state_dead_letter_put(sw_state *st, const sw_state_dead_letter *dl, sw_err *err);
typedef bool (*sw_state_dead_letter_fn)(void *ctx, const sw_state_dead_letter *dl);
bool sw_state_dead_letter_iter(sw_state *st, sw_state_dead_letter_fn fn, void *ctx, sw_err *err);

/* ---- notify KV (column family "notify", free-form keys) -------------------- */

bool sw_state_kv_get(sw_state *st, const void *key, size_t klen, sw_buf *out, bool *found,
                     sw_err *err);
bool sw_state_kv_put(sw_state *st, const void *key, size_t klen, const void *val, size_t vlen,
                     sw_err *err);
bool sw_state_kv_delete(sw_state *st, const void *key, size_t klen, sw_err *err);
typedef bool (*sw_state_kv_fn)(void *ctx, const void *key, size_t klen, const void *val,
                               size_t vlen);
/* Entries whose key starts with prefix (plen may be 0: all), in key order. */
bool sw_state_kv_iter_prefix(sw_state *st, const void *prefix, size_t plen, sw_state_kv_fn fn,
                             void *ctx, sw_err *err);
/* The same from the first key >= from, a key with the prefix (else from the
 * prefix's start): a queue's reader resumes past the tombstones of what it
 * already took instead of stepping over them on every read. */
bool sw_state_kv_iter_from(sw_state *st, const void *prefix, size_t plen, const void *from,
                           size_t flen, sw_state_kv_fn fn, void *ctx, sw_err *err);

/*
 * An atomic batch for the notifier: delete outbox entries and put/delete
 * notify KV entries, committed together (so "this diff is now in digest D"
 * and "the outbox entry is gone" happen at once). Building never fails
 * except on allocation; errors surface at commit.
 */
typedef struct sw_state_batch sw_state_batch;
sw_state_batch *sw_state_batch_new(void);
void sw_state_batch_free(sw_state_batch *b);
void sw_state_batch_outbox_delete(sw_state_batch *b, uint64_t seq);
void sw_state_batch_kv_put(sw_state_batch *b, const void *key, size_t klen, const void *val,
                           size_t vlen);
void sw_state_batch_kv_delete(sw_state_batch *b, const void *key, size_t klen);
/* Writes the batch (synced when sync is on). The batch may be reused after
 * sw_state_batch_clear. */
bool sw_state_batch_commit(sw_state *st, sw_state_batch *b, sw_err *err);
void sw_state_batch_clear(sw_state_batch *b);

/* ---- inspection ------------------------------------------------------------ */

typedef struct sw_state_image_info {
    const char *image;
    sw_time_us last_scan;  /* T; SW_TIME_UNSET when never applied */
    sw_time_us last_apply; /* wall time of the last applied window (image_ttl) */
    uint64_t findings;     /* |S| */
    const char *const *tags;
    size_t n_tags;
    bool window_open;
} sw_state_image_info;

typedef bool (*sw_state_image_fn)(void *ctx, const sw_state_image_info *info);
/* Every image with state (applied sets or an open window), in key order. */
bool sw_state_images_iter(sw_state *st, sw_state_image_fn fn, void *ctx, sw_err *err);
/* One image; *found false when the store knows nothing of it. */
bool sw_state_image_get(sw_state *st, const char *image, sw_state_image_fn fn, void *ctx,
                        bool *found, sw_err *err);

typedef struct sw_state_set_entry {
    const char *key;
    sw_time_us first_seen; /* scan times */
    sw_time_us last_seen;
    /* The normalized finding as decode prints it, as last reported with a
     * different content: a rescan that only changes its scan_time does not
     * rewrite it, so its scan_time can be older than last_seen. */
    const char *finding_json;
    size_t finding_len;
} sw_state_set_entry;
typedef bool (*sw_state_set_fn)(void *ctx, const sw_state_set_entry *e);
/* The image's finding set S, in key order. */
bool sw_state_set_iter(sw_state *st, const char *image, sw_state_set_fn fn, void *ctx, sw_err *err);

typedef struct sw_state_pending {
    const char *key; /* NULL for a clean marker */
    bool resolved;
    bool snapshot;
    bool clean_marker;
    sw_time_us scan_time;
} sw_state_pending;
typedef bool (*sw_state_pending_fn)(void *ctx, const sw_state_pending *p);
/* The durable pending records of the image's open window (arrival order). */
bool sw_state_window_iter(sw_state *st, const char *image, sw_state_pending_fn fn, void *ctx,
                          sw_err *err);

#endif
