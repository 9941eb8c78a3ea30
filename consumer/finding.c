#include "scanwatch/finding.h"

#include <math.h>
#include <strings.h>
#include <string.h>

static const char *const sev_names[SW_SEV_COUNT] = {"Unknown", "Low", "Medium", "High", "Critical"};
static const char *const shape_names[SW_SHAPE_COUNT] = {"qualys", "mdvm", "individual"};

const char *sw_severity_name(sw_severity s)
{
    return (unsigned)s < SW_SEV_COUNT ? sev_names[s] : sev_names[0];
}

sw_severity sw_severity_parse(const char *s, size_t n)
{
    for (int i = SW_SEV_COUNT - 1; i >= 0; i--) {
        size_t len = strlen(sev_names[i]);
        if (len == n && strncasecmp(s, sev_names[i], n) == 0) {
            return (sw_severity)i;
        }
    }
    /* Qualys and some feeds say "Moderate"/"Important". */
    if (n == 8 && strncasecmp(s, "moderate", n) == 0) {
        return SW_SEV_MEDIUM;
    }
    if (n == 9 && strncasecmp(s, "important", n) == 0) {
        return SW_SEV_HIGH;
    }
    return SW_SEV_UNKNOWN;
}

const char *sw_shape_name(sw_shape s)
{
    return (unsigned)s < SW_SHAPE_COUNT ? shape_names[s] : "unknown";
}

const char *sw_status_name(sw_status s)
{
    return s == SW_STATUS_RESOLVED ? "resolved" : "active";
}

/* Literal text without strlen or a format: sw_finding_to_json runs once per finding. */
#define APPEND_LIT(b, lit) sw_buf_append((b), (lit), sizeof(lit) - 1)

static void str_field(sw_buf *b, const char *name_colon, size_t n, const char *v)
{
    sw_buf_append(b, name_colon, n);
    sw_buf_append_json_cstr(b, v);
}
#define STR_FIELD(b, lit, v) str_field((b), (lit), sizeof(lit) - 1, (v))

static void str_array(sw_buf *b, const char *name_colon, size_t n, const char *const *v,
                      size_t count)
{
    sw_buf_append(b, name_colon, n);
    sw_buf_append_char(b, '[');
    for (size_t i = 0; i < count; i++) {
        if (i > 0) {
            sw_buf_append_char(b, ',');
        }
        sw_buf_append_json_cstr(b, v[i]);
    }
    sw_buf_append_char(b, ']');
}
#define STR_ARRAY(b, lit, v, count) str_array((b), (lit), sizeof(lit) - 1, (v), (count))

/*
 * "%.1f" of a CVSS score. Scores carry one decimal, so ten times the value is
 * within rounding error of an integer; anything else (or out of range) takes
 * printf's exact rounding.
 */
static void append_cvss(sw_buf *b, double v)
{
    double t = v * 10.0;
    if (!signbit(v) && v < 1e6) {
        long long tenths = (long long)(t + 0.5);
        if (fabs(t - (double)tenths) < 1e-6) {
            char d[16];
            size_t k = sizeof d;
            d[--k] = (char)('0' + tenths % 10);
            d[--k] = '.';
            long long whole = tenths / 10;
            do {
                d[--k] = (char)('0' + whole % 10);
                whole /= 10;
            } while (whole > 0);
            sw_buf_append(b, d + k, sizeof d - k);
            return;
        }
    }
    sw_buf_printf(b, "%.1f", v);
}

bool sw_finding_to_json(const sw_finding *f, sw_buf *b)
{
    char ts[SW_TIME_BUF];
    APPEND_LIT(b, "{\"image\":");
    sw_buf_append_json_cstr(b, f->image);
    STR_FIELD(b, ",\"registry\":", f->registry);
    STR_FIELD(b, ",\"repository\":", f->repository);
    STR_FIELD(b, ",\"digest\":", f->digest);
    STR_ARRAY(b, ",\"tags\":", f->tags, f->n_tags);
    STR_FIELD(b, ",\"key\":", f->key);
    STR_FIELD(b, ",\"vuln_id\":", f->vuln_id);
    STR_FIELD(b, ",\"package\":", f->package);
    STR_FIELD(b, ",\"version\":", f->version);
    STR_FIELD(b, ",\"fixed_version\":", f->fixed_version);
    if (f->fixable) {
        APPEND_LIT(b, ",\"fixable\":true,\"severity\":\"");
    } else {
        APPEND_LIT(b, ",\"fixable\":false,\"severity\":\"");
    }
    sw_buf_append_str(b, sw_severity_name(f->severity));
    if (f->has_cvss) {
        APPEND_LIT(b, "\",\"cvss\":");
        append_cvss(b, f->cvss);
    } else {
        APPEND_LIT(b, "\",\"cvss\":null");
    }
    STR_FIELD(b, ",\"title\":", f->title);
    STR_FIELD(b, ",\"published\":", f->published);
    STR_ARRAY(b, ",\"links\":", f->links, f->n_links);
    APPEND_LIT(b, ",\"status\":\"");
    sw_buf_append_str(b, sw_status_name(f->status));
    if (f->snapshot) {
        APPEND_LIT(b, "\",\"snapshot\":true,\"scan_time\":\"");
    } else {
        APPEND_LIT(b, "\",\"snapshot\":false,\"scan_time\":\"");
    }
    sw_time_format(f->scan_time, ts, sizeof ts);
    sw_buf_append_str(b, ts);
    APPEND_LIT(b, "\",\"shape\":\"");
    sw_buf_append_str(b, sw_shape_name(f->shape));
    APPEND_LIT(b, "\"}");
    return !b->failed;
}
