/*
 * Defender for Cloud continuous-export decoder (SPEC §2): one Event Hub
 * message body in, zero or more normalized findings (finding.h) out.
 *
 * A body is one JSON object, a top-level array of objects, or a
 * {"records": [...]} wrapper. Each record is classified:
 *   - a container-image finding of one of the shapes in the decoder's table
 *     (Qualys sub-assessment, MDVM sub-assessment, individual recommendation)
 *     -> one sw_finding handed to the callback;
 *   - anything else Defender exports (VM findings, secure score, regulatory
 *     compliance, alerts, other assessments) -> skipped and counted by kind;
 *   - a body that cannot be decoded -> a bad event: the call returns false,
 *     res->bad names a stable reason code and err->msg says what is wrong.
 * A body is decoded all-or-nothing: when one record of an array is bad, no
 * finding of that body is emitted (the body is the unit that is dead-lettered).
 *
 * Ownership: the caller owns the decoder and everything it passes in; the
 * body is only read during the call. Findings handed to the callback live in
 * the decoder's per-call memory (an arena plus the parsed JSON tree), valid
 * until the next sw_decode_body or sw_decoder_free on the same decoder; copy
 * what you keep longer.
 * Thread safety: a decoder is used by one thread at a time; use one decoder
 * per thread. sw_decode_stats is a plain value with no locking.
 */
#ifndef SCANWATCH_DECODE_H
#define SCANWATCH_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "scanwatch/buf.h"
#include "scanwatch/error.h"
#include "scanwatch/finding.h"
#include "scanwatch/settings.h"

/*
 * Bad-event reasons: stable short codes for metrics and dead-letter records.
 * Columns: ID, code, error code. Append only.
 */
#define SW_DECODE_BAD_TABLE(X)                                                                     \
    X(NONE, "none", SW_OK)                                                                         \
    X(EMPTY, "empty", SW_E_PARSE)                                                                  \
    X(TOO_LARGE, "too_large", SW_E_TOO_LARGE)                                                      \
    X(NOT_JSON, "not_json", SW_E_PARSE)                                                            \
    X(BAD_UTF8, "bad_utf8", SW_E_PARSE)                                                            \
    X(TOO_DEEP, "too_deep", SW_E_TOO_LARGE)                                                        \
    X(WRONG_TYPE, "wrong_type", SW_E_PARSE)                                                        \
    X(MISSING_IMAGE, "missing_image", SW_E_PARSE)                                                  \
    X(MISSING_VULN_ID, "missing_vuln_id", SW_E_PARSE)                                              \
    X(MISSING_SCAN_TIME, "missing_scan_time", SW_E_PARSE)                                          \
    X(BAD_SCAN_TIME, "bad_scan_time", SW_E_PARSE)                                                  \
    X(NOMEM, "nomem", SW_E_NOMEM)

typedef enum {
#define SW_DECODE_BAD_ENUM(id, code, err) SW_DECODE_BAD_##id,
    SW_DECODE_BAD_TABLE(SW_DECODE_BAD_ENUM)
#undef SW_DECODE_BAD_ENUM
        SW_DECODE_BAD_COUNT
} sw_decode_bad;

/* "not_json", ...; "none" for SW_DECODE_BAD_NONE. Never NULL. */
const char *sw_decode_bad_name(sw_decode_bad reason);

/* Skip kinds are short stable strings, e.g. "regulatory_compliance",
 * "sub_assessment:GeneralVulnerability"; at most this many bytes with NUL. */
#define SW_DECODE_KIND_MAX 64
/* Distinct kinds a counter keeps; further kinds are counted as "other". */
#define SW_DECODE_KINDS_MAX 24

typedef struct sw_decode_kind_count {
    char kind[SW_DECODE_KIND_MAX];
    uint64_t n;
} sw_decode_kind_count;

typedef struct sw_decode_kinds {
    size_t len;
    sw_decode_kind_count k[SW_DECODE_KINDS_MAX];
    uint64_t other; /* kinds beyond SW_DECODE_KINDS_MAX */
} sw_decode_kinds;

/* Adds n to kind's counter. */
void sw_decode_kinds_add(sw_decode_kinds *kinds, const char *kind, uint64_t n);

typedef struct sw_decode_opts {
    size_t max_message_size; /* bodies larger than this are bad (too_large) */
    int max_json_depth;      /* deeper nesting is bad (too_deep); the top object is depth 1 */
    /* Login-server suffix appended to an ACR name taken from an ARM id when a
     * record has no registryHost ("azurecr.io"; "azurecr.cn" etc. elsewhere). */
    const char *acr_suffix;
} sw_decode_opts;

/* The settings table's defaults (SW_SETTINGS_DECODE). */
void sw_decode_opts_default(sw_decode_opts *opts);
/* From loaded settings; strings stay owned by cfg. */
void sw_decode_opts_from_config(sw_decode_opts *opts, const sw_config *cfg);

/* What one sw_decode_body call saw. Reset by every call. */
typedef struct sw_decode_result {
    size_t records;                        /* records in the body (1 for a single object) */
    size_t findings;                       /* findings handed to the callback */
    size_t by_shape[SW_SHAPE_COUNT];       /* of which per shape */
    size_t clean_markers;                  /* of which "scanned clean" markers */
    size_t skipped;                        /* records skipped as non-container events */
    char skipped_kind[SW_DECODE_KIND_MAX]; /* kind of the first skipped record, "" if none */
    sw_decode_kinds skipped_kinds;         /* every skipped record by kind */
    sw_decode_bad bad;                     /* the reason when the call returned false */
    bool stopped;                          /* the callback returned false */
} sw_decode_result;

typedef struct sw_decoder sw_decoder;

/* Called once per finding, in body order. Return false to stop decoding this
 * body (sw_decode_body then returns true with res->stopped set). */
typedef bool (*sw_finding_fn)(void *ctx, const sw_finding *f);

/* opts is copied (acr_suffix must outlive the decoder). NULL opts = defaults. */
sw_decoder *sw_decoder_new(const sw_decode_opts *opts, sw_err *err);
void sw_decoder_free(sw_decoder *d);

/*
 * Records scanned after t make the body a bad event (bad_scan_time): the
 * service passes each event's enqueued time + max_scan_time_skew, since a
 * scan cannot be exported before it happened. SW_TIME_UNSET (the default)
 * turns the check off. Holds for the following sw_decode_body calls.
 */
void sw_decoder_set_latest_scan_time(sw_decoder *d, sw_time_us t);

/*
 * Decodes one message body (len bytes, need not be NUL-terminated). Returns
 * true when the body was decoded (even if every record was skipped); false for
 * a bad event, with res->bad set and err naming the problem (record index and
 * field path where there is one). res and fn may not be NULL; err may be NULL.
 */
bool sw_decode_body(sw_decoder *d, const void *body, size_t len, sw_finding_fn fn, void *ctx,
                    sw_decode_result *res, sw_err *err);

/* Accumulated counts over many bodies: for the CLI summary, metrics and tests. */
typedef struct sw_decode_stats {
    uint64_t bodies;
    uint64_t records;
    uint64_t findings;
    uint64_t clean_markers;
    uint64_t by_shape[SW_SHAPE_COUNT];
    uint64_t skipped;
    sw_decode_kinds skipped_kinds;
    uint64_t bad;
    uint64_t bad_by_reason[SW_DECODE_BAD_COUNT];
} sw_decode_stats;

/* Adds one call's result (ok = what sw_decode_body returned). */
void sw_decode_stats_add(sw_decode_stats *s, const sw_decode_result *res, bool ok);
/*
 * Human summary, three lines:
 *   findings: 12 (qualys 2, mdvm 10, individual 0), clean markers: 1, bodies: 9, records: 10
 *   skipped: 3 (assessment 2, regulatory_compliance 1)
 *   bad: 1 (not_json 1)
 */
void sw_decode_stats_print(const sw_decode_stats *s, FILE *out);

#endif
