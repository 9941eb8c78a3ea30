/*
 * Durable layout of open rescan windows in the "windows" column family
 * (internal to state/):
 *   'M' image            -> window meta (times, counts, flags, tags, positions)
 *   'R' hash8 image '\0' be64 -> one chunk: the pending records that joined
 *                               the window during one commit batch, in
 *                               arrival order (chunk index = commit order)
 * Keeping meta and records under distinct leading bytes lets a restart load
 * every open window by scanning only the 'M' range. One key per window per
 * commit (not per record) keeps the write batch, the memtable and the
 * tombstones left when the window closes small.
 *
 * Thread safety: reentrant. Ownership: decoded strings point into the value.
 */
#ifndef SW_STATE_WINDOW_H
#define SW_STATE_WINDOW_H

#include <stdbool.h>
#include <stdint.h>

#include "scanwatch/buf.h"
#include "scanwatch/swtime.h"

#define SW_WIN_META 'M'
#define SW_WIN_REC 'R'
#define SW_WIN_MAX_TAGS 64

typedef struct sw_win_meta {
    const char *image;
    const char *repository;
    sw_time_us min_scan, max_scan, last_event;
    uint64_t n_records;
    uint64_t n_chunks; /* durable chunks: keys 0 .. n_chunks-1 */
    bool all_snapshot, has_clean, capped;
    size_t n_tags;
    const char *tags[SW_WIN_MAX_TAGS];
    const char *first_partition, *first_offset, *last_partition, *last_offset;
} sw_win_meta;

typedef struct sw_win_rec {
    sw_time_us scan_time;
    bool resolved, snapshot, clean_marker;
    const char *key; /* NULL for a clean marker */
    const char *json;
    size_t json_len;
    uint64_t hash; /* content hash of the finding JSON */
    bool omitted;  /* JSON not stored (resolved, clean marker, or same as in S) */
} sw_win_rec;

void sw_win_meta_key(sw_buf *out, const char *image);
void sw_win_rec_prefix(sw_buf *out, const char *image);
/* The key of chunk idx of the image's window. */
void sw_win_rec_key(sw_buf *out, const char *image, uint64_t idx);
void sw_win_meta_encode(const sw_win_meta *m, sw_buf *out);
bool sw_win_meta_decode(const void *v, size_t n, sw_win_meta *m);
/* Appends one record to a chunk. */
void sw_win_rec_encode(const sw_win_rec *r, sw_buf *out);
/* Decodes the next record of a chunk; false at its end or on bad bytes. */
bool sw_win_rec_next(const unsigned char **p, const unsigned char *end, sw_win_rec *r);

#endif
