/*
 * The normalized finding (SPEC §2): what the decoder produces from every
 * Defender export shape, what `scanwatch decode` prints, and what the state
 * and notifications consume.
 *
 * Ownership: every pointer in an sw_finding is borrowed. A finding handed to a
 * callback is valid only for the duration of that callback; copy what you keep
 * (sw_finding_to_json is the canonical serialized form).
 */
#ifndef SCANWATCH_FINDING_H
#define SCANWATCH_FINDING_H

#include <stdbool.h>
#include <stddef.h>

#include "scanwatch/buf.h"
#include "scanwatch/swtime.h"

typedef enum {
    SW_SEV_UNKNOWN = 0,
    SW_SEV_LOW = 1,
    SW_SEV_MEDIUM = 2,
    SW_SEV_HIGH = 3,
    SW_SEV_CRITICAL = 4,
} sw_severity;
#define SW_SEV_COUNT 5

typedef enum {
    SW_SHAPE_QUALYS = 0,
    SW_SHAPE_MDVM = 1,
    SW_SHAPE_INDIVIDUAL = 2,
} sw_shape;
#define SW_SHAPE_COUNT 3

typedef enum {
    SW_STATUS_ACTIVE = 0,
    SW_STATUS_RESOLVED = 1,
} sw_status;

typedef struct sw_finding {
    const char *image; /* "<registryHost>/<repository>@<digest>", host lowercased */
    const char *registry;
    const char *repository;
    const char *digest;
    const char *const *tags;
    size_t n_tags;
    const char *key; /* vuln_id, or vuln_id ":" package; NULL for a clean marker */
    const char *vuln_id;
    const char *package; /* NULL when unknown, likewise the next three */
    const char *version;
    const char *fixed_version;
    const char *title;
    const char *published; /* RFC 3339 text as received */
    const char *const *links;
    size_t n_links;
    bool fixable;
    sw_severity severity;
    bool has_cvss;
    double cvss;
    sw_status status;
    bool snapshot;     /* from the envelope's isSnapshot */
    bool clean_marker; /* a Healthy record with no vuln id: the image scanned clean */
    sw_time_us scan_time;
    sw_shape shape;
} sw_finding;

/* "Critical" ... "Unknown"; "critical" ... "unknown" for the lower form. */
const char *sw_severity_name(sw_severity s);
/* Case-insensitive; unknown words map to SW_SEV_UNKNOWN. */
sw_severity sw_severity_parse(const char *s, size_t n);
const char *sw_shape_name(sw_shape s); /* "qualys" | "mdvm" | "individual" */
const char *sw_status_name(sw_status s); /* "active" | "resolved" */

/*
 * Appends f as one JSON object with exactly the SPEC §2 field names, in a
 * fixed order (no newline). A clean marker prints key/vuln_id as null.
 */
bool sw_finding_to_json(const sw_finding *f, sw_buf *out);

#endif
