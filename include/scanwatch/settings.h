/*
 * Table-driven settings (the table: settings_table.h).
 *
 * Sources, lowest to highest precedence: defaults, the YAML file named by
 * `config`, SCANWATCH_* environment variables, command-line flags. Every value
 * goes through one parser per type; an error names the setting, the source and
 * the allowed range or choices. Secret values are never printed: check-config
 * and logs show "***".
 *
 * Ownership: sw_config owns every string it returns; they live until
 * sw_config_free. Thread safety: load on one thread at start-up; afterwards
 * the getters may be called from any thread (read only).
 */
#ifndef SCANWATCH_SETTINGS_H
#define SCANWATCH_SETTINGS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "scanwatch/error.h"
#include "scanwatch/settings_table.h"

typedef enum {
#define SW_CFG_ENUM(id, name, type, def, min, max, choices, desc) SW_CFG_##id,
    SW_SETTINGS_TABLE(SW_CFG_ENUM)
#undef SW_CFG_ENUM
        SW_CFG_COUNT
} sw_cfg_id;

typedef enum {
    SW_SETTING_BOOL,
    SW_SETTING_INT,
    SW_SETTING_SIZE,
    SW_SETTING_DURATION,
    SW_SETTING_STRING,
    SW_SETTING_SECRET,
    SW_SETTING_ENUM,
    SW_SETTING_TIME,
    SW_SETTING_JSON,
} sw_setting_type;

typedef enum {
    SW_SRC_DEFAULT,
    SW_SRC_FILE,
    SW_SRC_ENV,
    SW_SRC_FLAG,
    SW_SRC_CODE, /* set by the program itself (e.g. the demo) */
} sw_setting_source;

typedef struct sw_setting_def {
    const char *name;
    sw_setting_type type;
    const char *def;
    long long min, max;
    const char *choices;
    const char *desc;
} sw_setting_def;

typedef struct sw_config sw_config;

/* The table, SW_CFG_COUNT rows in sw_cfg_id order. */
const sw_setting_def *sw_setting_defs(void);
/* Row by YAML name; NULL if unknown. */
const sw_setting_def *sw_setting_find(const char *name, sw_cfg_id *id_out);

/* A config holding every default. NULL only on allocation failure. */
sw_config *sw_config_new(void);
void sw_config_free(sw_config *cfg);

/*
 * Loads all sources in precedence order. argv[1..argc-1] are scanned for
 * setting flags (--name value, --name=value, --name-file path); every argument
 * that is not a setting flag is copied, in order, to rest (which must hold
 * argc pointers; the strings are argv's) and counted in *rest_count.
 * envp may be NULL (no environment).
 */
bool sw_config_load(sw_config *cfg, int argc, char **argv, char **envp, char **rest,
                    int *rest_count, sw_err *err);

/* Sets one value from text, as the given source (used by the loaders and tests). */
bool sw_config_set(sw_config *cfg, sw_cfg_id id, const char *value, sw_setting_source src,
                   sw_err *err);
/* Sets a value by the key a source uses: a setting name, or <name>_file for a
 * SECRET read from that file. Unknown keys are an error naming the key. */
bool sw_config_set_key(sw_config *cfg, const char *key, const char *value, sw_setting_source src,
                       sw_err *err);
bool sw_config_load_yaml_file(sw_config *cfg, const char *path, sw_err *err);
bool sw_config_load_yaml_string(sw_config *cfg, const char *yaml, size_t len, const char *origin,
                                sw_err *err);

bool sw_cfg_bool(const sw_config *cfg, sw_cfg_id id);
/* INT and SIZE values; DURATION in microseconds; TIME in microseconds or SW_TIME_UNSET. */
int64_t sw_cfg_int(const sw_config *cfg, sw_cfg_id id);
/* STRING, SECRET, ENUM, JSON text; "" when unset. Never NULL. */
const char *sw_cfg_str(const sw_config *cfg, sw_cfg_id id);
bool sw_cfg_is_set(const sw_config *cfg, sw_cfg_id id); /* not the default */
sw_setting_source sw_cfg_source(const sw_config *cfg, sw_cfg_id id);

/* The effective settings, secrets masked, as aligned text or one JSON object. */
void sw_config_print(const sw_config *cfg, FILE *out, bool json);
/* The settings reference (docs/configuration.md) generated from the table. */
void sw_config_write_markdown(FILE *out);

#endif
