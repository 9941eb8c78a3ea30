/*
 * The store's internals, shared by the files of state/ only (never include
 * it outside state/). It is the one place RocksDB types appear.
 */
#ifndef SW_STATE_STORE_INTERNAL_H
#define SW_STATE_STORE_INTERNAL_H

#include <pthread.h>
#include <rocksdb/c.h>

#include "scanwatch/state.h"

typedef enum {
    SW_CF_DEFAULT = 0,
    SW_CF_META,
    SW_CF_IMAGES,
    SW_CF_SETS,
    SW_CF_WINDOWS,
    SW_CF_CHECKPOINTS,
    SW_CF_OUTBOX,
    SW_CF_DEAD_LETTER,
    SW_CF_TAGS,
    SW_CF_NOTIFY,
    SW_CF_COUNT
} sw_cf;

#define SW_META_SCHEMA "schema_version"
#define SW_META_OUTBOX_NEXT "outbox_next"
#define SW_META_DIFFLOG "diff_log_progress"

struct sw_state {
    rocksdb_t *db;
    rocksdb_options_t *opts;
    rocksdb_options_t *cf_opts[SW_CF_COUNT]; /* column families with their own options, or NULL */
    rocksdb_block_based_table_options_t *bbto;
    rocksdb_cache_t *cache;
    rocksdb_column_family_handle_t *cf[SW_CF_COUNT];
    /* Column families a newer version created; kept open only so RocksDB lets us in. */
    rocksdb_column_family_handle_t **extra_cf;
    size_t n_extra_cf;
    rocksdb_writeoptions_t *wo;      /* sync as configured */
    rocksdb_writeoptions_t *wo_fast; /* never synced: batches without a checkpoint */
    rocksdb_readoptions_t *ro;
    bool read_only;
    bool sync;
    int schema;
    size_t dl_max;
    pthread_mutex_t mu; /* guards the counters below */
    uint64_t outbox_next;
    uint64_t outbox_live; /* entries in the outbox: counted at open, kept by the writers */
    uint64_t dl_next;
};

/* RocksDB's errptr convention -> sw_err (frees *rerr). Returns false if set. */
bool sw_state_rerr(char *rerr, sw_err *err, const char *what);
/* Reserves n consecutive outbox sequences; returns the first. */
uint64_t sw_state_reserve_outbox(sw_state *st, uint64_t n);
uint64_t sw_state_reserve_dead_letter(sw_state *st);
/* n outbox entries became durable (the engine's commit). */
void sw_state_outbox_added(sw_state *st, uint64_t n);
/* Encodes a dead-letter value (bounded) into out. */
void sw_state_encode_dead_letter(const sw_state *st, const sw_state_dead_letter *dl, sw_time_us now,
                                 sw_buf *out);
/*
 * An iterator over cf bounded to keys starting with prefix (iterate_upper_bound
 * = the prefix's successor), so a scan stops at the prefix end instead of
 * stepping over the tombstones of other images' deleted keys. The iterator
 * is positioned at the first key. Free with sw_state_prefix_iter_free.
 * With wb != NULL the iterator also sees that WriteBatchWithIndex.
 */
typedef struct sw_state_piter {
    rocksdb_iterator_t *it;
    rocksdb_readoptions_t *ro;
    char *bound;
} sw_state_piter;
bool sw_state_prefix_iter(sw_state *st, sw_cf cf, rocksdb_writebatch_wi_t *wb, const void *prefix,
                          size_t plen, sw_state_piter *pi);
/* Frees the iterator; returns false (with err) if it had failed. */
bool sw_state_prefix_iter_free(sw_state_piter *pi, sw_err *err);
/* Iterates keys of cf starting with prefix; fn returns false to stop. */
typedef bool (*sw_state_raw_fn)(void *ctx, const char *k, size_t kl, const char *v, size_t vl);
bool sw_state_scan(sw_state *st, sw_cf cf, const void *prefix, size_t plen, sw_state_raw_fn fn,
                   void *ctx, sw_err *err);
/* The same from the first key >= from (a key with the prefix; else from the prefix). */
bool sw_state_scan_from(sw_state *st, sw_cf cf, const void *prefix, size_t plen, const void *from,
                        size_t flen, sw_state_raw_fn fn, void *ctx, sw_err *err);
/*
 * Image record (images CF): T, the wall time of the last apply, |S|, tags,
 * then the set S itself as `findings` entries sorted by finding key (key,
 * first seen, last seen, content hash). The finding JSON of each entry lives
 * in the sets CF (hash8 image '\0' key -> JSON) and is rewritten only when its
 * content hash changes, so an unchanged finding costs a few bytes per rescan.
 */
typedef struct sw_state_image_rec {
    sw_time_us last_scan;
    sw_time_us last_apply;
    uint64_t findings;
    size_t n_tags;
    const char *tags[64];
    const void *entries; /* encoded entries (decode with sw_set_ent_next) */
    size_t entries_len;
} sw_state_image_rec;
#define SW_STATE_MAX_TAGS 64
/* Encodes r with the given encoded entries (r->entries is ignored). */
void sw_state_image_rec_encode(const sw_state_image_rec *r, const void *entries, size_t entries_len,
                               sw_buf *out);
bool sw_state_image_rec_decode(const void *v, size_t n, sw_state_image_rec *r);
/* One entry of S; key points into the encoded bytes (not NUL-terminated). */
typedef struct sw_set_ent {
    const char *key;
    size_t key_len;
    sw_time_us first, last;
    uint64_t hash;
} sw_set_ent;
void sw_set_ent_encode(sw_buf *out, const sw_set_ent *e);
/* Decodes the next entry; false at the end or on malformed bytes. */
bool sw_set_ent_next(const unsigned char **p, const unsigned char *end, sw_set_ent *e);
/* Hash of a finding's JSON without its scan_time value (which changes on
 * every rescan while the finding does not). */
uint64_t sw_finding_content_hash(const char *json, size_t len);
/* Checkpoint value codec. */
void sw_state_checkpoint_encode(const sw_state_checkpoint *cp, sw_buf *out);
bool sw_state_checkpoint_decode(const void *v, size_t n, sw_state_checkpoint *cp);

#endif
