#include "scanwatch/finding.h"

#include <strings.h>
#include <string.h>

static const char *const sev_names[SW_SEV_COUNT] = {"Unknown", "Low", "Medium", "High",
                                                    "Critical"};
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

static void str_field(sw_buf *b, const char *name, const char *v)
{
    sw_buf_printf(b, ",\"%s\":", name);
    sw_buf_append_json_cstr(b, v);
}

static void str_array(sw_buf *b, const char *name, const char *const *v, size_t n)
{
    sw_buf_printf(b, ",\"%s\":[", name);
    for (size_t i = 0; i < n; i++) {
        if (i > 0) {
            sw_buf_append_char(b, ',');
        }
        sw_buf_append_json_cstr(b, v[i]);
    }
    sw_buf_append_char(b, ']');
}

bool sw_finding_to_json(const sw_finding *f, sw_buf *b)
{
    char ts[SW_TIME_BUF];
    sw_buf_append_str(b, "{\"image\":");
    sw_buf_append_json_cstr(b, f->image);
    str_field(b, "registry", f->registry);
    str_field(b, "repository", f->repository);
    str_field(b, "digest", f->digest);
    str_array(b, "tags", f->tags, f->n_tags);
    str_field(b, "key", f->key);
    str_field(b, "vuln_id", f->vuln_id);
    str_field(b, "package", f->package);
    str_field(b, "version", f->version);
    str_field(b, "fixed_version", f->fixed_version);
    sw_buf_printf(b, ",\"fixable\":%s", f->fixable ? "true" : "false");
    sw_buf_printf(b, ",\"severity\":\"%s\"", sw_severity_name(f->severity));
    if (f->has_cvss) {
        sw_buf_printf(b, ",\"cvss\":%.1f", f->cvss);
    } else {
        sw_buf_append_str(b, ",\"cvss\":null");
    }
    str_field(b, "title", f->title);
    str_field(b, "published", f->published);
    str_array(b, "links", f->links, f->n_links);
    sw_buf_printf(b, ",\"status\":\"%s\"", sw_status_name(f->status));
    sw_buf_printf(b, ",\"snapshot\":%s", f->snapshot ? "true" : "false");
    sw_time_format(f->scan_time, ts, sizeof ts);
    sw_buf_printf(b, ",\"scan_time\":\"%s\"", ts);
    sw_buf_printf(b, ",\"shape\":\"%s\"}", sw_shape_name(f->shape));
    return !b->failed;
}
