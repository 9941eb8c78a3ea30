/* SAS token verification and entity paths of the emulator's CBS node. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth.h"

static void url_encode(const char *s, char *out, size_t size, bool upper)
{
    static const char *hex_u = "0123456789ABCDEF", *hex_l = "0123456789abcdef";
    const char *hex = upper ? hex_u : hex_l;
    size_t o = 0;
    for (; *s != '\0' && o + 4 < size; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~') {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
}

/* Builds a token the way the SDKs do (JS: upper-case hex; .NET: lower-case). */
static void make_token(char *out, size_t size, const char *uri, const char *key_name,
                       const char *key, long long se, bool upper)
{
    char sr[512], text[600], sig[128], sig_enc[256], skn[128];
    url_encode(uri, sr, sizeof sr, upper);
    snprintf(text, sizeof text, "%s\n%lld", sr, se);
    unsigned char mac[32];
    unsigned mac_len = 0;
    HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)text, strlen(text), mac,
         &mac_len);
    EVP_EncodeBlock((unsigned char *)sig, mac, 32);
    url_encode(sig, sig_enc, sizeof sig_enc, upper);
    url_encode(key_name, skn, sizeof skn, upper);
    snprintf(out, size, "SharedAccessSignature sr=%s&sig=%s&se=%lld&skn=%s", sr, sig_enc, se, skn);
}

static emu_auth *auth_with_key(void)
{
    sw_err err;
    emu_auth *a = emu_auth_new(&err);
    assert_non_null(a);
    assert_true(emu_auth_add_key_spec(a, "RootManageSharedAccessKey=c2VjcmV0LWtleQ==", &err));
    return a;
}

static void test_sas_accepts_sdk_tokens(void **state)
{
    (void)state;
    emu_auth *a = auth_with_key();
    const char *aud = "sb://127.0.0.1:5672/hub/ConsumerGroups/$Default/Partitions/0";
    for (int upper = 0; upper < 2; upper++) {
        char tok[1024];
        make_token(tok, sizeof tok, aud, "RootManageSharedAccessKey", "c2VjcmV0LWtleQ==", 2000,
                   upper);
        int64_t exp = 0;
        sw_err err;
        sw_err_clear(&err);
        bool ok = emu_auth_check_sas(a, tok, strlen(tok), aud, 1000, &exp, &err);
        if (!ok) {
            print_error("%s: %s\n", tok, err.msg);
        }
        assert_true(ok);
        assert_int_equal(exp, 2000);
    }
    /* A namespace-wide token covers every entity. */
    char tok[1024];
    make_token(tok, sizeof tok, "sb://127.0.0.1:5672/", "RootManageSharedAccessKey",
               "c2VjcmV0LWtleQ==", 2000, true);
    int64_t exp;
    sw_err err;
    assert_true(emu_auth_check_sas(a, tok, strlen(tok), aud, 1000, &exp, &err));
    emu_auth_free(a);
}

static void test_sas_rejections(void **state)
{
    (void)state;
    emu_auth *a = auth_with_key();
    const char *aud = "sb://127.0.0.1:5672/hub";
    char tok[1024];
    int64_t exp;
    sw_err err;
    make_token(tok, sizeof tok, aud, "RootManageSharedAccessKey", "wrong-key", 2000, true);
    assert_false(emu_auth_check_sas(a, tok, strlen(tok), aud, 1000, &exp, &err));
    assert_int_equal(err.code, SW_E_AUTH);
    assert_non_null(strstr(err.msg, "signature"));
    assert_null(strstr(err.msg, "wrong-key"));
    make_token(tok, sizeof tok, aud, "OtherRule", "c2VjcmV0LWtleQ==", 2000, true);
    assert_false(emu_auth_check_sas(a, tok, strlen(tok), aud, 1000, &exp, &err));
    assert_non_null(strstr(err.msg, "unknown key name"));
    make_token(tok, sizeof tok, aud, "RootManageSharedAccessKey", "c2VjcmV0LWtleQ==", 999, true);
    assert_false(emu_auth_check_sas(a, tok, strlen(tok), aud, 1000, &exp, &err));
    assert_non_null(strstr(err.msg, "expired"));
    make_token(tok, sizeof tok, "sb://127.0.0.1:5672/otherhub", "RootManageSharedAccessKey",
               "c2VjcmV0LWtleQ==", 2000, true);
    assert_false(emu_auth_check_sas(a, tok, strlen(tok), aud, 1000, &exp, &err));
    assert_non_null(strstr(err.msg, "does not cover"));
    /* "hubx" is not under "hub". */
    make_token(tok, sizeof tok, aud, "RootManageSharedAccessKey", "c2VjcmV0LWtleQ==", 2000, true);
    assert_false(emu_auth_check_sas(a, tok, strlen(tok), "sb://h/hubx", 1000, &exp, &err));
    static const char *malformed[] = {
        "",
        "Bearer abc",
        "SharedAccessSignature sr=a&sig=b",
        "SharedAccessSignature sr=a&sig=%zz&se=5&skn=RootManageSharedAccessKey",
        "SharedAccessSignature sr=a&sig=b&se=notanumber&skn=RootManageSharedAccessKey",
    };
    for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++) {
        assert_false(
            emu_auth_check_sas(a, malformed[i], strlen(malformed[i]), aud, 1000, &exp, &err));
        assert_int_equal(err.code, SW_E_AUTH);
    }
    emu_auth_free(a);
}

static void test_bearer(void **state)
{
    (void)state;
    sw_err err;
    emu_auth *a = auth_with_key();
    assert_false(emu_auth_check_bearer(a, "t", 1, &err));
    assert_true(emu_auth_set_bearer(a, "eyJ.test.token", &err));
    assert_true(emu_auth_check_bearer(a, "eyJ.test.token", 14, &err));
    assert_false(emu_auth_check_bearer(a, "eyJ.test.tokeX", 14, &err));
    assert_false(emu_auth_check_bearer(a, "eyJ", 3, &err));
    emu_auth_free(a);
}

static void test_entity_paths(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } v[] = {
        {"hub/ConsumerGroups/$Default/Partitions/0", "hub/ConsumerGroups/$Default/Partitions/0"},
        {"/hub/ConsumerGroups/$Default/Partitions/0", "hub/ConsumerGroups/$Default/Partitions/0"},
        {"amqps://ns.servicebus.windows.net/hub/Partitions/1", "hub/Partitions/1"},
        {"sb://127.0.0.1:5672/", ""},
        {"sb://127.0.0.1:5672", ""},
        {"$cbs", "$cbs"},
        {"hub/", "hub"},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        char out[EMU_PATH_MAX];
        assert_true(emu_entity_path(v[i].in, strlen(v[i].in), out, sizeof out));
        assert_string_equal(out, v[i].out);
    }
    char small[4];
    assert_false(emu_entity_path("hub/x", 5, small, sizeof small));
    assert_true(emu_claim_covers("", "hub/Partitions/0"));
    assert_true(emu_claim_covers("hub", "hub/Partitions/0"));
    assert_true(emu_claim_covers("hub/ConsumerGroups/$default/Partitions/0",
                                 "hub/ConsumerGroups/$Default/Partitions/0"));
    assert_false(emu_claim_covers("hub/Partitions/0", "hub/Partitions/1"));
    assert_false(emu_claim_covers("hub", "hubx"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sas_accepts_sdk_tokens),
        cmocka_unit_test(test_sas_rejections),
        cmocka_unit_test(test_bearer),
        cmocka_unit_test(test_entity_paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
