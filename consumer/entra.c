/* Entra ID token providers (see scanwatch/entra.h). */
#include "scanwatch/entra.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_client.h"
#include "scanwatch/buf.h"
#include "scanwatch/log.h"
#include "scanwatch/settings.h"

#define CACHE_SLOTS 8
#define MAX_TOKEN_RESPONSE (256 * 1024)
#define MAX_FEDERATED_TOKEN (64 * 1024)
#define REFRESH_MARGIN_MAX (300 * SW_US_PER_SEC)
#define ASSERTION_LIFETIME_S 600

struct cached {
    char *scope;
    char *token;
    sw_time_us fetched;
    sw_time_us expires;
};

struct entra {
    sw_entra_method method;
    char *authority, *tenant, *client_id, *secret, *fed_file, *imds, *id_endpoint, *id_header;
    int64_t timeout_us;
    EVP_PKEY *key;
    char x5t_s256[64];
    pthread_mutex_t mu;
    sw_http_client *http;
    struct cached cache[CACHE_SLOTS];
    char last_error[300];
};

const char *sw_entra_method_name(sw_entra_method m)
{
    switch (m) {
    case SW_ENTRA_CLIENT_SECRET:
        return "client_secret";
    case SW_ENTRA_CERTIFICATE:
        return "certificate";
    case SW_ENTRA_WORKLOAD_IDENTITY:
        return "workload_identity";
    case SW_ENTRA_MANAGED_IDENTITY:
        return "managed_identity";
    case SW_ENTRA_NONE:
        break;
    }
    return "none";
}

static const char *nonempty(const char *a, const char *b)
{
    if (a != NULL && a[0] != '\0') {
        return a;
    }
    return b != NULL && b[0] != '\0' ? b : NULL;
}

bool sw_entra_opts_from_config(sw_entra_opts *o, const sw_config *cfg, sw_err *err)
{
    memset(o, 0, sizeof *o);
    o->tenant_id = nonempty(sw_cfg_str(cfg, SW_CFG_TENANT_ID), getenv("AZURE_TENANT_ID"));
    o->client_id = nonempty(sw_cfg_str(cfg, SW_CFG_CLIENT_ID), getenv("AZURE_CLIENT_ID"));
    o->client_secret = nonempty(sw_cfg_str(cfg, SW_CFG_CLIENT_SECRET), NULL);
    o->certificate_path = nonempty(sw_cfg_str(cfg, SW_CFG_CLIENT_CERTIFICATE), NULL);
    o->federated_token_file = nonempty(getenv("AZURE_FEDERATED_TOKEN_FILE"), NULL);
    o->imds_endpoint = sw_cfg_str(cfg, SW_CFG_IMDS_ENDPOINT);
    o->identity_endpoint = nonempty(getenv("IDENTITY_ENDPOINT"), NULL);
    o->identity_header = nonempty(getenv("IDENTITY_HEADER"), NULL);
    o->timeout_us = sw_cfg_int(cfg, SW_CFG_HTTP_TIMEOUT);
    o->authority_host = sw_cfg_str(cfg, SW_CFG_AUTHORITY_HOST);
    if (!sw_cfg_is_set(cfg, SW_CFG_AUTHORITY_HOST) &&
        nonempty(getenv("AZURE_AUTHORITY_HOST"), NULL) != NULL) {
        o->authority_host = getenv("AZURE_AUTHORITY_HOST");
    }

    const char *m = sw_cfg_str(cfg, SW_CFG_AUTH_METHOD);
    if (strcmp(m, "client_secret") == 0) {
        o->method = SW_ENTRA_CLIENT_SECRET;
    } else if (strcmp(m, "certificate") == 0) {
        o->method = SW_ENTRA_CERTIFICATE;
    } else if (strcmp(m, "workload_identity") == 0) {
        o->method = SW_ENTRA_WORKLOAD_IDENTITY;
    } else if (strcmp(m, "managed_identity") == 0) {
        o->method = SW_ENTRA_MANAGED_IDENTITY;
    } else if (o->client_secret != NULL) {
        o->method = SW_ENTRA_CLIENT_SECRET;
    } else if (o->certificate_path != NULL) {
        o->method = SW_ENTRA_CERTIFICATE;
    } else if (o->federated_token_file != NULL) {
        o->method = SW_ENTRA_WORKLOAD_IDENTITY;
    } else if (o->identity_endpoint != NULL) {
        o->method = SW_ENTRA_MANAGED_IDENTITY;
    } else {
        o->method = SW_ENTRA_NONE;
        return true;
    }
    if (o->method == SW_ENTRA_MANAGED_IDENTITY) {
        return true;
    }
    if (o->tenant_id == NULL || o->client_id == NULL) {
        return sw_err_set(err, SW_E_CONFIG,
                          "auth_method %s needs tenant_id (or AZURE_TENANT_ID) and client_id (or "
                          "AZURE_CLIENT_ID)",
                          sw_entra_method_name(o->method));
    }
    if (o->method == SW_ENTRA_CLIENT_SECRET && o->client_secret == NULL) {
        return sw_err_set(err, SW_E_CONFIG,
                          "auth_method client_secret needs client_secret (or client_secret_file)");
    }
    if (o->method == SW_ENTRA_CERTIFICATE && o->certificate_path == NULL) {
        return sw_err_set(err, SW_E_CONFIG,
                          "auth_method certificate needs client_certificate (a PEM file with the "
                          "certificate and its private key)");
    }
    if (o->method == SW_ENTRA_WORKLOAD_IDENTITY && o->federated_token_file == NULL) {
        return sw_err_set(err, SW_E_CONFIG,
                          "auth_method workload_identity needs AZURE_FEDERATED_TOKEN_FILE");
    }
    return true;
}

/* ---- helpers ------------------------------------------------------------ */

static char *dup_trim_slash(const char *s)
{
    if (s == NULL) {
        return NULL;
    }
    size_t n = strlen(s);
    while (n > 0 && s[n - 1] == '/') {
        n--;
    }
    return strndup(s, n);
}

static bool b64url(sw_buf *out, const unsigned char *p, size_t n)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16;
        if (i + 1 < n) {
            v |= (unsigned)p[i + 1] << 8;
        }
        if (i + 2 < n) {
            v |= p[i + 2];
        }
        sw_buf_append_char(out, tbl[(v >> 18) & 63]);
        sw_buf_append_char(out, tbl[(v >> 12) & 63]);
        if (i + 1 < n) {
            sw_buf_append_char(out, tbl[(v >> 6) & 63]);
        }
        if (i + 2 < n) {
            sw_buf_append_char(out, tbl[v & 63]);
        }
    }
    return !out->failed;
}

static bool uuid4(char out[37])
{
    unsigned char r[16];
    if (RAND_bytes(r, sizeof r) != 1) {
        return false;
    }
    r[6] = (unsigned char)((r[6] & 0x0f) | 0x40);
    r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", r[0],
             r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13],
             r[14], r[15]);
    return true;
}

static bool load_certificate(struct entra *e, const char *path, sw_err *err)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return sw_err_set(err, SW_E_CONFIG, "client_certificate %s: %s", path, strerror(errno));
    }
    X509 *cert = PEM_read_X509(f, NULL, NULL, NULL);
    rewind(f);
    EVP_PKEY *key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    bool ok = false;
    if (cert == NULL) {
        sw_err_set(err, SW_E_CONFIG, "client_certificate %s: no PEM certificate in the file", path);
    } else if (key == NULL) {
        sw_err_set(err, SW_E_CONFIG,
                   "client_certificate %s: no unencrypted PEM private key in the file", path);
    } else if (EVP_PKEY_base_id(key) != EVP_PKEY_RSA) {
        sw_err_set(err, SW_E_CONFIG,
                   "client_certificate %s: the key must be RSA (Entra signs PS256)", path);
    } else if (X509_check_private_key(cert, key) != 1) {
        sw_err_set(err, SW_E_CONFIG,
                   "client_certificate %s: the private key does not belong to the certificate",
                   path);
    } else {
        unsigned char md[32];
        unsigned int mdlen = sizeof md;
        sw_buf b;
        sw_buf_init(&b, 64);
        if (X509_digest(cert, EVP_sha256(), md, &mdlen) == 1 && b64url(&b, md, mdlen) &&
            b.len < sizeof e->x5t_s256) {
            memcpy(e->x5t_s256, b.data, b.len + 1);
            e->key = key;
            key = NULL;
            ok = true;
        } else {
            sw_err_set(err, SW_E_INTERNAL, "client_certificate %s: cannot hash the certificate",
                       path);
        }
        sw_buf_free(&b);
    }
    X509_free(cert);
    EVP_PKEY_free(key);
    return ok;
}

static bool token_url(const struct entra *e, sw_buf *url)
{
    sw_buf_printf(url, "%s/", e->authority);
    sw_http_append_urlencoded(url, e->tenant);
    sw_buf_append_str(url, "/oauth2/v2.0/token");
    return !url->failed;
}

/* The certificate client assertion: header.claims.signature, PS256. */
static bool make_assertion(struct entra *e, sw_buf *out, sw_err *err)
{
    char jti[37];
    if (!uuid4(jti)) {
        return sw_err_set(err, SW_E_INTERNAL, "no random bytes for the assertion id");
    }
    long long now = (long long)(sw_time_now() / SW_US_PER_SEC);
    sw_buf aud, hdr, clm;
    sw_buf_init(&aud, 4096);
    sw_buf_init(&hdr, 1024);
    sw_buf_init(&clm, 8192);
    token_url(e, &aud);
    sw_buf_printf(&hdr, "{\"alg\":\"PS256\",\"typ\":\"JWT\",\"x5t#S256\":\"%s\"}", e->x5t_s256);
    sw_buf_append_str(&clm, "{\"aud\":");
    sw_buf_append_json_cstr(&clm, aud.data);
    sw_buf_append_str(&clm, ",\"iss\":");
    sw_buf_append_json_cstr(&clm, e->client_id);
    sw_buf_append_str(&clm, ",\"sub\":");
    sw_buf_append_json_cstr(&clm, e->client_id);
    sw_buf_printf(&clm, ",\"jti\":\"%s\",\"nbf\":%lld,\"iat\":%lld,\"exp\":%lld}", jti, now, now,
                  now + ASSERTION_LIFETIME_S);
    sw_buf_reset(out);
    b64url(out, (const unsigned char *)hdr.data, hdr.len);
    sw_buf_append_char(out, '.');
    b64url(out, (const unsigned char *)clm.data, clm.len);
    bool ok = !aud.failed && !hdr.failed && !clm.failed && !out->failed;
    sw_buf_free(&aud);
    sw_buf_free(&hdr);
    sw_buf_free(&clm);
    if (!ok) {
        return sw_err_set(err, SW_E_NOMEM, "out of memory building the client assertion");
    }

    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    unsigned char sig[1024];
    size_t siglen = sizeof sig;
    ok = ctx != NULL && EVP_DigestSignInit(ctx, &pctx, EVP_sha256(), NULL, e->key) == 1 &&
         EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
         EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1 &&
         EVP_DigestSign(ctx, NULL, &siglen, (const unsigned char *)out->data, out->len) == 1 &&
         siglen <= sizeof sig &&
         EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)out->data, out->len) == 1;
    EVP_MD_CTX_free(ctx);
    if (!ok) {
        return sw_err_set(err, SW_E_AUTH, "signing the client assertion failed");
    }
    sw_buf_append_char(out, '.');
    b64url(out, sig, siglen);
    return sw_buf_check(out, err);
}

/* Re-read on every request: the kubelet rotates the projected token. */
static bool read_federated_token(const char *path, sw_buf *out, sw_err *err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return sw_err_set(err, SW_E_AUTH, "AZURE_FEDERATED_TOKEN_FILE %s: %s", path,
                          strerror(errno));
    }
    char chunk[4096];
    size_t n;
    sw_buf_reset(out);
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (!sw_buf_append(out, chunk, n)) {
            break;
        }
    }
    fclose(f);
    if (out->failed) {
        return sw_err_set(err, SW_E_AUTH, "AZURE_FEDERATED_TOKEN_FILE %s: larger than %d bytes",
                          path, MAX_FEDERATED_TOKEN);
    }
    while (out->len > 0 && (out->data[out->len - 1] == '\n' || out->data[out->len - 1] == '\r' ||
                            out->data[out->len - 1] == ' ')) {
        out->data[--out->len] = '\0';
    }
    if (out->len == 0) {
        return sw_err_set(err, SW_E_AUTH, "AZURE_FEDERATED_TOKEN_FILE %s is empty", path);
    }
    return true;
}

/* A JSON number or a numeric string (IMDS sends strings). */
static bool json_int(const cJSON *o, const char *name, long long *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (cJSON_IsNumber(v)) {
        /* out of range (or NaN) would be undefined in the conversion */
        if (!(v->valuedouble > -9.0e18 && v->valuedouble < 9.0e18)) {
            return false;
        }
        *out = (long long)v->valuedouble;
        return true;
    }
    const char *s = cJSON_GetStringValue(v);
    if (s == NULL || *s == '\0') {
        return false;
    }
    char *end = NULL;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0') {
        return false;
    }
    *out = x;
    return true;
}

bool sw_entra_parse_token_response(const char *what, long status, const char *body, size_t len,
                                   sw_time_us now, char **token, sw_time_us *expires,
                                   char *last_error, size_t last_error_size, sw_err *err)
{
    cJSON *doc = cJSON_ParseWithLength(body, len);
    if (status != 200) {
        const char *code = doc ? cJSON_GetStringValue(cJSON_GetObjectItem(doc, "error")) : NULL;
        const char *desc =
            doc ? cJSON_GetStringValue(cJSON_GetObjectItem(doc, "error_description")) : NULL;
        if (desc == NULL && doc != NULL) {
            desc = cJSON_GetStringValue(cJSON_GetObjectItem(doc, "message"));
        }
        snprintf(last_error, last_error_size, "%s: %.240s", code ? code : "error",
                 desc ? desc : "(no description)");
        bool retriable =
            status == 429 || status >= 500 || status == 404 || status == 410 || status == 408;
        sw_err_set_retriable(err, SW_E_AUTH, retriable, "%s returned HTTP %ld: %s", what, status,
                             last_error);
        cJSON_Delete(doc);
        return false;
    }
    const char *tok = doc ? cJSON_GetStringValue(cJSON_GetObjectItem(doc, "access_token")) : NULL;
    if (tok == NULL || *tok == '\0') {
        cJSON_Delete(doc);
        snprintf(last_error, last_error_size, "response without access_token");
        return sw_err_set_retriable(err, SW_E_AUTH, true, "%s: response has no access_token", what);
    }
    /* Seconds beyond this would overflow microseconds: such a value is not usable. */
    const long long max_s = INT64_MAX / SW_US_PER_SEC / 4;
    long long v = 0;
    if (json_int(doc, "expires_on", &v) && v > 0 && v < max_s) {
        *expires = (sw_time_us)v * SW_US_PER_SEC;
    } else if (json_int(doc, "expires_in", &v) && v > 0 && v < max_s) {
        *expires = now + (sw_time_us)v * SW_US_PER_SEC;
    } else {
        *expires = now + 300 * SW_US_PER_SEC; /* unknown: assume short */
    }
    *token = strdup(tok);
    cJSON_Delete(doc);
    if (*token == NULL) {
        return sw_err_set(err, SW_E_NOMEM, "out of memory");
    }
    last_error[0] = '\0';
    return true;
}

/* "https://graph.microsoft.com/.default" -> "https://graph.microsoft.com/" for MI endpoints. */
static void scope_to_resource(const char *scope, sw_buf *out)
{
    size_t n = strlen(scope);
    const char *suffix = ".default";
    size_t sl = strlen(suffix);
    if (n >= sl && strcmp(scope + n - sl, suffix) == 0) {
        n -= sl;
    }
    sw_buf_append(out, scope, n);
}

static bool fetch(struct entra *e, const char *scope, char **token, sw_time_us *expires,
                  sw_err *err)
{
    sw_buf url, body, cred;
    sw_buf_init(&url, 8192);
    sw_buf_init(&body, 128 * 1024);
    sw_buf_init(&cred, MAX_FEDERATED_TOKEN);
    sw_http_resp resp;
    sw_http_resp_init(&resp);
    sw_http_req req = {.timeout_us = e->timeout_us, .max_response = MAX_TOKEN_RESPONSE};
    const char *hdrs[2];
    char hdr_buf[600];
    bool ok = true;

    if (e->method == SW_ENTRA_MANAGED_IDENTITY) {
        sw_buf res;
        sw_buf_init(&res, 4096);
        scope_to_resource(scope, &res);
        if (e->id_endpoint != NULL) {
            sw_buf_printf(&url, "%s%cresource=", e->id_endpoint,
                          strchr(e->id_endpoint, '?') ? '&' : '?');
            sw_http_append_urlencoded(&url, res.data);
            sw_buf_append_str(&url, "&api-version=2019-08-01");
            snprintf(hdr_buf, sizeof hdr_buf, "X-IDENTITY-HEADER: %s",
                     e->id_header ? e->id_header : "");
        } else {
            sw_buf_printf(
                &url,
                "%s/metadata/identity/oauth2/token?api-version=2018-02-01&resource=", e->imds);
            sw_http_append_urlencoded(&url, res.data);
            snprintf(hdr_buf, sizeof hdr_buf, "Metadata: true");
            req.no_proxy = true;
        }
        if (e->client_id != NULL) {
            sw_buf_append_str(&url, "&client_id=");
            sw_http_append_urlencoded(&url, e->client_id);
        }
        sw_buf_free(&res);
        hdrs[0] = hdr_buf;
        req.method = "GET";
        req.headers = hdrs;
        req.n_headers = 1;
    } else {
        token_url(e, &url);
        sw_buf_append_str(&body, "grant_type=client_credentials&client_id=");
        sw_http_append_urlencoded(&body, e->client_id);
        sw_buf_append_str(&body, "&scope=");
        sw_http_append_urlencoded(&body, scope);
        if (e->method == SW_ENTRA_CLIENT_SECRET) {
            sw_buf_append_str(&body, "&client_secret=");
            sw_http_append_urlencoded(&body, e->secret);
        } else {
            ok = e->method == SW_ENTRA_CERTIFICATE ? make_assertion(e, &cred, err)
                                                   : read_federated_token(e->fed_file, &cred, err);
            sw_buf_append_str(&body, "&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3A"
                                     "client-assertion-type%3Ajwt-bearer&client_assertion=");
            sw_http_append_urlencoded(&body, ok ? cred.data : "");
        }
        hdrs[0] = "Content-Type: application/x-www-form-urlencoded";
        req.method = "POST";
        req.headers = hdrs;
        req.n_headers = 1;
        req.body = body.data;
        req.body_len = body.len;
    }
    if (ok && (url.failed || body.failed)) {
        ok = sw_err_set(err, SW_E_NOMEM, "token request too large or out of memory");
    }
    if (ok) {
        req.url = url.data;
        ok = sw_http_do(e->http, &req, &resp, err);
        if (!ok) {
            snprintf(e->last_error, sizeof e->last_error, "%.290s", err ? err->msg : "");
        }
    }
    if (ok) {
        char what[160];
        snprintf(what, sizeof what, "%s token endpoint",
                 e->method == SW_ENTRA_MANAGED_IDENTITY ? "managed identity" : "Entra ID");
        ok = sw_entra_parse_token_response(what, resp.status, resp.body.data, resp.body.len,
                                           sw_time_now(), token, expires, e->last_error,
                                           sizeof e->last_error, err);
    }
    /* The request body holds the secret or assertion: wipe it before freeing. */
    if (body.data != NULL) {
        OPENSSL_cleanse(body.data, body.cap);
    }
    if (cred.data != NULL) {
        OPENSSL_cleanse(cred.data, cred.cap);
    }
    sw_buf_free(&url);
    sw_buf_free(&body);
    sw_buf_free(&cred);
    sw_http_resp_free(&resp);
    return ok;
}

static bool fresh(const struct cached *c, sw_time_us now)
{
    if (c->token == NULL) {
        return false;
    }
    int64_t margin = (c->expires - c->fetched) / 2;
    if (margin > REFRESH_MARGIN_MAX) {
        margin = REFRESH_MARGIN_MAX;
    }
    return now < c->expires - margin;
}

static void drop(struct cached *c)
{
    if (c->token != NULL) {
        OPENSSL_cleanse(c->token, strlen(c->token));
    }
    free(c->token);
    free(c->scope);
    memset(c, 0, sizeof *c);
}

static bool entra_get(void *self, const char *scope, char **token_out, sw_time_us *expires_out,
                      sw_err *err)
{
    struct entra *e = self;
    pthread_mutex_lock(&e->mu);
    sw_time_us now = sw_time_now();
    struct cached *slot = NULL;
    for (int i = 0; i < CACHE_SLOTS; i++) {
        if (e->cache[i].scope != NULL && strcmp(e->cache[i].scope, scope) == 0) {
            slot = &e->cache[i];
        }
    }
    bool ok = true;
    if (slot == NULL || !fresh(slot, now)) {
        char *tok = NULL;
        sw_time_us exp = 0;
        ok = fetch(e, scope, &tok, &exp, err);
        if (ok) {
            if (slot == NULL) {
                slot = &e->cache[0];
                for (int i = 0; i < CACHE_SLOTS; i++) {
                    if (e->cache[i].scope == NULL) {
                        slot = &e->cache[i];
                        break;
                    }
                }
            }
            drop(slot);
            slot->scope = strdup(scope);
            slot->token = tok;
            slot->fetched = now;
            slot->expires = exp;
            if (slot->scope == NULL) {
                drop(slot);
                ok = sw_err_set(err, SW_E_NOMEM, "out of memory");
            } else {
                SW_LOG(SW_LOG_INFO, "entra token acquired",
                       SW_LF_STR("method", sw_entra_method_name(e->method)),
                       SW_LF_STR("scope", scope),
                       SW_LF_INT("expires_in_s", (exp - now) / SW_US_PER_SEC));
            }
        }
    }
    if (ok) {
        *token_out = strdup(slot->token);
        *expires_out = slot->expires;
        if (*token_out == NULL) {
            ok = sw_err_set(err, SW_E_NOMEM, "out of memory");
        }
    }
    pthread_mutex_unlock(&e->mu);
    return ok;
}

static void entra_destroy(void *self)
{
    struct entra *e = self;
    if (e == NULL) {
        return;
    }
    for (int i = 0; i < CACHE_SLOTS; i++) {
        drop(&e->cache[i]);
    }
    if (e->secret != NULL) {
        OPENSSL_cleanse(e->secret, strlen(e->secret));
    }
    free(e->authority);
    free(e->tenant);
    free(e->client_id);
    free(e->secret);
    free(e->fed_file);
    free(e->imds);
    free(e->id_endpoint);
    free(e->id_header);
    EVP_PKEY_free(e->key);
    sw_http_client_free(e->http);
    pthread_mutex_destroy(&e->mu);
    free(e);
}

bool sw_entra_provider_new(const sw_entra_opts *o, sw_token_provider *out, sw_err *err)
{
    memset(out, 0, sizeof *out);
    if (o->method == SW_ENTRA_NONE) {
        return sw_err_set(err, SW_E_CONFIG, "no Entra ID credential configured");
    }
    struct entra *e = calloc(1, sizeof *e);
    if (e == NULL) {
        return sw_err_set(err, SW_E_NOMEM, "out of memory");
    }
    pthread_mutex_init(&e->mu, NULL);
    e->method = o->method;
    e->timeout_us = o->timeout_us > 0 ? o->timeout_us : 30 * SW_US_PER_SEC;
    e->authority =
        dup_trim_slash(o->authority_host ? o->authority_host : "https://login.microsoftonline.com");
    e->tenant = o->tenant_id ? strdup(o->tenant_id) : NULL;
    e->client_id = o->client_id ? strdup(o->client_id) : NULL;
    e->secret = o->client_secret ? strdup(o->client_secret) : NULL;
    e->fed_file = o->federated_token_file ? strdup(o->federated_token_file) : NULL;
    e->imds = dup_trim_slash(o->imds_endpoint ? o->imds_endpoint : "http://169.254.169.254");
    e->id_endpoint = o->identity_endpoint ? strdup(o->identity_endpoint) : NULL;
    e->id_header = o->identity_header ? strdup(o->identity_header) : NULL;
    e->http = sw_http_client_new(err);
    bool ok = e->http != NULL && e->authority != NULL && e->imds != NULL;
    if (ok && o->method != SW_ENTRA_MANAGED_IDENTITY &&
        (e->tenant == NULL || e->client_id == NULL)) {
        ok = sw_err_set(err, SW_E_CONFIG, "Entra ID %s needs tenant_id and client_id",
                        sw_entra_method_name(o->method));
    }
    if (ok && o->method != SW_ENTRA_MANAGED_IDENTITY) {
        ok = sw_http_url_check_secure("authority_host", e->authority, err);
    }
    if (ok && o->method == SW_ENTRA_CLIENT_SECRET && e->secret == NULL) {
        ok = sw_err_set(err, SW_E_CONFIG, "client_secret is not set");
    }
    if (ok && o->method == SW_ENTRA_WORKLOAD_IDENTITY && e->fed_file == NULL) {
        ok = sw_err_set(err, SW_E_CONFIG, "AZURE_FEDERATED_TOKEN_FILE is not set");
    }
    if (ok && o->method == SW_ENTRA_CERTIFICATE) {
        ok = o->certificate_path != NULL
                 ? load_certificate(e, o->certificate_path, err)
                 : sw_err_set(err, SW_E_CONFIG, "client_certificate is not set");
    }
    if (!ok) {
        if (err != NULL && err->code == SW_OK) {
            sw_err_set(err, SW_E_NOMEM, "out of memory");
        }
        entra_destroy(e);
        return false;
    }
    out->type = SW_TOKEN_TYPE_JWT;
    out->self = e;
    out->get = entra_get;
    out->destroy = entra_destroy;
    return true;
}

void sw_entra_invalidate(const sw_token_provider *p, const char *scope)
{
    if (p == NULL || p->get != entra_get) {
        return;
    }
    struct entra *e = p->self;
    pthread_mutex_lock(&e->mu);
    for (int i = 0; i < CACHE_SLOTS; i++) {
        if (e->cache[i].scope != NULL && strcmp(e->cache[i].scope, scope) == 0) {
            drop(&e->cache[i]);
        }
    }
    pthread_mutex_unlock(&e->mu);
}

void sw_entra_last_error(const sw_token_provider *p, char *buf, size_t size)
{
    if (size == 0) {
        return;
    }
    buf[0] = '\0';
    if (p == NULL || p->get != entra_get) {
        return;
    }
    struct entra *e = p->self;
    pthread_mutex_lock(&e->mu);
    snprintf(buf, size, "%s", e->last_error);
    pthread_mutex_unlock(&e->mu);
}
