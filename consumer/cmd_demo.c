/*
 * scanwatch demo [STREAM.ndjson]
 *
 * The main job on embedded defaults, end to end and on loopback only: starts
 * the bundled Event Hubs emulator on an ephemeral port with the bundled
 * Defender stream published over 4 partitions, runs the service against it
 * with the dir: mail sink until every partition is read and every mail is
 * written, stops the emulator, and prints what was mailed.
 *
 * Everything it writes goes under ./scanwatch-demo/ (state, mail, the diff
 * log, an HTML copy of the first mail), which each run starts afresh.
 * Settings given on the command line override the demo's defaults.
 */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "commands.h"
#include "scanwatch/buf.h"
#include "scanwatch/finding.h"
#include "scanwatch/log.h"
#include "service.h"

#ifndef SW_DEMO_STREAM
#define SW_DEMO_STREAM "tests/data/demo-stream.ndjson"
#endif
#define SW_DEMO_STREAM_INSTALLED "/usr/share/scanwatch/demo-stream.ndjson"
#define DEMO_DIR "scanwatch-demo"
#define DEMO_HUB "defender-export"
#define READY_TIMEOUT_MS 15000

extern char **environ;

typedef struct emulator {
    pid_t pid;
    int port;
} emulator;

static bool exists(const char *path)
{
    return access(path, R_OK) == 0;
}

/* Next to this binary (installed) or in the build tree's emulator/ folder. */
static bool find_emulator(char *out, size_t size)
{
    char self[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0) {
        return false;
    }
    self[len] = '\0';
    char *slash = strrchr(self, '/');
    if (slash == NULL) {
        return false;
    }
    *slash = '\0';
    static const char *const rel[] = {"/scanwatch-emulator", "/../emulator/scanwatch-emulator"};
    for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
        int n = snprintf(out, size, "%s%s", self, rel[i]);
        if (n > 0 && (size_t)n < size && access(out, X_OK) == 0) {
            return true;
        }
    }
    return false;
}

static bool start_emulator(const char *bin, const char *stream, emulator *em, sw_err *err)
{
    int out[2];
    if (pipe(out) != 0) {
        return sw_err_set(err, SW_E_IO, "pipe: %s", strerror(errno));
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, DEMO_DIR "/emulator.log",
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    char *argv[] = {(char *)bin,      "--port",       "0",          "--hub",
                    DEMO_HUB ":4",    "--load",       (char *)stream, "--no-control-stdin",
                    "--log-level",    "warn",         NULL};
    int rc = posix_spawn(&em->pid, bin, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(out[1]);
    if (rc != 0) {
        close(out[0]);
        return sw_err_set(err, SW_E_IO, "cannot start %s: %s", bin, strerror(rc));
    }
    /* The emulator prints "ready port=P ..." once it accepts connections. */
    char line[256];
    size_t len = 0;
    struct pollfd pfd = {.fd = out[0], .events = POLLIN};
    while (len < sizeof line - 1 && poll(&pfd, 1, READY_TIMEOUT_MS) > 0) {
        ssize_t r = read(out[0], line + len, 1);
        if (r <= 0 || line[len] == '\n') {
            break;
        }
        len++;
    }
    line[len] = '\0';
    close(out[0]);
    char *p = strstr(line, "ready port=");
    char *end = NULL;
    long port = p != NULL ? strtol(p + 11, &end, 10) : 0;
    if (port <= 0 || port > 65535) {
        kill(em->pid, SIGKILL);
        waitpid(em->pid, NULL, 0);
        return sw_err_set(err, SW_E_IO, "the emulator did not start (see %s/emulator.log)",
                          DEMO_DIR);
    }
    em->port = (int)port;
    return true;
}

static void stop_emulator(emulator *em)
{
    if (em->pid > 0) {
        kill(em->pid, SIGTERM);
        waitpid(em->pid, NULL, 0);
        em->pid = 0;
    }
}


/* Demo defaults, unless the user gave the setting. */
static bool demo_default(sw_config *cfg, sw_cfg_id id, const char *value, sw_err *err)
{
    return sw_cfg_is_set(cfg, id) || sw_config_set(cfg, id, value, SW_SRC_CODE, err);
}

static bool configure(sw_config *cfg, int port, sw_err *err)
{
    char cs[256];
    snprintf(cs, sizeof cs,
             "Endpoint=sb://127.0.0.1:%d;SharedAccessKeyName=RootManageSharedAccessKey;"
             "SharedAccessKey=SAS_KEY_VALUE;EntityPath=%s;UseDevelopmentEmulator=true",
             port, DEMO_HUB);
    /* The demo stream's scans are a day apart; a short quiet time ends the
     * last window seconds after the stream is read instead of minutes. */
    return sw_config_set(cfg, SW_CFG_CONNECTION_STRING, cs, SW_SRC_CODE, err) &&
           demo_default(cfg, SW_CFG_STATE_DIR, DEMO_DIR "/state", err) &&
           demo_default(cfg, SW_CFG_MAIL_SINK, "dir:" DEMO_DIR "/mail", err) &&
           demo_default(cfg, SW_CFG_MAIL_TO, "security-team@contoso.example", err) &&
           demo_default(cfg, SW_CFG_MAIL_RATE, "6000", err) &&
           demo_default(cfg, SW_CFG_DIFF_LOG, DEMO_DIR "/diffs.ndjson", err) &&
           demo_default(cfg, SW_CFG_SCAN_QUIET, "2s", err) &&
           demo_default(cfg, SW_CFG_METRICS_PORT, "-1", err) &&
           demo_default(cfg, SW_CFG_PROGRESS_INTERVAL, "0", err) &&
           demo_default(cfg, SW_CFG_LAG_POLL_INTERVAL, "200ms", err);
}

typedef struct tally {
    size_t images;
    char **seen;
    size_t diffs;
    size_t by_sev[SW_SEV_COUNT];
    size_t resolved;
} tally;

static void count_diff(tally *t, const cJSON *rec)
{
    const cJSON *image = cJSON_GetObjectItemCaseSensitive(rec, "image");
    if (!cJSON_IsString(image)) {
        return;
    }
    t->diffs++;
    bool seen = false;
    for (size_t i = 0; i < t->images && !seen; i++) {
        seen = strcmp(t->seen[i], image->valuestring) == 0;
    }
    if (!seen) {
        char **grown = realloc(t->seen, (t->images + 1) * sizeof *grown);
        if (grown != NULL) {
            t->seen = grown;
            t->seen[t->images] = strdup(image->valuestring);
            t->images += t->seen[t->images] != NULL ? 1 : 0;
        }
    }
    const cJSON *f;
    cJSON_ArrayForEach(f, cJSON_GetObjectItemCaseSensitive(rec, "new"))
    {
        const cJSON *sev = cJSON_GetObjectItemCaseSensitive(f, "severity");
        if (cJSON_IsString(sev)) {
            t->by_sev[sw_severity_parse(sev->valuestring, strlen(sev->valuestring))]++;
        }
    }
    t->resolved += (size_t)cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(rec, "resolved"));
}

static void tally_diff_log(const char *path, tally *t)
{
    FILE *fp = fopen(path, "r");
    if (fp == NULL) {
        return;
    }
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, fp) > 0) {
        cJSON *rec = cJSON_Parse(line);
        if (rec != NULL) {
            count_diff(t, rec);
        }
        cJSON_Delete(rec);
    }
    free(line);
    fclose(fp);
}

/* Mail files are named so that they sort by time; returns the count and the first. */
static size_t list_mails(const char *dir, char *first, size_t size)
{
    DIR *d = opendir(dir);
    size_t n = 0;
    first[0] = '\0';
    if (d == NULL) {
        return 0;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len > 5 && strcmp(e->d_name + len - 5, ".json") == 0) {
            n++;
            if (first[0] == '\0' || strcmp(e->d_name, first) < 0) {
                snprintf(first, size, "%s", e->d_name);
            }
        }
    }
    closedir(d);
    return n;
}

/* The first mail's HTML body, for a browser. */
static bool write_example_html(const char *mail_path, const char *html_path)
{
    FILE *fp = fopen(mail_path, "r");
    if (fp == NULL) {
        return false;
    }
    sw_buf b;
    sw_buf_init(&b, 8 * 1024 * 1024);
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, fp)) > 0) {
        sw_buf_append(&b, chunk, n);
    }
    fclose(fp);
    cJSON *req = b.data != NULL ? cJSON_Parse(b.data) : NULL;
    sw_buf_free(&b);
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(req, "message"), "body"),
        "content");
    bool ok = false;
    FILE *out = cJSON_IsString(content) ? fopen(html_path, "w") : NULL;
    if (out != NULL) {
        ok = fputs(content->valuestring, out) >= 0;
        ok = fclose(out) == 0 && ok;
    }
    cJSON_Delete(req);
    return ok;
}

static void print_summary(const sw_config *cfg, const sw_service_summary *sum)
{
    tally t;
    memset(&t, 0, sizeof t);
    tally_diff_log(sw_cfg_str(cfg, SW_CFG_DIFF_LOG), &t);
    const char *sink = sw_cfg_str(cfg, SW_CFG_MAIL_SINK);
    const char *mail_dir = strncmp(sink, "dir:", 4) == 0 ? sink + 4 : NULL;
    char first[NAME_MAX + 1] = "";
    size_t mails = mail_dir != NULL ? list_mails(mail_dir, first, sizeof first) : 0;

    printf("\nscanwatch demo: read %llu events (%llu findings, %llu bad events dead-lettered) "
           "from a local Event Hub of 4 partitions\n",
           (unsigned long long)sum->events, (unsigned long long)sum->findings,
           (unsigned long long)sum->bad_events);
    printf("  images with changes: %zu, rescans applied: %llu, diff records: %zu\n", t.images,
           (unsigned long long)sum->windows_applied, t.diffs);
    printf("  new findings: %llu (Critical %zu, High %zu, Medium %zu, Low %zu, Unknown %zu), "
           "resolved: %zu\n",
           (unsigned long long)sum->new_findings, t.by_sev[SW_SEV_CRITICAL], t.by_sev[SW_SEV_HIGH],
           t.by_sev[SW_SEV_MEDIUM], t.by_sev[SW_SEV_LOW], t.by_sev[SW_SEV_UNKNOWN], t.resolved);
    if (mail_dir != NULL) {
        printf("  mails written: %zu, in %s/ (each file is the exact Microsoft Graph sendMail "
               "request)\n",
               mails, mail_dir);
    } else {
        printf("  mails sent: %llu (sink %s)\n", (unsigned long long)sum->mails_sent, sink);
    }
    if (mail_dir != NULL && first[0] != '\0') {
        char mail_path[PATH_MAX + NAME_MAX + 2];
        const char *html_path = DEMO_DIR "/example-mail.html";
        snprintf(mail_path, sizeof mail_path, "%s/%s", mail_dir, first);
        if (write_example_html(mail_path, html_path)) {
            printf("  open the first mail in a browser: %s (its HTML body; the request is %s)\n",
                   html_path, mail_path);
        }
    }
    printf("  diff records as JSON lines: %s; state: %s (try: scanwatch state images --state "
           "%s)\n",
           sw_cfg_str(cfg, SW_CFG_DIFF_LOG), sw_cfg_str(cfg, SW_CFG_STATE_DIR),
           sw_cfg_str(cfg, SW_CFG_STATE_DIR));
    for (size_t i = 0; i < t.images; i++) {
        free(t.seen[i]);
    }
    free(t.seen);
}

int sw_cmd_demo(sw_config *cfg, int argc, char **argv)
{
    if (argc > 2) {
        fprintf(stderr, "usage: scanwatch demo [STREAM.ndjson]\n");
        return SW_EXIT_USAGE;
    }
    const char *stream = argc == 2                       ? argv[1]
                         : exists(SW_DEMO_STREAM)        ? SW_DEMO_STREAM
                         : exists(SW_DEMO_STREAM_INSTALLED) ? SW_DEMO_STREAM_INSTALLED
                                                            : NULL;
    if (stream == NULL || !exists(stream)) {
        fprintf(stderr, "scanwatch demo: cannot read the sample stream %s\n",
                stream != NULL ? stream : SW_DEMO_STREAM);
        return SW_EXIT_FAIL;
    }
    char bin[PATH_MAX];
    if (!find_emulator(bin, sizeof bin)) {
        fprintf(stderr, "scanwatch demo: scanwatch-emulator not found next to scanwatch or in "
                        "the build tree (build it with scripts/build)\n");
        return SW_EXIT_FAIL;
    }
    /* A fresh demo each time: the previous run's state and mails would hide the diffs. */
    sw_remove_tree(DEMO_DIR);
    if (mkdir(DEMO_DIR, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "scanwatch demo: cannot create %s: %s\n", DEMO_DIR, strerror(errno));
        return SW_EXIT_FAIL;
    }
    if (!sw_cfg_is_set(cfg, SW_CFG_LOG_LEVEL)) {
        sw_log_set_level(SW_LOG_ERROR); /* bad events are counted in the summary */
    }
    printf("scanwatch demo: starting a local Event Hubs emulator with %s ...\n", stream);
    fflush(stdout);
    emulator em = {0};
    sw_err err;
    sw_err_clear(&err);
    if (!start_emulator(bin, stream, &em, &err) || !configure(cfg, em.port, &err)) {
        stop_emulator(&em);
        fprintf(stderr, "scanwatch demo: %s\n", err.msg);
        return SW_EXIT_FAIL;
    }
    printf("scanwatch demo: emulator on 127.0.0.1:%d; running the service until every event is "
           "processed and mailed ...\n",
           em.port);
    fflush(stdout);
    sw_install_stop_signals();
    sw_service_opts o;
    sw_service_opts_default(&o);
    o.stop_when_caught_up = true;
    o.drain_outbox = true;
    sw_service_summary sum;
    bool ok = sw_service_run(cfg, &o, &sum, &err);
    stop_emulator(&em);
    if (!ok) {
        fprintf(stderr, "scanwatch demo: %s\n", err.msg);
        return SW_EXIT_FAIL;
    }
    print_summary(cfg, &sum);
    return SW_EXIT_OK;
}
