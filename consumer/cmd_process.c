/*
 * scanwatch process --state DIR [--diff-log FILE] [settings...] FILE...
 *
 * Offline processing: NDJSON message bodies go through decode -> rescan
 * windows -> state exactly as events of one partition ("offline") would:
 * offset = line number (counted across the files in order), event time = the
 * record's scan time, kept monotonic like a hub's enqueued time: an event's
 * time is the highest scan time seen so far in the input (a record whose scan
 * time lags behind does not pull event time back, so a straggling scan still
 * groups into one window instead of being closed record by record by rule b). Every state_batch_events lines are one atomic commit
 * with the checkpoint; at end of input every open window closes (rule d).
 * A second run resumes after the checkpoint, so running again on the same
 * input, or on a prefix and then the whole input, never writes a diff record
 * twice. Bad lines go to the dead letter with their reason; processing goes on.
 *
 * Exit status: 0 done, 1 runtime failure (state, I/O), 2 usage.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "scanwatch/buf.h"
#include "scanwatch/decode.h"
#include "scanwatch/log.h"
#include "scanwatch/state.h"
#include "pipeline.h"
#include "scanwatch/state_engine.h"

#define SW_PROCESS_PARTITION "offline"

typedef struct proc {
    const sw_config *cfg;
    sw_state_engine *eng;
    sw_pipeline *pl;
    char offset[32];
    uint64_t lineno;
    sw_err err;
    uint64_t lines, resumed_skip;
} proc;

/* Bounded line reader: a longer line is consumed and reported as too long. */
typedef enum { LINE_OK, LINE_TOO_LONG, LINE_EOF, LINE_ERROR } line_status;

static line_status read_line(FILE *in, char *buf, size_t max, size_t *len, size_t *full)
{
    size_t n = 0, total = 0;
    int ch;
    bool any = false;
    while ((ch = getc_unlocked(in)) != EOF) {
        any = true;
        if (ch == '\n') {
            break;
        }
        if (n < max) {
            buf[n++] = (char)ch;
        }
        total++;
    }
    if (ferror(in)) {
        return LINE_ERROR;
    }
    if (!any) {
        return LINE_EOF;
    }
    if (total == n && n > 0 && buf[n - 1] == '\r') {
        n--;
        total--;
    }
    *len = n;
    *full = total;
    return total > max ? LINE_TOO_LONG : LINE_OK;
}

static bool blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') {
            return false;
        }
    }
    return true;
}

/* One line = one event (offset = line number); a line longer than
 * max_message_size is dead-lettered with its first bytes. */
static bool process_line(proc *p, const char *line, size_t len, size_t full, line_status ls)
{
    snprintf(p->offset, sizeof p->offset, "%" PRIu64, p->lineno);
    sw_state_pos pos = {SW_PROCESS_PARTITION, p->offset, (int64_t)p->lineno, SW_TIME_UNSET};
    return sw_pipeline_event(p->pl, &pos, line, len, ls == LINE_TOO_LONG ? full : 0, &p->err);
}

static int process_file(proc *p, FILE *in, const char *name, uint64_t resume_after, size_t batch,
                        char *buf, size_t max)
{
    for (;;) {
        size_t len = 0, full = 0;
        line_status ls = read_line(in, buf, max, &len, &full);
        if (ls == LINE_EOF) {
            return SW_EXIT_OK;
        }
        if (ls == LINE_ERROR) {
            fprintf(stderr, "scanwatch process: cannot read %s: %s\n", name, strerror(errno));
            return SW_EXIT_FAIL;
        }
        p->lineno++;
        if (p->lineno <= resume_after) {
            p->resumed_skip++;
            continue;
        }
        p->lines++;
        if (ls == LINE_OK && blank(buf, len)) {
            continue;
        }
        if (!process_line(p, buf, len, full, ls)) {
            sw_err_name_state_dir(&p->err, p->cfg);
            fprintf(stderr, "scanwatch process: %s line %" PRIu64 ": %s\n", name, p->lineno,
                    p->err.msg);
            return SW_EXIT_FAIL;
        }
        if (sw_state_engine_pending_events(p->eng) >= batch &&
            !sw_state_engine_commit(p->eng, &p->err)) {
            sw_err_name_state_dir(&p->err, p->cfg);
            fprintf(stderr, "scanwatch process: %s\n", p->err.msg);
            return SW_EXIT_FAIL;
        }
    }
}

static void summary(const proc *p, const sw_state_engine_stats *s)
{
    const sw_decode_stats *ds = sw_pipeline_stats(p->pl);
    fprintf(stderr,
            "processed %" PRIu64 " lines (%" PRIu64 " already done), %" PRIu64 " findings, %" PRIu64
            " bad events\n"
            "windows: %" PRIu64 " applied (%" PRIu64 " capped), %" PRIu64
            " stale findings ignored\n"
            "diff records: %" PRIu64 " (%" PRIu64 " new, %" PRIu64 " resolved findings), %" PRIu64
            " silent\n",
            p->lines, p->resumed_skip, ds->findings, ds->bad, s->windows_applied, s->windows_capped,
            s->stale, s->diff_records, s->new_findings, s->resolved_findings, s->silent_applies);
}

/* --state DIR / --state=DIR, as the issue names it (the setting is state_dir). */
static int parse_args(sw_config *cfg, int argc, char **argv, char **files, int *n_files)
{
    *n_files = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *dir = NULL;
        if (strcmp(a, "--state") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "scanwatch process: --state needs a directory\n");
                return SW_EXIT_USAGE;
            }
            dir = argv[++i];
        } else if (strncmp(a, "--state=", 8) == 0) {
            dir = a + 8;
        } else if (a[0] == '-' && a[1] == '-') {
            fprintf(stderr, "scanwatch process: unknown option '%s'\n", a);
            return SW_EXIT_USAGE;
        } else {
            files[(*n_files)++] = argv[i];
            continue;
        }
        sw_err err;
        if (!sw_config_set(cfg, SW_CFG_STATE_DIR, dir, SW_SRC_FLAG, &err)) {
            fprintf(stderr, "scanwatch process: %s\n", err.msg);
            return SW_EXIT_USAGE;
        }
    }
    if (*n_files == 0) {
        fprintf(stderr, "usage: scanwatch process --state DIR [--diff-log FILE] [settings...] "
                        "FILE...\n");
        return SW_EXIT_USAGE;
    }
    return SW_EXIT_OK;
}

int sw_cmd_process(sw_config *cfg, int argc, char **argv)
{
    char **files = calloc((size_t)argc + 1, sizeof *files);
    int n_files = 0;
    if (files == NULL) {
        return SW_EXIT_FAIL;
    }
    int rc = parse_args(cfg, argc, argv, files, &n_files);
    if (rc != SW_EXIT_OK) {
        free(files);
        return rc;
    }
    sw_err err;
    sw_state_opts so;
    sw_state_opts_from_config(&so, cfg);
    sw_state *st = sw_state_open(&so, &err);
    if (st == NULL) {
        fprintf(stderr, "scanwatch process: %s\n", err.msg);
        free(files);
        return SW_EXIT_FAIL;
    }
    sw_state_engine_opts eo;
    sw_state_engine_opts_from_config(&eo, cfg);
    proc p;
    memset(&p, 0, sizeof p);
    p.cfg = cfg;
    size_t max_body = (size_t)sw_cfg_int(cfg, SW_CFG_MAX_MESSAGE_SIZE);
    p.eng = sw_state_engine_new(st, &eo, &err);
    p.pl = p.eng != NULL ? sw_pipeline_new(cfg, p.eng, NULL, SW_CLOCK_SCAN_TIME, &err) : NULL;
    char *buf = malloc(max_body);
    sw_state_checkpoint cp;
    bool found = false;
    uint64_t dropped = 0;
    if (p.eng == NULL || p.pl == NULL || buf == NULL ||
        !sw_state_checkpoint_get(st, SW_PROCESS_PARTITION, &cp, &found, &err) ||
        !sw_state_engine_sweep(p.eng, sw_time_now(), sw_cfg_int(cfg, SW_CFG_IMAGE_TTL), &dropped,
                               &err)) {
        sw_err_name_state_dir(&err, cfg);
        fprintf(stderr, "scanwatch process: %s\n", buf == NULL ? "out of memory" : err.msg);
        rc = SW_EXIT_FAIL;
        goto out;
    }
    if (dropped > 0) {
        SW_LOG(SW_LOG_INFO, "dropped images past image_ttl", SW_LF_UINT("images", dropped));
    }
    uint64_t resume_after = 0;
    if (found) {
        char *end = NULL;
        errno = 0;
        unsigned long long v = strtoull(cp.offset, &end, 10);
        if (errno != 0 || end == cp.offset || *end != '\0') {
            fprintf(stderr, "scanwatch process: checkpoint offset '%s' is not a line number\n",
                    cp.offset);
            rc = SW_EXIT_FAIL;
            goto out;
        }
        resume_after = v;
        /* The partition clock continues where the checkpoint left it. */
        sw_pipeline_set_clock(p.pl, cp.max_event_time);
    }
    size_t batch = (size_t)sw_cfg_int(cfg, SW_CFG_STATE_BATCH_EVENTS);
    for (int i = 0; i < n_files && rc == SW_EXIT_OK; i++) {
        bool is_stdin = strcmp(files[i], "-") == 0;
        FILE *in = is_stdin ? stdin : fopen(files[i], "rb");
        if (in == NULL) {
            fprintf(stderr, "scanwatch process: cannot open %s: %s\n", files[i], strerror(errno));
            rc = SW_EXIT_FAIL;
            break;
        }
        rc = process_file(&p, in, is_stdin ? "stdin" : files[i], resume_after, batch, buf,
                          max_body);
        if (!is_stdin) {
            fclose(in);
        }
    }
    if (rc == SW_EXIT_OK &&
        (!sw_state_engine_close_all(p.eng, &err) || !sw_state_engine_commit(p.eng, &err))) {
        sw_err_name_state_dir(&err, cfg);
        fprintf(stderr, "scanwatch process: %s\n", err.msg);
        rc = SW_EXIT_FAIL;
    }
    if (rc == SW_EXIT_OK) {
        sw_state_engine_stats s;
        sw_state_engine_get_stats(p.eng, &s);
        summary(&p, &s);
    }
out:
    free(buf);
    sw_pipeline_free(p.pl);
    sw_state_engine_free(p.eng);
    sw_state_close(st);
    free(files);
    return rc;
}
