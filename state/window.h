/*
 * Durable layout of open rescan windows in the "windows" column family
 * (internal to state/):
 *   'M' image            -> window meta (times, counts, flags, tags, positions)
 *   'R' hash8 image '\0' be64 -> one pending record, by arrival index
 * Keeping meta and records under distinct leading bytes lets a restart load
 * every open window by scanning only the 'M' range.
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
} sw_win_rec;

void sw_win_meta_key(sw_buf *out, const char *image);
void sw_win_rec_prefix(sw_buf *out, const char *image);
void sw_win_rec_key(sw_buf *out, const char *image, uint64_t idx);
void sw_win_meta_encode(const sw_win_meta *m, sw_buf *out);
bool sw_win_meta_decode(const void *v, size_t n, sw_win_meta *m);
void sw_win_rec_encode(const sw_win_rec *r, sw_buf *out);
bool sw_win_rec_decode(const void *v, size_t n, sw_win_rec *r);

#endif
