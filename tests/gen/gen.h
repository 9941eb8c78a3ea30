/*
 * sw_gen: a deterministic generator of Defender continuous-export streams
 * (NDJSON message bodies) for tests, benchmarks and the demo.
 *
 * The same options and seed always produce the same bytes. Images keep their
 * identity across rescans; a finding that stays active keeps its key and
 * fields (only timeGenerated moves). Scan s of an image is stamped about
 * s * interval after its first scan; the records of one scan spread over
 * `spread`.
 *
 * Ownership: bodies passed to the callback are valid only during the call.
 * Thread safety: sw_gen_run is reentrant (no global state).
 */
#ifndef SW_GEN_H
#define SW_GEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scanwatch/error.h"
#include "scanwatch/swtime.h"

typedef enum { SW_GEN_CAMEL, SW_GEN_PASCAL, SW_GEN_MIXED } sw_gen_casing;
typedef enum { SW_GEN_FULL, SW_GEN_DELTA } sw_gen_mode;
typedef enum { SW_GEN_WRAP_ARRAY, SW_GEN_WRAP_RECORDS } sw_gen_wrap;

typedef struct sw_gen_opts {
    uint64_t seed;
    int images;
    int findings; /* active findings per image at its first scan */
    int rescans;  /* scans after the first one */
    double churn; /* fraction of an image's findings replaced at each rescan */
    int mix[3];   /* relative weights: Qualys, MDVM, individual images */
    sw_gen_casing casing;
    sw_gen_mode mode;
    int snapshot_every; /* every Nth scan (1-based) is a snapshot; 0 = never */
    double clean;       /* fraction of images that scan clean */
    double other;       /* probability of a non-container event after each record */
    double bad;         /* probability of a bad event after each record */
    int batch;          /* records per body; 1 = a single object */
    sw_gen_wrap wrap;
    sw_time_us start;
    int64_t interval_us;
    int64_t spread_us;
    bool emit_enqueued; /* --emit-enqueued: sw-gen writes timed lines (sw_gen_run_timed) */
} sw_gen_opts;

/* What a run produced; tests compare these with what the decoder counts. */
typedef struct sw_gen_counts {
    uint64_t bodies;
    uint64_t findings;      /* container finding records (active and resolved) */
    uint64_t resolved;      /* of which resolved (Healthy or action Delete) */
    uint64_t clean_markers; /* Healthy records with no vulnerability id */
    uint64_t by_shape[3];   /* container records (findings + markers) per shape */
    uint64_t other;         /* non-container records */
    uint64_t bad;           /* bad bodies */
} sw_gen_counts;

void sw_gen_opts_default(sw_gen_opts *o);

/*
 * Parses command-line options (argv[1..]) into o, which should hold the
 * defaults. Sets *help when --help was given. *out_path gets --out or NULL.
 */
bool sw_gen_parse_args(sw_gen_opts *o, int argc, char **argv, const char **out_path, bool *help,
                       sw_err *err);
extern const char sw_gen_usage[];

/* Called once per message body (no trailing newline). Return false to stop. */
typedef bool (*sw_gen_body_fn)(void *ctx, const char *body, size_t len);

bool sw_gen_run(const sw_gen_opts *o, sw_gen_body_fn fn, void *ctx, sw_gen_counts *counts,
                sw_err *err);

/*
 * Like sw_gen_run, but each body comes with its enqueued time: the scan time
 * of its (last) record, truncated to ms, plus a deterministic 1-5 s, as
 * continuous export enqueues a finding shortly after its scan. Bodies come
 * in enqueued-time order (equal times in generation order); within a round
 * images are scanned in scan-start order instead of image order, so the
 * bodies are those of sw_gen_run in another order (with --batch > 1 the
 * batches group other records). Holds only the bodies of overlapping scans.
 */
typedef bool (*sw_gen_timed_fn)(void *ctx, sw_time_us enqueued, const char *body, size_t len);
bool sw_gen_run_timed(const sw_gen_opts *o, sw_gen_timed_fn fn, void *ctx, sw_gen_counts *counts,
                      sw_err *err);

#endif
