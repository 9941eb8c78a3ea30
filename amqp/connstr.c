/* Event Hubs connection-string parser (see scanwatch/amqp_connstr.h). */
#include "scanwatch/amqp_connstr.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CONNSTR_MAX 8192

static void wipe_free(char *s)
{
    if (s != NULL) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

void sw_amqp_connstr_free(sw_amqp_connstr *cs)
{
    if (cs == NULL) {
        return;
    }
    free(cs->endpoint);
    free(cs->host);
    free(cs->key_name);
    wipe_free(cs->key);
    wipe_free(cs->sas);
    free(cs->entity_path);
    memset(cs, 0, sizeof *cs);
}

static char *dup_range(const char *b, const char *e)
{
    while (b < e && isspace((unsigned char)*b)) {
        b++;
    }
    while (e > b && isspace((unsigned char)e[-1])) {
        e--;
    }
    return strndup(b, (size_t)(e - b));
}

/* Splits "scheme://host[:port][/path]" into host, port and a normalised endpoint. */
static bool parse_endpoint(sw_amqp_connstr *cs, const char *ep, sw_err *err)
{
    const char *sep = strstr(ep, "://");
    if (sep == NULL || sep == ep) {
        return sw_err_set(err, SW_E_CONFIG,
                          "connection string: Endpoint '%.200s' is not a URI like "
                          "sb://<namespace>.servicebus.windows.net/",
                          ep);
    }
    const char *h = sep + 3;
    const char *h_end = h + strcspn(h, "/?#");
    if (h_end == h) {
        return sw_err_set(err, SW_E_CONFIG, "connection string: Endpoint '%.200s' has no host", ep);
    }
    const char *port_sep = NULL;
    if (*h == '[') { /* IPv6 literal */
        const char *rb = memchr(h, ']', (size_t)(h_end - h));
        if (rb == NULL) {
            return sw_err_set(err, SW_E_CONFIG,
                              "connection string: Endpoint '%.200s' has a bad host", ep);
        }
        port_sep = (rb + 1 < h_end && rb[1] == ':') ? rb + 1 : NULL;
        cs->host = strndup(h + 1, (size_t)(rb - h - 1));
    } else {
        port_sep = memchr(h, ':', (size_t)(h_end - h));
        cs->host = strndup(h, (size_t)((port_sep != NULL ? port_sep : h_end) - h));
    }
    if (cs->host == NULL) {
        return sw_err_set(err, SW_E_NOMEM, "out of memory");
    }
    if (*cs->host == '\0') {
        return sw_err_set(err, SW_E_CONFIG, "connection string: Endpoint '%.200s' has no host", ep);
    }
    if (port_sep != NULL) {
        char digits[8];
        size_t n = (size_t)(h_end - port_sep - 1);
        char *end = NULL;
        long v = -1;
        if (n > 0 && n < sizeof digits) {
            memcpy(digits, port_sep + 1, n);
            digits[n] = '\0';
            v = strtol(digits, &end, 10);
        }
        if (v < 1 || v > 65535 || end == NULL || *end != '\0') {
            return sw_err_set(err, SW_E_CONFIG,
                              "connection string: Endpoint '%.200s' has an invalid port "
                              "(1..65535)",
                              ep);
        }
        cs->port = (int)v;
    }
    /* The SDKs build audiences from the Endpoint text plus '/', keeping any port. */
    size_t len = strlen(ep);
    cs->endpoint = malloc(len + 2);
    if (cs->endpoint == NULL) {
        return sw_err_set(err, SW_E_NOMEM, "out of memory");
    }
    memcpy(cs->endpoint, ep, len + 1);
    if (len == 0 || ep[len - 1] != '/') {
        cs->endpoint[len] = '/';
        cs->endpoint[len + 1] = '\0';
    }
    return true;
}

/* Stores value in *slot; a key given twice is an error (which one would win?). */
static bool set_once(char **slot, const char *key, char *value, sw_err *err)
{
    if (*slot != NULL) {
        wipe_free(value);
        return sw_err_set(err, SW_E_CONFIG, "connection string: %s is given more than once", key);
    }
    *slot = value;
    return true;
}

static bool store_part(sw_amqp_connstr *cs, const char *key, char *value, char **endpoint,
                       char **emulator, sw_err *err)
{
    if (strcmp(key, "Endpoint") == 0) {
        return set_once(endpoint, key, value, err);
    }
    if (strcmp(key, "SharedAccessKeyName") == 0) {
        return set_once(&cs->key_name, key, value, err);
    }
    if (strcmp(key, "SharedAccessKey") == 0) {
        return set_once(&cs->key, key, value, err);
    }
    if (strcmp(key, "SharedAccessSignature") == 0) {
        return set_once(&cs->sas, key, value, err);
    }
    if (strcmp(key, "EntityPath") == 0) {
        return set_once(&cs->entity_path, key, value, err);
    }
    if (strcmp(key, "UseDevelopmentEmulator") == 0) {
        return set_once(emulator, key, value, err);
    }
    wipe_free(value); /* an unknown key might be a mistyped secret's name */
    /* A key pasted without "SharedAccessKey=" splits at its base64 padding
     * ('='): name only what looks like a key name, never a secret. */
    bool name_like = strlen(key) <= 40;
    for (const char *k = key; name_like && *k != '\0'; k++) {
        name_like = isalpha((unsigned char)*k) != 0;
    }
    return sw_err_set(err, SW_E_CONFIG,
                      "connection string: unknown part '%.64s' (expected Endpoint, "
                      "SharedAccessKeyName, SharedAccessKey, SharedAccessSignature, EntityPath, "
                      "UseDevelopmentEmulator)",
                      name_like ? key : "(not shown: it may be a secret)");
}

static bool split_parts(sw_amqp_connstr *cs, const char *s, char **endpoint, char **emulator,
                        sw_err *err)
{
    int index = 0;
    for (const char *p = s; *p != '\0';) {
        const char *end = p + strcspn(p, ";");
        index++;
        const char *q = p;
        while (q < end && isspace((unsigned char)*q)) {
            q++;
        }
        if (q < end) {
            const char *eq = memchr(p, '=', (size_t)(end - p));
            if (eq == NULL) {
                /* Do not echo the part: it may be a bare key. */
                return sw_err_set(err, SW_E_CONFIG,
                                  "connection string: part %d has no '=' (expected Key=Value)",
                                  index);
            }
            char *key = dup_range(p, eq);
            char *value = dup_range(eq + 1, end);
            if (key == NULL || value == NULL) {
                free(key);
                wipe_free(value);
                return sw_err_set(err, SW_E_NOMEM, "out of memory");
            }
            if (*key == '\0') {
                free(key);
                wipe_free(value);
                return sw_err_set(err, SW_E_CONFIG, "connection string: part %d has an empty key",
                                  index);
            }
            bool ok = store_part(cs, key, value, endpoint, emulator, err);
            free(key);
            if (!ok) {
                return false;
            }
        }
        p = *end == ';' ? end + 1 : end;
    }
    return true;
}

static bool check_parts(sw_amqp_connstr *cs, sw_err *err)
{
    if (cs->key != NULL && *cs->key == '\0') {
        return sw_err_set(err, SW_E_CONFIG, "connection string: SharedAccessKey is empty");
    }
    if (cs->key_name != NULL && *cs->key_name == '\0') {
        return sw_err_set(err, SW_E_CONFIG, "connection string: SharedAccessKeyName is empty");
    }
    if (cs->sas != NULL && (cs->key != NULL || cs->key_name != NULL)) {
        return sw_err_set(err, SW_E_CONFIG,
                          "connection string: SharedAccessSignature cannot be combined with "
                          "SharedAccessKeyName/SharedAccessKey");
    }
    if (cs->key_name != NULL && cs->key == NULL) {
        return sw_err_set(err, SW_E_CONFIG,
                          "connection string: SharedAccessKeyName is given without "
                          "SharedAccessKey");
    }
    if (cs->key != NULL && cs->key_name == NULL) {
        return sw_err_set(err, SW_E_CONFIG,
                          "connection string: SharedAccessKey is given without "
                          "SharedAccessKeyName");
    }
    if (cs->sas != NULL && strncmp(cs->sas, "SharedAccessSignature ", 22) != 0) {
        return sw_err_set(err, SW_E_CONFIG,
                          "connection string: SharedAccessSignature must start with "
                          "'SharedAccessSignature sr='");
    }
    if (cs->entity_path != NULL && *cs->entity_path == '\0') {
        return sw_err_set(err, SW_E_CONFIG, "connection string: EntityPath is empty");
    }
    return true;
}

bool sw_amqp_connstr_parse(const char *s, sw_amqp_connstr *out, sw_err *err)
{
    memset(out, 0, sizeof *out);
    if (s == NULL || *s == '\0') {
        return sw_err_set(err, SW_E_CONFIG, "connection string is empty");
    }
    if (strlen(s) > CONNSTR_MAX) {
        return sw_err_set(err, SW_E_CONFIG, "connection string is longer than %d bytes",
                          CONNSTR_MAX);
    }
    char *endpoint = NULL, *emulator = NULL;
    bool ok = split_parts(out, s, &endpoint, &emulator, err);
    if (ok && endpoint == NULL) {
        ok = sw_err_set(err, SW_E_CONFIG,
                        "connection string: Endpoint is missing (expected "
                        "Endpoint=sb://<namespace>.servicebus.windows.net/)");
    }
    if (ok && emulator != NULL) {
        if (strcasecmp(emulator, "true") == 0) {
            out->emulator = true;
        } else if (strcasecmp(emulator, "false") != 0) {
            ok = sw_err_set(err, SW_E_CONFIG,
                            "connection string: UseDevelopmentEmulator must be true or false, "
                            "not '%.32s'",
                            emulator);
        }
    }
    if (ok) {
        ok = parse_endpoint(out, endpoint, err);
    }
    if (ok) {
        ok = check_parts(out, err);
    }
    free(endpoint);
    free(emulator);
    if (!ok) {
        sw_amqp_connstr_free(out);
    }
    return ok;
}
