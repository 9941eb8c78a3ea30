#include "scanwatch/settings.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "scanwatch/buf.h"
#include "scanwatch/swtime.h"

#define MAX_VALUE_LEN (1024 * 1024)

static const sw_setting_def defs[SW_CFG_COUNT] = {
#define SW_CFG_ROW(id, nm, ty, df, mn, mx, ch, ds)                                                 \
    [SW_CFG_##id] = {.name = #nm,                                                                  \
                     .type = SW_SETTING_##ty,                                                      \
                     .def = df,                                                                    \
                     .min = mn,                                                                    \
                     .max = mx,                                                                    \
                     .choices = ch,                                                                \
                     .desc = ds},
    SW_SETTINGS_TABLE(SW_CFG_ROW)
#undef SW_CFG_ROW
};

struct value {
    int64_t i;
    bool b;
    char *s; /* text for STRING/SECRET/ENUM/JSON; owned */
    sw_setting_source src;
};

struct sw_config {
    struct value v[SW_CFG_COUNT];
};

static const char *const type_names[] = {"bool",   "int",  "size", "duration", "string",
                                         "secret", "enum", "time", "json"};
static const char *const source_names[] = {"default", "file", "env", "flag", "program"};

const sw_setting_def *sw_setting_defs(void)
{
    return defs;
}

const sw_setting_def *sw_setting_find(const char *name, sw_cfg_id *id_out)
{
    for (int i = 0; i < SW_CFG_COUNT; i++) {
        if (strcmp(defs[i].name, name) == 0) {
            if (id_out != NULL) {
                *id_out = (sw_cfg_id)i;
            }
            return &defs[i];
        }
    }
    return NULL;
}

static bool choice_ok(const char *choices, const char *v)
{
    size_t n = strlen(v);
    const char *p = choices;
    while (*p != '\0') {
        const char *bar = strchr(p, '|');
        size_t len = bar != NULL ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, v, n) == 0) {
            return true;
        }
        if (bar == NULL) {
            break;
        }
        p = bar + 1;
    }
    return false;
}

static bool parse_size(const char *s, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || errno != 0 || v < 0) {
        return false;
    }
    long long mult = 1;
    if (strcmp(end, "") == 0 || strcmp(end, "B") == 0) {
        mult = 1;
    } else if (strcmp(end, "K") == 0 || strcmp(end, "KiB") == 0) {
        mult = 1024;
    } else if (strcmp(end, "M") == 0 || strcmp(end, "MiB") == 0) {
        mult = 1024 * 1024;
    } else if (strcmp(end, "G") == 0 || strcmp(end, "GiB") == 0) {
        mult = 1024LL * 1024 * 1024;
    } else {
        return false;
    }
    if (v > INT64_MAX / mult) {
        return false;
    }
    *out = v * mult;
    return true;
}

static void format_bound(const sw_setting_def *d, long long v, char *buf, size_t size)
{
    if (d->type == SW_SETTING_DURATION) {
        sw_duration_format(v, buf, size);
    } else {
        snprintf(buf, size, "%lld", v);
    }
}

static bool range_error(const sw_setting_def *d, const char *value, sw_setting_source src,
                        const char *what, sw_err *err)
{
    char lo[32], hi[32];
    format_bound(d, d->min, lo, sizeof lo);
    format_bound(d, d->max, hi, sizeof hi);
    bool secret = d->type == SW_SETTING_SECRET;
    return sw_err_set(err, SW_E_CONFIG, "setting %s (from %s): '%.64s' is %s (allowed: %s to %s)",
                      d->name, source_names[src], secret ? "***" : value, what, lo, hi);
}

bool sw_config_set(sw_config *cfg, sw_cfg_id id, const char *value, sw_setting_source src,
                   sw_err *err)
{
    const sw_setting_def *d = &defs[id];
    struct value nv = {.src = src};
    if (strlen(value) > MAX_VALUE_LEN) {
        return sw_err_set(err, SW_E_CONFIG, "setting %s (from %s): value longer than %d bytes",
                          d->name, source_names[src], MAX_VALUE_LEN);
    }
    switch (d->type) {
    case SW_SETTING_BOOL:
        if (strcmp(value, "true") == 0 || strcmp(value, "1") == 0 || strcmp(value, "yes") == 0 ||
            strcmp(value, "on") == 0) {
            nv.b = true;
        } else if (strcmp(value, "false") == 0 || strcmp(value, "0") == 0 ||
                   strcmp(value, "no") == 0 || strcmp(value, "off") == 0) {
            nv.b = false;
        } else {
            return sw_err_set(err, SW_E_CONFIG,
                              "setting %s (from %s): '%.64s' is not a boolean (allowed: true, false)",
                              d->name, source_names[src], value);
        }
        break;
    case SW_SETTING_INT: {
        char *end = NULL;
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (end == value || *end != '\0' || errno != 0) {
            return range_error(d, value, src, "not an integer", err);
        }
        if (v < d->min || v > d->max) {
            return range_error(d, value, src, "out of range", err);
        }
        nv.i = v;
        break;
    }
    case SW_SETTING_SIZE:
        if (!parse_size(value, &nv.i)) {
            return range_error(d, value, src, "not a size (bytes, or with K/M/G)", err);
        }
        if (nv.i < d->min || nv.i > d->max) {
            return range_error(d, value, src, "out of range", err);
        }
        break;
    case SW_SETTING_DURATION:
        if (!sw_duration_parse(value, &nv.i)) {
            return range_error(d, value, src, "not a duration (e.g. 300s, 5m, 1h, 1500ms)", err);
        }
        if (nv.i < d->min || nv.i > d->max) {
            return range_error(d, value, src, "out of range", err);
        }
        break;
    case SW_SETTING_ENUM:
        if (!choice_ok(d->choices, value)) {
            return sw_err_set(err, SW_E_CONFIG, "setting %s (from %s): '%.64s' is not one of %s",
                              d->name, source_names[src], value, d->choices);
        }
        break;
    case SW_SETTING_TIME:
        nv.i = SW_TIME_UNSET;
        if (value[0] != '\0' && !sw_time_parse(value, strlen(value), &nv.i)) {
            return sw_err_set(err, SW_E_CONFIG,
                              "setting %s (from %s): '%.64s' is not an RFC 3339 time "
                              "(e.g. 2026-11-29T08:00:00Z)",
                              d->name, source_names[src], value);
        }
        break;
    case SW_SETTING_STRING:
    case SW_SETTING_SECRET:
    case SW_SETTING_JSON:
        break;
    }
    nv.s = strdup(value);
    if (nv.s == NULL) {
        return sw_err_set(err, SW_E_NOMEM, "out of memory");
    }
    free(cfg->v[id].s);
    cfg->v[id] = nv;
    return true;
}

sw_config *sw_config_new(void)
{
    sw_config *cfg = calloc(1, sizeof *cfg);
    if (cfg == NULL) {
        return NULL;
    }
    for (int i = 0; i < SW_CFG_COUNT; i++) {
        sw_err err;
        if (!sw_config_set(cfg, (sw_cfg_id)i, defs[i].def, SW_SRC_DEFAULT, &err)) {
            /* A bad default is a bug in the table; the unit tests catch it. */
            fprintf(stderr, "scanwatch: bad default: %s\n", err.msg);
            sw_config_free(cfg);
            return NULL;
        }
    }
    return cfg;
}

void sw_config_free(sw_config *cfg)
{
    if (cfg == NULL) {
        return;
    }
    for (int i = 0; i < SW_CFG_COUNT; i++) {
        free(cfg->v[i].s);
    }
    free(cfg);
}

bool sw_cfg_bool(const sw_config *cfg, sw_cfg_id id)
{
    return cfg->v[id].b;
}

int64_t sw_cfg_int(const sw_config *cfg, sw_cfg_id id)
{
    return cfg->v[id].i;
}

const char *sw_cfg_str(const sw_config *cfg, sw_cfg_id id)
{
    return cfg->v[id].s != NULL ? cfg->v[id].s : "";
}

bool sw_cfg_is_set(const sw_config *cfg, sw_cfg_id id)
{
    return cfg->v[id].src != SW_SRC_DEFAULT;
}

sw_setting_source sw_cfg_source(const sw_config *cfg, sw_cfg_id id)
{
    return cfg->v[id].src;
}

/* Reads a secret from a file, dropping one trailing newline. */
static bool read_secret_file(const sw_setting_def *d, const char *path, char **out, sw_err *err)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) {
        return sw_err_set(err, SW_E_CONFIG, "setting %s_file: cannot read '%s': %s", d->name, path,
                          strerror(errno));
    }
    sw_buf b;
    sw_buf_init(&b, MAX_VALUE_LEN);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, fp)) > 0) {
        sw_buf_append(&b, chunk, n);
    }
    bool read_err = ferror(fp) != 0;
    fclose(fp);
    if (read_err || b.failed) {
        sw_buf_free(&b);
        return sw_err_set(err, SW_E_CONFIG, "setting %s_file: cannot read '%s' (error or too large)",
                          d->name, path);
    }
    while (b.len > 0 && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == '\r')) {
        b.data[--b.len] = '\0';
    }
    *out = sw_buf_detach(&b, NULL);
    return true;
}

/*
 * Resolves a key as it appears in a source ("scan_quiet", "client_secret_file")
 * to a setting; *is_file tells the *_file form of a SECRET.
 */
static bool resolve_key(const char *key, sw_cfg_id *id, bool *is_file)
{
    *is_file = false;
    if (sw_setting_find(key, id) != NULL) {
        return true;
    }
    size_t n = strlen(key);
    if (n > 5 && strcmp(key + n - 5, "_file") == 0 && n - 5 < 128) {
        char base[128];
        memcpy(base, key, n - 5);
        base[n - 5] = '\0';
        if (sw_setting_find(base, id) != NULL && defs[*id].type == SW_SETTING_SECRET) {
            *is_file = true;
            return true;
        }
    }
    return false;
}

bool sw_config_set_key(sw_config *cfg, const char *key, const char *value, sw_setting_source src,
                       sw_err *err)
{
    sw_cfg_id id;
    bool is_file;
    if (!resolve_key(key, &id, &is_file)) {
        return sw_err_set(err, SW_E_CONFIG, "unknown setting '%s' (from %s)", key,
                          source_names[src]);
    }
    if (!is_file) {
        return sw_config_set(cfg, id, value, src, err);
    }
    char *secret = NULL;
    if (!read_secret_file(&defs[id], value, &secret, err)) {
        return false;
    }
    bool ok = sw_config_set(cfg, id, secret, src, err);
    memset(secret, 0, strlen(secret));
    free(secret);
    return ok;
}

static bool load_env(sw_config *cfg, char **envp, sw_err *err)
{
    static const char prefix[] = "SCANWATCH_";
    for (char **e = envp; e != NULL && *e != NULL; e++) {
        if (strncmp(*e, prefix, sizeof prefix - 1) != 0) {
            continue;
        }
        const char *eq = strchr(*e, '=');
        size_t klen = eq != NULL ? (size_t)(eq - *e) - (sizeof prefix - 1) : 0;
        if (eq == NULL || klen == 0 || klen >= 128) {
            continue;
        }
        char key[128];
        for (size_t i = 0; i < klen; i++) {
            key[i] = (char)tolower((unsigned char)(*e)[sizeof prefix - 1 + i]);
        }
        key[klen] = '\0';
        sw_cfg_id id;
        bool is_file;
        if (!resolve_key(key, &id, &is_file)) {
            /* Unknown variables are not fatal: the environment is shared. */
            fprintf(stderr, "scanwatch: ignoring unknown environment variable %.*s\n",
                    (int)(eq - *e), *e);
            continue;
        }
        if (!sw_config_set_key(cfg, key, eq + 1, SW_SRC_ENV, err)) {
            return false;
        }
    }
    return true;
}

/* "--scan-quiet" -> "scan_quiet"; false if arg is not a long option. */
static bool flag_key(const char *arg, size_t len, char *key, size_t size)
{
    if (len < 3 || arg[0] != '-' || arg[1] != '-' || len - 2 >= size) {
        return false;
    }
    for (size_t i = 2; i < len; i++) {
        key[i - 2] = arg[i] == '-' ? '_' : arg[i];
    }
    key[len - 2] = '\0';
    return true;
}

/* Finds the value of the `config` setting from flags, then env. */
static const char *find_config_path(int argc, char **argv, char **envp)
{
    const char *path = NULL;
    for (char **e = envp; e != NULL && *e != NULL; e++) {
        if (strncmp(*e, "SCANWATCH_CONFIG=", 17) == 0) {
            path = *e + 17;
        }
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            path = argv[i + 1];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            path = argv[i] + 9;
        }
    }
    return path;
}

bool sw_config_load(sw_config *cfg, int argc, char **argv, char **envp, char **rest,
                    int *rest_count, sw_err *err)
{
    const char *path = find_config_path(argc, argv, envp);
    if (path != NULL && path[0] != '\0' && !sw_config_load_yaml_file(cfg, path, err)) {
        return false;
    }
    if (!load_env(cfg, envp, err)) {
        return false;
    }
    *rest_count = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *eq = strchr(arg, '=');
        size_t len = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
        char key[128];
        sw_cfg_id id;
        bool is_file;
        if (strcmp(arg, "--") == 0) {
            while (i < argc) {
                rest[(*rest_count)++] = argv[i++];
            }
            break;
        }
        if (!flag_key(arg, len, key, sizeof key) || !resolve_key(key, &id, &is_file)) {
            rest[(*rest_count)++] = argv[i];
            continue;
        }
        const char *value;
        if (eq != NULL) {
            value = eq + 1;
        } else if (defs[id].type == SW_SETTING_BOOL && !is_file &&
                   (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0)) {
            value = "true"; /* a bare boolean flag */
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            return sw_err_set(err, SW_E_CONFIG, "flag --%.*s needs a value", (int)len - 2, arg + 2);
        }
        if (!sw_config_set_key(cfg, key, value, SW_SRC_FLAG, err)) {
            return false;
        }
    }
    return true;
}

static void print_value(const sw_config *cfg, int i, sw_buf *b)
{
    const struct value *v = &cfg->v[i];
    if (defs[i].type == SW_SETTING_SECRET) {
        sw_buf_append_json_cstr(b, v->s != NULL && v->s[0] != '\0' ? "***" : "");
    } else if (defs[i].type == SW_SETTING_BOOL) {
        sw_buf_append_str(b, v->b ? "true" : "false");
    } else if (defs[i].type == SW_SETTING_INT || defs[i].type == SW_SETTING_SIZE) {
        sw_buf_printf(b, "%lld", (long long)v->i);
    } else {
        sw_buf_append_json_cstr(b, v->s);
    }
}

void sw_config_print(const sw_config *cfg, FILE *out, bool json)
{
    sw_buf b;
    sw_buf_init(&b, 0);
    if (json) {
        sw_buf_append_char(&b, '{');
        for (int i = 0; i < SW_CFG_COUNT; i++) {
            sw_buf_printf(&b, "%s\"%s\":{\"value\":", i > 0 ? "," : "", defs[i].name);
            print_value(cfg, i, &b);
            sw_buf_printf(&b, ",\"source\":\"%s\"}", source_names[cfg->v[i].src]);
        }
        sw_buf_append_str(&b, "}\n");
    } else {
        for (int i = 0; i < SW_CFG_COUNT; i++) {
            sw_buf_printf(&b, "%-22s = ", defs[i].name);
            print_value(cfg, i, &b);
            sw_buf_printf(&b, "  (%s)\n", source_names[cfg->v[i].src]);
        }
    }
    fwrite(b.data, 1, b.len, out);
    sw_buf_free(&b);
}

void sw_config_write_markdown(FILE *out)
{
    fprintf(out, "# Configuration reference\n\n"
                 "<!-- Generated from include/scanwatch/settings_table.h by "
                 "`scanwatch check-config --markdown`. Do not edit by hand; CI checks for drift. "
                 "-->\n\n"
                 "Every setting can be given, from lowest to highest precedence, as a key in the "
                 "YAML file named by `config`, as an environment variable `SCANWATCH_<NAME>` "
                 "(upper case), or as a flag `--<name>` (with `-` for `_`). Secret settings can "
                 "also be read from a file: `<name>_file`, `SCANWATCH_<NAME>_FILE` or "
                 "`--<name>-file`; their values are never printed. Durations take a unit "
                 "(`ms`, `s`, `m`, `h`, `d`; seconds by default); sizes take `K`, `M` or `G`.\n\n"
                 "| setting | type | default | allowed | description |\n"
                 "|---|---|---|---|---|\n");
    for (int i = 0; i < SW_CFG_COUNT; i++) {
        const sw_setting_def *d = &defs[i];
        char allowed[160] = "";
        if (d->type == SW_SETTING_ENUM) {
            snprintf(allowed, sizeof allowed, "`%s`", d->choices);
        } else if (d->type == SW_SETTING_INT || d->type == SW_SETTING_SIZE ||
                   d->type == SW_SETTING_DURATION) {
            char lo[32], hi[32];
            format_bound(d, d->min, lo, sizeof lo);
            format_bound(d, d->max, hi, sizeof hi);
            snprintf(allowed, sizeof allowed, "%s … %s", lo, hi);
        } else if (d->type == SW_SETTING_BOOL) {
            snprintf(allowed, sizeof allowed, "`true` `false`");
        } else if (d->type == SW_SETTING_TIME) {
            snprintf(allowed, sizeof allowed, "RFC 3339");
        }
        fprintf(out, "| `%s` | %s | %s%s%s | %s | %s |\n", d->name, type_names[d->type],
                d->def[0] != '\0' ? "`" : "", d->def[0] != '\0' ? d->def : "(unset)",
                d->def[0] != '\0' ? "`" : "", allowed, d->desc);
    }
}
