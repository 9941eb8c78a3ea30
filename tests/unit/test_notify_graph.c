/*
 * Notifications against the fake Graph (tests/fake-graph/fake-graph.js): the
 * Entra token providers, the delivery rules of the notifier over a real
 * RocksDB outbox, and a SIGKILL crash test of `scanwatch notify`.
 */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "notify_internal.h"
#include "notify_test_util.h"
#include "scanwatch/entra.h"
#include "scanwatch/log.h"
#include "scanwatch/notify.h"
#include "scanwatch/settings.h"
#include "state_test_util.h"

static const char *const fake_args[] = {
    "--client-secret", "s3cret", "--cert", NULL /* filled in */, "--identity-header", "idh", NULL};

static char cert_path[4096], other_cert_path[4096];

static void start_fake(nt_fake *f)
{
    const char *args[8];
    memcpy(args, fake_args, sizeof fake_args);
    args[3] = cert_path;
    nt_fake_start(f, args);
}

static long jint(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(v) ? (long)v->valuedouble : -1;
}

static int count_kind(const nt_fake *f, const char *kind, bool ok_only)
{
    cJSON *reqs = nt_fake_get(f, "token-requests");
    int n = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, reqs)
    {
        const char *k = cJSON_GetStringValue(cJSON_GetObjectItem(r, "kind"));
        if ((kind == NULL || (k && strcmp(k, kind) == 0)) &&
            (!ok_only || cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")))) {
            n++;
        }
    }
    cJSON_Delete(reqs);
    return n;
}

static sw_entra_opts base_opts(const nt_fake *f, sw_entra_method m)
{
    sw_entra_opts o = {.method = m,
                       .authority_host = f->base,
                       .tenant_id = "test-tenant",
                       .client_id = "test-client",
                       .timeout_us = 5 * SW_US_PER_SEC};
    return o;
}

static void get_token(sw_token_provider *p, const char *scope, bool expect_ok, const char *needle)
{
    char *tok = NULL;
    sw_time_us exp = 0;
    sw_err err;
    sw_err_clear(&err);
    bool ok = sw_token_provider_get(p, scope, &tok, &exp, &err);
    if (ok != expect_ok) {
        fail_msg("token get: expected %s, got %s (%s)", expect_ok ? "ok" : "failure",
                 ok ? "ok" : "failure", err.msg);
    }
    if (ok) {
        assert_true(exp > sw_time_now());
        assert_non_null(tok);
        free(tok);
    } else if (needle != NULL && strstr(err.msg, needle) == NULL) {
        fail_msg("token error '%s' does not mention '%s'", err.msg, needle);
    }
}

static void test_token_secret_and_cache(void **state)
{
    (void)state;
    nt_fake f;
    start_fake(&f);
    char scope[128], eh[] = "https://eventhubs.azure.net/.default";
    snprintf(scope, sizeof scope, "%s/.default", f.base);
    sw_entra_opts o = base_opts(&f, SW_ENTRA_CLIENT_SECRET);
    o.client_secret = "s3cret";
    sw_token_provider p;
    sw_err err;
    assert_true(sw_entra_provider_new(&o, &p, &err));
    assert_string_equal(p.type, "jwt");
    get_token(&p, scope, true, NULL);
    get_token(&p, scope, true, NULL); /* cached */
    assert_int_equal(count_kind(&f, "secret", true), 1);
    get_token(&p, eh, true, NULL); /* another resource: its own token */
    assert_int_equal(count_kind(&f, "secret", true), 2);
    sw_entra_invalidate(&p, scope);
    get_token(&p, scope, true, NULL);
    assert_int_equal(count_kind(&f, "secret", true), 3);
    sw_token_provider_destroy(&p);

    o.client_secret = "wrong";
    assert_true(sw_entra_provider_new(&o, &p, &err));
    char *tok = NULL;
    sw_time_us exp;
    sw_err_clear(&err);
    assert_false(sw_token_provider_get(&p, scope, &tok, &exp, &err));
    assert_non_null(strstr(err.msg, "AADSTS7000215"));
    assert_null(strstr(err.msg, "wrong")); /* the secret never appears */
    assert_false(err.retriable);
    sw_token_provider_destroy(&p);
    nt_fake_stop(&f);
}

static void test_token_certificate(void **state)
{
    (void)state;
    nt_fake f;
    start_fake(&f);
    char scope[128];
    snprintf(scope, sizeof scope, "%s/.default", f.base);
    sw_entra_opts o = base_opts(&f, SW_ENTRA_CERTIFICATE);
    o.certificate_path = cert_path;
    sw_token_provider p;
    sw_err err;
    assert_true(sw_entra_provider_new(&o, &p, &err));
    get_token(&p, scope, true, NULL);
    sw_token_provider_destroy(&p);
    assert_int_equal(count_kind(&f, "certificate", true), 1);

    /* Signed by a key whose certificate is not registered: rejected. */
    o.certificate_path = other_cert_path;
    assert_true(sw_entra_provider_new(&o, &p, &err));
    get_token(&p, scope, false, "AADSTS700027");
    sw_token_provider_destroy(&p);

    o.certificate_path = "/nonexistent/cert.pem";
    assert_false(sw_entra_provider_new(&o, &p, &err));
    assert_non_null(strstr(err.msg, "/nonexistent/cert.pem"));
    nt_fake_stop(&f);
}

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

/* The federated token file is read again for every token request (kubelet rotates it). */
static void test_token_workload_identity_rotation(void **state)
{
    (void)state;
    nt_fake f;
    start_fake(&f);
    char *dir = sw_test_tmpdir("wi");
    char file[4200], scope[128];
    snprintf(file, sizeof file, "%s/azure-identity-token", dir);
    snprintf(scope, sizeof scope, "%s/.default", f.base);
    write_file(file, "fed-token-1\n");
    nt_fake_post(&f, "config", "{\"federated_tokens\":[\"fed-token-1\"],\"token_lifetime\":2}");

    /* The environment the AKS webhook injects. */
    char auth[96];
    snprintf(auth, sizeof auth, "%s/", f.base);
    setenv("AZURE_CLIENT_ID", "test-client", 1);
    setenv("AZURE_TENANT_ID", "test-tenant", 1);
    setenv("AZURE_FEDERATED_TOKEN_FILE", file, 1);
    setenv("AZURE_AUTHORITY_HOST", auth, 1);
    sw_config *cfg = sw_config_new();
    sw_entra_opts o;
    sw_err err;
    assert_true(sw_entra_opts_from_config(&o, cfg, &err));
    assert_int_equal(o.method, SW_ENTRA_WORKLOAD_IDENTITY);
    assert_string_equal(o.authority_host, auth);
    sw_token_provider p;
    assert_true(sw_entra_provider_new(&o, &p, &err));
    unsetenv("AZURE_CLIENT_ID");
    unsetenv("AZURE_TENANT_ID");
    unsetenv("AZURE_FEDERATED_TOKEN_FILE");
    unsetenv("AZURE_AUTHORITY_HOST");
    sw_config_free(cfg);

    get_token(&p, scope, true, NULL);
    /* Rotate: the old projected token is no longer accepted. */
    write_file(file, "fed-token-2\n");
    nt_fake_post(&f, "config", "{\"federated_tokens\":[\"fed-token-2\"]}");
    usleep(1100 * 1000); /* a 2 s token is refreshed after half its lifetime */
    get_token(&p, scope, true, NULL);
    cJSON *reqs = nt_fake_get(&f, "token-requests");
    assert_int_equal(cJSON_GetArraySize(reqs), 2);
    assert_string_equal(
        cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(reqs, 0), "assertion")),
        "fed-token-1");
    assert_string_equal(
        cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(reqs, 1), "assertion")),
        "fed-token-2");
    cJSON_Delete(reqs);
    /* A missing token file is an error naming the file. */
    unlink(file);
    sw_entra_invalidate(&p, scope);
    get_token(&p, scope, false, file);
    sw_token_provider_destroy(&p);
    sw_test_rmdir(dir);
    free(dir);
    nt_fake_stop(&f);
}

static void test_token_managed_identity(void **state)
{
    (void)state;
    nt_fake f;
    start_fake(&f);
    sw_entra_opts o = {.method = SW_ENTRA_MANAGED_IDENTITY,
                       .imds_endpoint = f.base,
                       .client_id = "user-assigned-id",
                       .timeout_us = 5 * SW_US_PER_SEC};
    sw_token_provider p;
    sw_err err;
    assert_true(sw_entra_provider_new(&o, &p, &err));
    get_token(&p, "https://graph.microsoft.com/.default", true, NULL);
    sw_token_provider_destroy(&p);
    cJSON *reqs = nt_fake_get(&f, "token-requests");
    const cJSON *r = cJSON_GetArrayItem(reqs, 0);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(r, "kind")), "imds");
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(r, "resource")),
                        "https://graph.microsoft.com/");
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(r, "clientId")),
                        "user-assigned-id");
    cJSON_Delete(reqs);

    /* App Service / Container Apps: IDENTITY_ENDPOINT + IDENTITY_HEADER. */
    char ep[128];
    snprintf(ep, sizeof ep, "%s/msi/token", f.base);
    sw_entra_opts a = {.method = SW_ENTRA_MANAGED_IDENTITY,
                       .identity_endpoint = ep,
                       .identity_header = "idh",
                       .timeout_us = 5 * SW_US_PER_SEC};
    assert_true(sw_entra_provider_new(&a, &p, &err));
    get_token(&p, "https://eventhubs.azure.net/.default", true, NULL);
    sw_token_provider_destroy(&p);
    a.identity_header = "wrong";
    assert_true(sw_entra_provider_new(&a, &p, &err));
    get_token(&p, "https://eventhubs.azure.net/.default", false, "401");
    sw_token_provider_destroy(&p);
    assert_int_equal(count_kind(&f, "appservice", true), 1);
    nt_fake_stop(&f);
}

/* ---- the notifier over a real outbox ------------------------------------------ */

struct env {
    nt_fake f;
    char *dir;
    sw_config *cfg;
    sw_state *st;
    sw_notify_stats last; /* of the last drain */
};

static void set(sw_config *cfg, const char *key, const char *value)
{
    sw_err err;
    if (!sw_config_set_key(cfg, key, value, SW_SRC_CODE, &err)) {
        fail_msg("setting %s=%s: %s", key, value, err.msg);
    }
}

static void env_open_state(struct env *e)
{
    sw_state_opts so = {.dir = e->dir, .sync = false};
    sw_err err;
    e->st = sw_state_open(&so, &err);
    if (e->st == NULL) {
        fail_msg("state: %s", err.msg);
    }
}

static void env_setup(struct env *e)
{
    memset(e, 0, sizeof *e);
    start_fake(&e->f);
    e->dir = sw_test_tmpdir("notify");
    e->cfg = sw_config_new();
    set(e->cfg, "state_dir", e->dir);
    set(e->cfg, "mail_sink", "graph");
    set(e->cfg, "mail_sender", "alerts@example.com");
    set(e->cfg, "graph_base_url", e->f.base);
    set(e->cfg, "authority_host", e->f.base);
    set(e->cfg, "tenant_id", "test-tenant");
    set(e->cfg, "client_id", "test-client");
    set(e->cfg, "client_secret", "s3cret");
    set(e->cfg, "mail_rate", "6000");
    set(e->cfg, "mail_backoff_min", "100ms");
    set(e->cfg, "http_timeout", "2s");
    set(e->cfg, "mail_to", "team@example.com");
    env_open_state(e);
}

static void env_teardown(struct env *e)
{
    if (e->st != NULL) {
        sw_state_close(e->st);
    }
    sw_config_free(e->cfg);
    sw_test_rmdir(e->dir);
    free(e->dir);
    nt_fake_stop(&e->f);
}

static void drain(struct env *e, bool flush)
{
    sw_err err;
    sw_notifier *n = sw_notify_new(e->cfg, e->st, &err);
    if (n == NULL) {
        fail_msg("notifier: %s", err.msg);
    }
    if (!sw_notify_drain(n, 60 * SW_US_PER_SEC, flush, &err)) {
        fail_msg("drain: %s", err.msg);
    }
    sw_notify_stats_get(n, &e->last);
    sw_notify_free(n);
}

static const char *mail_header(const cJSON *mail, const char *name)
{
    const cJSON *h;
    cJSON_ArrayForEach(h, cJSON_GetObjectItemCaseSensitive(
                              cJSON_GetObjectItemCaseSensitive(
                                  cJSON_GetObjectItemCaseSensitive(mail, "request"), "message"),
                              "internetMessageHeaders"))
    {
        if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(h, "name")), name) == 0) {
            return cJSON_GetStringValue(cJSON_GetObjectItem(h, "value"));
        }
    }
    return "";
}

static const char *first_to(const cJSON *mail)
{
    const cJSON *to = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(mail, "request"),
                                         "message"),
        "toRecipients");
    return cJSON_GetStringValue(cJSON_GetObjectItem(
        cJSON_GetObjectItem(cJSON_GetArrayItem(to, 0), "emailAddress"), "address"));
}

static int mails_matching(const cJSON *mails, const char *image_sub, const char *to)
{
    int n = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, mails)
    {
        if (strstr(mail_header(m, "x-scanwatch-image"), image_sub) != NULL &&
            strcmp(first_to(m), to) == 0) {
            n++;
        }
    }
    return n;
}

/* Every diff record reaches every matching route exactly once. */
static void test_deliver_routes_exactly_once(void **state)
{
    (void)state;
    struct env e;
    env_setup(&e);
    set(e.cfg, "routes",
        "[{\"name\":\"a\",\"repository\":\"team-a/*\",\"to\":\"a@example.com\"},"
        "{\"name\":\"high\",\"min_severity\":\"High\",\"to\":\"sec@example.com\"},"
        "{\"name\":\"fix\",\"repository\":\"team-a/*\",\"fixable_only\":true,"
        "\"to\":\"fix@example.com\"},"
        "{\"name\":\"crit-b\",\"repository\":\"team-b/*\",\"min_severity\":\"Critical\","
        "\"to\":\"b@example.com\"}]");
    nt_fill_outbox(e.st, "contoso.azurecr.io", "team-a/app", 3, 5, "finding");
    nt_fill_outbox(e.st, "contoso.azurecr.io", "team-b/svc", 2, 1, "only critical");
    assert_int_equal(nt_outbox_count(e.st), 5);
    drain(&e, false);
    assert_int_equal(nt_outbox_count(e.st), 0);
    assert_int_equal(nt_kv_count(e.st, "m/"), 0);
    cJSON *mails = nt_fake_get(&e.f, "mails");
    /* team-a images: a, high, fix (3 each); team-b images: high, crit-b (2 each). */
    assert_int_equal(cJSON_GetArraySize(mails), 3 * 3 + 2 * 2);
    for (int i = 0; i < 3; i++) {
        char img[64];
        snprintf(img, sizeof img, "/team-a/app%d@", i);
        assert_int_equal(mails_matching(mails, img, "a@example.com"), 1);
        assert_int_equal(mails_matching(mails, img, "sec@example.com"), 1);
        assert_int_equal(mails_matching(mails, img, "fix@example.com"), 1);
        assert_int_equal(mails_matching(mails, img, "b@example.com"), 0);
    }
    for (int i = 0; i < 2; i++) {
        char img[64];
        snprintf(img, sizeof img, "/team-b/svc%d@", i);
        assert_int_equal(mails_matching(mails, img, "sec@example.com"), 1);
        assert_int_equal(mails_matching(mails, img, "b@example.com"), 1);
    }
    /* Each route got only its findings: "high" saw Critical+High of 5. */
    const cJSON *m;
    cJSON_ArrayForEach(m, mails)
    {
        if (strcmp(first_to(m), "sec@example.com") == 0 &&
            strstr(mail_header(m, "x-scanwatch-image"), "team-a") != NULL) {
            assert_string_equal(mail_header(m, "x-scanwatch-new"), "2");
        }
        if (strcmp(first_to(m), "fix@example.com") == 0) {
            assert_string_equal(mail_header(m, "x-scanwatch-new"), "3");
        }
    }
    cJSON_Delete(mails);
    /* The token was asked for the Graph root configured (national clouds: their own root). */
    cJSON *treqs = nt_fake_get(&e.f, "token-requests");
    char scope[128];
    snprintf(scope, sizeof scope, "%s/.default", e.f.base);
    assert_string_equal(
        cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(treqs, 0), "scope")), scope);
    assert_int_equal(cJSON_GetArraySize(treqs), 1); /* cached across 13 mails */
    cJSON_Delete(treqs);
    /* Draining again sends nothing more. */
    drain(&e, false);
    cJSON *stats = nt_fake_get(&e.f, "stats");
    assert_int_equal(jint(stats, "mails"), 13);
    assert_int_equal(jint(stats, "requests"), 13);
    cJSON_Delete(stats);
    env_teardown(&e);
}

static void test_retry_after_honoured(void **state)
{
    (void)state;
    struct env e;
    env_setup(&e);
    nt_fake_post(&e.f, "faults",
                 "[{\"status\":429,\"retry_after\":1},{\"status\":503},{\"status\":504,"
                 "\"retry_after\":0}]");
    nt_fill_outbox(e.st, "contoso.azurecr.io", "app", 1, 3, "t");
    drain(&e, false);
    assert_int_equal(e.last.failures[5], 1); /* 429 */
    assert_int_equal(e.last.failures[6], 1); /* 503 */
    assert_int_equal(e.last.failures[7], 1); /* 504 */
    assert_int_equal(e.last.retries, 3);
    cJSON *reqs = nt_fake_get(&e.f, "requests");
    assert_int_equal(cJSON_GetArraySize(reqs), 4);
    const cJSON *r0 = cJSON_GetArrayItem(reqs, 0), *r1 = cJSON_GetArrayItem(reqs, 1),
                *r2 = cJSON_GetArrayItem(reqs, 2), *r3 = cJSON_GetArrayItem(reqs, 3);
    assert_int_equal(jint(r0, "status"), 429);
    assert_int_equal(jint(r1, "status"), 503);
    assert_int_equal(jint(r2, "status"), 504);
    assert_int_equal(jint(r3, "status"), 202);
    long gap1 = jint(r1, "time") - jint(r0, "end");
    long gap2 = jint(r2, "time") - jint(r1, "end");
    /* Retry-After: 1 s is honoured; without it, backoff from mail_backoff_min (100 ms, x2). */
    if (gap1 < 1000 || gap1 > 1600) {
        fail_msg("retry after 429 + Retry-After: 1 came %ld ms later", gap1);
    }
    if (gap2 < 190) {
        fail_msg("second retry (503, no Retry-After) came after %ld ms, want >= 200", gap2);
    }
    cJSON_Delete(reqs);
    cJSON *mails = nt_fake_get(&e.f, "mails");
    assert_int_equal(cJSON_GetArraySize(mails), 1);
    cJSON_Delete(mails);
    env_teardown(&e);
}

/* A 2xx is never retried, even with Retry-After (msgraph-sdk-java#1487). */
static void test_202_with_retry_after_not_resent(void **state)
{
    (void)state;
    struct env e;
    env_setup(&e);
    nt_fake_post(&e.f, "faults", "[{\"status\":202,\"retry_after\":5}]");
    nt_fill_outbox(e.st, "contoso.azurecr.io", "app", 2, 1, "t");
    drain(&e, false);
    cJSON *stats = nt_fake_get(&e.f, "stats");
    assert_int_equal(jint(stats, "requests"), 2);
    assert_int_equal(jint(stats, "mails"), 2);
    cJSON_Delete(stats);
    env_teardown(&e);
}

static void test_timeout_retried(void **state)
{
    (void)state;
    struct env e;
    env_setup(&e);
    set(e.cfg, "http_timeout", "500ms");
    nt_fake_post(&e.f, "faults", "[{\"delay_ms\":2000}]");
    nt_fill_outbox(e.st, "contoso.azurecr.io", "app", 1, 1, "t");
    drain(&e, false);
    usleep(1700 * 1000); /* let the slow request finish on the fake's side */
    cJSON *reqs = nt_fake_get(&e.f, "requests");
    assert_int_equal(cJSON_GetArraySize(reqs), 2);
    assert_string_equal(
        cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(reqs, 0), "status")),
        "client-gone");
    cJSON_Delete(reqs);
    cJSON *stats = nt_fake_get(&e.f, "stats");
    assert_int_equal(jint(stats, "mails"), 1);
    cJSON_Delete(stats);
    env_teardown(&e);
}

struct dl_collect {
    int n;
    char reasons[8][600];
};

static bool dl_fn(void *ctx, const sw_state_dead_letter *dl)
{
    struct dl_collect *c = ctx;
    if (strcmp(dl->kind, "mail") == 0 && c->n < 8) {
        snprintf(c->reasons[c->n++], sizeof c->reasons[0], "%s", dl->reason);
    }
    return true;
}

static bool any_reason(const struct dl_collect *c, const char *needle)
{
    for (int i = 0; i < c->n; i++) {
        if (strstr(c->reasons[i], needle) != NULL) {
            return true;
        }
    }
    return false;
}

static void test_permanent_errors_dead_letter(void **state)
{
    (void)state;
    struct env e;
    env_setup(&e);
    nt_fake_post(&e.f, "faults",
                 "[{\"status\":400,\"code\":\"ErrorInvalidRecipients\"},{\"status\":413,"
                 "\"code\":\"RequestEntityTooLarge\"},{\"status\":403,\"code\":"
                 "\"ErrorAccessDenied\"},{\"status\":404,\"code\":"
                 "\"MailboxNotEnabledForRESTAPI\"}]");
    nt_fill_outbox(e.st, "contoso.azurecr.io", "app", 5, 1, "t");
    drain(&e, false);
    struct dl_collect c = {0};
    sw_err err;
    assert_true(sw_state_dead_letter_iter(e.st, dl_fn, &c, &err));
    assert_int_equal(c.n, 4);
    assert_true(any_reason(&c, "HTTP 400 ErrorInvalidRecipients"));
    assert_true(any_reason(&c, "HTTP 413 RequestEntityTooLarge"));
    assert_true(any_reason(&c, "HTTP 403 ErrorAccessDenied"));
    assert_true(any_reason(&c, "HTTP 404 MailboxNotEnabledForRESTAPI"));
    assert_int_equal(nt_kv_count(e.st, "m/"), 0);
    assert_int_equal(e.last.failures[0], 1); /* "400" */
    assert_string_equal(sw_notify_failure_label(0), "400");
    assert_int_equal(e.last.failures[2], 1); /* "403" */
    assert_int_equal(e.last.failures[3], 1); /* "404" */
    assert_int_equal(e.last.failures[4], 1); /* "413" */
    assert_int_equal(e.last.dead, 4);
    assert_int_equal(e.last.mails_sent, 1);
    cJSON *stats = nt_fake_get(&e.f, "stats");
    assert_int_equal(jint(stats, "requests"), 5); /* none retried */
    assert_int_equal(jint(stats, "mails"), 1);
    cJSON_Delete(stats);
    env_teardown(&e);
}

/* The fake's own strict validation: > 4 MB is a 413 that goes to the dead letter. */
static void test_oversize_request_413(void **state)
{
    (void)state;
    nt_fake f;
    start_fake(&f);
    sw_entra_opts o = base_opts(&f, SW_ENTRA_CLIENT_SECRET);
    o.client_secret = "s3cret";
    sw_token_provider p;
    sw_err err;
    assert_true(sw_entra_provider_new(&o, &p, &err));
    sw_graph *g = sw_graph_new(f.base, "alerts@example.com", &p, 10 * SW_US_PER_SEC, &err);
    assert_non_null(g);
    size_t big = 4 * 1024 * 1024 + 100;
    char *body = malloc(big + 1);
    assert_non_null(body);
    memset(body, ' ', big);
    body[big] = '\0';
    sw_graph_result res;
    assert_true(sw_graph_send(g, body, big, &res, &err));
    assert_int_equal(res.status, 413);
    assert_string_equal(res.code, "RequestEntityTooLarge");
    /* > 5 x- headers, and a non-x- header name. */
    const char *six = "{\"message\":{\"subject\":\"s\",\"body\":{\"contentType\":\"HTML\","
                      "\"content\":\"c\"},\"toRecipients\":[{\"emailAddress\":{\"address\":"
                      "\"a@example.com\"}}],\"internetMessageHeaders\":[{\"name\":\"x-a\","
                      "\"value\":\"1\"},{\"name\":\"x-b\",\"value\":\"1\"},{\"name\":\"x-c\","
                      "\"value\":\"1\"},{\"name\":\"x-d\",\"value\":\"1\"},{\"name\":\"x-e\","
                      "\"value\":\"1\"},{\"name\":\"x-f\",\"value\":\"1\"}]}}";
    assert_true(sw_graph_send(g, six, strlen(six), &res, &err));
    assert_int_equal(res.status, 400);
    assert_string_equal(res.code, "InvalidInternetMessageHeaderCollection");
    sw_buf many;
    sw_buf_init(&many, 0);
    sw_buf_append_str(&many, "{\"message\":{\"subject\":\"s\",\"body\":{\"contentType\":"
                             "\"HTML\",\"content\":\"c\"},\"toRecipients\":[");
    for (int i = 0; i < 501; i++) {
        sw_buf_printf(&many, "%s{\"emailAddress\":{\"address\":\"u%d@example.com\"}}", i ? "," : "",
                      i);
    }
    sw_buf_append_str(&many, "]}}");
    assert_true(sw_graph_send(g, many.data, many.len, &res, &err));
    assert_int_equal(res.status, 400);
    assert_string_equal(res.code, "ErrorTooManyRecipients");
    sw_buf_free(&many);
    const char *norcpt = "{\"message\":{\"subject\":\"s\",\"body\":{\"contentType\":\"HTML\","
                         "\"content\":\"c\"}}}";
    assert_true(sw_graph_send(g, norcpt, strlen(norcpt), &res, &err));
    assert_int_equal(res.status, 400);
    assert_string_equal(res.code, "ErrorInvalidRecipients");
    free(body);
    sw_graph_free(g);
    sw_token_provider_destroy(&p);
    nt_fake_stop(&f);
}

/* Tokens expire mid-run: Graph says 401, the token is refreshed once, the mail goes. */
static void test_token_expiry_mid_run(void **state)
{
    (void)state;
    struct env e;
    env_setup(&e);
    nt_fill_outbox(e.st, "contoso.azurecr.io", "first", 1, 1, "t");
    sw_err err;
    sw_notifier *n = sw_notify_new(e.cfg, e.st, &err);
    assert_non_null(n);
    assert_true(sw_notify_drain(n, 30 * SW_US_PER_SEC, false, &err));
    nt_fake_post(&e.f, "expire-tokens", "{}");
    nt_fill_outbox(e.st, "contoso.azurecr.io", "second", 1, 1, "t");
    assert_true(sw_notify_drain(n, 30 * SW_US_PER_SEC, false, &err));
    sw_notify_free(n);
    cJSON *reqs = nt_fake_get(&e.f, "requests");
    assert_int_equal(cJSON_GetArraySize(reqs), 3);
    assert_int_equal(jint(cJSON_GetArrayItem(reqs, 1), "status"), 401);
    assert_int_equal(jint(cJSON_GetArrayItem(reqs, 2), "status"), 202);
    cJSON_Delete(reqs);
    assert_int_equal(count_kind(&e.f, "secret", true), 2);
    cJSON *stats = nt_fake_get(&e.f, "stats");
    assert_int_equal(jint(stats, "mails"), 2);
    cJSON_Delete(stats);
    env_teardown(&e);
}

static void test_concurrency_and_rate(void **state)
{
    (void)state;
    struct env e;
    env_setup(&e);
    set(e.cfg, "mail_concurrency", "2");
    /* Long enough that both senders overlap even on a loaded machine. */
    nt_fake_post(&e.f, "faults",
                 "[{\"delay_ms\":1500},{\"delay_ms\":1500},{\"delay_ms\":1500},{\"delay_ms\":1500}]");
    nt_fill_outbox(e.st, "contoso.azurecr.io", "app", 4, 1, "t");
    drain(&e, false);
    cJSON *stats = nt_fake_get(&e.f, "stats");
    assert_int_equal(jint(stats, "max_in_flight"), 2);
    assert_int_equal(jint(stats, "mails"), 4);
    cJSON_Delete(stats);
    env_teardown(&e);

    /* mail_rate 120/min: starts 500 ms apart. Arrival times at the fake jitter with the
     * machine's load, so allow 100 ms; the first request also waited for the token
     * (fetched after its slot started), so its gap to the next may look shorter. */
    env_setup(&e);
    set(e.cfg, "mail_rate", "120");
    nt_fill_outbox(e.st, "contoso.azurecr.io", "app", 4, 1, "t");
    drain(&e, false);
    cJSON *reqs = nt_fake_get(&e.f, "requests");
    assert_int_equal(cJSON_GetArraySize(reqs), 4);
    for (int i = 1; i < 4; i++) {
        long gap = jint(cJSON_GetArrayItem(reqs, i), "time") -
                   jint(cJSON_GetArrayItem(reqs, i - 1), "time");
        if (gap < (i == 1 ? 300 : 400)) {
            fail_msg("mails %d and %d started %ld ms apart at mail_rate 120", i - 1, i, gap);
        }
    }
    cJSON_Delete(reqs);
    env_teardown(&e);
}

/* Digest: one mail per route per interval, split under 4 MB for 2,000 findings. */
static void test_digest_mode(void **state)
{
    (void)state;
    struct env e;
    env_setup(&e);
    set(e.cfg, "mail_mode", "digest");
    set(e.cfg, "digest_interval", "2s");
    char title[2700];
    memset(title, '"', sizeof title - 1); /* 6 bytes each once escaped */
    title[sizeof title - 1] = '\0';
    nt_fill_outbox(e.st, "contoso.azurecr.io", "app", 10, 200, title);
    drain(&e, false); /* ingested into the digest, not yet due */
    assert_int_equal(nt_outbox_count(e.st), 0);
    assert_int_equal(nt_kv_count(e.st, "d/"), 10);
    cJSON *stats = nt_fake_get(&e.f, "stats");
    assert_int_equal(jint(stats, "requests"), 0);
    cJSON_Delete(stats);
    usleep(2100 * 1000);
    drain(&e, false);
    assert_int_equal(nt_kv_count(e.st, "d/"), 0);
    cJSON *mails = nt_fake_get(&e.f, "mails");
    int n = cJSON_GetArraySize(mails);
    assert_true(n >= 2);
    long total = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, mails)
    {
        total += strtol(mail_header(m, "x-scanwatch-new"), NULL, 10);
        /* A part holding several images says "multiple"; a part with one names it. */
        const char *img = mail_header(m, "x-scanwatch-image");
        assert_true(strcmp(img, "multiple") == 0 || strstr(img, "contoso.azurecr.io/app") == img);
    }
    assert_int_equal(total, 2000);
    cJSON_Delete(mails);
    stats = nt_fake_get(&e.f, "stats");
    assert_int_equal(jint(stats, "requests"), n); /* no 413, no retry */
    cJSON_Delete(stats);
    env_teardown(&e);
}

/* One notifier over time: it learns when a digest is due from what it ingested (without
 * reading the entries each step), and entries ingested later join the digest that is due. */
static void test_digest_due_in_one_run(void **state)
{
    (void)state;
    struct env e;
    env_setup(&e);
    set(e.cfg, "mail_mode", "digest");
    set(e.cfg, "digest_interval", "1s");
    sw_err err;
    sw_notifier *n = sw_notify_new(e.cfg, e.st, &err);
    assert_non_null(n);
    nt_fill_outbox(e.st, "contoso.azurecr.io", "app", 3, 2, "early");
    assert_true(sw_notify_drain(n, 10 * SW_US_PER_SEC, false, &err));
    assert_int_equal(nt_kv_count(e.st, "d/"), 3);
    usleep(500 * 1000);
    nt_fill_outbox(e.st, "contoso.azurecr.io", "web", 2, 2, "later");
    assert_true(sw_notify_drain(n, 10 * SW_US_PER_SEC, false, &err));
    assert_int_equal(nt_kv_count(e.st, "d/"), 5); /* the oldest is 0.5 s old: not due */
    cJSON *stats = nt_fake_get(&e.f, "stats");
    assert_int_equal(jint(stats, "requests"), 0);
    cJSON_Delete(stats);
    usleep(700 * 1000);
    assert_true(sw_notify_drain(n, 10 * SW_US_PER_SEC, false, &err));
    assert_int_equal(nt_kv_count(e.st, "d/"), 0);
    sw_notify_free(n);
    cJSON *mails = nt_fake_get(&e.f, "mails");
    assert_int_equal(cJSON_GetArraySize(mails), 1);
    assert_string_equal(mail_header(cJSON_GetArrayItem(mails, 0), "x-scanwatch-new"), "10");
    cJSON_Delete(mails);
    env_teardown(&e);
}

/* More mails than the send queue holds go out once each, in the order they were made. */
static void test_many_mails_in_order(void **state)
{
    (void)state;
    struct env e;
    env_setup(&e);
    set(e.cfg, "mail_concurrency", "1");
    nt_fill_outbox(e.st, "contoso.azurecr.io", "app", 150, 1, "finding");
    drain(&e, false);
    assert_int_equal(nt_kv_count(e.st, "m/"), 0);
    assert_int_equal(e.last.mails_sent, 150);
    cJSON *mails = nt_fake_get(&e.f, "mails");
    assert_int_equal(cJSON_GetArraySize(mails), 150);
    for (int i = 0; i < 150; i++) {
        char img[64];
        snprintf(img, sizeof img, "/app%d@", i);
        assert_int_equal(mails_matching(mails, img, "team@example.com"), 1);
        assert_non_null(strstr(mail_header(cJSON_GetArrayItem(mails, i), "x-scanwatch-image"), img));
    }
    cJSON_Delete(mails);
    env_teardown(&e);
}

/* Graph not configured: mails go to dir:./scanwatch-mail by default. */
static void test_default_dir_sink(void **state)
{
    (void)state;
    struct env e;
    env_setup(&e);
    sw_config_free(e.cfg);
    e.cfg = sw_config_new();
    set(e.cfg, "mail_to", "team@example.com");
    char cwd[4096];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(e.dir), 0);
    nt_fill_outbox(e.st, "contoso.azurecr.io", "app", 2, 2, "t");
    drain(&e, false);
    char path[4300];
    snprintf(path, sizeof path, "%s/scanwatch-mail", e.dir);
    DIR *dh = opendir(path);
    assert_non_null(dh);
    int files = 0;
    struct dirent *de;
    while ((de = readdir(dh)) != NULL) {
        files += strstr(de->d_name, ".json") != NULL && strstr(de->d_name, ".tmp") == NULL;
    }
    closedir(dh);
    assert_int_equal(files, 2);
    assert_int_equal(chdir(cwd), 0);
    cJSON *stats = nt_fake_get(&e.f, "stats");
    assert_int_equal(jint(stats, "requests"), 0);
    cJSON_Delete(stats);
    env_teardown(&e);
}

static int stat_mails(const nt_fake *f, const char *name)
{
    cJSON *s = nt_fake_get(f, "stats");
    int v = (int)jint(s, name);
    cJSON_Delete(s);
    return v;
}

static pid_t spawn_notify(const struct env *e, bool follow)
{
    const char *bin = getenv("SW_SCANWATCH");
    assert_non_null(bin);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) {
            dup2(null, 2);
        }
        const char *argv[] = {bin,
                              "notify",
                              follow ? "--follow" : "--flush-digests",
                              "--state-dir",
                              e->dir,
                              "--mail-sink",
                              "graph",
                              "--mail-sender",
                              "alerts@example.com",
                              "--graph-base-url",
                              e->f.base,
                              "--authority-host",
                              e->f.base,
                              "--tenant-id",
                              "test-tenant",
                              "--client-id",
                              "test-client",
                              "--client-secret",
                              "s3cret",
                              "--mail-rate",
                              "6000",
                              "--mail-backoff-min",
                              "100ms",
                              "--http-timeout",
                              "5s",
                              "--mail-to",
                              "team@example.com",
                              NULL};
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    return pid;
}

/* SIGKILL while a mail is in flight: after a restart every mail is delivered, and only
 * the in-flight one may arrive twice. */
static void test_sigkill_resends_at_most_in_flight(void **state)
{
    (void)state;
    struct env e;
    env_setup(&e);
    nt_fill_outbox(e.st, "contoso.azurecr.io", "app", 6, 1, "t");
    sw_state_close(e.st);
    e.st = NULL;
    /* The third mail is accepted at once but answered late: the kill lands in between. */
    nt_fake_post(&e.f, "faults", "[{},{},{\"record_first\":true,\"delay_ms\":5000}]");
    pid_t pid = spawn_notify(&e, true);
    int64_t deadline = sw_time_mono_us() + 20 * SW_US_PER_SEC;
    while (stat_mails(&e.f, "requests") < 3 && sw_time_mono_us() < deadline) {
        usleep(20 * 1000);
    }
    usleep(200 * 1000);
    assert_int_equal(stat_mails(&e.f, "requests"), 3);
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    assert_true(WIFSIGNALED(status));
    int before = stat_mails(&e.f, "mails");
    assert_int_equal(before, 3);

    pid = spawn_notify(&e, false);
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    cJSON *mails = nt_fake_get(&e.f, "mails");
    int n = cJSON_GetArraySize(mails);
    for (int i = 0; i < 6; i++) {
        char img[32];
        snprintf(img, sizeof img, "/app%d@", i);
        int k = mails_matching(mails, img, "team@example.com");
        if (k < 1 || k > 2) {
            fail_msg("image %d got %d mails", i, k);
        }
    }
    /* 6 mails, plus at most the one that was in flight -- which the fake had accepted
     * before the kill, so it is sent again: at least once, never more than in flight. */
    if (n < 6 || n > 7) {
        fail_msg("%d mails accepted for 6 diff records with 1 in flight at the kill", n);
    }
    assert_int_equal(n, 7);
    assert_int_equal(mails_matching(mails, "/app2@", "team@example.com"), 2);
    cJSON_Delete(mails);
    env_open_state(&e);
    assert_int_equal(nt_outbox_count(e.st), 0);
    assert_int_equal(nt_kv_count(e.st, "m/"), 0);
    env_teardown(&e);
}

/* notify --follow delivers as diff records arrive and exits 0 on SIGTERM. */
static void test_follow_sigterm(void **state)
{
    (void)state;
    struct env e;
    env_setup(&e);
    nt_fill_outbox(e.st, "contoso.azurecr.io", "app", 2, 1, "t");
    sw_state_close(e.st);
    e.st = NULL;
    pid_t pid = spawn_notify(&e, true);
    int64_t deadline = sw_time_mono_us() + 20 * SW_US_PER_SEC;
    while (stat_mails(&e.f, "mails") < 2 && sw_time_mono_us() < deadline) {
        usleep(20 * 1000);
    }
    assert_int_equal(stat_mails(&e.f, "mails"), 2);
    int64_t t0 = sw_time_mono_us();
    kill(pid, SIGTERM);
    int status = 0;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_true(sw_time_mono_us() - t0 < 5 * SW_US_PER_SEC);
    env_teardown(&e);
}

/* A title with markup arrives at Graph escaped. */
static void test_script_title_arrives_escaped(void **state)
{
    (void)state;
    struct env e;
    env_setup(&e);
    nt_fill_outbox(e.st, "contoso.azurecr.io", "app", 1, 2, "<script>alert('x')</script>");
    drain(&e, false);
    cJSON *mails = nt_fake_get(&e.f, "mails");
    assert_int_equal(cJSON_GetArraySize(mails), 1);
    const cJSON *msg = cJSON_GetObjectItem(
        cJSON_GetObjectItem(cJSON_GetArrayItem(mails, 0), "request"), "message");
    const char *html =
        cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(msg, "body"), "content"));
    assert_null(strstr(html, "<script"));
    assert_non_null(strstr(html, "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; 0"));
    cJSON_Delete(mails);
    env_teardown(&e);
}

/* Runs scanwatch send-test-mail against the fake; returns its exit status, output in out. */
static int send_test_mail(const nt_fake *f, const char *secret, const char *sender, char *out,
                          size_t outsz)
{
    const char *bin = getenv("SW_SCANWATCH");
    assert_non_null(bin);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) {
            dup2(null, 2);
        }
        const char *argv[] = {bin,
                              "send-test-mail",
                              "--to",
                              "bob@example.com",
                              "--mail-sender",
                              sender,
                              "--graph-base-url",
                              f->base,
                              "--authority-host",
                              f->base,
                              "--tenant-id",
                              "test-tenant",
                              "--client-id",
                              "test-client",
                              "--client-secret",
                              secret,
                              NULL};
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    size_t len = 0;
    ssize_t r;
    while (len + 1 < outsz && (r = read(fds[0], out + len, outsz - len - 1)) > 0) {
        len += (size_t)r;
    }
    out[len] = '\0';
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static void expect_output(const char *out, const char *needle)
{
    if (strstr(out, needle) == NULL) {
        fail_msg("send-test-mail output lacks '%s':\n%s", needle, out);
    }
}

/* send-test-mail says what is wrong in plain words. */
static void test_send_test_mail(void **state)
{
    (void)state;
    nt_fake f;
    start_fake(&f);
    char out[8192];
    assert_int_equal(send_test_mail(&f, "s3cret", "alerts@example.com", out, sizeof out), 0);
    expect_output(out, "ok    permission: the token carries the Mail.Send application role");
    expect_output(out, "ok    sendMail: Graph accepted the mail (202");
    cJSON *stats = nt_fake_get(&f, "stats");
    assert_int_equal(jint(stats, "mails"), 1);
    cJSON_Delete(stats);

    assert_int_equal(send_test_mail(&f, "wrong", "alerts@example.com", out, sizeof out), 1);
    expect_output(out, "FAIL  token");
    expect_output(out, "AADSTS7000215");
    expect_output(out, "likely fix: the client secret is wrong");
    assert_null(strstr(out, "wrong\n")); /* the secret is not echoed */

    assert_int_equal(send_test_mail(&f, "s3cret", "nobody@example.com", out, sizeof out), 1);
    expect_output(out, "FAIL  sendMail: HTTP 404 ErrorInvalidUser");
    expect_output(out, "likely fix: mail_sender is not a user in this tenant");

    nt_fake_post(&f, "config", "{\"deny_mail\":true}");
    assert_int_equal(send_test_mail(&f, "s3cret", "alerts@example.com", out, sizeof out), 1);
    expect_output(out, "FAIL  sendMail: HTTP 403 ErrorAccessDenied");
    expect_output(out, "application access policy");

    nt_fake_post(&f, "config", "{\"deny_mail\":false,\"roles\":[]}");
    assert_int_equal(send_test_mail(&f, "s3cret", "alerts@example.com", out, sizeof out), 1);
    expect_output(out, "FAIL  permission: the token has no Mail.Send application role");
    expect_output(out, "grant admin consent");
    nt_fake_stop(&f);
}

int main(void)
{
    const char *src = getenv("SW_SOURCE_DIR");
    if (src == NULL) {
        fprintf(stderr, "SW_SOURCE_DIR is not set\n");
        return 1;
    }
    snprintf(cert_path, sizeof cert_path, "%s/tests/data/notify/test-client.pem", src);
    snprintf(other_cert_path, sizeof other_cert_path, "%s/tests/data/notify/other-client.pem", src);
    sw_log_set_level(SW_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_secret_and_cache),
        cmocka_unit_test(test_token_certificate),
        cmocka_unit_test(test_token_workload_identity_rotation),
        cmocka_unit_test(test_token_managed_identity),
        cmocka_unit_test(test_deliver_routes_exactly_once),
        cmocka_unit_test(test_retry_after_honoured),
        cmocka_unit_test(test_202_with_retry_after_not_resent),
        cmocka_unit_test(test_timeout_retried),
        cmocka_unit_test(test_permanent_errors_dead_letter),
        cmocka_unit_test(test_oversize_request_413),
        cmocka_unit_test(test_token_expiry_mid_run),
        cmocka_unit_test(test_concurrency_and_rate),
        cmocka_unit_test(test_digest_mode),
        cmocka_unit_test(test_digest_due_in_one_run),
        cmocka_unit_test(test_many_mails_in_order),
        cmocka_unit_test(test_default_dir_sink),
        cmocka_unit_test(test_sigkill_resends_at_most_in_flight),
        cmocka_unit_test(test_follow_sigterm),
        cmocka_unit_test(test_script_title_arrives_escaped),
        cmocka_unit_test(test_send_test_mail),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
