#include "notify_test_util.h"

#include <curl/curl.h>
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

#include "scanwatch/state_engine.h"

void nt_fake_start(nt_fake *f, const char *const *args)
{
    const char *src = getenv("SW_SOURCE_DIR");
    assert_non_null(src);
    char script[4096];
    snprintf(script, sizeof script, "%s/tests/fake-graph/fake-graph.js", src);
    int in[2], out[2];
    assert_int_equal(pipe(in), 0);
    assert_int_equal(pipe(out), 0);
    const char *argv[32] = {"node", script};
    int n = 2;
    for (int i = 0; args != NULL && args[i] != NULL && n < 31; i++) {
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[1]);
        close(out[0]);
        execvp("node", (char *const *)argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    char line[64] = "";
    size_t len = 0;
    while (len + 1 < sizeof line) {
        ssize_t r = read(out[0], line + len, 1);
        if (r <= 0 || line[len] == '\n') {
            break;
        }
        len++;
    }
    line[len] = '\0';
    close(out[0]);
    assert_true(strncmp(line, "PORT ", 5) == 0);
    f->pid = pid;
    f->port = (int)strtol(line + 5, NULL, 10);
    f->stdin_fd = in[1];
    snprintf(f->base, sizeof f->base, "http://127.0.0.1:%d", f->port);
}

void nt_fake_stop(nt_fake *f)
{
    if (f->pid > 0) {
        close(f->stdin_fd);
        kill(f->pid, SIGTERM);
        waitpid(f->pid, NULL, 0);
        f->pid = 0;
    }
}

static size_t collect(char *p, size_t size, size_t n, void *ud)
{
    sw_buf_append(ud, p, size * n);
    return size * n;
}

static void request(const nt_fake *f, const char *path, const char *json, sw_buf *out)
{
    char url[512];
    snprintf(url, sizeof url, "%s/_control/%s", f->base, path);
    CURL *c = curl_easy_init();
    assert_non_null(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    struct curl_slist *h = NULL;
    if (json != NULL) {
        h = curl_slist_append(h, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
    }
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (rc != CURLE_OK || status != 200) {
        fail_msg("fake control %s: curl %d, HTTP %ld: %s", path, (int)rc, status,
                 out->data ? out->data : "");
    }
}

cJSON *nt_fake_get(const nt_fake *f, const char *path)
{
    sw_buf b;
    sw_buf_init(&b, 0);
    request(f, path, NULL, &b);
    cJSON *doc = cJSON_ParseWithLength(b.data, b.len);
    sw_buf_free(&b);
    assert_non_null(doc);
    return doc;
}

void nt_fake_post(const nt_fake *f, const char *path, const char *json)
{
    sw_buf b;
    sw_buf_init(&b, 0);
    request(f, path, json, &b);
    sw_buf_free(&b);
}

static const sw_severity sev_cycle[] = {SW_SEV_CRITICAL, SW_SEV_HIGH, SW_SEV_MEDIUM, SW_SEV_LOW,
                                        SW_SEV_UNKNOWN};

void nt_finding_json(sw_buf *out, const char *registry, const char *repo, const char *digest, int i,
                     const char *title, sw_severity sev, bool fixable)
{
    char image[512], vuln[64], key[128], pkg[64], link[128];
    snprintf(image, sizeof image, "%s/%s@%s", registry, repo, digest);
    snprintf(vuln, sizeof vuln, "CVE-2026-%05d", i);
    snprintf(pkg, sizeof pkg, "libexample%d", i % 7);
    snprintf(key, sizeof key, "%s:%s", vuln, pkg);
    snprintf(link, sizeof link, "https://nvd.nist.gov/vuln/detail/%s", vuln);
    const char *tags[] = {"1.0", "latest"};
    const char *links[] = {link};
    sw_finding f = {.image = image,
                    .registry = registry,
                    .repository = repo,
                    .digest = digest,
                    .tags = tags,
                    .n_tags = 2,
                    .key = key,
                    .vuln_id = vuln,
                    .package = pkg,
                    .version = "1.2.3",
                    .fixed_version = fixable ? "1.2.4" : NULL,
                    .title = title,
                    .published = "2026-10-01T00:00:00Z",
                    .links = links,
                    .n_links = 1,
                    .fixable = fixable,
                    .severity = sev,
                    .has_cvss = sev != SW_SEV_UNKNOWN,
                    .cvss = 2.0 + 2.0 * (double)sev,
                    .status = SW_STATUS_ACTIVE,
                    .scan_time = 1795900000000000LL,
                    .shape = SW_SHAPE_MDVM};
    assert_true(sw_finding_to_json(&f, out));
}

void nt_fill_outbox(sw_state *st, const char *registry, const char *repo_prefix, int n_images,
                    int n_findings, const char *title_base)
{
    sw_err err;
    sw_state_engine_opts o = {.scan_quiet_us = 300 * SW_US_PER_SEC,
                              .semantics = SW_RESCAN_AUTO,
                              .first_scan = SW_FIRST_SCAN_NOTIFY,
                              .baseline_until = SW_TIME_UNSET,
                              .diff_basis = SW_DIFF_BASIS_DIGEST};
    sw_state_engine *e = sw_state_engine_new(st, &o, &err);
    if (e == NULL) {
        fail_msg("engine: %s", err.msg);
    }
    static int offset = 0;
    for (int im = 0; im < n_images; im++) {
        char repo[256], digest[128], image[512], repository[512], key[128], title[4096];
        snprintf(repo, sizeof repo, "%s%d", repo_prefix, im);
        snprintf(digest, sizeof digest, "sha256:%064x", im + 1);
        snprintf(image, sizeof image, "%s/%s@%s", registry, repo, digest);
        snprintf(repository, sizeof repository, "%s/%s", registry, repo);
        const char *tags[] = {"1.0", "latest"};
        for (int i = 0; i < n_findings; i++) {
            sw_buf j;
            sw_buf_init(&j, 0);
            snprintf(title, sizeof title, "%.4000s %d", title_base, i);
            sw_severity sev = sev_cycle[i % 5];
            nt_finding_json(&j, registry, repo, digest, i, title, sev, i % 2 == 0);
            char vuln[64];
            snprintf(vuln, sizeof vuln, "CVE-2026-%05d", i);
            snprintf(key, sizeof key, "%s:libexample%d", vuln, i % 7);
            char off[32];
            snprintf(off, sizeof off, "%d", offset++);
            sw_state_pos pos = {.partition = "0",
                                .offset = off,
                                .sequence = offset,
                                .enqueued = 1795900000000000LL + offset};
            sw_state_record r = {.image = image,
                                 .repository = repository,
                                 .tags = tags,
                                 .n_tags = 2,
                                 .key = key,
                                 .scan_time = 1795900000000000LL,
                                 .finding_json = j.data,
                                 .finding_len = j.len};
            if (!sw_state_engine_add(e, &pos, &r, &err) ||
                !sw_state_engine_event_done(e, &pos, &err)) {
                fail_msg("engine add: %s", err.msg);
            }
            sw_buf_free(&j);
        }
    }
    if (!sw_state_engine_close_all(e, &err) || !sw_state_engine_commit(e, &err)) {
        fail_msg("engine commit: %s", err.msg);
    }
    sw_state_engine_free(e);
}

static bool count_outbox(void *ctx, uint64_t seq, const char *json, size_t len)
{
    (void)seq;
    (void)json;
    (void)len;
    (*(unsigned long *)ctx)++;
    return true;
}

unsigned long nt_outbox_count(sw_state *st)
{
    unsigned long n = 0;
    sw_err err;
    assert_true(sw_state_outbox_iter(st, 0, count_outbox, &n, &err));
    return n;
}

static bool count_kv(void *ctx, const void *k, size_t kl, const void *v, size_t vl)
{
    (void)k;
    (void)kl;
    (void)v;
    (void)vl;
    (*(unsigned long *)ctx)++;
    return true;
}

unsigned long nt_kv_count(sw_state *st, const char *prefix)
{
    unsigned long n = 0;
    sw_err err;
    assert_true(sw_state_kv_iter_prefix(st, prefix, strlen(prefix), count_kv, &n, &err));
    return n;
}
