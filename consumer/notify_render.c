/*
 * Rendering: route + per-image items -> Graph sendMail request JSON.
 *
 * The HTML is table-based with inline CSS and bgcolor attributes because
 * Outlook's Word engine ignores most stylesheets. Every value from a finding
 * is HTML-escaped; links are kept only for http(s) URLs. A mail that would
 * exceed max_request is split between findings rows into several parts; each
 * part is a complete mail whose subject, summary and x-scanwatch-* headers
 * describe its own content.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "notify_internal.h"

#define MAX_TITLE 500
#define MAX_CELL 200
#define MAX_RESOLVED_LISTED 20
#define HEAD_RESERVE 4096     /* summary block rendered once a part is complete */
#define ENVELOPE_RESERVE 4096 /* subject, recipients beyond the measured envelope */

static const char *const sev_bg[SW_SEV_COUNT] = {"#6b7280", "#2563eb", "#d97706", "#dc2626",
                                                 "#7f1d1d"};

void sw_mail_list_free(sw_mail_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->bodies[i]);
    }
    free(l->bodies);
    free(l->lens);
    l->bodies = NULL;
    l->lens = NULL;
    l->n = 0;
}

/* Cuts s to at most max bytes on a UTF-8 character boundary. */
static size_t utf8_cut(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n <= max) {
        return n;
    }
    while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80) {
        max--;
    }
    return max;
}

/*
 * Length of an invisible control sequence at s (0: none): C0, DEL, C1
 * (U+0080..U+009F) and the bidirectional embeddings/overrides/isolates
 * (U+202A..U+202E, U+2066..U+2069). Finding text comes from whoever can send
 * to the hub; these would let it reorder or hide what a mail shows.
 */
static size_t invisible_len(const unsigned char *s, size_t n)
{
    if (s[0] < 0x20 || s[0] == 0x7f) {
        return 1;
    }
    if (s[0] == 0xc2 && n >= 2 && s[1] >= 0x80 && s[1] <= 0x9f) {
        return 2;
    }
    if (s[0] == 0xe2 && n >= 3 &&
        ((s[1] == 0x80 && s[2] >= 0xaa && s[2] <= 0xae) ||
         (s[1] == 0x81 && s[2] >= 0xa6 && s[2] <= 0xa9))) {
        return 3;
    }
    return 0;
}

static bool html_escape_n(sw_buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        size_t skip = invisible_len((const unsigned char *)s + i, n - i);
        if (skip > 0) {
            sw_buf_append_char(b, ' ');
            i += skip - 1;
            continue;
        }
        switch (c) {
        case '&':
            sw_buf_append_str(b, "&amp;");
            break;
        case '<':
            sw_buf_append_str(b, "&lt;");
            break;
        case '>':
            sw_buf_append_str(b, "&gt;");
            break;
        case '"':
            sw_buf_append_str(b, "&quot;");
            break;
        case '\'':
            sw_buf_append_str(b, "&#39;");
            break;
        default:
            sw_buf_append_char(b, (char)c);
        }
    }
    return !b->failed;
}

bool sw_html_escape(sw_buf *b, const char *s)
{
    return html_escape_n(b, s, strlen(s));
}

/* Escaped, cut to max bytes with an ellipsis. NULL/empty prints dash. */
static void cell_text(sw_buf *b, const char *s, size_t max)
{
    if (s == NULL || *s == '\0') {
        sw_buf_append_str(b, "&ndash;");
        return;
    }
    size_t n = utf8_cut(s, max);
    html_escape_n(b, s, n);
    if (n < strlen(s)) {
        sw_buf_append_str(b, "&hellip;");
    }
}

/* Bytes s takes inside a JSON string as cJSON prints it. */
static size_t json_len(const char *s, size_t n)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' ||
            c == '\t') {
            len += 2;
        } else if (c < 0x20) {
            len += 6;
        } else {
            len += 1;
        }
    }
    return len;
}

static const char *jstr(const cJSON *o, const char *name)
{
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, name));
}

static sw_severity fsev(const cJSON *f)
{
    const char *s = jstr(f, "severity");
    return s ? sw_severity_parse(s, strlen(s)) : SW_SEV_UNKNOWN;
}

static bool is_http_url(const char *s)
{
    return s != NULL && (strncasecmp(s, "https://", 8) == 0 || strncasecmp(s, "http://", 7) == 0);
}

static void vuln_link(const cJSON *f, sw_buf *url)
{
    const cJSON *l;
    cJSON_ArrayForEach(l, cJSON_GetObjectItemCaseSensitive(f, "links"))
    {
        if (is_http_url(cJSON_GetStringValue(l))) {
            sw_buf_append_str(url, l->valuestring);
            return;
        }
    }
    const char *id = jstr(f, "vuln_id");
    if (id != NULL && strncasecmp(id, "CVE-", 4) == 0 && strlen(id) < 40) {
        sw_buf_append_str(url, "https://nvd.nist.gov/vuln/detail/");
        sw_buf_append_str(url, id);
    }
}

static int cmp_findings(const void *a, const void *b)
{
    const cJSON *fa = *(const cJSON *const *)a;
    const cJSON *fb = *(const cJSON *const *)b;
    sw_severity sa = fsev(fa), sb = fsev(fb);
    if (sa != sb) {
        return sa > sb ? -1 : 1;
    }
    const cJSON *ca = cJSON_GetObjectItemCaseSensitive(fa, "cvss");
    const cJSON *cb = cJSON_GetObjectItemCaseSensitive(fb, "cvss");
    double da = cJSON_IsNumber(ca) ? ca->valuedouble : -1;
    double db = cJSON_IsNumber(cb) ? cb->valuedouble : -1;
    if (da != db) {
        return da > db ? -1 : 1;
    }
    const char *ka = jstr(fa, "key"), *kb = jstr(fb, "key");
    return strcmp(ka ? ka : "", kb ? kb : "");
}

#define TD "<td style=\"padding:6px 8px;border-bottom:1px solid #e5e7eb;vertical-align:top;\">"
#define TD_NOWRAP                                                                                  \
    "<td style=\"padding:6px 8px;border-bottom:1px solid #e5e7eb;vertical-align:top;"              \
    "white-space:nowrap;\">"

static void render_row(sw_buf *b, const cJSON *f)
{
    sw_buf url;
    sw_buf_init(&url, 4096);
    vuln_link(f, &url);
    sw_buf_append_str(b, "<tr>" TD_NOWRAP);
    if (url.len > 0 && !url.failed) {
        sw_buf_append_str(b, "<a href=\"");
        html_escape_n(b, url.data, url.len);
        sw_buf_append_str(b, "\" style=\"color:#1d4ed8;text-decoration:underline;\">");
        cell_text(b, jstr(f, "vuln_id"), MAX_CELL);
        sw_buf_append_str(b, "</a>");
    } else {
        cell_text(b, jstr(f, "vuln_id"), MAX_CELL);
    }
    sw_buf_free(&url);
    sw_buf_append_str(b, "</td>" TD);
    cell_text(b, jstr(f, "title"), MAX_TITLE);
    sw_severity s = fsev(f);
    sw_buf_printf(b,
                  "</td><td bgcolor=\"%s\" style=\"padding:6px 8px;border-bottom:1px solid "
                  "#e5e7eb;vertical-align:top;color:#ffffff;font-weight:bold;"
                  "white-space:nowrap;\">%s</td>" TD,
                  sev_bg[s], sw_severity_name(s));
    const cJSON *cv = cJSON_GetObjectItemCaseSensitive(f, "cvss");
    if (cJSON_IsNumber(cv)) {
        sw_buf_printf(b, "%.1f", cv->valuedouble);
    } else {
        sw_buf_append_str(b, "&ndash;");
    }
    sw_buf_append_str(b, "</td>" TD);
    cell_text(b, jstr(f, "package"), MAX_CELL);
    if (jstr(f, "version") != NULL) {
        sw_buf_append_str(b, " <span style=\"color:#4b5563;\">");
        cell_text(b, jstr(f, "version"), MAX_CELL);
        sw_buf_append_str(b, "</span>");
    }
    sw_buf_append_str(b, "</td>" TD_NOWRAP);
    const char *fixed = jstr(f, "fixed_version");
    if (fixed != NULL && *fixed != '\0') {
        cell_text(b, fixed, MAX_CELL);
    } else if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(f, "fixable"))) {
        sw_buf_append_str(b, "Fix available");
    } else {
        sw_buf_append_str(b, "<span style=\"color:#6b7280;\">No fix yet</span>");
    }
    sw_buf_append_str(b, "</td>" TD_NOWRAP);
    const char *pub = jstr(f, "published");
    if (pub != NULL && strlen(pub) >= 10 && pub[4] == '-' && pub[7] == '-') {
        html_escape_n(b, pub, 10); /* the date is enough */
    } else {
        cell_text(b, pub, MAX_CELL);
    }
    sw_buf_append_str(b, "</td></tr>\n");
}

#define TH                                                                                         \
    "<th align=\"left\" bgcolor=\"#f3f4f6\" style=\"padding:6px 8px;border-bottom:2px solid "      \
    "#d1d5db;font-size:12px;color:#374151;\">"

static void render_table_head(sw_buf *b)
{
    sw_buf_append_str(b, "<tr><td style=\"padding:0 20px 12px 20px;\">"
                         "<table role=\"presentation\" width=\"100%\" cellpadding=\"0\" "
                         "cellspacing=\"0\" border=\"0\" style=\"border-collapse:collapse;"
                         "font-size:13px;\">\n<tr>" TH "Vulnerability</th>" TH "Title</th>" TH
                         "Severity</th>" TH "CVSS</th>" TH "Package</th>" TH "Fixed in</th>" TH
                         "Published</th></tr>\n");
}

static const char *table_end = "</table></td></tr>\n";

static void kv_row(sw_buf *b, const char *k, const char *v, bool mono)
{
    sw_buf_printf(b,
                  "<tr><td style=\"padding:2px 12px 2px 0;color:#6b7280;white-space:nowrap;"
                  "\">%s</td><td style=\"padding:2px 0;%s\">",
                  k, mono ? "font-family:Consolas,Menlo,monospace;" : "");
    cell_text(b, v, MAX_TITLE);
    sw_buf_append_str(b, "</td></tr>");
}

static void render_image_head(sw_buf *b, const cJSON *item, const cJSON *first, bool continued)
{
    const char *image = jstr(item, "image");
    const char *registry = first ? jstr(first, "registry") : NULL;
    const char *repository = first ? jstr(first, "repository") : NULL;
    const char *digest = first ? jstr(first, "digest") : NULL;
    sw_buf tags;
    sw_buf_init(&tags, 4096);
    const cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(item, "tags"))
    {
        if (cJSON_IsString(t)) {
            sw_buf_printf(&tags, "%s%s", tags.len ? ", " : "", t->valuestring);
        }
    }
    char shortdig[40] = "";
    if (digest != NULL) {
        const char *colon = strchr(digest, ':');
        const char *hex = colon ? colon + 1 : digest;
        snprintf(shortdig, sizeof shortdig, "%.*s%.12s", colon ? (int)(colon - digest + 1) : 0,
                 digest, hex);
    }
    sw_buf_append_str(b, "<tr><td style=\"padding:16px 20px 8px 20px;\">"
                         "<div style=\"font-size:16px;font-weight:bold;color:#111827;\">");
    cell_text(b, repository ? repository : image, MAX_TITLE);
    if (continued) {
        sw_buf_append_str(b, " <span style=\"color:#6b7280;font-weight:normal;\">"
                             "(continued)</span>");
    }
    sw_buf_append_str(b, "</div><table role=\"presentation\" cellpadding=\"0\" cellspacing=\"0\" "
                         "border=\"0\" style=\"font-size:13px;margin-top:4px;\">");
    kv_row(b, "Registry", registry, false);
    kv_row(b, "Repository", repository, false);
    kv_row(b, "Tags", tags.len && !tags.failed ? tags.data : NULL, false);
    kv_row(b, "Digest", shortdig[0] ? shortdig : NULL, true);
    kv_row(b, "Scanned", jstr(item, "scan_time"), false);
    sw_buf_free(&tags);
    sw_buf_append_str(b, "</table></td></tr>\n");
}

static void render_resolved(sw_buf *b, const cJSON *item, size_t *count)
{
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(item, "resolved");
    int n = cJSON_GetArraySize(res);
    *count = n > 0 ? (size_t)n : 0;
    if (n <= 0) {
        return;
    }
    sw_buf_printf(b,
                  "<tr><td style=\"padding:0 20px 12px 20px;font-size:13px;color:#065f46;\">"
                  "<b>%d finding%s resolved</b> since the previous scan: ",
                  n, n == 1 ? "" : "s");
    int i = 0;
    const cJSON *k;
    cJSON_ArrayForEach(k, res)
    {
        if (i == MAX_RESOLVED_LISTED) {
            break;
        }
        sw_buf_append_str(b, i > 0 ? ", " : "");
        cell_text(b, cJSON_GetStringValue(k), MAX_CELL);
        i++;
    }
    if (n > MAX_RESOLVED_LISTED) {
        sw_buf_printf(b, " and %d more", n - MAX_RESOLVED_LISTED);
    }
    sw_buf_append_str(b, ".</td></tr>\n");
}

/* One mail being filled. */
struct part {
    sw_buf body; /* image sections */
    size_t json; /* json_len of body so far */
    size_t n_new, n_resolved, n_images;
    size_t sev[SW_SEV_COUNT];
    const char *image;  /* the only image, when n_images == 1 */
    const cJSON *first; /* first finding (for the subject's repository/tag) */
    const cJSON *first_item;
};

struct renderer {
    const sw_render_opts *o;
    const sw_route *route;
    struct part *parts;
    size_t n_parts, cap_parts;
    size_t budget; /* json bytes allowed for a part's body */
    sw_err *err;
};

static struct part *new_part(struct renderer *r)
{
    if (r->n_parts == r->cap_parts) {
        size_t nc = r->cap_parts ? r->cap_parts * 2 : 4;
        struct part *np = realloc(r->parts, nc * sizeof *np);
        if (np == NULL) {
            return NULL;
        }
        r->parts = np;
        r->cap_parts = nc;
    }
    struct part *p = &r->parts[r->n_parts++];
    memset(p, 0, sizeof *p);
    sw_buf_init(&p->body, SW_NOTIFY_GRAPH_LIMIT * 2);
    return p;
}

static bool append_chunk(struct part *p, const sw_buf *chunk)
{
    p->json += json_len(chunk->data, chunk->len);
    return sw_buf_append(&p->body, chunk->data, chunk->len);
}

static void count_image(struct part *p, const cJSON *item, const cJSON *first)
{
    p->n_images++;
    p->image = jstr(item, "image");
    if (p->first == NULL) {
        p->first = first;
        p->first_item = item;
    }
}

/* Lays out one item's findings across parts, opening new parts when needed. */
static bool layout_item(struct renderer *r, const cJSON *item)
{
    const cJSON *nw = cJSON_GetObjectItemCaseSensitive(item, "new");
    int n = cJSON_GetArraySize(nw);
    if (n <= 0) {
        return true;
    }
    const cJSON **rows = calloc((size_t)n, sizeof *rows);
    if (rows == NULL) {
        return sw_err_set(r->err, SW_E_NOMEM, "out of memory");
    }
    int i = 0;
    const cJSON *f;
    cJSON_ArrayForEach(f, nw)
    {
        rows[i++] = f;
    }
    qsort(rows, (size_t)n, sizeof *rows, cmp_findings);

    sw_buf head, thead, row, resolved;
    sw_buf_init(&head, 64 * 1024);
    sw_buf_init(&thead, 8192);
    sw_buf_init(&row, 64 * 1024);
    sw_buf_init(&resolved, 64 * 1024);
    render_image_head(&head, item, rows[0], false);
    render_table_head(&thead);
    size_t n_resolved = 0;
    render_resolved(&resolved, item, &n_resolved);
    size_t end_json = json_len(table_end, strlen(table_end));
    size_t tail = end_json + json_len(resolved.data, resolved.len);

    bool ok = !head.failed && !thead.failed && !resolved.failed;
    struct part *p = r->n_parts ? &r->parts[r->n_parts - 1] : NULL;
    bool in_table = false;
    for (i = 0; ok && i < n; i++) {
        sw_buf_reset(&row);
        render_row(&row, rows[i]);
        size_t rj = json_len(row.data, row.len);
        size_t need =
            rj + tail +
            (in_table ? 0 : json_len(head.data, head.len) + json_len(thead.data, thead.len));
        if (p == NULL || (p->json + need > r->budget && p->n_new > 0)) {
            if (in_table) {
                sw_buf_append_str(&p->body, table_end);
                p->json += end_json;
                in_table = false;
            }
            p = new_part(r);
            if (p == NULL) {
                ok = sw_err_set(r->err, SW_E_NOMEM, "out of memory");
                break;
            }
            if (i > 0) { /* the item continues in this part */
                sw_buf_reset(&head);
                render_image_head(&head, item, rows[0], true);
            }
        }
        if (!in_table) {
            ok = append_chunk(p, &head) && append_chunk(p, &thead);
            count_image(p, item, rows[0]);
            in_table = true;
        }
        if (p->json + rj + tail > r->budget) {
            ok = sw_err_set(r->err, SW_E_TOO_LARGE,
                            "one finding row of %s does not fit in mail_max_request",
                            jstr(item, "image"));
            break;
        }
        ok = ok && append_chunk(p, &row);
        p->n_new++;
        p->sev[fsev(rows[i])]++;
    }
    if (ok && in_table) {
        sw_buf_append_str(&p->body, table_end);
        p->json += end_json;
        ok = append_chunk(p, &resolved);
        p->n_resolved += n_resolved;
    }
    if (ok && p != NULL && p->body.failed) {
        ok = sw_err_set(r->err, SW_E_NOMEM, "out of memory rendering the mail");
    }
    free(rows);
    sw_buf_free(&head);
    sw_buf_free(&thead);
    sw_buf_free(&row);
    sw_buf_free(&resolved);
    return ok;
}

static sw_severity highest(const struct part *p)
{
    for (int s = SW_SEV_COUNT - 1; s > 0; s--) {
        if (p->sev[s] > 0) {
            return (sw_severity)s;
        }
    }
    return SW_SEV_UNKNOWN;
}

static void sev_breakdown(sw_buf *b, const struct part *p)
{
    bool any = false;
    for (int s = SW_SEV_COUNT - 1; s >= 0; s--) {
        if (p->sev[s] > 0) {
            sw_buf_printf(b, "%s%zu %s", any ? ", " : "", p->sev[s],
                          sw_severity_name((sw_severity)s));
            any = true;
        }
    }
}

static void make_subject(const struct renderer *r, const struct part *p, size_t idx, char *out,
                         size_t outsz)
{
    sw_buf s;
    sw_buf_init(&s, 8192);
    if (r->route->subject_prefix[0] != '\0') {
        sw_buf_printf(&s, "%s ", r->route->subject_prefix);
    }
    if (r->o->digest) {
        sw_buf_printf(&s, "scanwatch digest: %zu new finding%s in %zu image%s (", p->n_new,
                      p->n_new == 1 ? "" : "s", p->n_images, p->n_images == 1 ? "" : "s");
    } else {
        const char *repo = p->first ? jstr(p->first, "repository") : NULL;
        sw_buf_append_str(&s, repo ? repo : (p->image ? p->image : "image"));
        const cJSON *tag =
            cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(p->first_item, "tags"), 0);
        if (cJSON_GetStringValue(tag) != NULL) {
            sw_buf_printf(&s, ":%s", tag->valuestring);
        }
        sw_buf_printf(&s, ": %zu new vulnerabilit%s (", p->n_new, p->n_new == 1 ? "y" : "ies");
    }
    sev_breakdown(&s, p);
    sw_buf_append_char(&s, ')');
    char suffix[48] = "";
    if (r->n_parts > 1) {
        snprintf(suffix, sizeof suffix, " [%zu/%zu]", idx + 1, r->n_parts);
    }
    /* Keep the part number: cut the text before it, on a character boundary. */
    size_t room = SW_NOTIFY_MAX_SUBJECT - strlen(suffix);
    const char *text = s.failed ? "scanwatch: new vulnerabilities" : s.data;
    size_t n = utf8_cut(text, room);
    snprintf(out, outsz, "%.*s%s", (int)n, text, suffix);
    /* No control characters or bidi overrides in a subject: each becomes
     * spaces of the same byte length (the subject only gets shorter). */
    size_t len = strlen(out);
    for (size_t i = 0; i < len; i++) {
        size_t skip = invisible_len((const unsigned char *)out + i, len - i);
        memset(out + i, ' ', skip);
        i += skip > 0 ? skip - 1 : 0;
    }
    sw_buf_free(&s);
}

static void render_page(const struct renderer *r, const struct part *p, const char *subject,
                        sw_buf *html)
{
    sw_buf_append_str(html, "<!DOCTYPE html>\n<html><head><meta http-equiv=\"Content-Type\" "
                            "content=\"text/html; charset=utf-8\"><title>");
    sw_html_escape(html, subject);
    sw_buf_append_str(
        html, "</title></head>\n<body style=\"margin:0;padding:0;background-color:#f3f4f6;\">\n"
              "<table role=\"presentation\" width=\"100%\" cellpadding=\"0\" cellspacing=\"0\" "
              "border=\"0\" bgcolor=\"#f3f4f6\"><tr><td align=\"center\" style=\"padding:16px;\">\n"
              "<table role=\"presentation\" width=\"960\" cellpadding=\"0\" cellspacing=\"0\" "
              "border=\"0\" bgcolor=\"#ffffff\" style=\"width:960px;border:1px solid #d1d5db;"
              "font-family:'Segoe UI',Arial,Helvetica,sans-serif;font-size:14px;color:#111827;\">\n"
              "<tr><td bgcolor=\"#1f2937\" style=\"padding:16px 20px;color:#ffffff;font-size:20px;"
              "font-weight:bold;\">");
    sw_buf_printf(html, "%zu new vulnerabilit%s", p->n_new, p->n_new == 1 ? "y" : "ies");
    if (r->o->digest || p->n_images > 1) {
        sw_buf_printf(html, " in %zu image%s", p->n_images, p->n_images == 1 ? "" : "s");
    }
    sw_buf_append_str(html, "</td></tr>\n<tr><td style=\"padding:12px 20px 4px 20px;\">"
                            "<table role=\"presentation\" cellpadding=\"0\" cellspacing=\"4\" "
                            "border=\"0\"><tr>");
    for (int s = SW_SEV_COUNT - 1; s >= 0; s--) {
        sw_buf_printf(html,
                      "<td bgcolor=\"%s\" style=\"padding:6px 12px;color:#ffffff;"
                      "font-weight:bold;font-size:13px;\">%s&nbsp;%zu</td>",
                      p->sev[s] ? sev_bg[s] : "#d1d5db", sw_severity_name((sw_severity)s),
                      p->sev[s]);
    }
    sw_buf_append_str(html, "</tr></table></td></tr>\n");
    if (r->n_parts > 1) {
        size_t idx = (size_t)(p - r->parts);
        sw_buf_printf(html,
                      "<tr><td style=\"padding:4px 20px;font-size:13px;color:#6b7280;\">"
                      "Mail %zu of %zu (split to stay under Microsoft Graph's request size "
                      "limit).</td></tr>\n",
                      idx + 1, r->n_parts);
    }
    sw_buf_append(html, p->body.data, p->body.len);
    char ts[SW_TIME_BUF];
    sw_time_format(r->o->now, ts, sizeof ts);
    sw_buf_append_str(html, "<tr><td style=\"padding:12px 20px 16px 20px;font-size:12px;"
                            "color:#6b7280;border-top:1px solid #e5e7eb;\">Sent by scanwatch "
                            "(route ");
    sw_html_escape(html, r->route->name);
    sw_buf_printf(html,
                  ") at %s from Microsoft Defender for Cloud container image scan results. "
                  "Only findings new since the image's previous scan are listed.</td></tr>\n"
                  "</table></td></tr></table>\n</body></html>\n",
                  ts);
}

static bool add_recipients(cJSON *msg, const char *field, char *const *v, size_t n)
{
    if (n == 0) {
        return true;
    }
    cJSON *arr = cJSON_AddArrayToObject(msg, field);
    for (size_t i = 0; arr != NULL && i < n; i++) {
        cJSON *r = cJSON_CreateObject();
        cJSON *ea = cJSON_AddObjectToObject(r, "emailAddress");
        if (r == NULL || ea == NULL || cJSON_AddStringToObject(ea, "address", v[i]) == NULL) {
            cJSON_Delete(r);
            return false;
        }
        cJSON_AddItemToArray(arr, r);
    }
    return arr != NULL;
}

static bool add_header(cJSON *arr, const char *name, const char *value)
{
    char clean[256];
    size_t j = 0;
    for (size_t i = 0; value[i] != '\0' && j + 1 < sizeof clean; i++) {
        unsigned char c = (unsigned char)value[i];
        clean[j++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    clean[j] = '\0';
    cJSON *h = cJSON_CreateObject();
    if (h == NULL || cJSON_AddStringToObject(h, "name", name) == NULL ||
        cJSON_AddStringToObject(h, "value", clean) == NULL) {
        cJSON_Delete(h);
        return false;
    }
    cJSON_AddItemToArray(arr, h);
    return true;
}

/* The sendMail request around html (NULL html = "" for measuring). */
static char *envelope(const struct renderer *r, const struct part *p, const char *subject,
                      const char *html)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON *msg = cJSON_AddObjectToObject(doc, "message");
    cJSON *body = cJSON_AddObjectToObject(msg, "body");
    bool ok = doc != NULL && msg != NULL && body != NULL &&
              cJSON_AddStringToObject(msg, "subject", subject) != NULL &&
              cJSON_AddStringToObject(body, "contentType", "HTML") != NULL &&
              cJSON_AddStringToObject(body, "content", html ? html : "") != NULL &&
              add_recipients(msg, "toRecipients", r->route->to, r->route->n_to) &&
              add_recipients(msg, "ccRecipients", r->route->cc, r->route->n_cc);
    cJSON *hdrs = ok ? cJSON_AddArrayToObject(msg, "internetMessageHeaders") : NULL;
    char v[256];
    if (hdrs != NULL) {
        ok = add_header(hdrs, "x-scanwatch-image",
                        p->n_images == 1 && p->image ? p->image : "multiple") &&
             add_header(hdrs, "x-scanwatch-severity", sw_severity_name(highest(p)));
        snprintf(v, sizeof v, "%zu", p->n_new);
        ok = ok && add_header(hdrs, "x-scanwatch-new", v);
        snprintf(v, sizeof v, "critical=%zu; high=%zu; medium=%zu; low=%zu; unknown=%zu",
                 p->sev[SW_SEV_CRITICAL], p->sev[SW_SEV_HIGH], p->sev[SW_SEV_MEDIUM],
                 p->sev[SW_SEV_LOW], p->sev[SW_SEV_UNKNOWN]);
        ok = ok && add_header(hdrs, "x-scanwatch-counts", v);
        snprintf(v, sizeof v, "%zu", p->n_resolved);
        ok = ok && add_header(hdrs, "x-scanwatch-resolved", v);
    }
    ok = ok && hdrs != NULL &&
         cJSON_AddBoolToObject(doc, "saveToSentItems", r->o->save_to_sent_items) != NULL;
    char *out = ok ? cJSON_PrintUnformatted(doc) : NULL;
    cJSON_Delete(doc);
    return out;
}

bool sw_notify_render(const sw_render_opts *o, const sw_route *route, cJSON *const *items,
                      size_t n_items, sw_mail_list *out, sw_err *err)
{
    memset(out, 0, sizeof *out);
    struct renderer r = {.o = o, .route = route, .err = err};
    struct part probe;
    memset(&probe, 0, sizeof probe);
    char *env = envelope(&r, &probe, "", NULL);
    if (env == NULL) {
        return sw_err_set(err, SW_E_NOMEM, "out of memory");
    }
    size_t overhead = strlen(env) + ENVELOPE_RESERVE + HEAD_RESERVE;
    free(env);
    size_t max = o->max_request < SW_NOTIFY_GRAPH_LIMIT ? o->max_request : SW_NOTIFY_GRAPH_LIMIT;
    if (overhead + 16384 > max) {
        return sw_err_set(err, SW_E_TOO_LARGE,
                          "mail_max_request %zu leaves no room for findings after the envelope "
                          "(%zu bytes with recipients)",
                          max, overhead);
    }
    r.budget = max - overhead;

    bool ok = true;
    for (size_t i = 0; ok && i < n_items; i++) {
        if (items[i] != NULL) {
            ok = layout_item(&r, items[i]);
        }
    }
    if (ok && r.n_parts > 0) {
        out->bodies = calloc(r.n_parts, sizeof *out->bodies);
        out->lens = calloc(r.n_parts, sizeof *out->lens);
        ok = out->bodies != NULL && out->lens != NULL;
        if (!ok) {
            sw_err_set(err, SW_E_NOMEM, "out of memory");
        }
    }
    for (size_t i = 0; ok && i < r.n_parts; i++) {
        char subject[SW_NOTIFY_MAX_SUBJECT + 1];
        make_subject(&r, &r.parts[i], i, subject, sizeof subject);
        sw_buf html;
        sw_buf_init(&html, SW_NOTIFY_GRAPH_LIMIT * 2);
        render_page(&r, &r.parts[i], subject, &html);
        char *body = html.failed ? NULL : envelope(&r, &r.parts[i], subject, html.data);
        sw_buf_free(&html);
        if (body == NULL) {
            ok = sw_err_set(err, SW_E_NOMEM, "out of memory rendering a mail");
            break;
        }
        size_t len = strlen(body);
        if (len > max) {
            free(body);
            ok = sw_err_set(err, SW_E_INTERNAL,
                            "rendered mail of %zu bytes exceeds mail_max_request %zu", len, max);
            break;
        }
        out->bodies[out->n] = body;
        out->lens[out->n] = len;
        out->n++;
    }
    for (size_t i = 0; i < r.n_parts; i++) {
        sw_buf_free(&r.parts[i].body);
    }
    free(r.parts);
    if (!ok) {
        sw_mail_list_free(out);
    }
    return ok;
}
