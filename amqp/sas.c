/* SAS token signing (HMAC-SHA256 via OpenSSL) and the SAS token providers. */
#include "scanwatch/sas.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scanwatch/buf.h"

/* Characters encodeURIComponent leaves alone. */
static bool uri_unreserved(unsigned char c)
{
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
        return true;
    }
    return strchr("-_.!~*'()", c) != NULL && c != '\0';
}

bool sw_sas_uri_encode(const char *s, char *out, size_t out_size)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        size_t need = uri_unreserved(*p) ? 1 : 3;
        if (o + need >= out_size) {
            return false;
        }
        if (need == 1) {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    if (o >= out_size) {
        return false;
    }
    out[o] = '\0';
    return true;
}

#define SAS_FIELD_MAX 2048

char *sw_sas_sign(const char *audience, const char *key_name, const char *key,
                  int64_t expiry_unix_s, sw_err *err)
{
    if (audience == NULL || key_name == NULL || key == NULL || *audience == '\0' ||
        *key_name == '\0' || *key == '\0') {
        sw_err_set(err, SW_E_INVALID_ARG, "SAS signing needs an audience, a key name and a key");
        return NULL;
    }
    char sr[SAS_FIELD_MAX], skn[512];
    if (!sw_sas_uri_encode(audience, sr, sizeof sr) ||
        !sw_sas_uri_encode(key_name, skn, sizeof skn)) {
        sw_err_set(err, SW_E_TOO_LARGE, "SAS audience or key name too long");
        return NULL;
    }
    char to_sign[SAS_FIELD_MAX + 32];
    int n = snprintf(to_sign, sizeof to_sign, "%s\n%lld", sr, (long long)expiry_unix_s);
    if (n < 0 || (size_t)n >= sizeof to_sign) {
        sw_err_set(err, SW_E_TOO_LARGE, "SAS string to sign too long");
        return NULL;
    }
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    if (HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)to_sign, (size_t)n, mac,
             &mac_len) == NULL) {
        sw_err_set(err, SW_E_INTERNAL, "HMAC-SHA256 failed");
        return NULL;
    }
    char b64[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];
    EVP_EncodeBlock((unsigned char *)b64, mac, (int)mac_len);
    OPENSSL_cleanse(mac, sizeof mac);
    char sig[sizeof b64 * 3];
    if (!sw_sas_uri_encode(b64, sig, sizeof sig)) {
        sw_err_set(err, SW_E_INTERNAL, "SAS signature encoding failed");
        return NULL;
    }
    sw_buf b;
    sw_buf_init(&b, 8192);
    sw_buf_printf(&b, "SharedAccessSignature sr=%s&sig=%s&se=%lld&skn=%s", sr, sig,
                  (long long)expiry_unix_s, skn);
    if (!sw_buf_check(&b, err)) {
        sw_buf_free(&b);
        return NULL;
    }
    return sw_buf_detach(&b, NULL);
}

typedef struct sas_provider {
    char *key_name;
    char *key;
    char *token; /* static provider only */
    int64_t lifetime_s;
    sw_time_us static_expiry;
} sas_provider;

static void sas_destroy(void *self)
{
    sas_provider *p = self;
    if (p == NULL) {
        return;
    }
    if (p->key != NULL) {
        OPENSSL_cleanse(p->key, strlen(p->key));
    }
    if (p->token != NULL) {
        OPENSSL_cleanse(p->token, strlen(p->token));
    }
    free(p->key_name);
    free(p->key);
    free(p->token);
    free(p);
}

static bool sas_get(void *self, const char *scope, char **token_out, sw_time_us *expires_out,
                    sw_err *err)
{
    sas_provider *p = self;
    int64_t se = sw_time_now() / SW_US_PER_SEC + p->lifetime_s;
    char *tok = sw_sas_sign(scope, p->key_name, p->key, se, err);
    if (tok == NULL) {
        return false;
    }
    *token_out = tok;
    *expires_out = se * SW_US_PER_SEC;
    return true;
}

bool sw_sas_provider_init(sw_token_provider *out, const char *key_name, const char *key,
                          int64_t lifetime_us, sw_err *err)
{
    memset(out, 0, sizeof *out);
    if (key_name == NULL || *key_name == '\0' || key == NULL || *key == '\0') {
        return sw_err_set(err, SW_E_CONFIG,
                          "SAS provider needs SharedAccessKeyName and "
                          "SharedAccessKey");
    }
    sas_provider *p = calloc(1, sizeof *p);
    if (p == NULL) {
        return sw_err_set(err, SW_E_NOMEM, "out of memory");
    }
    p->key_name = strdup(key_name);
    p->key = strdup(key);
    if (p->key_name == NULL || p->key == NULL) {
        sas_destroy(p);
        return sw_err_set(err, SW_E_NOMEM, "out of memory");
    }
    p->lifetime_s = (lifetime_us + SW_US_PER_SEC - 1) / SW_US_PER_SEC;
    if (p->lifetime_s < 1) {
        p->lifetime_s = 1;
    }
    out->type = SW_TOKEN_TYPE_SAS;
    out->self = p;
    out->get = sas_get;
    out->destroy = sas_destroy;
    return true;
}

static bool sas_static_get(void *self, const char *scope, char **token_out, sw_time_us *expires_out,
                           sw_err *err)
{
    sas_provider *p = self;
    char *tok = strdup(p->token);
    if (tok == NULL) {
        return sw_err_set(err, SW_E_NOMEM, "out of memory");
    }
    *token_out = tok;
    *expires_out = p->static_expiry;
    return true;
}

/* Finds the `se=` field of a SAS token; the value must be decimal seconds. */
static bool sas_token_expiry(const char *token, int64_t *se_out)
{
    const char *fields = strchr(token, ' ');
    if (fields == NULL) {
        return false;
    }
    fields++;
    for (const char *f = fields; f != NULL && *f != '\0';) {
        if (strncmp(f, "se=", 3) == 0) {
            char *end = NULL;
            long long v = strtoll(f + 3, &end, 10);
            if (end == f + 3 || (*end != '\0' && *end != '&') || v <= 0) {
                return false;
            }
            *se_out = v;
            return true;
        }
        f = strchr(f, '&');
        if (f != NULL) {
            f++;
        }
    }
    return false;
}

bool sw_sas_static_provider_init(sw_token_provider *out, const char *token, sw_err *err)
{
    memset(out, 0, sizeof *out);
    int64_t se = 0;
    if (token == NULL || strncmp(token, "SharedAccessSignature ", 22) != 0 ||
        !sas_token_expiry(token, &se)) {
        return sw_err_set(err, SW_E_CONFIG,
                          "connection string: SharedAccessSignature must be a token of the form "
                          "'SharedAccessSignature sr=...&sig=...&se=<unix seconds>&skn=...'");
    }
    sas_provider *p = calloc(1, sizeof *p);
    if (p == NULL) {
        return sw_err_set(err, SW_E_NOMEM, "out of memory");
    }
    p->token = strdup(token);
    if (p->token == NULL) {
        sas_destroy(p);
        return sw_err_set(err, SW_E_NOMEM, "out of memory");
    }
    p->static_expiry = se * SW_US_PER_SEC;
    out->type = SW_TOKEN_TYPE_SAS;
    out->self = p;
    out->get = sas_static_get;
    out->destroy = sas_destroy;
    return true;
}
