/* The RocksDB store: open/close, schema, checkpoints, outbox, dead letter,
 * notify KV, inspection. */
#include "store_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "codec.h"
#include "scanwatch/log.h"

static const char *const cf_names[SW_CF_COUNT] = {"default", "meta",        "images", "sets",
                                                  "windows", "checkpoints", "outbox", "dead_letter",
                                                  "tags",    "notify"};

/* What an operator should do about a RocksDB error, judged from its text
 * (RocksDB's C API gives no status codes). */
static const char *rerr_hint(const char *rerr)
{
    if (strstr(rerr, "No space left on device") != NULL) {
        return " (the state disk is full: free space or grow the volume and restart; nothing "
               "after the last durable checkpoint was acknowledged)";
    }
    if (strstr(rerr, "Read-only file system") != NULL ||
        strstr(rerr, "Permission denied") != NULL) {
        return " (state_dir is not writable: mount it read-write for this user and restart)";
    }
    /* A missing CURRENT, or a MANIFEST that CURRENT names but that is
     * missing, in a directory that holds a database, is damage too. */
    if (strncmp(rerr, "Corruption", 10) == 0 || strstr(rerr, "MANIFEST-") != NULL ||
        strstr(rerr, "/CURRENT") != NULL) {
        return " (the state is corrupt: restore state_dir from a backup, or move it away and "
               "rebuild it from the hub with `scanwatch rebuild`)";
    }
    return "";
}

bool sw_state_rerr(char *rerr, sw_err *err, const char *what)
{
    if (rerr == NULL) {
        return true;
    }
    sw_err_set(err, SW_E_STATE, "%s: %s%s", what, rerr, rerr_hint(rerr));
    rocksdb_free(rerr);
    return false;
}

int sw_state_schema_version(const sw_state *st)
{
    return st->schema;
}

bool sw_state_sync_enabled(const sw_state *st)
{
    return st->sync;
}

uint64_t sw_state_reserve_outbox(sw_state *st, uint64_t n)
{
    pthread_mutex_lock(&st->mu);
    uint64_t first = st->outbox_next;
    st->outbox_next += n;
    pthread_mutex_unlock(&st->mu);
    return first;
}

void sw_state_outbox_added(sw_state *st, uint64_t n)
{
    pthread_mutex_lock(&st->mu);
    st->outbox_live += n;
    pthread_mutex_unlock(&st->mu);
}

static void outbox_removed(sw_state *st, uint64_t n)
{
    pthread_mutex_lock(&st->mu);
    st->outbox_live -= n < st->outbox_live ? n : st->outbox_live;
    pthread_mutex_unlock(&st->mu);
}

uint64_t sw_state_reserve_dead_letter(sw_state *st)
{
    pthread_mutex_lock(&st->mu);
    uint64_t seq = st->dl_next++;
    pthread_mutex_unlock(&st->mu);
    return seq;
}

static char *get_raw(sw_state *st, sw_cf cf, const void *k, size_t kl, size_t *vl, sw_err *err)
{
    char *rerr = NULL;
    char *v = rocksdb_get_cf(st->db, st->ro, st->cf[cf], k, kl, vl, &rerr);
    if (!sw_state_rerr(rerr, err, "read")) {
        return NULL;
    }
    return v;
}

/* Last key of a column family of 8-byte sequence keys, +1; 0 when empty.
 * A failed read is an error: guessing 0 would overwrite live entries. */
static bool next_seq_of(sw_state *st, sw_cf cf, uint64_t *next, sw_err *err)
{
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(st->db, st->ro, st->cf[cf]);
    *next = 0;
    rocksdb_iter_seek_to_last(it);
    if (rocksdb_iter_valid(it)) {
        size_t kl;
        const char *k = rocksdb_iter_key(it, &kl);
        if (kl == 8) {
            *next = sw_dec_be64((const unsigned char *)k) + 1;
        }
    }
    char *rerr = NULL;
    rocksdb_iter_get_error(it, &rerr);
    rocksdb_iter_destroy(it);
    return sw_state_rerr(rerr, err, cf == SW_CF_OUTBOX ? "outbox scan" : "dead letter scan");
}

static bool check_schema(sw_state *st, bool fresh_allowed, sw_err *err)
{
    size_t vl = 0;
    sw_err_clear(err);
    char *v = get_raw(st, SW_CF_META, SW_META_SCHEMA, strlen(SW_META_SCHEMA), &vl, err);
    if (!sw_err_ok(err)) {
        return false;
    }
    if (v == NULL) {
        if (!fresh_allowed) {
            return sw_err_set(err, SW_E_SCHEMA, "the state has no schema version");
        }
        char text[16];
        int n = snprintf(text, sizeof text, "%d", SW_STATE_SCHEMA_VERSION);
        char *rerr = NULL;
        rocksdb_put_cf(st->db, st->wo, st->cf[SW_CF_META], SW_META_SCHEMA, strlen(SW_META_SCHEMA),
                       text, (size_t)n, &rerr);
        st->schema = SW_STATE_SCHEMA_VERSION;
        return sw_state_rerr(rerr, err, "write schema version");
    }
    char text[16] = {0};
    memcpy(text, v, vl < sizeof text - 1 ? vl : sizeof text - 1);
    rocksdb_free(v);
    char *end = NULL;
    errno = 0;
    long ver = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || ver < 1 || ver > 1000000) {
        return sw_err_set(err, SW_E_SCHEMA, "state schema version '%s' is not a number", text);
    }
    if (ver > SW_STATE_SCHEMA_VERSION) {
        return sw_err_set(err, SW_E_SCHEMA,
                          "state was written by a newer scanwatch (schema version %ld; this "
                          "build understands up to %d); refusing to open it",
                          ver, SW_STATE_SCHEMA_VERSION);
    }
    if (ver < SW_STATE_SCHEMA_VERSION) {
        /* Version 1 kept one key per set entry with the full finding and one
         * key per pending record; its data is rebuilt from the hub (or the
         * input) rather than converted. */
        return sw_err_set(err, SW_E_SCHEMA,
                          "state was written by an older scanwatch (schema version %ld; this "
                          "build reads version %d); rebuild it: move state_dir aside and run "
                          "`scanwatch rebuild` (or `scanwatch process` on the input again)",
                          ver, SW_STATE_SCHEMA_VERSION);
    }
    st->schema = (int)ver;
    return true;
}

static bool count_cb(void *ctx, const char *k, size_t kl, const char *v, size_t vl)
{
    (void)k, (void)kl, (void)v, (void)vl;
    (*(uint64_t *)ctx)++;
    return true;
}

static bool load_counters(sw_state *st, sw_err *err)
{
    if (!next_seq_of(st, SW_CF_DEAD_LETTER, &st->dl_next, err) ||
        !next_seq_of(st, SW_CF_OUTBOX, &st->outbox_next, err) ||
        !sw_state_scan(st, SW_CF_OUTBOX, NULL, 0, count_cb, &st->outbox_live, err)) {
        return false;
    }
    size_t vl = 0;
    sw_err_clear(err);
    char *v = get_raw(st, SW_CF_META, SW_META_OUTBOX_NEXT, strlen(SW_META_OUTBOX_NEXT), &vl, err);
    if (!sw_err_ok(err)) {
        return false;
    }
    if (v != NULL && vl == 8) {
        uint64_t m = sw_dec_be64((const unsigned char *)v);
        if (m > st->outbox_next) {
            st->outbox_next = m;
        }
    }
    rocksdb_free(v);
    return true;
}

/* Whether dir holds a file named name. */
static bool has_file(const char *dir, const char *name)
{
    char path[4096];
    struct stat sb;
    int n = snprintf(path, sizeof path, "%s/%s", dir, name);
    return n > 0 && (size_t)n < sizeof path && stat(path, &sb) == 0;
}

/* Names of existing column families that this build does not know.
 * *exists: a database is there; a directory with RocksDB's files whose
 * column families cannot be read is a damaged database, not a missing one
 * (err set, false returned). */
static bool list_unknown_cfs(const char *dir, rocksdb_options_t *o, char ***names, size_t *n,
                             bool *exists, sw_err *err)
{
    char *rerr = NULL;
    size_t count = 0;
    char **list = rocksdb_list_column_families(o, dir, &count, &rerr);
    *names = NULL;
    *n = 0;
    *exists = rerr == NULL;
    if (rerr != NULL) {
        if (list != NULL) { /* librocksdb 7.8 allocates an empty list even on error */
            rocksdb_list_column_families_destroy(list, count);
        }
        if (has_file(dir, "CURRENT") || has_file(dir, "IDENTITY")) {
            return sw_state_rerr(rerr, err, "open state");
        }
        rocksdb_free(rerr);
        return true; /* no database yet */
    }
    char **out = calloc(count + 1, sizeof *out);
    if (out == NULL) {
        rocksdb_list_column_families_destroy(list, count);
        return sw_err_set(err, SW_E_NOMEM, "column family list");
    }
    for (size_t i = 0; i < count; i++) {
        bool known = false;
        for (int c = 0; c < SW_CF_COUNT; c++) {
            known = known || strcmp(list[i], cf_names[c]) == 0;
        }
        if (!known) {
            out[(*n)++] = strdup(list[i]);
        }
    }
    rocksdb_list_column_families_destroy(list, count);
    *names = out;
    return true;
}

/* Fixed prefix length of the per-image keys of a column family (0: none):
 * sets: hash8; windows: 'R' hash8. Seeks at least this long use the prefix
 * bloom filters; shorter ones read in total order. */
static size_t cf_prefix_len(sw_cf cf)
{
    return cf == SW_CF_SETS ? SW_KEY_HASH_LEN : (cf == SW_CF_WINDOWS ? SW_KEY_HASH_LEN + 1 : 0);
}

/* Leveled compaction rewrites most of L1 at every L0 -> L1 compaction when
 * new keys fall all over the key range, as the hashed image prefixes of the
 * sets and windows column families and the image names of images do: at
 * RocksDB's default trigger of 4 L0 files their write amplification was
 * 6-15 and compaction ~25-40 % of the service's CPU; with 100,000 images it
 * was still half of it (docs/benchmarks.md "RocksDB tuning (issue 8)").
 * Universal compaction merges sorted runs of similar size instead, so a
 * value is rewritten a few times (log of the data size), not once per L1
 * rewrite. Its price is space: up to ~2x the live data while a merge runs
 * (1.2x the leveled layout's bytes at the end of a 3-day 100k-image run).
 *
 * images, sets (long-lived; sets is read back only for a tag base or `state
 * show`), outbox and notify (queues: written once, deleted when taken, a
 * day later for a backlog of mails) are merged when 8 runs gather. Reads
 * check at most that many runs' filters. */
static void tune_universal(rocksdb_options_t *o)
{
    rocksdb_options_set_compaction_style(o, rocksdb_universal_compaction);
    rocksdb_options_set_level0_file_num_compaction_trigger(o, 8);
    /* A compaction holds the index of the file it writes until the file is
     * done: ~9 MB for RocksDB's default 64 MB files, two compactions at
     * once (a 100,000-image tenant's heap peak, heaptrack). */
    rocksdb_options_set_target_file_size_base(o, (uint64_t)16 << 20);
}

/* windows (open windows' record chunks: written once, read and deleted when
 * the window closes): most of this data is dead within a day. Not
 * compressed: LZ4 cost more CPU in compactions than it saved. */
static void tune_windows(rocksdb_options_t *o)
{
    tune_universal(o);
    rocksdb_options_set_compression(o, rocksdb_no_compression);
}

static void tune_options(sw_state *st, const sw_state_opts *o)
{
    size_t cache = o->block_cache_bytes > 0 ? o->block_cache_bytes : (size_t)16 << 20;
    size_t wbuf = o->write_buffer_bytes > 0 ? o->write_buffer_bytes : (size_t)4 << 20;
    st->opts = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(st->opts, !o->read_only);
    rocksdb_options_set_create_missing_column_families(st->opts, !o->read_only);
    rocksdb_options_set_write_buffer_size(st->opts, wbuf);
    rocksdb_options_set_max_write_buffer_number(st->opts, 2);
    /* One memtable budget for all column families, so memory does not grow
     * with the number of families that happen to be written. */
    rocksdb_options_set_db_write_buffer_size(st->opts, 3 * wbuf);
    rocksdb_options_set_max_background_jobs(st->opts, 2);
    rocksdb_options_set_compression(st->opts, rocksdb_lz4_compression);
    rocksdb_options_set_max_open_files(st->opts, 256);
    rocksdb_options_set_keep_log_file_num(st->opts, 3);
    /* RocksDB's own LOG keeps its header only: librocksdb 7.8 aborts on the
     * second failed write of that file (a full or read-only disk), before
     * the failing commit's error could reach the operator. Errors reach our
     * log through the returned status instead. 5 = HEADER_LEVEL. */
    rocksdb_options_set_info_log_level(st->opts, 5);
    /* Small column families (checkpoints, meta, images) would otherwise pin
     * every WAL file until they flush on their own: bound the WAL so RocksDB
     * flushes them and deletes old logs. */
    rocksdb_options_set_max_total_wal_size(st->opts, 4 * wbuf);
    /* Bounded memory: index and filter blocks live in the block cache, so
     * memory does not grow with the number of SST files. */
    st->cache = rocksdb_cache_create_lru(cache);
    st->bbto = rocksdb_block_based_options_create();
    rocksdb_block_based_options_set_block_cache(st->bbto, st->cache);
    rocksdb_block_based_options_set_cache_index_and_filter_blocks(st->bbto, 1);
    rocksdb_block_based_options_set_pin_l0_filter_and_index_blocks_in_cache(st->bbto, 1);
    /* Partitioned index and filters: the cache holds small partitions
     * instead of one multi-megabyte index block per file, so a block cache
     * of a few MiB does not thrash (and decompress) whole indexes. */
    rocksdb_block_based_options_set_index_type(
        st->bbto, rocksdb_block_based_table_index_type_two_level_index_search);
    rocksdb_block_based_options_set_partition_filters(st->bbto, 1);
    rocksdb_block_based_options_set_metadata_block_size(st->bbto, 4096);
    rocksdb_block_based_options_set_filter_policy(st->bbto,
                                                  rocksdb_filterpolicy_create_bloom_full(10));
    rocksdb_options_set_block_based_table_factory(st->opts, st->bbto);
    for (int cf = 0; cf < SW_CF_COUNT; cf++) {
        bool universal = cf == SW_CF_IMAGES || cf == SW_CF_SETS || cf == SW_CF_WINDOWS ||
                         cf == SW_CF_OUTBOX || cf == SW_CF_NOTIFY;
        if (!universal) {
            continue;
        }
        st->cf_opts[cf] = rocksdb_options_create_copy(st->opts);
        size_t plen = cf_prefix_len((sw_cf)cf);
        if (plen > 0) {
            rocksdb_options_set_prefix_extractor(st->cf_opts[cf],
                                                 rocksdb_slicetransform_create_fixed_prefix(plen));
            rocksdb_options_set_memtable_prefix_bloom_size_ratio(st->cf_opts[cf], 0.05);
        }
        if (cf == SW_CF_WINDOWS) {
            tune_windows(st->cf_opts[cf]);
        } else {
            tune_universal(st->cf_opts[cf]);
        }
    }
}

sw_state *sw_state_open(const sw_state_opts *o, sw_err *err)
{
    if (o == NULL || o->dir == NULL || o->dir[0] == '\0') {
        sw_err_set(err, SW_E_CONFIG, "state_dir is empty");
        return NULL;
    }
    sw_state *st = calloc(1, sizeof *st);
    if (st == NULL) {
        sw_err_set(err, SW_E_NOMEM, "state handle");
        return NULL;
    }
    pthread_mutex_init(&st->mu, NULL);
    st->read_only = o->read_only;
    st->sync = o->sync;
    st->dl_max = o->dead_letter_max_bytes > 0 ? o->dead_letter_max_bytes : (size_t)64 << 10;
    tune_options(st, o);
    st->wo = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(st->wo, o->sync);
    st->wo_fast = rocksdb_writeoptions_create();
    st->ro = rocksdb_readoptions_create();

    /* 0700: the state holds finding details and mail recipients. */
    if (!o->read_only && mkdir(o->dir, 0700) != 0 && errno != EEXIST) {
        sw_err_set(err, SW_E_STATE, "cannot create state_dir '%s': %s", o->dir, strerror(errno));
        sw_state_close(st);
        return NULL;
    }
    char **unknown = NULL;
    size_t n_unknown = 0;
    bool exists = false;
    if (!list_unknown_cfs(o->dir, st->opts, &unknown, &n_unknown, &exists, err)) {
        sw_err_prefix(err, "state_dir '%s'", o->dir);
        sw_state_close(st);
        return NULL;
    }
    if (o->read_only && !exists) {
        sw_err_set(err, SW_E_NOT_FOUND, "no scanwatch state in '%s'", o->dir);
        sw_state_close(st);
        return NULL;
    }
    size_t total = SW_CF_COUNT + n_unknown;
    const char **names = calloc(total, sizeof *names);
    const rocksdb_options_t **cfo = calloc(total, sizeof *cfo);
    rocksdb_column_family_handle_t **handles = calloc(total, sizeof *handles);
    if (names == NULL || cfo == NULL || handles == NULL) {
        sw_err_set(err, SW_E_NOMEM, "column family handles");
        goto fail;
    }
    for (size_t i = 0; i < total; i++) {
        names[i] = i < SW_CF_COUNT ? cf_names[i] : unknown[i - SW_CF_COUNT];
        cfo[i] = i < SW_CF_COUNT && st->cf_opts[i] != NULL ? st->cf_opts[i] : st->opts;
    }
    char *rerr = NULL;
    if (o->read_only) {
        st->db = rocksdb_open_for_read_only_column_families(st->opts, o->dir, (int)total, names,
                                                            cfo, handles, 0, &rerr);
    } else {
        st->db =
            rocksdb_open_column_families(st->opts, o->dir, (int)total, names, cfo, handles, &rerr);
    }
    if (rerr != NULL) {
        sw_state_rerr(rerr, err, "open state");
        sw_err_prefix(err, "state_dir '%s'", o->dir);
        goto fail;
    }
    for (size_t i = 0; i < SW_CF_COUNT; i++) {
        st->cf[i] = handles[i];
    }
    st->extra_cf = n_unknown > 0 ? calloc(n_unknown, sizeof *st->extra_cf) : NULL;
    for (size_t i = 0; i < n_unknown; i++) {
        if (st->extra_cf != NULL) {
            st->extra_cf[st->n_extra_cf++] = handles[SW_CF_COUNT + i];
        } else {
            rocksdb_column_family_handle_destroy(handles[SW_CF_COUNT + i]);
        }
    }
    if (!check_schema(st, !o->read_only, err) || !load_counters(st, err)) {
        sw_err_prefix(err, "state_dir '%s'", o->dir);
        goto fail;
    }
    free(names);
    free(cfo);
    free(handles);
    for (size_t i = 0; i < n_unknown; i++) {
        free(unknown[i]);
    }
    free(unknown);
    return st;
fail:
    free(names);
    free(cfo);
    free(handles);
    for (size_t i = 0; i < n_unknown; i++) {
        free(unknown[i]);
    }
    free(unknown);
    sw_state_close(st);
    return NULL;
}

/* RocksDB's own per-column-family statistics (flush and compaction bytes,
 * write amplification, compaction CPU) since open: the LOG that would hold
 * them keeps its header only (see tune_options), so a debug run of a
 * writer reports them here when it closes. */
static void log_cf_stats(sw_state *st)
{
    if (st->db == NULL || st->read_only || !sw_log_enabled(SW_LOG_DEBUG)) {
        return;
    }
    for (int i = 0; i < SW_CF_COUNT; i++) {
        char *text =
            rocksdb_property_value_cf(st->db, st->cf[i], "rocksdb.cfstats-no-file-histogram");
        SW_LOG(SW_LOG_DEBUG, "rocksdb column family stats", SW_LF_STR("cf", cf_names[i]),
               SW_LF_STR("stats", text != NULL ? text : ""));
        rocksdb_free(text);
    }
    char *db = rocksdb_property_value(st->db, "rocksdb.dbstats");
    SW_LOG(SW_LOG_DEBUG, "rocksdb db stats", SW_LF_STR("stats", db != NULL ? db : ""));
    rocksdb_free(db);
}

void sw_state_close(sw_state *st)
{
    if (st == NULL) {
        return;
    }
    log_cf_stats(st);
    for (int i = 0; i < SW_CF_COUNT; i++) {
        if (st->cf[i] != NULL) {
            rocksdb_column_family_handle_destroy(st->cf[i]);
        }
    }
    for (size_t i = 0; i < st->n_extra_cf; i++) {
        rocksdb_column_family_handle_destroy(st->extra_cf[i]);
    }
    free(st->extra_cf);
    if (st->db != NULL) {
        rocksdb_close(st->db);
    }
    if (st->ro != NULL) {
        rocksdb_readoptions_destroy(st->ro);
    }
    if (st->wo != NULL) {
        rocksdb_writeoptions_destroy(st->wo);
    }
    if (st->wo_fast != NULL) {
        rocksdb_writeoptions_destroy(st->wo_fast);
    }
    if (st->opts != NULL) {
        rocksdb_options_destroy(st->opts);
    }
    for (int i = 0; i < SW_CF_COUNT; i++) {
        if (st->cf_opts[i] != NULL) {
            rocksdb_options_destroy(st->cf_opts[i]);
        }
    }
    if (st->bbto != NULL) {
        rocksdb_block_based_options_destroy(st->bbto);
    }
    if (st->cache != NULL) {
        rocksdb_cache_destroy(st->cache);
    }
    pthread_mutex_destroy(&st->mu);
    free(st);
}

/* ---- generic scan ---- */

bool sw_state_prefix_iter(sw_state *st, sw_cf cf, rocksdb_writebatch_wi_t *wb, const void *prefix,
                          size_t plen, sw_state_piter *pi)
{
    memset(pi, 0, sizeof *pi);
    pi->ro = rocksdb_readoptions_create();
    if (plen < cf_prefix_len(cf)) {
        rocksdb_readoptions_set_total_order_seek(pi->ro, 1);
    }
    size_t blen = plen;
    if (plen > 0) {
        pi->bound = malloc(plen);
        if (pi->bound == NULL) {
            rocksdb_readoptions_destroy(pi->ro);
            pi->ro = NULL;
            return false;
        }
        memcpy(pi->bound, prefix, plen);
        /* The successor: bump the last byte below 0xff, drop what follows. */
        while (blen > 0 && (unsigned char)pi->bound[blen - 1] == 0xff) {
            blen--;
        }
        if (blen > 0) {
            pi->bound[blen - 1]++;
            rocksdb_readoptions_set_iterate_upper_bound(pi->ro, pi->bound, blen);
        }
    }
    pi->it = rocksdb_create_iterator_cf(st->db, pi->ro, st->cf[cf]);
    if (wb != NULL) {
        pi->it = rocksdb_writebatch_wi_create_iterator_with_base_cf(wb, pi->it, st->cf[cf]);
    }
    if (plen > 0) {
        rocksdb_iter_seek(pi->it, prefix, plen);
    } else {
        rocksdb_iter_seek_to_first(pi->it);
    }
    return true;
}

bool sw_state_prefix_iter_free(sw_state_piter *pi, sw_err *err)
{
    char *rerr = NULL;
    if (pi->it != NULL) {
        rocksdb_iter_get_error(pi->it, &rerr);
        rocksdb_iter_destroy(pi->it);
    }
    if (pi->ro != NULL) {
        rocksdb_readoptions_destroy(pi->ro);
    }
    free(pi->bound);
    memset(pi, 0, sizeof *pi);
    return sw_state_rerr(rerr, err, "scan");
}

bool sw_state_scan(sw_state *st, sw_cf cf, const void *prefix, size_t plen, sw_state_raw_fn fn,
                   void *ctx, sw_err *err)
{
    return sw_state_scan_from(st, cf, prefix, plen, NULL, 0, fn, ctx, err);
}

bool sw_state_scan_from(sw_state *st, sw_cf cf, const void *prefix, size_t plen, const void *from,
                        size_t flen, sw_state_raw_fn fn, void *ctx, sw_err *err)
{
    sw_state_piter pi;
    if (!sw_state_prefix_iter(st, cf, NULL, prefix, plen, &pi)) {
        return sw_err_set(err, SW_E_NOMEM, "scan");
    }
    if (flen > 0 && flen >= plen && (plen == 0 || memcmp(from, prefix, plen) == 0)) {
        rocksdb_iter_seek(pi.it, from, flen);
    }
    for (; rocksdb_iter_valid(pi.it); rocksdb_iter_next(pi.it)) {
        size_t kl, vl;
        const char *k = rocksdb_iter_key(pi.it, &kl);
        if (kl < plen || (plen > 0 && memcmp(k, prefix, plen) != 0)) {
            break;
        }
        const char *v = rocksdb_iter_value(pi.it, &vl);
        if (!fn(ctx, k, kl, v, vl)) {
            break;
        }
    }
    return sw_state_prefix_iter_free(&pi, err);
}

/* ---- checkpoints ---- */

void sw_state_checkpoint_encode(const sw_state_checkpoint *cp, sw_buf *out)
{
    sw_enc_str(out, cp->offset);
    sw_enc_i64(out, cp->sequence);
    sw_enc_i64(out, cp->enqueued);
    sw_enc_i64(out, cp->max_event_time);
}

bool sw_state_checkpoint_decode(const void *v, size_t n, sw_state_checkpoint *cp)
{
    sw_dec d = sw_dec_init(v, n);
    memset(cp, 0, sizeof *cp);
    const char *off = sw_dec_str(&d);
    cp->sequence = sw_dec_i64(&d);
    cp->enqueued = sw_dec_i64(&d);
    cp->max_event_time = sw_dec_i64(&d);
    if (d.bad || off == NULL || strlen(off) >= sizeof cp->offset) {
        return false;
    }
    memcpy(cp->offset, off, strlen(off) + 1);
    return true;
}

bool sw_state_checkpoint_get(sw_state *st, const char *partition, sw_state_checkpoint *out,
                             bool *found, sw_err *err)
{
    size_t vl = 0;
    sw_err_clear(err);
    memset(out, 0, sizeof *out);
    *found = false;
    char *v = get_raw(st, SW_CF_CHECKPOINTS, partition, strlen(partition), &vl, err);
    if (!sw_err_ok(err)) {
        return false;
    }
    if (v == NULL) {
        return true;
    }
    bool ok = sw_state_checkpoint_decode(v, vl, out);
    rocksdb_free(v);
    if (!ok) {
        return sw_err_set(err, SW_E_STATE, "checkpoint of partition '%s' is corrupt", partition);
    }
    *found = true;
    return true;
}

/* Writes an encoded value by itself and frees the buffer (which may have failed). */
static bool put_encoded(sw_state *st, sw_cf cf, const char *key, size_t klen, sw_buf *b,
                        const char *what, sw_err *err)
{
    if (!sw_buf_check(b, err)) {
        sw_buf_free(b);
        return false;
    }
    char *rerr = NULL;
    rocksdb_put_cf(st->db, st->wo, st->cf[cf], key, klen, b->data, b->len, &rerr);
    sw_buf_free(b);
    return sw_state_rerr(rerr, err, what);
}

bool sw_state_checkpoint_put(sw_state *st, const char *partition, const sw_state_checkpoint *cp,
                             sw_err *err)
{
    sw_buf b;
    sw_buf_init(&b, 0);
    sw_state_checkpoint_encode(cp, &b);
    return put_encoded(st, SW_CF_CHECKPOINTS, partition, strlen(partition), &b, "write checkpoint",
                       err);
}

struct cp_iter {
    sw_state_checkpoint_fn fn;
    void *ctx;
};

static bool cp_iter_cb(void *ctx, const char *k, size_t kl, const char *v, size_t vl)
{
    struct cp_iter *ci = ctx;
    char part[256];
    if (kl >= sizeof part) {
        return true;
    }
    memcpy(part, k, kl);
    part[kl] = '\0';
    sw_state_checkpoint cp;
    if (!sw_state_checkpoint_decode(v, vl, &cp)) {
        return true;
    }
    return ci->fn(ci->ctx, part, &cp);
}

bool sw_state_checkpoint_iter(sw_state *st, sw_state_checkpoint_fn fn, void *ctx, sw_err *err)
{
    struct cp_iter ci = {fn, ctx};
    return sw_state_scan(st, SW_CF_CHECKPOINTS, NULL, 0, cp_iter_cb, &ci, err);
}

/* ---- outbox ---- */

struct ob_iter {
    sw_state_outbox_fn fn;
    void *ctx;
};

static bool ob_iter_cb(void *ctx, const char *k, size_t kl, const char *v, size_t vl)
{
    struct ob_iter *oi = ctx;
    if (kl != 8) {
        return true;
    }
    return oi->fn(oi->ctx, sw_dec_be64((const unsigned char *)k), v, vl);
}

bool sw_state_outbox_iter(sw_state *st, uint64_t from_seq, sw_state_outbox_fn fn, void *ctx,
                          sw_err *err)
{
    struct ob_iter oi = {fn, ctx};
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(st->db, st->ro, st->cf[SW_CF_OUTBOX]);
    unsigned char start[8];
    sw_enc_be64(start, from_seq);
    for (rocksdb_iter_seek(it, (const char *)start, 8); rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        size_t kl, vl;
        const char *k = rocksdb_iter_key(it, &kl);
        const char *v = rocksdb_iter_value(it, &vl);
        if (!ob_iter_cb(&oi, k, kl, v, vl)) {
            break;
        }
    }
    char *rerr = NULL;
    rocksdb_iter_get_error(it, &rerr);
    rocksdb_iter_destroy(it);
    return sw_state_rerr(rerr, err, "outbox scan");
}

bool sw_state_outbox_get(sw_state *st, uint64_t seq, sw_buf *out, bool *found, sw_err *err)
{
    unsigned char k[8];
    sw_enc_be64(k, seq);
    size_t vl = 0;
    sw_err_clear(err);
    *found = false;
    char *v = get_raw(st, SW_CF_OUTBOX, k, 8, &vl, err);
    if (!sw_err_ok(err)) {
        return false;
    }
    sw_buf_reset(out);
    if (v == NULL) {
        return true;
    }
    sw_buf_append(out, v, vl);
    rocksdb_free(v);
    *found = true;
    return sw_buf_check(out, err);
}

bool sw_state_outbox_delete(sw_state *st, uint64_t seq, sw_err *err)
{
    unsigned char k[8];
    sw_enc_be64(k, seq);
    size_t vl = 0;
    sw_err_clear(err);
    char *v = get_raw(st, SW_CF_OUTBOX, (const char *)k, 8, &vl, err);
    if (!sw_err_ok(err)) {
        return false;
    }
    if (v == NULL) {
        return true; /* already gone */
    }
    rocksdb_free(v);
    char *rerr = NULL;
    rocksdb_delete_cf(st->db, st->wo, st->cf[SW_CF_OUTBOX], (const char *)k, 8, &rerr);
    if (!sw_state_rerr(rerr, err, "outbox delete")) {
        return false;
    }
    outbox_removed(st, 1);
    return true;
}

/* The outbox's size is counted once at open and then kept by its writers
 * (the engine's commit adds, the notifier's batch and outbox_delete remove):
 * counting it by a scan on every metrics update cost O(outbox) per tick. */
bool sw_state_outbox_count(sw_state *st, uint64_t *count, sw_err *err)
{
    (void)err;
    pthread_mutex_lock(&st->mu);
    *count = st->outbox_live;
    pthread_mutex_unlock(&st->mu);
    return true;
}

/* ---- dead letter ---- */

void sw_state_encode_dead_letter(const sw_state *st, const sw_state_dead_letter *dl, sw_time_us now,
                                 sw_buf *out)
{
    size_t keep = dl->len < st->dl_max ? dl->len : st->dl_max;
    sw_enc_i64(out, now);
    sw_enc_str(out, dl->kind != NULL ? dl->kind : "");
    sw_enc_str(out, dl->reason != NULL ? dl->reason : "");
    sw_enc_str(out, dl->partition != NULL ? dl->partition : "");
    sw_enc_str(out, dl->offset != NULL ? dl->offset : "");
    sw_enc_u64(out, dl->len);
    sw_enc_bytes(out, dl->bytes, keep);
}

bool sw_state_dead_letter_put(sw_state *st, const sw_state_dead_letter *dl, sw_err *err)
{
    sw_buf b;
    sw_buf_init(&b, 0);
    sw_state_encode_dead_letter(st, dl, sw_time_now(), &b);
    unsigned char k[8];
    sw_enc_be64(k, sw_state_reserve_dead_letter(st));
    return put_encoded(st, SW_CF_DEAD_LETTER, (const char *)k, 8, &b, "dead letter write", err);
}

struct dl_iter {
    sw_state_dead_letter_fn fn;
    void *ctx;
};

static bool dl_iter_cb(void *ctx, const char *k, size_t kl, const char *v, size_t vl)
{
    struct dl_iter *di = ctx;
    if (kl != 8) {
        return true;
    }
    sw_dec d = sw_dec_init(v, vl);
    sw_state_dead_letter dl = {0};
    dl.seq = sw_dec_be64((const unsigned char *)k);
    dl.time = sw_dec_i64(&d);
    dl.kind = sw_dec_str(&d);
    dl.reason = sw_dec_str(&d);
    dl.partition = sw_dec_str(&d);
    dl.offset = sw_dec_str(&d);
    dl.orig_len = (size_t)sw_dec_u64(&d);
    dl.bytes = sw_dec_bytes(&d, &dl.len);
    if (d.bad || dl.kind == NULL || dl.reason == NULL || dl.partition == NULL ||
        dl.offset == NULL) {
        return true;
    }
    return di->fn(di->ctx, &dl);
}

bool sw_state_dead_letter_iter(sw_state *st, sw_state_dead_letter_fn fn, void *ctx, sw_err *err)
{
    struct dl_iter di = {fn, ctx};
    return sw_state_scan(st, SW_CF_DEAD_LETTER, NULL, 0, dl_iter_cb, &di, err);
}

/* ---- notify KV ---- */

bool sw_state_kv_get(sw_state *st, const void *key, size_t klen, sw_buf *out, bool *found,
                     sw_err *err)
{
    size_t vl = 0;
    sw_err_clear(err);
    *found = false;
    char *v = get_raw(st, SW_CF_NOTIFY, key, klen, &vl, err);
    if (!sw_err_ok(err)) {
        return false;
    }
    sw_buf_reset(out);
    if (v == NULL) {
        return true;
    }
    sw_buf_append(out, v, vl);
    rocksdb_free(v);
    *found = true;
    return sw_buf_check(out, err);
}

bool sw_state_kv_put(sw_state *st, const void *key, size_t klen, const void *val, size_t vlen,
                     sw_err *err)
{
    char *rerr = NULL;
    rocksdb_put_cf(st->db, st->wo, st->cf[SW_CF_NOTIFY], key, klen, val, vlen, &rerr);
    return sw_state_rerr(rerr, err, "notify put");
}

bool sw_state_kv_delete(sw_state *st, const void *key, size_t klen, sw_err *err)
{
    char *rerr = NULL;
    rocksdb_delete_cf(st->db, st->wo, st->cf[SW_CF_NOTIFY], key, klen, &rerr);
    return sw_state_rerr(rerr, err, "notify delete");
}

struct kv_iter {
    sw_state_kv_fn fn;
    void *ctx;
};

static bool kv_iter_cb(void *ctx, const char *k, size_t kl, const char *v, size_t vl)
{
    struct kv_iter *ki = ctx;
    return ki->fn(ki->ctx, k, kl, v, vl);
}

bool sw_state_kv_iter_prefix(sw_state *st, const void *prefix, size_t plen, sw_state_kv_fn fn,
                             void *ctx, sw_err *err)
{
    struct kv_iter ki = {fn, ctx};
    return sw_state_scan(st, SW_CF_NOTIFY, prefix, plen, kv_iter_cb, &ki, err);
}

bool sw_state_kv_iter_from(sw_state *st, const void *prefix, size_t plen, const void *from,
                           size_t flen, sw_state_kv_fn fn, void *ctx, sw_err *err)
{
    struct kv_iter ki = {fn, ctx};
    return sw_state_scan_from(st, SW_CF_NOTIFY, prefix, plen, from, flen, kv_iter_cb, &ki, err);
}

/* ---- notifier batch ---- */

struct sw_state_batch {
    /* Column family handles are only known at commit: record operations. */
    struct op {
        bool del;
        bool outbox;
        char *key;
        size_t klen;
        char *val;
        size_t vlen;
    } * ops;
    size_t n, cap;
    bool oom;
};

sw_state_batch *sw_state_batch_new(void)
{
    return calloc(1, sizeof(sw_state_batch));
}

void sw_state_batch_clear(sw_state_batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        free(b->ops[i].key);
        free(b->ops[i].val);
    }
    b->n = 0;
    b->oom = false;
}

void sw_state_batch_free(sw_state_batch *b)
{
    if (b == NULL) {
        return;
    }
    sw_state_batch_clear(b);
    free(b->ops);
    free(b);
}

static void batch_add(sw_state_batch *b, bool del, bool outbox, const void *k, size_t kl,
                      const void *v, size_t vl)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 8;
        struct op *ops = realloc(b->ops, cap * sizeof *ops);
        if (ops == NULL) {
            b->oom = true;
            return;
        }
        b->ops = ops;
        b->cap = cap;
    }
    struct op *op = &b->ops[b->n];
    op->del = del;
    op->outbox = outbox;
    op->klen = kl;
    op->vlen = vl;
    op->key = malloc(kl > 0 ? kl : 1);
    op->val = malloc(vl > 0 ? vl : 1);
    if (op->key == NULL || op->val == NULL) {
        free(op->key);
        free(op->val);
        b->oom = true;
        return;
    }
    memcpy(op->key, k, kl);
    if (vl > 0) {
        memcpy(op->val, v, vl);
    }
    b->n++;
}

void sw_state_batch_outbox_delete(sw_state_batch *b, uint64_t seq)
{
    unsigned char k[8];
    sw_enc_be64(k, seq);
    batch_add(b, true, true, k, 8, NULL, 0);
}

void sw_state_batch_kv_put(sw_state_batch *b, const void *key, size_t klen, const void *val,
                           size_t vlen)
{
    batch_add(b, false, false, key, klen, val, vlen);
}

void sw_state_batch_kv_delete(sw_state_batch *b, const void *key, size_t klen)
{
    batch_add(b, true, false, key, klen, NULL, 0);
}

bool sw_state_batch_commit(sw_state *st, sw_state_batch *b, sw_err *err)
{
    if (b->oom) {
        return sw_err_set(err, SW_E_NOMEM, "notify batch");
    }
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    for (size_t i = 0; i < b->n; i++) {
        const struct op *op = &b->ops[i];
        rocksdb_column_family_handle_t *cf = st->cf[op->outbox ? SW_CF_OUTBOX : SW_CF_NOTIFY];
        if (op->del) {
            rocksdb_writebatch_delete_cf(wb, cf, op->key, op->klen);
        } else {
            rocksdb_writebatch_put_cf(wb, cf, op->key, op->klen, op->val, op->vlen);
        }
    }
    char *rerr = NULL;
    rocksdb_write(st->db, st->wo, wb, &rerr);
    rocksdb_writebatch_destroy(wb);
    if (!sw_state_rerr(rerr, err, "notify batch")) {
        return false;
    }
    /* The notifier deletes only outbox entries it has just read, each once. */
    uint64_t gone = 0;
    for (size_t i = 0; i < b->n; i++) {
        gone += b->ops[i].del && b->ops[i].outbox;
    }
    outbox_removed(st, gone);
    return true;
}

/* ---- image records ---- */

void sw_state_image_rec_encode(const sw_state_image_rec *r, const void *entries, size_t entries_len,
                               sw_buf *out)
{
    sw_enc_i64(out, r->last_scan);
    sw_enc_i64(out, r->last_apply);
    sw_enc_u64(out, r->findings);
    sw_enc_u64(out, r->n_tags);
    for (size_t i = 0; i < r->n_tags; i++) {
        sw_enc_str(out, r->tags[i]);
    }
    sw_enc_bytes(out, entries, entries_len);
}

bool sw_state_image_rec_decode(const void *v, size_t n, sw_state_image_rec *r)
{
    sw_dec d = sw_dec_init(v, n);
    r->last_scan = sw_dec_i64(&d);
    r->last_apply = sw_dec_i64(&d);
    r->findings = sw_dec_u64(&d);
    uint64_t nt = sw_dec_u64(&d);
    r->n_tags = 0;
    for (uint64_t i = 0; i < nt && !d.bad; i++) {
        const char *t = sw_dec_str(&d);
        if (t != NULL && r->n_tags < SW_STATE_MAX_TAGS) {
            r->tags[r->n_tags++] = t;
        }
    }
    r->entries = sw_dec_bytes(&d, &r->entries_len);
    return !d.bad;
}

void sw_set_ent_encode(sw_buf *out, const sw_set_ent *e)
{
    sw_enc_bytes(out, e->key, e->key_len);
    sw_enc_i64(out, e->first);
    sw_enc_i64(out, e->last);
    sw_enc_u64(out, e->hash);
}

bool sw_set_ent_next(const unsigned char **p, const unsigned char *end, sw_set_ent *e)
{
    if (*p == NULL || *p >= end) {
        return false;
    }
    sw_dec d = sw_dec_init(*p, (size_t)(end - *p));
    e->key = sw_dec_bytes(&d, &e->key_len);
    e->first = sw_dec_i64(&d);
    e->last = sw_dec_i64(&d);
    e->hash = sw_dec_u64(&d);
    if (d.bad || e->key == NULL) {
        return false;
    }
    *p = d.p;
    return true;
}

/* 8 bytes per step: a finding is hashed on every record of every rescan.
 * Host byte order: a store moved to a machine of the other order only
 * rewrites each finding's JSON once more. */
static uint64_t fnv(uint64_t h, const char *p, size_t n)
{
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
        h ^= h >> 29;
        p += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, p, n);
    h = (h ^ w ^ ((uint64_t)n << 56)) * 0x9e3779b97f4a7c15ULL;
    return h ^ (h >> 32);
}

uint64_t sw_finding_content_hash(const char *json, size_t len)
{
    static const char member[] = "\"scan_time\":\"";
    uint64_t h = 1469598103934665603ULL;
    const char *m = json != NULL ? memmem(json, len, member, sizeof member - 1) : NULL;
    if (m == NULL) {
        return json != NULL ? fnv(h, json, len) : h;
    }
    /* An RFC 3339 value has no escapes: it ends at the next quote. */
    const char *v = m + sizeof member - 1;
    const char *q = memchr(v, '"', len - (size_t)(v - json));
    h = fnv(h, json, (size_t)(v - json));
    return q != NULL ? fnv(h, q, len - (size_t)(q - json)) : h;
}
