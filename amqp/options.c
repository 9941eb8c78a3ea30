/* Client options: defaults, settings-table mapping, start positions. */
#include <stdio.h>
#include <string.h>

#include "scanwatch/amqp.h"

void sw_amqp_options_default(sw_amqp_options *o)
{
    memset(o, 0, sizeof *o);
    o->consumer_group = "$Default";
    o->owner_level = 0;
    o->prefetch = 300;
    o->max_unsettled = 3000;
    o->sas_token_lifetime_us = 3600 * SW_US_PER_SEC;
    o->tls = SW_AMQP_TLS_AUTO;
    o->tls_verify = true;
    o->idle_timeout_us = 60 * SW_US_PER_SEC;
    o->backoff_min_us = 1 * SW_US_PER_SEC;
    o->backoff_max_us = 60 * SW_US_PER_SEC;
    o->operation_timeout_us = 60 * SW_US_PER_SEC;
    o->max_message_size = 4u * 1024 * 1024;
}

/* Offsets go into a quoted filter expression: keep them to safe characters. */
static bool offset_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= SW_AMQP_OFFSET_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x21 || ch > 0x7e || ch == '\'' || ch == '\\') {
            return false;
        }
    }
    return true;
}

bool sw_amqp_position_after(sw_amqp_position *out, const char *offset, int64_t sequence_number,
                            sw_err *err)
{
    memset(out, 0, sizeof *out);
    if (offset == NULL || !offset_ok(offset)) {
        return sw_err_set(err, SW_E_INVALID_ARG,
                          "checkpoint offset must be 1..%d printable characters without quotes",
                          SW_AMQP_OFFSET_MAX - 1);
    }
    out->kind = SW_AMQP_START_AFTER_OFFSET;
    memcpy(out->offset, offset, strlen(offset) + 1);
    out->sequence_number = sequence_number < 0 ? -1 : sequence_number;
    out->enqueued_time = SW_TIME_UNSET;
    return true;
}

bool sw_amqp_position_parse(const char *text, sw_amqp_position *out, sw_err *err)
{
    memset(out, 0, sizeof *out);
    out->sequence_number = -1;
    out->enqueued_time = SW_TIME_UNSET;
    if (text == NULL || strcmp(text, "earliest") == 0) {
        out->kind = SW_AMQP_START_EARLIEST;
        return true;
    }
    if (strcmp(text, "latest") == 0) {
        out->kind = SW_AMQP_START_LATEST;
        return true;
    }
    sw_time_us t;
    if (sw_time_parse(text, strlen(text), &t)) {
        out->kind = SW_AMQP_START_ENQUEUED_AFTER;
        out->enqueued_time = t;
        return true;
    }
    return sw_err_set(err, SW_E_CONFIG,
                      "start_position: '%.64s' is not earliest, latest or an RFC 3339 time", text);
}

bool sw_amqp_options_from_config(const sw_config *cfg, sw_amqp_options *o, sw_amqp_position *start,
                                 sw_err *err)
{
    sw_amqp_options_default(o);
    o->connection_string = sw_cfg_str(cfg, SW_CFG_CONNECTION_STRING);
    o->eventhub = sw_cfg_str(cfg, SW_CFG_EVENTHUB);
    o->consumer_group = sw_cfg_str(cfg, SW_CFG_CONSUMER_GROUP);
    o->owner_level = sw_cfg_int(cfg, SW_CFG_OWNER_LEVEL);
    o->prefetch = (uint32_t)sw_cfg_int(cfg, SW_CFG_PREFETCH);
    o->max_unsettled = (uint32_t)sw_cfg_int(cfg, SW_CFG_MAX_UNSETTLED);
    o->sas_token_lifetime_us = sw_cfg_int(cfg, SW_CFG_SAS_TOKEN_LIFETIME);
    o->ca_file = sw_cfg_str(cfg, SW_CFG_CA_FILE);
    const char *tls = sw_cfg_str(cfg, SW_CFG_TLS);
    o->tls = strcmp(tls, "on") == 0    ? SW_AMQP_TLS_ON
             : strcmp(tls, "off") == 0 ? SW_AMQP_TLS_OFF
                                       : SW_AMQP_TLS_AUTO;
    o->tls_verify = sw_cfg_bool(cfg, SW_CFG_TLS_VERIFY);
    o->idle_timeout_us = sw_cfg_int(cfg, SW_CFG_IDLE_TIMEOUT);
    o->backoff_min_us = sw_cfg_int(cfg, SW_CFG_RECONNECT_BACKOFF_MIN);
    o->backoff_max_us = sw_cfg_int(cfg, SW_CFG_RECONNECT_BACKOFF_MAX);
    o->operation_timeout_us = sw_cfg_int(cfg, SW_CFG_OPERATION_TIMEOUT);
    if (*o->connection_string == '\0') {
        return sw_err_set(err, SW_E_CONFIG, "connection_string is not set");
    }
    if (o->backoff_max_us < o->backoff_min_us) {
        return sw_err_set(err, SW_E_CONFIG,
                          "reconnect_backoff_max must not be below reconnect_backoff_min");
    }
    if (start != NULL &&
        !sw_amqp_position_parse(sw_cfg_str(cfg, SW_CFG_START_POSITION), start, err)) {
        return false;
    }
    return true;
}
