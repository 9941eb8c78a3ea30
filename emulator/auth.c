#include "auth.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#define EMU_KEY_MAX 256

typedef struct {
    char name[EMU_KEY_MAX];
    char key[EMU_KEY_MAX];
} emu_key;

struct emu_auth {
    emu_key keys[EMU_AUTH_MAX_KEYS];
    int key_count;
    char *bearer;
};

emu_auth *emu_auth_new(sw_err *err)
{
    emu_auth *a = calloc(1, sizeof *a);
    if (a == NULL) {
        sw_err_set(err, SW_E_NOMEM, "auth");
    }
    return a;
}

void emu_auth_free(emu_auth *a)
{
    if (a == NULL) {
        return;
    }
    if (a->bearer != NULL) {
        OPENSSL_cleanse(a->bearer, strlen(a->bearer));
        free(a->bearer);
    }
    OPENSSL_cleanse(a->keys, sizeof a->keys);
    free(a);
}

bool emu_auth_add_key_spec(emu_auth *a, const char *spec, sw_err *err)
{
    const char *eq = strchr(spec, '=');
    if (eq == NULL || eq == spec) {
        return sw_err_set(err, SW_E_CONFIG, "--sas-key: expected NAME=KEY");
    }
    size_t nl = (size_t)(eq - spec), kl = strlen(eq + 1);
    if (nl >= EMU_KEY_MAX || kl == 0 || kl >= EMU_KEY_MAX) {
        return sw_err_set(err, SW_E_CONFIG, "--sas-key: name and key must be 1-%d characters",
                          EMU_KEY_MAX - 1);
    }
    if (a->key_count >= EMU_AUTH_MAX_KEYS) {
        return sw_err_set(err, SW_E_CONFIG, "--sas-key: at most %d keys", EMU_AUTH_MAX_KEYS);
    }
    emu_key *k = &a->keys[a->key_count++];
    memcpy(k->name, spec, nl);
    k->name[nl] = '\0';
    memcpy(k->key, eq + 1, kl);
    k->key[kl] = '\0';
    return true;
}

bool emu_auth_set_bearer(emu_auth *a, const char *token, sw_err *err)
{
    if (token == NULL || token[0] == '\0') {
        return sw_err_set(err, SW_E_CONFIG, "--bearer-token: empty token");
    }
    char *c = strdup(token);
    if (c == NULL) {
        return sw_err_set(err, SW_E_NOMEM, "bearer token");
    }
    free(a->bearer);
    a->bearer = c;
    return true;
}

int emu_auth_key_count(const emu_auth *a)
{
    return a->key_count;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c = tolower(c);
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

/* Percent-decodes s[0..n) into out (size bytes, NUL-terminated). */
static bool url_decode(const char *s, size_t n, char *out, size_t size, size_t *out_len)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            if (i + 2 >= n) {
                return false;
            }
            int h = hexval(s[i + 1]), l = hexval(s[i + 2]);
            if (h < 0 || l < 0) {
                return false;
            }
            c = h * 16 + l;
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (o + 1 >= size) {
            return false;
        }
        out[o++] = (char)c;
    }
    out[o] = '\0';
    if (out_len != NULL) {
        *out_len = o;
    }
    return true;
}

typedef struct {
    const char *p;
    size_t n;
} span;

static bool sas_field(const char *fields, size_t n, const char *name, span *out)
{
    size_t nl = strlen(name);
    size_t at = 0;
    while (at < n) {
        const char *amp = memchr(fields + at, '&', n - at);
        size_t end = amp != NULL ? (size_t)(amp - fields) : n;
        if (end - at > nl && memcmp(fields + at, name, nl) == 0 && fields[at + nl] == '=') {
            out->p = fields + at + nl + 1;
            out->n = end - at - nl - 1;
            return true;
        }
        at = end + 1;
    }
    return false;
}

bool emu_auth_check_sas(const emu_auth *a, const char *token, size_t token_len,
                        const char *audience, int64_t now_s, int64_t *expires_s, sw_err *err)
{
    static const char prefix[] = "SharedAccessSignature ";
    size_t pl = sizeof prefix - 1;
    if (token_len <= pl || memcmp(token, prefix, pl) != 0) {
        return sw_err_set(err, SW_E_AUTH, "not a SharedAccessSignature token");
    }
    const char *f = token + pl;
    size_t fn = token_len - pl;
    span sr, sig, se, skn;
    if (!sas_field(f, fn, "sr", &sr) || !sas_field(f, fn, "sig", &sig) ||
        !sas_field(f, fn, "se", &se) || !sas_field(f, fn, "skn", &skn)) {
        return sw_err_set(err, SW_E_AUTH, "SAS token lacks one of sr, sig, se, skn");
    }
    char name[EMU_KEY_MAX];
    if (!url_decode(skn.p, skn.n, name, sizeof name, NULL)) {
        return sw_err_set(err, SW_E_AUTH, "SAS token: bad skn");
    }
    const emu_key *key = NULL;
    for (int i = 0; i < a->key_count; i++) {
        if (strcmp(a->keys[i].name, name) == 0) {
            key = &a->keys[i];
        }
    }
    if (key == NULL) {
        return sw_err_set(err, SW_E_AUTH, "SAS token: unknown key name '%.64s'", name);
    }
    char sebuf[24];
    if (se.n == 0 || se.n >= sizeof sebuf) {
        return sw_err_set(err, SW_E_AUTH, "SAS token: bad se");
    }
    memcpy(sebuf, se.p, se.n);
    sebuf[se.n] = '\0';
    char *end = NULL;
    errno = 0;
    long long expiry = strtoll(sebuf, &end, 10);
    if (errno != 0 || *end != '\0' || expiry <= 0) {
        return sw_err_set(err, SW_E_AUTH, "SAS token: bad se");
    }
    /* The signature covers sr exactly as sent: SDKs differ in percent-encoding. */
    char signed_text[EMU_PATH_MAX + 32];
    int tl = snprintf(signed_text, sizeof signed_text, "%.*s\n%s", (int)sr.n, sr.p, sebuf);
    if (tl < 0 || (size_t)tl >= sizeof signed_text) {
        return sw_err_set(err, SW_E_AUTH, "SAS token: sr too long");
    }
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned mac_len = 0;
    if (HMAC(EVP_sha256(), key->key, (int)strlen(key->key), (const unsigned char *)signed_text,
             (size_t)tl, mac, &mac_len) == NULL) {
        return sw_err_set(err, SW_E_INTERNAL, "HMAC failed");
    }
    char sigdec[128];
    size_t sigdec_len = 0;
    unsigned char sigbin[96];
    /* Some encoders leave '+' raw in sig; base64 never contains ' '. */
    char sigraw[128];
    if (sig.n >= sizeof sigraw) {
        return sw_err_set(err, SW_E_AUTH, "SAS token: bad sig");
    }
    for (size_t i = 0; i < sig.n; i++) {
        sigraw[i] = sig.p[i] == '+' ? '\x01' : sig.p[i];
    }
    if (!url_decode(sigraw, sig.n, sigdec, sizeof sigdec, &sigdec_len)) {
        return sw_err_set(err, SW_E_AUTH, "SAS token: bad sig");
    }
    for (size_t i = 0; i < sigdec_len; i++) {
        if (sigdec[i] == '\x01') {
            sigdec[i] = '+';
        }
    }
    int bl = EVP_DecodeBlock(sigbin, (const unsigned char *)sigdec, (int)sigdec_len);
    if (bl < 32 || CRYPTO_memcmp(sigbin, mac, 32) != 0) {
        return sw_err_set(err, SW_E_AUTH, "SAS token: signature does not match key '%.64s'", name);
    }
    if (expiry <= now_s) {
        return sw_err_set(err, SW_E_AUTH, "SAS token expired");
    }
    if (audience != NULL) {
        char srdec[EMU_PATH_MAX], a1[EMU_PATH_MAX], a2[EMU_PATH_MAX];
        size_t srl;
        if (!url_decode(sr.p, sr.n, srdec, sizeof srdec, &srl) ||
            !emu_entity_path(srdec, srl, a1, sizeof a1) ||
            !emu_entity_path(audience, strlen(audience), a2, sizeof a2) ||
            !emu_claim_covers(a1, a2)) {
            return sw_err_set(err, SW_E_AUTH, "SAS token: sr does not cover audience '%.200s'",
                              audience);
        }
    }
    *expires_s = expiry;
    return true;
}

bool emu_auth_check_bearer(const emu_auth *a, const char *token, size_t token_len, sw_err *err)
{
    if (a->bearer == NULL) {
        return sw_err_set(err, SW_E_AUTH, "jwt tokens are not accepted (no --bearer-token)");
    }
    size_t bl = strlen(a->bearer);
    if (bl != token_len || CRYPTO_memcmp(a->bearer, token, bl) != 0) {
        return sw_err_set(err, SW_E_AUTH, "jwt token not accepted");
    }
    return true;
}

bool emu_entity_path(const char *addr, size_t len, char *out, size_t size)
{
    const char *p = addr, *end = addr + len;
    const char *scheme = NULL;
    for (const char *q = p; q + 2 < end; q++) {
        if (q[0] == ':' && q[1] == '/' && q[2] == '/') {
            scheme = q;
            break;
        }
        if (q[0] == '/') {
            break;
        }
    }
    if (scheme != NULL) {
        p = scheme + 3;
        const char *slash = memchr(p, '/', (size_t)(end - p));
        p = slash != NULL ? slash : end;
    }
    while (p < end && *p == '/') {
        p++;
    }
    while (end > p && end[-1] == '/') {
        end--;
    }
    size_t n = (size_t)(end - p);
    if (n + 1 > size) {
        return false;
    }
    memcpy(out, p, n);
    out[n] = '\0';
    return true;
}

bool emu_claim_covers(const char *claim, const char *entity)
{
    size_t cl = strlen(claim);
    if (cl == 0) {
        return true;
    }
    if (strlen(entity) < cl || strncasecmp(claim, entity, cl) != 0) {
        return false;
    }
    return entity[cl] == '\0' || entity[cl] == '/';
}
