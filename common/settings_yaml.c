/* The YAML source of the settings: a flat mapping of setting names to values.
 * Structured values (sequences, mappings) are allowed for JSON settings and are
 * handed on as JSON text. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "scanwatch/buf.h"
#include "scanwatch/settings.h"

#define MAX_YAML_FILE (4 * 1024 * 1024)
#define MAX_YAML_DEPTH 32

static bool is_plain_literal(const yaml_node_t *n)
{
    if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
        return false;
    }
    const char *s = (const char *)n->data.scalar.value;
    if (strcmp(s, "true") == 0 || strcmp(s, "false") == 0 || strcmp(s, "null") == 0) {
        return true;
    }
    char *end = NULL;
    errno = 0;
    strtod(s, &end);
    return end != s && *end == '\0' && errno == 0;
}

static bool to_json(yaml_document_t *doc, yaml_node_t *n, sw_buf *b, int depth, sw_err *err)
{
    if (depth > MAX_YAML_DEPTH) {
        return sw_err_set(err, SW_E_CONFIG, "YAML nested deeper than %d levels", MAX_YAML_DEPTH);
    }
    switch (n->type) {
    case YAML_SCALAR_NODE:
        if (is_plain_literal(n)) {
            sw_buf_append(b, n->data.scalar.value, n->data.scalar.length);
        } else {
            sw_buf_append_json_str(b, (const char *)n->data.scalar.value, n->data.scalar.length);
        }
        return true;
    case YAML_SEQUENCE_NODE:
        sw_buf_append_char(b, '[');
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
             it++) {
            if (it != n->data.sequence.items.start) {
                sw_buf_append_char(b, ',');
            }
            if (!to_json(doc, yaml_document_get_node(doc, *it), b, depth + 1, err)) {
                return false;
            }
        }
        sw_buf_append_char(b, ']');
        return true;
    case YAML_MAPPING_NODE:
        sw_buf_append_char(b, '{');
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
             p++) {
            yaml_node_t *k = yaml_document_get_node(doc, p->key);
            if (k == NULL || k->type != YAML_SCALAR_NODE) {
                return sw_err_set(err, SW_E_CONFIG, "YAML mapping keys must be plain strings");
            }
            if (p != n->data.mapping.pairs.start) {
                sw_buf_append_char(b, ',');
            }
            sw_buf_append_json_str(b, (const char *)k->data.scalar.value, k->data.scalar.length);
            sw_buf_append_char(b, ':');
            if (!to_json(doc, yaml_document_get_node(doc, p->value), b, depth + 1, err)) {
                return false;
            }
        }
        sw_buf_append_char(b, '}');
        return true;
    case YAML_NO_NODE:
        break;
    }
    return sw_err_set(err, SW_E_CONFIG, "unexpected YAML node");
}

static bool apply_pair(sw_config *cfg, yaml_document_t *doc, yaml_node_t *k, yaml_node_t *v,
                       const char *origin, sw_err *err)
{
    const char *key = (const char *)k->data.scalar.value;
    bool ok;
    if (v->type == YAML_SCALAR_NODE) {
        ok = sw_config_set_key(cfg, key, (const char *)v->data.scalar.value, SW_SRC_FILE, err);
    } else {
        sw_cfg_id id;
        const sw_setting_def *d = sw_setting_find(key, &id);
        if (d == NULL || d->type != SW_SETTING_JSON) {
            return sw_err_set(err, SW_E_CONFIG,
                              "%s: line %lu: setting '%s' takes a single value, not a list or map",
                              origin, (unsigned long)k->start_mark.line + 1, key);
        }
        sw_buf b;
        sw_buf_init(&b, 0);
        ok = to_json(doc, v, &b, 0, err) && sw_buf_check(&b, err) &&
             sw_config_set(cfg, id, b.data, SW_SRC_FILE, err);
        sw_buf_free(&b);
    }
    if (!ok) {
        sw_err_prefix(err, "%s: line %lu", origin, (unsigned long)k->start_mark.line + 1);
    }
    return ok;
}

bool sw_config_load_yaml_string(sw_config *cfg, const char *yaml, size_t len, const char *origin,
                                sw_err *err)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser)) {
        return sw_err_set(err, SW_E_NOMEM, "out of memory");
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    if (!yaml_parser_load(&parser, &doc)) {
        sw_err_set(err, SW_E_CONFIG, "%s: YAML error at line %lu: %s", origin,
                   (unsigned long)parser.problem_mark.line + 1,
                   parser.problem != NULL ? parser.problem : "syntax error");
        yaml_parser_delete(&parser);
        return false;
    }
    bool ok = true;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root == NULL) {
        ok = true; /* an empty file sets nothing */
    } else if (root->type != YAML_MAPPING_NODE) {
        ok = sw_err_set(err, SW_E_CONFIG, "%s: the top level must be a mapping of settings",
                        origin);
    } else {
        for (yaml_node_pair_t *p = root->data.mapping.pairs.start;
             ok && p < root->data.mapping.pairs.top; p++) {
            yaml_node_t *k = yaml_document_get_node(&doc, p->key);
            yaml_node_t *v = yaml_document_get_node(&doc, p->value);
            if (k == NULL || v == NULL || k->type != YAML_SCALAR_NODE) {
                ok = sw_err_set(err, SW_E_CONFIG, "%s: setting names must be plain strings",
                                origin);
            } else {
                ok = apply_pair(cfg, &doc, k, v, origin, err);
            }
        }
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return ok;
}

bool sw_config_load_yaml_file(sw_config *cfg, const char *path, sw_err *err)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) {
        return sw_err_set(err, SW_E_CONFIG, "config file '%s': %s", path, strerror(errno));
    }
    sw_buf b;
    sw_buf_init(&b, MAX_YAML_FILE);
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, fp)) > 0) {
        sw_buf_append(&b, chunk, n);
    }
    bool bad = ferror(fp) != 0 || b.failed;
    fclose(fp);
    if (bad) {
        sw_buf_free(&b);
        return sw_err_set(err, SW_E_CONFIG, "config file '%s': unreadable or larger than %d bytes",
                          path, MAX_YAML_FILE);
    }
    bool ok = sw_config_load_yaml_string(cfg, b.data != NULL ? b.data : "", b.len, path, err);
    sw_buf_free(&b);
    return ok;
}
