/*
 * Defender export decoder. The container-finding shapes are rows of one
 * table (shapes[] below): how a record is recognised and where each normalized
 * field may be found, as ordered alternative paths. A new Defender shape is a
 * new row, not new code.
 *
 * Cost model: one bounded pre-scan (depth, UTF-8), one cJSON parse, then
 * lookups that compare keys case-insensitively on cJSON's child lists. Strings
 * are borrowed from the parsed tree, which is kept until the next call; only
 * composed strings (image key, finding key, lowercased host) and the finding
 * array go to a per-call arena.
 */
#include "scanwatch/decode.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "json.h"

/*
 * cJSON's type predicates are exported functions; the decoder asks them for
 * every node it touches, so it tests the type bits inline instead. NULL is
 * never of any type, as with the cJSON functions.
 */
#define J_TYPE(n, t) ((n) != NULL && ((n)->type & 0xFF) == (t))
#define J_IS_OBJECT(n) J_TYPE(n, cJSON_Object)
#define J_IS_ARRAY(n) J_TYPE(n, cJSON_Array)
#define J_IS_STRING(n) (J_TYPE(n, cJSON_String) && (n)->valuestring != NULL)
#define J_IS_NUMBER(n) J_TYPE(n, cJSON_Number)
#define J_IS_NULL(n) J_TYPE(n, cJSON_NULL)
#define J_IS_BOOL(n) ((n) != NULL && ((n)->type & (cJSON_True | cJSON_False)) != 0)
#define J_IS_TRUE(n) J_TYPE(n, cJSON_True)

/* ---------------------------------------------------------------- arena -- */

#define ARENA_CHUNK 16384

typedef struct arena_chunk {
    struct arena_chunk *next;
    size_t cap;
    size_t used;
    max_align_t data[]; /* aligned storage */
} arena_chunk;

typedef struct arena {
    arena_chunk *head; /* current chunk; older ones follow via next */
    arena_chunk *first;
} arena;

static void *arena_alloc(arena *a, size_t n)
{
    const size_t align = sizeof(max_align_t);
    n = (n + align - 1) / align * align;
    arena_chunk *c = a->head;
    if (c == NULL || c->cap - c->used < n) {
        size_t cap = n > ARENA_CHUNK ? n : ARENA_CHUNK;
        c = malloc(sizeof *c + cap);
        if (c == NULL) {
            return NULL;
        }
        c->cap = cap;
        c->used = 0;
        c->next = a->head;
        a->head = c;
        if (a->first == NULL) {
            a->first = c;
        }
    }
    void *p = (char *)c->data + c->used;
    c->used += n;
    return p;
}

/* Memory an arena keeps between bodies (larger bodies give theirs back). */
#define ARENA_KEEP_MAX ((size_t)1 << 20)

/*
 * Keeps one chunk so that a steady stream of similar bodies never mallocs:
 * when a body needed several chunks, they are replaced by one of their total
 * size (up to ARENA_KEEP_MAX).
 */
static void arena_reset(arena *a)
{
    size_t total = 0;
    int chunks = 0;
    for (arena_chunk *c = a->head; c != NULL; c = c->next) {
        total += c->cap;
        chunks++;
    }
    arena_chunk *c = a->head;
    while (c != NULL && c != a->first) {
        arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = a->first;
    if (a->first != NULL) {
        a->first->used = 0;
        a->first->next = NULL;
        if (chunks > 1 && total <= ARENA_KEEP_MAX) {
            arena_chunk *big = malloc(sizeof *big + total);
            if (big != NULL) {
                free(a->first);
                big->cap = total;
                big->used = 0;
                big->next = NULL;
                a->first = a->head = big;
            }
        }
    }
}

static void arena_free(arena *a)
{
    arena_reset(a);
    free(a->first);
    a->first = a->head = NULL;
}

/*
 * cJSON's nodes and strings come from the decoder's tree arena while it
 * parses a body: a tree is dropped by resetting the arena, not by freeing
 * each node (malloc and free of every node were a sixth of the service's CPU).
 * cJSON's allocation hooks are process-wide, so they are installed before
 * main() (no thread runs yet) and fall through to malloc/free on every thread
 * and at every moment that is not this decoder's parse.
 */
static _Thread_local arena *cjson_arena;

static void *cjson_alloc(size_t n)
{
    return cjson_arena != NULL ? arena_alloc(cjson_arena, n) : malloc(n);
}

/* Inside a parse every block is the arena's (cJSON frees a failed parse's
 * partial tree): it goes with the arena's next reset. */
static void cjson_release(void *p)
{
    if (cjson_arena == NULL) {
        free(p);
    }
}

static void *tree_alloc(void *ctx, size_t n)
{
    return arena_alloc(ctx, n);
}

__attribute__((constructor)) static void install_cjson_hooks(void)
{
    cJSON_Hooks hooks = {.malloc_fn = cjson_alloc, .free_fn = cjson_release};
    cJSON_InitHooks(&hooks);
}

/* Concatenates up to 5 strings (NULL entries skipped) into the arena. */
static char *arena_join(arena *a, const char *p0, const char *p1, const char *p2, const char *p3,
                        const char *p4)
{
    const char *parts[5] = {p0, p1, p2, p3, p4};
    size_t lens[5];
    size_t total = 1;
    for (int i = 0; i < 5; i++) {
        lens[i] = parts[i] != NULL ? strlen(parts[i]) : 0;
        total += lens[i];
    }
    char *out = arena_alloc(a, total);
    if (out == NULL) {
        return NULL;
    }
    size_t at = 0;
    for (int i = 0; i < 5; i++) {
        if (lens[i] > 0) {
            memcpy(out + at, parts[i], lens[i]);
            at += lens[i];
        }
    }
    out[at] = '\0';
    return out;
}

static char *arena_strndup_lower(arena *a, const char *s, size_t n)
{
    char *out = arena_alloc(a, n + 1);
    if (out == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        out[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    out[n] = '\0';
    return out;
}

static char *arena_strndup(arena *a, const char *s, size_t n)
{
    char *out = arena_alloc(a, n + 1);
    if (out != NULL) {
        memcpy(out, s, n);
        out[n] = '\0';
    }
    return out;
}

/* ---------------------------------------------------------- the table -- */

/* Where a path starts. */
enum root {
    RT_END = 0, /* terminates a list of alternatives */
    RT_REC,     /* the record */
    RT_PROPS,   /* record.properties, or the record itself when flattened by an SDK */
    RT_NESTED,  /* record.properties only (absent when flattened) */
    RT_ADDL,    /* <props>.additionalData */
    RT_META,    /* <props>.metadata */
};

#define PATH_KEYS 5
typedef struct fpath {
    unsigned char root;
    const char *k[PATH_KEYS]; /* NULL-terminated unless full */
} fpath;

#define ALTS 5 /* alternatives per field; the list ends at root RT_END */

enum rec_class { RC_SUB_ASSESSMENT, RC_ASSESSMENT };

typedef struct shape_def {
    sw_shape shape;
    enum rec_class cls;
    /* The record matches when match_a's value is one of values_a and, if
     * match_b is set, match_b's value is one of values_b (case-insensitive). */
    fpath match_a;
    const char *values_a[6];
    fpath match_b;
    const char *values_b[2];

    fpath registry_host[ALTS], repository[ALTS], digest[ALTS], tags[ALTS];
    /* "/repositories/<repo>/images/<digest>" or "<host>/<repo>@<digest>" */
    fpath resource_id[ALTS];
    fpath vuln_id[ALTS];
    fpath package[ALTS], version[ALTS], fixed_version[ALTS];
    fpath fix_status[ALTS]; /* "FixAvailable" => fixable */
    fpath patchable[ALTS];  /* bool */
    fpath severity[ALTS], cvss[ALTS];
    fpath title[ALTS], description[ALTS], published[ALTS];
    fpath link_lists[ALTS]; /* arrays of {"title","link"} */
} shape_def;

#define P(r, ...)                                                                                  \
    {                                                                                              \
        (r),                                                                                       \
        {                                                                                          \
            __VA_ARGS__                                                                            \
        }                                                                                          \
    }

/* Fields every sub-assessment and assessment shares. */
#define COMMON_STATUS P(RT_PROPS, "status", "code")
#define COMMON_SCAN_TIME                                                                           \
    {                                                                                              \
        P(RT_PROPS, "timeGenerated"), P(RT_REC, "timeGenerated"),                                  \
            P(RT_PROPS, "status", "statusChangeDate"),                                             \
            P(RT_PROPS, "status", "firstEvaluationDate")                                           \
    }

static const fpath status_code_path = COMMON_STATUS;
static const fpath scan_time_paths[ALTS] = COMMON_SCAN_TIME;

static const shape_def shapes[] = {
    {
        /* Qualys (SPEC §2.1): properties.id is the QID; a Healthy record with
         * no id is the "scanned clean" marker. */
        .shape = SW_SHAPE_QUALYS,
        .cls = RC_SUB_ASSESSMENT,
        .match_a = P(RT_ADDL, "assessedResourceType"),
        .values_a = {"ContainerRegistryVulnerability"},
        .registry_host = {P(RT_ADDL, "registryHost")},
        .repository = {P(RT_ADDL, "repositoryName")},
        .digest = {P(RT_ADDL, "imageDigest")},
        .resource_id = {P(RT_PROPS, "resourceDetails", "id")},
        /* The @azure/arm-security SDK flattens properties and renames
         * properties.id to idPropertiesId (real captures in tests/data). */
        .vuln_id = {P(RT_NESTED, "id"), P(RT_REC, "idPropertiesId")},
        .patchable = {P(RT_ADDL, "patchable")},
        .severity = {P(RT_PROPS, "status", "severity")},
        .cvss = {P(RT_ADDL, "cvss", "3.0", "base"), P(RT_ADDL, "cvss", "2.0", "base")},
        .title = {P(RT_PROPS, "displayName")},
        .description = {P(RT_PROPS, "description")},
        .published = {P(RT_ADDL, "publishedTime")},
        .link_lists = {P(RT_ADDL, "cve"), P(RT_ADDL, "vendorReferences")},
    },
    {
        /* MDVM (SPEC §2.2): one CVE in one package per record. */
        .shape = SW_SHAPE_MDVM,
        .cls = RC_SUB_ASSESSMENT,
        .match_a = P(RT_ADDL, "assessedResourceType"),
        .values_a = {"AzureContainerRegistryVulnerability", "AzureContainerVulnerability",
                     "AwsContainerRegistryVulnerability", "GcpContainerRegistryVulnerability"},
        .registry_host = {P(RT_ADDL, "artifactDetails", "registryHost")},
        .repository = {P(RT_ADDL, "artifactDetails", "repositoryName")},
        .digest = {P(RT_ADDL, "artifactDetails", "digest")},
        .tags = {P(RT_ADDL, "artifactDetails", "tags")},
        .resource_id = {P(RT_PROPS, "resourceDetails", "id"),
                        P(RT_PROPS, "resourceDetails", "nativeCloudUniqueIdentifier")},
        .vuln_id = {P(RT_NESTED, "id"), P(RT_REC, "idPropertiesId"),
                    P(RT_ADDL, "vulnerabilityDetails", "cveId")},
        .package = {P(RT_ADDL, "softwareDetails", "packageName")},
        .version = {P(RT_ADDL, "softwareDetails", "version")},
        .fixed_version = {P(RT_ADDL, "softwareDetails", "fixedVersion")},
        .fix_status = {P(RT_ADDL, "softwareDetails", "fixStatus")},
        .severity = {P(RT_ADDL, "vulnerabilityDetails", "severity"),
                     P(RT_PROPS, "status", "severity")},
        .cvss = {P(RT_ADDL, "cvssV30Score"),
                 P(RT_ADDL, "vulnerabilityDetails", "cvss", "3.0", "base"),
                 P(RT_ADDL, "vulnerabilityDetails", "cvss", "2.0", "base")},
        .title = {P(RT_PROPS, "displayName")},
        .description = {P(RT_PROPS, "description")},
        .published = {P(RT_ADDL, "vulnerabilityDetails", "publishedDate")},
        .link_lists = {P(RT_ADDL, "vulnerabilityDetails", "references")},
    },
    {
        /* Individual recommendation (SPEC §2.3, 2026 model). No public sample
         * exists: read the MDVM field names first, then the VM individual
         * recommendation names (FixedVersion, cveId at additionalData level). */
        .shape = SW_SHAPE_INDIVIDUAL,
        .cls = RC_ASSESSMENT,
        .match_a = P(RT_META, "recommendationCategory"),
        .values_a = {"SoftwareUpdate"},
        .match_b = P(RT_PROPS, "resourceDetails", "resourceType"),
        .values_b = {".containerimage"},
        .registry_host = {P(RT_ADDL, "artifactDetails", "registryHost"),
                          P(RT_ADDL, "registryHost")},
        .repository = {P(RT_ADDL, "artifactDetails", "repositoryName"),
                       P(RT_ADDL, "repositoryName")},
        .digest = {P(RT_ADDL, "artifactDetails", "digest"), P(RT_ADDL, "imageDigest")},
        .tags = {P(RT_ADDL, "artifactDetails", "tags")},
        .resource_id = {P(RT_PROPS, "resourceDetails", "nativeResourceId"),
                        P(RT_PROPS, "resourceDetails", "id")},
        .vuln_id = {P(RT_ADDL, "vulnerabilityDetails", "cveId"), P(RT_ADDL, "cveId"),
                    P(RT_ADDL, "vulnerabilityId"), P(RT_NESTED, "id")},
        .package = {P(RT_ADDL, "softwareDetails", "packageName"), P(RT_ADDL, "packageName")},
        .version = {P(RT_ADDL, "softwareDetails", "version"),
                    P(RT_ADDL, "DetectedSoftwareVersions")},
        .fixed_version = {P(RT_ADDL, "softwareDetails", "fixedVersion"),
                          P(RT_ADDL, "FixedVersion")},
        .fix_status = {P(RT_ADDL, "softwareDetails", "fixStatus")},
        .severity = {P(RT_META, "severity"), P(RT_ADDL, "vulnerabilityDetails", "severity"),
                     P(RT_PROPS, "status", "severity")},
        .cvss = {P(RT_ADDL, "cvssV30Score"),
                 P(RT_ADDL, "vulnerabilityDetails", "cvss", "3.0", "base"),
                 P(RT_ADDL, "vulnerabilityDetails", "cvss", "2.0", "base")},
        .title = {P(RT_PROPS, "displayName"), P(RT_META, "displayName")},
        .description = {P(RT_META, "description"), P(RT_PROPS, "description")},
        .published = {P(RT_ADDL, "vulnerabilityDetails", "publishedDate")},
        .link_lists = {P(RT_ADDL, "vulnerabilityDetails", "references")},
    },
};
#define N_SHAPES (sizeof shapes / sizeof shapes[0])

/* Envelope objects that carry action / isSnapshot, by generation. */
static const char *const envelope_keys[] = {"subAssessmentEventDataEnrichment",
                                            "assessmentEventDataEnrichment",
                                            "securityEventDataEnrichment"};

#define MAX_LINKS 16
#define MAX_TAGS 64

/* -------------------------------------------------------------- decoder -- */

struct sw_decoder {
    sw_decode_opts opts;
    /* Later scan times are bad (max_scan_time_skew); SW_TIME_UNSET: any. */
    sw_time_us latest_scan;
    cJSON *tree; /* the last body's tree: findings borrow its strings */
    arena mem;
    arena tree_mem; /* the parsed body's cJSON tree (tree), dropped whole */
    /* The body's findings before they are emitted; grows with the number of
     * container records (each at least ~100 bytes of input), kept across calls. */
    sw_finding *found;
    size_t found_cap;
};

typedef struct rec_ctx {
    sw_decoder *d;
    size_t index; /* record index in the body */
    bool multi;   /* the body held several records: name the index in errors */
    const cJSON *rec;
    const cJSON *props;  /* properties, or rec when flattened */
    const cJSON *nested; /* properties or NULL */
    const cJSON *addl;
    const cJSON *meta;
    sw_decode_bad *bad;
    sw_err *err;
    /* Intermediate objects already looked up in this record (artifactDetails,
     * vulnerabilityDetails, ... are on several paths). Keyed by the table's
     * key pointer: a miss only costs a scan. */
    struct {
        const cJSON *parent;
        const char *key;
        const cJSON *child;
    } memo[8];
    int n_memo;
} rec_ctx;

static const char *const bad_names[SW_DECODE_BAD_COUNT] = {
#define SW_DECODE_BAD_NAME(id, code, err) code,
    SW_DECODE_BAD_TABLE(SW_DECODE_BAD_NAME)
#undef SW_DECODE_BAD_NAME
};
static const sw_code bad_codes[SW_DECODE_BAD_COUNT] = {
#define SW_DECODE_BAD_CODE(id, code, err) err,
    SW_DECODE_BAD_TABLE(SW_DECODE_BAD_CODE)
#undef SW_DECODE_BAD_CODE
};

const char *sw_decode_bad_name(sw_decode_bad reason)
{
    return (unsigned)reason < SW_DECODE_BAD_COUNT ? bad_names[reason] : "unknown";
}

void sw_decode_opts_default(sw_decode_opts *opts)
{
    /* Parse the defaults the way the settings code does, so units stay in one place. */
    const sw_setting_def *defs = sw_setting_defs();
    sw_config *cfg = sw_config_new();
    if (cfg != NULL) {
        sw_decode_opts_from_config(opts, cfg);
        sw_config_free(cfg);
    } else {
        opts->max_message_size = 1024 * 1024;
        opts->max_json_depth = 64;
    }
    opts->acr_suffix = defs[SW_CFG_ACR_LOGIN_SUFFIX].def; /* static, outlives cfg */
}

void sw_decode_opts_from_config(sw_decode_opts *opts, const sw_config *cfg)
{
    opts->max_message_size = (size_t)sw_cfg_int(cfg, SW_CFG_MAX_MESSAGE_SIZE);
    opts->max_json_depth = (int)sw_cfg_int(cfg, SW_CFG_MAX_JSON_DEPTH);
    opts->acr_suffix = sw_cfg_str(cfg, SW_CFG_ACR_LOGIN_SUFFIX);
}

sw_decoder *sw_decoder_new(const sw_decode_opts *opts, sw_err *err)
{
    sw_decoder *d = calloc(1, sizeof *d);
    if (d == NULL) {
        sw_err_set(err, SW_E_NOMEM, "decoder: out of memory");
        return NULL;
    }
    if (opts != NULL) {
        d->opts = *opts;
    } else {
        sw_decode_opts_default(&d->opts);
    }
    if (d->opts.max_json_depth < 1 || d->opts.max_message_size == 0) {
        free(d);
        sw_err_set(err, SW_E_INVALID_ARG,
                   "decoder: max_json_depth must be >= 1 and max_message_size > 0");
        return NULL;
    }
    if (d->opts.acr_suffix == NULL || d->opts.acr_suffix[0] == '\0') {
        d->opts.acr_suffix = "azurecr.io";
    }
    d->latest_scan = SW_TIME_UNSET;
    return d;
}

void sw_decoder_set_latest_scan_time(sw_decoder *d, sw_time_us t)
{
    d->latest_scan = t;
}

void sw_decoder_free(sw_decoder *d)
{
    if (d == NULL) {
        return;
    }
    arena_free(&d->tree_mem);
    arena_free(&d->mem);
    free(d->found);
    free(d);
}

/* ------------------------------------------------------------- helpers -- */

static bool fail(rec_ctx *c, sw_decode_bad reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bool fail(rec_ctx *c, sw_decode_bad reason, const char *fmt, ...)
{
    char msg[SW_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    *c->bad = reason;
    if (c->multi) {
        return sw_err_set(c->err, bad_codes[reason], "record %zu: %s", c->index, msg);
    }
    return sw_err_set(c->err, bad_codes[reason], "%s", msg);
}

/* ASCII case-insensitive equality; keys are ASCII, and libc's strcasecmp pays for locales. */
static bool key_eq(const char *s, const char *key)
{
    for (;; s++, key++) {
        unsigned char a = (unsigned char)*s, b = (unsigned char)*key;
        if (a != b) {
            unsigned char la = a | 0x20;
            if (la != (b | 0x20) || la < 'a' || la > 'z') {
                return false;
            }
        } else if (a == '\0') {
            return true;
        }
    }
}

/* Case-insensitive member lookup on cJSON's child list ("$type" is never asked for). */
static const cJSON *member(const cJSON *obj, const char *key)
{
    if (obj == NULL || !J_IS_OBJECT(obj)) {
        return NULL;
    }
    for (const cJSON *c = obj->child; c != NULL; c = c->next) {
        if (c->string != NULL && key_eq(c->string, key)) {
            return c;
        }
    }
    return NULL;
}

static const cJSON *memo_member(rec_ctx *c, const cJSON *obj, const char *key)
{
    for (int i = 0; i < c->n_memo; i++) {
        if (c->memo[i].parent == obj && c->memo[i].key == key) {
            return c->memo[i].child;
        }
    }
    const cJSON *child = member(obj, key);
    if (c->n_memo < (int)(sizeof c->memo / sizeof c->memo[0])) {
        c->memo[c->n_memo].parent = obj;
        c->memo[c->n_memo].key = key;
        c->memo[c->n_memo].child = child;
        c->n_memo++;
    }
    return child;
}

static const char *root_prefix(const rec_ctx *c, unsigned char root)
{
    bool flat = c->nested == NULL;
    switch (root) {
    case RT_PROPS:
    case RT_NESTED:
        return flat ? "" : "properties.";
    case RT_ADDL:
        return flat ? "additionalData." : "properties.additionalData.";
    case RT_META:
        return flat ? "metadata." : "properties.metadata.";
    default:
        return "";
    }
}

static void path_text(const rec_ctx *c, const fpath *p, char *buf, size_t size)
{
    int n = snprintf(buf, size, "%s", root_prefix(c, p->root));
    for (int i = 0; i < PATH_KEYS && p->k[i] != NULL && n >= 0 && (size_t)n < size; i++) {
        n += snprintf(buf + n, size - (size_t)n, "%s%s", i > 0 ? "." : "", p->k[i]);
    }
}

static const char *json_type_name(const cJSON *v)
{
    if (J_IS_STRING(v)) {
        return "a string";
    }
    if (J_IS_NUMBER(v)) {
        return "a number";
    }
    if (J_IS_BOOL(v)) {
        return "a boolean";
    }
    if (J_IS_ARRAY(v)) {
        return "an array";
    }
    if (J_IS_OBJECT(v)) {
        return "an object";
    }
    return "null";
}

/*
 * Resolves one path. Returns false (bad event) when an intermediate member is
 * not an object; *out is NULL when the value is absent or JSON null.
 */
static bool lookup(rec_ctx *c, const fpath *p, const cJSON **out)
{
    const cJSON *node = NULL;
    *out = NULL;
    switch (p->root) {
    case RT_REC:
        node = c->rec;
        break;
    case RT_PROPS:
        node = c->props;
        break;
    case RT_NESTED:
        node = c->nested;
        break;
    case RT_ADDL:
        node = c->addl;
        break;
    case RT_META:
        node = c->meta;
        break;
    default:
        return true;
    }
    for (int i = 0; i < PATH_KEYS && p->k[i] != NULL; i++) {
        if (node == NULL || J_IS_NULL(node)) {
            return true; /* an absent or null parent: the value is absent */
        }
        if (!J_IS_OBJECT(node)) {
            char where[160];
            fpath parent = *p;
            parent.k[i] = NULL;
            path_text(c, &parent, where, sizeof where);
            return fail(c, SW_DECODE_BAD_WRONG_TYPE, "%s is %s, expected an object", where,
                        json_type_name(node));
        }
        bool last = i + 1 == PATH_KEYS || p->k[i + 1] == NULL;
        node = last ? member(node, p->k[i]) : memo_member(c, node, p->k[i]);
    }
    if (node != NULL && !J_IS_NULL(node)) {
        *out = node;
    }
    return true;
}

static bool wrong_type(rec_ctx *c, const fpath *p, const cJSON *v, const char *expected)
{
    char where[160];
    path_text(c, p, where, sizeof where);
    return fail(c, SW_DECODE_BAD_WRONG_TYPE, "%s is %s, expected %s", where, json_type_name(v),
                expected);
}

/*
 * First present string among the alternatives; an empty string counts as
 * absent. *which gets the matching path (for error messages) when not NULL.
 */
static bool get_str(rec_ctx *c, const fpath *alts, const char **out, const fpath **which)
{
    *out = NULL;
    for (int i = 0; i < ALTS && alts[i].root != RT_END; i++) {
        const cJSON *v;
        if (!lookup(c, &alts[i], &v)) {
            return false;
        }
        if (v == NULL) {
            continue;
        }
        if (!J_IS_STRING(v)) {
            return wrong_type(c, &alts[i], v, "a string");
        }
        if (v->valuestring[0] != '\0') {
            *out = v->valuestring;
            if (which != NULL) {
                *which = &alts[i];
            }
            return true;
        }
    }
    return true;
}

static bool get_num(rec_ctx *c, const fpath *alts, bool *has, double *out)
{
    *has = false;
    for (int i = 0; i < ALTS && alts[i].root != RT_END; i++) {
        const cJSON *v;
        if (!lookup(c, &alts[i], &v)) {
            return false;
        }
        if (v == NULL) {
            continue;
        }
        if (!J_IS_NUMBER(v)) {
            return wrong_type(c, &alts[i], v, "a number");
        }
        *has = true;
        *out = v->valuedouble;
        return true;
    }
    return true;
}

static bool get_bool(rec_ctx *c, const fpath *alts, bool *has, bool *out)
{
    *has = false;
    for (int i = 0; i < ALTS && alts[i].root != RT_END; i++) {
        const cJSON *v;
        if (!lookup(c, &alts[i], &v)) {
            return false;
        }
        if (v == NULL) {
            continue;
        }
        if (!J_IS_BOOL(v)) {
            return wrong_type(c, &alts[i], v, "a boolean");
        }
        *has = true;
        *out = J_IS_TRUE(v);
        return true;
    }
    return true;
}

static bool oom(rec_ctx *c)
{
    return fail(c, SW_DECODE_BAD_NOMEM, "out of memory");
}

static bool ieq(const char *a, const char *b)
{
    return a != NULL && b != NULL && key_eq(a, b);
}

static bool ends_with_ci(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

static bool contains_ci(const char *s, const char *needle)
{
    return strcasestr(s, needle) != NULL;
}

/* ------------------------------------------------------- classification -- */

typedef struct classified {
    const shape_def *shape; /* NULL: skip with kind */
    char kind[SW_DECODE_KIND_MAX];
} classified;

/* Kinds are metric labels: keep them short and to a safe alphabet. */
static void set_kind(classified *out, const char *prefix, const char *detail)
{
    size_t n = 0;
    for (const char *p = prefix; *p != '\0' && n < SW_DECODE_KIND_MAX - 1; p++) {
        out->kind[n++] = *p;
    }
    for (const char *p = detail; p != NULL && *p != '\0' && n < SW_DECODE_KIND_MAX - 1; p++) {
        char ch = *p;
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' || ch == '.';
        out->kind[n++] = ok ? ch : '_';
    }
    out->kind[n] = '\0';
}

static bool matches(rec_ctx *c, const fpath *p, const char *const *values, size_t n_values,
                    bool *ok)
{
    const char *v;
    const fpath alts[2] = {*p};
    *ok = false;
    if (!get_str(c, alts, &v, NULL)) {
        return false;
    }
    for (size_t i = 0; v != NULL && i < n_values && values[i] != NULL; i++) {
        if (ieq(v, values[i])) {
            *ok = true;
        }
    }
    return true;
}

static bool classify(rec_ctx *c, classified *out)
{
    static const fpath type_path[2] = {P(RT_REC, "type")};
    static const fpath art_path[2] = {P(RT_ADDL, "assessedResourceType")};
    const char *type;
    const char *art;
    out->shape = NULL;
    out->kind[0] = '\0';
    if (!get_str(c, type_path, &type, NULL) || !get_str(c, art_path, &art, NULL)) {
        return false;
    }
    enum rec_class cls;
    if (type != NULL && ends_with_ci(type, "/subAssessments")) {
        cls = RC_SUB_ASSESSMENT;
    } else if (type != NULL && ieq(type, "Microsoft.Security/assessments")) {
        cls = RC_ASSESSMENT;
    } else if (type == NULL && art != NULL) {
        cls = RC_SUB_ASSESSMENT; /* a sub-assessment body without its type member */
    } else {
        if (type != NULL && contains_ci(type, "regulatoryCompliance")) {
            set_kind(out, "regulatory_compliance", NULL);
        } else if (type != NULL && contains_ci(type, "secureScore")) {
            set_kind(out, "secure_score", NULL);
        } else if ((type != NULL && contains_ci(type, "/alerts")) ||
                   member(c->rec, "SystemAlertId") != NULL || member(c->rec, "AlertType") != NULL) {
            set_kind(out, "alert", NULL);
        } else {
            set_kind(out, "unknown", NULL);
        }
        return true;
    }
    for (size_t i = 0; i < N_SHAPES; i++) {
        const shape_def *s = &shapes[i];
        bool a = false, b = true;
        if (s->cls != cls) {
            continue;
        }
        if (!matches(c, &s->match_a, s->values_a, 6, &a)) {
            return false;
        }
        if (a && s->match_b.root != RT_END && !matches(c, &s->match_b, s->values_b, 2, &b)) {
            return false;
        }
        if (a && b) {
            out->shape = s;
            return true;
        }
    }
    if (cls == RC_SUB_ASSESSMENT) {
        set_kind(out, "sub_assessment:", art != NULL ? art : "unknown");
    } else {
        set_kind(out, "assessment", NULL);
    }
    return true;
}

/* --------------------------------------------------------------- image -- */

typedef struct image_parts {
    const char *host;
    size_t host_len;
    const char *repo;
    size_t repo_len;
    const char *digest;
    size_t digest_len;
} image_parts;

/* "[...]/repositories/<repo>/images/<digest>" (Azure) or "<host>/<repo>@<digest>" (AWS/GCP). */
static void parse_resource_id(const char *id, image_parts *ip)
{
    static const char repos[] = "/repositories/";
    static const char images[] = "/images/";
    /* Also inside a longer ARM-style id (".../registries/<r>/repositories/..."). */
    const char *rp = strcasestr(id, repos);
    if (rp != NULL) {
        const char *r = rp + sizeof repos - 1;
        const char *im = strcasestr(r, images);
        if (im != NULL && im > r && im[sizeof images - 1] != '\0') {
            if (ip->repo == NULL) {
                ip->repo = r;
                ip->repo_len = (size_t)(im - r);
            }
            if (ip->digest == NULL) {
                ip->digest = im + sizeof images - 1;
                ip->digest_len = strlen(ip->digest);
            }
        }
        return;
    }
    const char *slash = strchr(id, '/');
    const char *at = strrchr(id, '@');
    if (slash == NULL || at == NULL || slash == id || at < slash + 2 || at[1] == '\0') {
        return;
    }
    if (ip->host == NULL) {
        ip->host = id;
        ip->host_len = (size_t)(slash - id);
    }
    if (ip->repo == NULL) {
        ip->repo = slash + 1;
        ip->repo_len = (size_t)(at - slash - 1);
    }
    if (ip->digest == NULL) {
        ip->digest = at + 1;
        ip->digest_len = strlen(ip->digest);
    }
}

/* ".../providers/Microsoft.ContainerRegistry/registries/<name>[/...]" -> name. */
static bool acr_name_from_arm(const char *arm, const char **name, size_t *len)
{
    static const char reg[] = "/Microsoft.ContainerRegistry/registries/";
    const char *p = arm != NULL ? strcasestr(arm, reg) : NULL;
    if (p == NULL) {
        return false;
    }
    p += sizeof reg - 1;
    size_t n = strcspn(p, "/");
    if (n == 0) {
        return false;
    }
    *name = p;
    *len = n;
    return true;
}

static bool decode_image(rec_ctx *c, const shape_def *s, sw_finding *f)
{
    image_parts ip = {0};
    const char *v;
    if (!get_str(c, s->registry_host, &ip.host, NULL) ||
        !get_str(c, s->repository, &ip.repo, NULL) || !get_str(c, s->digest, &ip.digest, NULL)) {
        return false;
    }
    ip.host_len = ip.host != NULL ? strlen(ip.host) : 0;
    ip.repo_len = ip.repo != NULL ? strlen(ip.repo) : 0;
    ip.digest_len = ip.digest != NULL ? strlen(ip.digest) : 0;
    for (int i = 0; i < ALTS && s->resource_id[i].root != RT_END; i++) {
        if (ip.host != NULL && ip.repo != NULL && ip.digest != NULL) {
            break;
        }
        const fpath one[2] = {s->resource_id[i]};
        if (!get_str(c, one, &v, NULL)) {
            return false;
        }
        if (v != NULL) {
            parse_resource_id(v, &ip);
        }
    }
    arena *a = &c->d->mem;
    char *host = NULL;
    if (ip.host != NULL) {
        host = arena_strndup_lower(a, ip.host, ip.host_len);
    } else {
        static const fpath arm_id[2] = {P(RT_REC, "id")};
        const char *name;
        size_t len;
        if (!get_str(c, arm_id, &v, NULL)) {
            return false;
        }
        if (acr_name_from_arm(v, &name, &len)) {
            char *lname = arena_strndup_lower(a, name, len);
            host =
                lname != NULL ? arena_join(a, lname, ".", c->d->opts.acr_suffix, NULL, NULL) : NULL;
        } else {
            return fail(c, SW_DECODE_BAD_MISSING_IMAGE,
                        "container finding (%s) has no registry host (no registryHost and no "
                        "container registry in the resource id)",
                        sw_shape_name(s->shape));
        }
    }
    if (ip.repo == NULL || ip.repo_len == 0) {
        return fail(c, SW_DECODE_BAD_MISSING_IMAGE, "container finding (%s) has no repository name",
                    sw_shape_name(s->shape));
    }
    if (ip.digest == NULL || ip.digest_len == 0) {
        return fail(c, SW_DECODE_BAD_MISSING_IMAGE, "container finding (%s) has no image digest",
                    sw_shape_name(s->shape));
    }
    char *repo = arena_strndup(a, ip.repo, ip.repo_len);
    char *digest = arena_strndup(a, ip.digest, ip.digest_len);
    if (host == NULL || repo == NULL || digest == NULL) {
        return oom(c);
    }
    f->registry = host;
    f->repository = repo;
    f->digest = digest;
    f->image = arena_join(a, host, "/", repo, "@", digest);
    return f->image != NULL || oom(c);
}

/* --------------------------------------------------------------- lists -- */

static bool decode_tags(rec_ctx *c, const shape_def *s, sw_finding *f)
{
    for (int i = 0; i < ALTS && s->tags[i].root != RT_END; i++) {
        const cJSON *arr;
        if (!lookup(c, &s->tags[i], &arr)) {
            return false;
        }
        if (arr == NULL) {
            continue;
        }
        if (!J_IS_ARRAY(arr)) {
            return wrong_type(c, &s->tags[i], arr, "an array of strings");
        }
        size_t n = 0;
        for (const cJSON *t = arr->child; t != NULL; t = t->next) {
            if (!J_IS_STRING(t)) {
                return wrong_type(c, &s->tags[i], t, "an array of strings");
            }
            n++;
        }
        if (n > MAX_TAGS) {
            n = MAX_TAGS;
        }
        const char **tags = arena_alloc(&c->d->mem, (n > 0 ? n : 1) * sizeof *tags);
        if (tags == NULL) {
            return oom(c);
        }
        size_t k = 0;
        for (const cJSON *t = arr->child; t != NULL && k < n; t = t->next) {
            tags[k++] = t->valuestring;
        }
        f->tags = tags;
        f->n_tags = k;
        return true;
    }
    return true;
}

static bool decode_links(rec_ctx *c, const shape_def *s, sw_finding *f)
{
    const char *links[MAX_LINKS];
    size_t n = 0;
    for (int i = 0; i < ALTS && s->link_lists[i].root != RT_END; i++) {
        const cJSON *arr;
        if (!lookup(c, &s->link_lists[i], &arr)) {
            return false;
        }
        if (arr == NULL) {
            continue;
        }
        if (!J_IS_ARRAY(arr)) {
            return wrong_type(c, &s->link_lists[i], arr, "an array of {title, link} objects");
        }
        for (const cJSON *e = arr->child; e != NULL; e = e->next) {
            if (!J_IS_OBJECT(e)) {
                return wrong_type(c, &s->link_lists[i], e, "an array of {title, link} objects");
            }
            const cJSON *l = member(e, "link");
            if (l == NULL || J_IS_NULL(l)) {
                continue;
            }
            if (!J_IS_STRING(l)) {
                return wrong_type(c, &s->link_lists[i], l, "an array of {title, link} objects");
            }
            bool dup = l->valuestring[0] == '\0';
            for (size_t k = 0; k < n && !dup; k++) {
                dup = strcmp(links[k], l->valuestring) == 0;
            }
            if (!dup && n < MAX_LINKS) {
                links[n++] = l->valuestring;
            }
        }
    }
    if (n == 0) {
        return true;
    }
    const char **out = arena_alloc(&c->d->mem, n * sizeof *out);
    if (out == NULL) {
        return oom(c);
    }
    memcpy(out, links, n * sizeof *out);
    f->links = out;
    f->n_links = n;
    return true;
}

/* ------------------------------------------------------------- records -- */

static size_t utf8_seq(const unsigned char *p, size_t n);

/* The byte offset of the first invalid UTF-8 sequence in s, or -1. */
static long bad_utf8_at(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s), i = 0;
    for (;;) {
        while (i + 8 <= n) { /* ASCII eight bytes at a time */
            uint64_t w;
            memcpy(&w, p + i, sizeof w);
            if ((w & 0x8080808080808080ULL) != 0) {
                break;
            }
            i += 8;
        }
        while (i < n && p[i] < 0x80) {
            i++;
        }
        if (i >= n) {
            return -1;
        }
        size_t l = utf8_seq(p + i, n - i);
        if (l == 0) {
            return (long)i;
        }
        i += l;
    }
}

/*
 * What a finding carries goes to RocksDB, mail and logs: it must be valid
 * UTF-8. Checking only these strings (not the whole body) keeps the cost
 * off the bytes the decoder never uses.
 */
static bool check_text(rec_ctx *c, const sw_finding *f)
{
    const struct {
        const char *name;
        const char *v;
    } fields[] = {{"registry", f->registry},
                  {"repository", f->repository},
                  {"digest", f->digest},
                  {"vuln_id", f->vuln_id},
                  {"package", f->package},
                  {"version", f->version},
                  {"fixed_version", f->fixed_version},
                  {"title", f->title},
                  {"published", f->published}};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        long at = fields[i].v != NULL ? bad_utf8_at(fields[i].v) : -1;
        if (at >= 0) {
            return fail(c, SW_DECODE_BAD_BAD_UTF8, "invalid UTF-8 at byte %ld of the %s", at,
                        fields[i].name);
        }
    }
    for (size_t i = 0; i < f->n_tags; i++) {
        if (bad_utf8_at(f->tags[i]) >= 0) {
            return fail(c, SW_DECODE_BAD_BAD_UTF8, "invalid UTF-8 in tag %zu", i);
        }
    }
    for (size_t i = 0; i < f->n_links; i++) {
        if (bad_utf8_at(f->links[i]) >= 0) {
            return fail(c, SW_DECODE_BAD_BAD_UTF8, "invalid UTF-8 in link %zu", i);
        }
    }
    return true;
}

typedef struct envelope {
    const char *action;
    bool snapshot;
} envelope;

static bool decode_envelope(rec_ctx *c, envelope *env)
{
    env->action = NULL;
    env->snapshot = false;
    for (size_t i = 0; i < sizeof envelope_keys / sizeof envelope_keys[0]; i++) {
        const cJSON *e = member(c->rec, envelope_keys[i]);
        if (e == NULL || J_IS_NULL(e)) {
            continue;
        }
        if (!J_IS_OBJECT(e)) {
            return fail(c, SW_DECODE_BAD_WRONG_TYPE, "%s is %s, expected an object",
                        envelope_keys[i], json_type_name(e));
        }
        const cJSON *a = member(e, "action");
        const cJSON *snap = member(e, "isSnapshot");
        if (a != NULL && !J_IS_NULL(a)) {
            if (!J_IS_STRING(a)) {
                return fail(c, SW_DECODE_BAD_WRONG_TYPE, "%s.action is %s, expected a string",
                            envelope_keys[i], json_type_name(a));
            }
            if (env->action == NULL) {
                env->action = a->valuestring;
            }
        }
        if (snap != NULL && !J_IS_NULL(snap)) {
            if (!J_IS_BOOL(snap)) {
                return fail(c, SW_DECODE_BAD_WRONG_TYPE, "%s.isSnapshot is %s, expected a boolean",
                            envelope_keys[i], json_type_name(snap));
            }
            env->snapshot = env->snapshot || J_IS_TRUE(snap);
        }
    }
    return true;
}

/* properties may be absent: SDK output and ARG rows put the fields at the top. */
static bool bind_roots(rec_ctx *c)
{
    const cJSON *p = member(c->rec, "properties");
    if (p != NULL && J_IS_NULL(p)) {
        p = NULL;
    }
    if (p != NULL && !J_IS_OBJECT(p)) {
        return fail(c, SW_DECODE_BAD_WRONG_TYPE, "properties is %s, expected an object",
                    json_type_name(p));
    }
    c->nested = p;
    c->props = p != NULL ? p : c->rec;
    c->addl = member(c->props, "additionalData");
    c->meta = member(c->props, "metadata");
    if (c->addl != NULL && J_IS_NULL(c->addl)) {
        c->addl = NULL;
    }
    if (c->meta != NULL && J_IS_NULL(c->meta)) {
        c->meta = NULL;
    }
    if (c->addl != NULL && !J_IS_OBJECT(c->addl)) {
        return fail(c, SW_DECODE_BAD_WRONG_TYPE, "%sadditionalData is %s, expected an object",
                    p != NULL ? "properties." : "", json_type_name(c->addl));
    }
    if (c->meta != NULL && !J_IS_OBJECT(c->meta)) {
        return fail(c, SW_DECODE_BAD_WRONG_TYPE, "%smetadata is %s, expected an object",
                    p != NULL ? "properties." : "", json_type_name(c->meta));
    }
    return true;
}

/* A QID may arrive as a JSON number; normalise it to its decimal text. */
static bool decode_vuln_id(rec_ctx *c, const shape_def *s, const char **out)
{
    *out = NULL;
    for (int i = 0; i < ALTS && s->vuln_id[i].root != RT_END; i++) {
        const cJSON *v;
        if (!lookup(c, &s->vuln_id[i], &v)) {
            return false;
        }
        if (v == NULL) {
            continue;
        }
        if (J_IS_NUMBER(v) && v->valuedouble >= 0 && v->valuedouble < 1e15 &&
            floor(v->valuedouble) == v->valuedouble) {
            char num[32];
            int n = snprintf(num, sizeof num, "%.0f", v->valuedouble);
            *out = arena_strndup(&c->d->mem, num, (size_t)n);
            return *out != NULL || oom(c);
        }
        if (!J_IS_STRING(v)) {
            return wrong_type(c, &s->vuln_id[i], v, "a string");
        }
        if (v->valuestring[0] != '\0') {
            *out = v->valuestring;
            return true;
        }
    }
    return true;
}

static bool decode_scan_time(rec_ctx *c, sw_finding *f)
{
    const char *t;
    const fpath *which = NULL;
    if (!get_str(c, scan_time_paths, &t, &which)) {
        return false;
    }
    if (t == NULL) {
        return fail(c, SW_DECODE_BAD_MISSING_SCAN_TIME,
                    "container finding has no properties.timeGenerated");
    }
    if (!sw_time_parse(t, strlen(t), &f->scan_time)) {
        char where[160];
        path_text(c, which, where, sizeof where);
        return fail(c, SW_DECODE_BAD_BAD_SCAN_TIME, "%s is not an RFC 3339 time: \"%.64s\"", where,
                    t);
    }
    if (c->d->latest_scan != SW_TIME_UNSET && f->scan_time > c->d->latest_scan) {
        char where[160];
        path_text(c, which, where, sizeof where);
        return fail(c, SW_DECODE_BAD_BAD_SCAN_TIME,
                    "%s \"%.64s\" is later than the event's enqueued time plus "
                    "max_scan_time_skew",
                    where, t);
    }
    return true;
}

/* Status and envelope decide active vs resolved; see SPEC §2. */
static bool decode_status(rec_ctx *c, const envelope *env, sw_finding *f, bool *healthy)
{
    const fpath alts[2] = {status_code_path};
    const char *code;
    if (!get_str(c, alts, &code, NULL)) {
        return false;
    }
    *healthy = ieq(code, "Healthy");
    bool resolved = *healthy || ieq(code, "NotApplicable") || ieq(code, "Removed");
    if (ieq(env->action, "Delete")) {
        resolved = true;
    }
    f->status = resolved ? SW_STATUS_RESOLVED : SW_STATUS_ACTIVE;
    f->snapshot = env->snapshot;
    return true;
}

static bool decode_details(rec_ctx *c, const shape_def *s, sw_finding *f)
{
    const char *sev, *fix_status, *title, *desc, *published;
    bool has_patch = false, patchable = false;
    if (!get_str(c, s->package, &f->package, NULL) || !get_str(c, s->version, &f->version, NULL) ||
        !get_str(c, s->fixed_version, &f->fixed_version, NULL) ||
        !get_str(c, s->fix_status, &fix_status, NULL) ||
        !get_bool(c, s->patchable, &has_patch, &patchable) ||
        !get_str(c, s->severity, &sev, NULL) || !get_num(c, s->cvss, &f->has_cvss, &f->cvss) ||
        !get_str(c, s->title, &title, NULL) || !get_str(c, s->description, &desc, NULL) ||
        !get_str(c, s->published, &published, NULL)) {
        return false;
    }
    f->severity = sev != NULL ? sw_severity_parse(sev, strlen(sev)) : SW_SEV_UNKNOWN;
    /* A score outside CVSS's range is noise, not a reason to drop the finding. */
    if (f->has_cvss && !(isfinite(f->cvss) && f->cvss >= 0.0 && f->cvss <= 10.0)) {
        f->has_cvss = false;
        f->cvss = 0;
    }
    if (fix_status != NULL) {
        f->fixable = ieq(fix_status, "FixAvailable");
    } else if (has_patch) {
        f->fixable = patchable;
    } else {
        f->fixable = f->fixed_version != NULL;
    }
    /* MDVM's displayName is the CVE id itself; the description says more. */
    f->title = title != NULL && (f->vuln_id == NULL || strcmp(title, f->vuln_id) != 0) ? title
               : desc != NULL                                                          ? desc
                                                                                       : title;
    f->published = f->clean_marker ? NULL : published;
    return decode_tags(c, s, f) && decode_links(c, s, f);
}

static bool decode_finding(rec_ctx *c, const shape_def *s, sw_finding *f)
{
    envelope env;
    bool healthy = false;
    memset(f, 0, sizeof *f);
    f->shape = s->shape;
    if (!decode_envelope(c, &env) || !decode_status(c, &env, f, &healthy) ||
        !decode_vuln_id(c, s, &f->vuln_id) || !decode_image(c, s, f)) {
        return false;
    }
    if (f->vuln_id == NULL) {
        if (!healthy) {
            return fail(c, SW_DECODE_BAD_MISSING_VULN_ID,
                        "container finding (%s) for %s has no vulnerability id (%sid)",
                        sw_shape_name(s->shape), f->image, root_prefix(c, RT_NESTED));
        }
        f->clean_marker = true;
    }
    if (!decode_scan_time(c, f) || !decode_details(c, s, f) || !check_text(c, f)) {
        return false;
    }
    if (f->vuln_id != NULL) {
        f->key = f->package != NULL
                     ? arena_join(&c->d->mem, f->vuln_id, ":", f->package, NULL, NULL)
                     : f->vuln_id;
        if (f->key == NULL) {
            return oom(c);
        }
    }
    return true;
}

/* ------------------------------------------------------------ pre-scan -- */

/* Length of the valid UTF-8 sequence at p (n bytes available), 0 if invalid. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    if (c >= 0xC2 && c <= 0xDF) {
        return n >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
    }
    if (c >= 0xE0 && c <= 0xEF) {
        if (n < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) {
            return 0;
        }
        if ((c == 0xE0 && p[1] < 0xA0) || (c == 0xED && p[1] > 0x9F)) {
            return 0; /* overlong, or a UTF-16 surrogate */
        }
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (n < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80) {
            return 0;
        }
        if ((c == 0xF0 && p[1] < 0x90) || (c == 0xF4 && p[1] > 0x8F)) {
            return 0; /* overlong, or beyond U+10FFFF */
        }
        return 4;
    }
    return 0;
}

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* Bytes of v that are zero get their high bit set (exact for the lowest; no false negatives). */
static uint64_t zero_bytes(uint64_t v)
{
    return (v - ONES) & ~v & HIGHS;
}

/*
 * Skips string bytes that need no attention (printable ASCII other than '"'
 * and '\\'), eight at a time: the pre-scan runs over every body, so it must
 * cost little next to the parse itself.
 */
static size_t skip_plain(const unsigned char *p, size_t n, size_t i)
{
    while (i + 8 <= n) {
        uint64_t w;
        memcpy(&w, p + i, sizeof w);
        uint64_t special = (w & HIGHS) | ((w - 0x2020202020202020ULL) & ~w & HIGHS) |
                           zero_bytes(w ^ (0x22 * ONES)) | zero_bytes(w ^ (0x5c * ONES));
        if (special != 0) {
            break;
        }
        i += 8;
    }
    while (i < n && p[i] >= 0x20 && p[i] < 0x80 && p[i] != '"' && p[i] != '\\') {
        i++;
    }
    return i;
}

/*
 * Diagnoses a body cJSON rejected: nesting past the limit (cJSON's own limit
 * is a compile-time 1000 and says only "not JSON"), invalid UTF-8, NUL bytes,
 * raw control bytes in strings. Runs only on the failure path: well-formed
 * bodies get a tree-depth check and UTF-8 checks of the strings they emit.
 */
static bool prescan(const unsigned char *p, size_t n, int max_depth, sw_decode_bad *bad,
                    sw_err *err)
{
    int depth = 0;
    size_t i = 0;
    while (i < n) {
        unsigned char ch = p[i];
        if (ch == '"') {
            i++;
            for (;;) {
                i = skip_plain(p, n, i);
                if (i >= n) {
                    return true; /* unterminated: cJSON reports it */
                }
                ch = p[i];
                if (ch == '"') {
                    i++;
                    break;
                }
                if (ch == '\\') {
                    i += 2;
                    continue;
                }
                if (ch < 0x20) {
                    *bad = SW_DECODE_BAD_NOT_JSON;
                    return sw_err_set(err, SW_E_PARSE,
                                      "raw control byte 0x%02x inside a string at byte %zu", ch, i);
                }
                size_t l = utf8_seq(p + i, n - i);
                if (l == 0) {
                    *bad = SW_DECODE_BAD_BAD_UTF8;
                    return sw_err_set(err, SW_E_PARSE, "invalid UTF-8 at byte %zu", i);
                }
                i += l;
            }
            continue;
        }
        if (ch == '{' || ch == '[') {
            if (++depth > max_depth) {
                *bad = SW_DECODE_BAD_TOO_DEEP;
                return sw_err_set(err, SW_E_TOO_LARGE,
                                  "JSON nesting deeper than max_json_depth (%d) at byte %zu",
                                  max_depth, i);
            }
        } else if (ch == '}' || ch == ']') {
            depth--;
        } else if (ch == '\0') {
            *bad = SW_DECODE_BAD_NOT_JSON;
            return sw_err_set(err, SW_E_PARSE, "NUL byte at byte %zu", i);
        }
        i++;
    }
    return true;
}

/* Nesting depth of a parsed container (it counts 1); stops once past max. */
static int tree_depth(const cJSON *n, int max)
{
    int deepest = 0;
    for (const cJSON *c = n->child; c != NULL && deepest <= max; c = c->next) {
        if (J_IS_ARRAY(c) || J_IS_OBJECT(c)) {
            int d = tree_depth(c, max - 1);
            if (d > deepest) {
                deepest = d;
            }
        }
    }
    return deepest + 1;
}

static bool is_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* ---------------------------------------------------------------- body -- */

static void count_skip(sw_decode_result *res, const char *kind)
{
    if (res->skipped == 0) {
        snprintf(res->skipped_kind, sizeof res->skipped_kind, "%s", kind);
    }
    res->skipped++;
    sw_decode_kinds_add(&res->skipped_kinds, kind, 1);
}

static bool body_fail(sw_decode_result *res, sw_err *err, sw_decode_bad reason, const char *fmt,
                      ...) __attribute__((format(printf, 4, 5)));

static bool body_fail(sw_decode_result *res, sw_err *err, sw_decode_bad reason, const char *fmt,
                      ...)
{
    char msg[SW_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    res->bad = reason;
    return sw_err_set(err, bad_codes[reason], "%s", msg);
}

/* The records of a body: the object itself, the array, or records[]. */
static bool find_records(const cJSON *root, const cJSON **first, size_t *count,
                         sw_decode_result *res, sw_err *err)
{
    const cJSON *list = NULL;
    if (J_IS_ARRAY(root)) {
        list = root;
    } else if (J_IS_OBJECT(root)) {
        const cJSON *r = member(root, "records");
        if (r != NULL && J_IS_ARRAY(r)) {
            list = r;
        } else if (r != NULL && !J_IS_NULL(r) && member(root, "type") == NULL) {
            return body_fail(res, err, SW_DECODE_BAD_WRONG_TYPE, "records is %s, expected an array",
                             json_type_name(r));
        } else {
            *first = root;
            *count = 1;
            return true;
        }
    } else {
        return body_fail(res, err, SW_DECODE_BAD_WRONG_TYPE,
                         "body is %s, expected a JSON object or an array of objects",
                         json_type_name(root));
    }
    size_t n = 0;
    for (const cJSON *e = list->child; e != NULL; e = e->next) {
        if (!J_IS_OBJECT(e)) {
            return body_fail(res, err, SW_DECODE_BAD_WRONG_TYPE,
                             "record %zu is %s, expected an object", n, json_type_name(e));
        }
        n++;
    }
    *first = list->child;
    *count = n;
    return true;
}

static bool parse_body(sw_decoder *d, const unsigned char *p, size_t len, sw_decode_result *res,
                       sw_err *err)
{
    if (len > d->opts.max_message_size) {
        return body_fail(res, err, SW_DECODE_BAD_TOO_LARGE,
                         "body of %zu bytes exceeds max_message_size (%zu)", len,
                         d->opts.max_message_size);
    }
    size_t start = 0;
    while (start < len && is_ws(p[start])) {
        start++;
    }
    if (start == len) {
        return body_fail(res, err, SW_DECODE_BAD_EMPTY, "empty body");
    }
    const char *end = NULL;
    size_t fast_end = 0;
    d->tree = sw_json_parse_fast((const char *)p, len, &fast_end, tree_alloc, &d->tree_mem);
    if (d->tree != NULL) {
        end = (const char *)p + fast_end;
    } else {
        /* Not taken by the fast parser (a rarity or an error): cJSON decides. */
        arena_reset(&d->tree_mem);
        cjson_arena = &d->tree_mem;
        d->tree = cJSON_ParseWithLengthOpts((const char *)p, len, &end, 0);
        cjson_arena = NULL;
    }
    if (d->tree == NULL) {
        /* Say why: cJSON only knows "not JSON" (its nesting limit is a fixed 1000). */
        if (!prescan(p, len, d->opts.max_json_depth, &res->bad, err)) {
            return false;
        }
        size_t at = end != NULL && end >= (const char *)p ? (size_t)(end - (const char *)p) : 0;
        return body_fail(res, err, SW_DECODE_BAD_NOT_JSON, "not valid JSON (error near byte %zu%s)",
                         at, at >= len ? ", the body ends early" : "");
    }
    if ((J_IS_ARRAY(d->tree) || J_IS_OBJECT(d->tree)) &&
        tree_depth(d->tree, d->opts.max_json_depth) > d->opts.max_json_depth) {
        return body_fail(res, err, SW_DECODE_BAD_TOO_DEEP,
                         "JSON nesting deeper than max_json_depth (%d)", d->opts.max_json_depth);
    }
    size_t at = (size_t)(end - (const char *)p);
    while (at < len && is_ws(p[at])) {
        at++;
    }
    if (at < len) {
        return body_fail(res, err, SW_DECODE_BAD_NOT_JSON,
                         "not valid JSON: unexpected data after the value at byte %zu", at);
    }
    return true;
}

bool sw_decode_body(sw_decoder *d, const void *body, size_t len, sw_finding_fn fn, void *ctx,
                    sw_decode_result *res, sw_err *err)
{
    memset(res, 0, sizeof *res);
    sw_err_clear(err);
    d->tree = NULL;
    arena_reset(&d->tree_mem);
    arena_reset(&d->mem);

    if (!parse_body(d, body, len, res, err)) {
        return false;
    }
    const cJSON *rec = NULL;
    size_t n = 0;
    if (!find_records(d->tree, &rec, &n, res, err)) {
        return false;
    }
    res->records = n;
    /* All records first: a body is emitted whole or not at all. */
    size_t nf = 0;
    rec_ctx c = {.d = d, .multi = n > 1, .bad = &res->bad, .err = err};
    for (size_t i = 0; i < n; i++, rec = rec->next) {
        classified cl;
        c.index = i;
        c.rec = rec;
        c.n_memo = 0;
        if (!bind_roots(&c) || !classify(&c, &cl)) {
            return false;
        }
        if (cl.shape == NULL) {
            count_skip(res, cl.kind);
            continue;
        }
        if (nf == d->found_cap) {
            size_t cap = d->found_cap > 0 ? d->found_cap * 2 : 16;
            sw_finding *p = realloc(d->found, cap * sizeof *p);
            if (p == NULL) {
                return body_fail(res, err, SW_DECODE_BAD_NOMEM, "out of memory");
            }
            d->found = p;
            d->found_cap = cap;
        }
        if (!decode_finding(&c, cl.shape, &d->found[nf])) {
            return false;
        }
        nf++;
    }
    for (size_t i = 0; i < nf; i++) {
        const sw_finding *f = &d->found[i];
        res->findings++;
        res->by_shape[f->shape]++;
        res->clean_markers += f->clean_marker ? 1 : 0;
        if (!fn(ctx, f)) {
            res->stopped = true;
            break;
        }
    }
    return true;
}

/* --------------------------------------------------------------- stats -- */

void sw_decode_kinds_add(sw_decode_kinds *kinds, const char *kind, uint64_t n)
{
    for (size_t i = 0; i < kinds->len; i++) {
        if (strcmp(kinds->k[i].kind, kind) == 0) {
            kinds->k[i].n += n;
            return;
        }
    }
    if (kinds->len < SW_DECODE_KINDS_MAX) {
        sw_decode_kind_count *k = &kinds->k[kinds->len++];
        snprintf(k->kind, sizeof k->kind, "%s", kind);
        k->n = n;
        return;
    }
    kinds->other += n;
}

void sw_decode_stats_add(sw_decode_stats *s, const sw_decode_result *res, bool ok)
{
    s->bodies++;
    if (!ok) {
        s->bad++;
        s->bad_by_reason[(unsigned)res->bad < SW_DECODE_BAD_COUNT ? res->bad : 0]++;
        return;
    }
    s->records += res->records;
    s->findings += res->findings;
    s->clean_markers += res->clean_markers;
    for (int i = 0; i < SW_SHAPE_COUNT; i++) {
        s->by_shape[i] += res->by_shape[i];
    }
    s->skipped += res->skipped;
    for (size_t i = 0; i < res->skipped_kinds.len; i++) {
        sw_decode_kinds_add(&s->skipped_kinds, res->skipped_kinds.k[i].kind,
                            res->skipped_kinds.k[i].n);
    }
    s->skipped_kinds.other += res->skipped_kinds.other;
}

static int kind_cmp(const void *a, const void *b)
{
    return strcmp(((const sw_decode_kind_count *)a)->kind, ((const sw_decode_kind_count *)b)->kind);
}

void sw_decode_stats_print(const sw_decode_stats *s, FILE *out)
{
    fprintf(out, "findings: %llu (", (unsigned long long)s->findings);
    for (int i = 0; i < SW_SHAPE_COUNT; i++) {
        fprintf(out, "%s%s %llu", i > 0 ? ", " : "", sw_shape_name((sw_shape)i),
                (unsigned long long)s->by_shape[i]);
    }
    fprintf(out, "), clean markers: %llu, bodies: %llu, records: %llu\n",
            (unsigned long long)s->clean_markers, (unsigned long long)s->bodies,
            (unsigned long long)s->records);

    sw_decode_kinds sorted = s->skipped_kinds;
    qsort(sorted.k, sorted.len, sizeof sorted.k[0], kind_cmp);
    fprintf(out, "skipped: %llu (", (unsigned long long)s->skipped);
    for (size_t i = 0; i < sorted.len; i++) {
        fprintf(out, "%s%s %llu", i > 0 ? ", " : "", sorted.k[i].kind,
                (unsigned long long)sorted.k[i].n);
    }
    if (sorted.other > 0) {
        fprintf(out, "%sother %llu", sorted.len > 0 ? ", " : "", (unsigned long long)sorted.other);
    }
    fprintf(out, ")\nbad: %llu (", (unsigned long long)s->bad);
    bool first = true;
    for (int i = 1; i < SW_DECODE_BAD_COUNT; i++) {
        if (s->bad_by_reason[i] > 0) {
            fprintf(out, "%s%s %llu", first ? "" : ", ", bad_names[i],
                    (unsigned long long)s->bad_by_reason[i]);
            first = false;
        }
    }
    fprintf(out, ")\n");
}
