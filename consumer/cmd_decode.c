/*
 * scanwatch decode [FILE|-]: one Event Hub message body per line (NDJSON) in,
 * one normalized finding per line (sw_finding_to_json) out on stdout. Each bad
 * line is logged once (line number and reason); a summary goes to stderr.
 * Blank lines are not events and are passed over.
 *
 * Exit status: 0 when the input was read to its end (bad events included),
 * 1 when it cannot be opened or read or stdout fails, 2 on usage errors.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "scanwatch/buf.h"
#include "scanwatch/decode.h"
#include "scanwatch/log.h"

/*
 * Reads lines of at most `max` bytes; a longer line is consumed to its end
 * and reported as too long, so one huge line never costs more than `max`.
 */
typedef struct line_reader {
    FILE *in;
    char *buf;
    size_t max;
} line_reader;

typedef enum { LINE_OK, LINE_TOO_LONG, LINE_EOF, LINE_ERROR } line_status;

static line_status read_line(line_reader *r, size_t *len, size_t *full_len)
{
    size_t n = 0, total = 0;
    int ch;
    bool any = false;
    while ((ch = getc_unlocked(r->in)) != EOF) {
        any = true;
        if (ch == '\n') {
            break;
        }
        if (n < r->max) {
            r->buf[n++] = (char)ch;
        }
        total++;
    }
    if (ferror(r->in)) {
        return LINE_ERROR;
    }
    if (!any) {
        return LINE_EOF;
    }
    if (total == n && n > 0 && r->buf[n - 1] == '\r') {
        n--;
        total--;
    }
    *len = n;
    *full_len = total;
    return total > r->max ? LINE_TOO_LONG : LINE_OK;
}

typedef struct out_ctx {
    sw_buf line;
    bool write_failed;
} out_ctx;

static bool print_finding(void *ctx, const sw_finding *f)
{
    out_ctx *o = ctx;
    sw_buf_reset(&o->line);
    if (!sw_finding_to_json(f, &o->line) || !sw_buf_append_char(&o->line, '\n')) {
        o->write_failed = true;
        return false;
    }
    if (fwrite(o->line.data, 1, o->line.len, stdout) != o->line.len) {
        o->write_failed = true;
        return false;
    }
    return true;
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

static int decode_stream(sw_config *cfg, FILE *in, const char *name)
{
    sw_decode_opts opts;
    sw_decode_opts_from_config(&opts, cfg);
    sw_err err;
    sw_decoder *d = sw_decoder_new(&opts, &err);
    line_reader r = {.in = in, .max = opts.max_message_size, .buf = malloc(opts.max_message_size)};
    if (d == NULL || r.buf == NULL) {
        fprintf(stderr, "scanwatch decode: %s\n", d == NULL ? err.msg : "out of memory");
        sw_decoder_free(d);
        free(r.buf);
        return SW_EXIT_FAIL;
    }
    out_ctx out = {.write_failed = false};
    sw_buf_init(&out.line, 0);
    sw_decode_stats stats;
    memset(&stats, 0, sizeof stats);
    sw_decode_result res;
    int rc = SW_EXIT_OK;
    for (unsigned long long lineno = 1;; lineno++) {
        size_t len = 0, full = 0;
        line_status st = read_line(&r, &len, &full);
        if (st == LINE_EOF) {
            break;
        }
        if (st == LINE_ERROR) {
            fprintf(stderr, "scanwatch decode: cannot read %s: %s\n", name, strerror(errno));
            rc = SW_EXIT_FAIL;
            break;
        }
        if (st == LINE_OK && blank(r.buf, len)) {
            continue;
        }
        bool ok;
        if (st == LINE_TOO_LONG) {
            memset(&res, 0, sizeof res);
            res.bad = SW_DECODE_BAD_TOO_LARGE;
            sw_err_set(&err, SW_E_TOO_LARGE, "body of %zu bytes exceeds max_message_size (%zu)",
                       full, opts.max_message_size);
            ok = false;
        } else {
            ok = sw_decode_body(d, r.buf, len, print_finding, &out, &res, &err);
        }
        if (out.write_failed) {
            fprintf(stderr, "scanwatch decode: cannot write to stdout\n");
            rc = SW_EXIT_FAIL;
            break;
        }
        sw_decode_stats_add(&stats, &res, ok);
        if (!ok) {
            SW_LOG(SW_LOG_WARN, "bad event", SW_LF_STR("input", name), SW_LF_UINT("line", lineno),
                   SW_LF_STR("reason", sw_decode_bad_name(res.bad)), SW_LF_STR("error", err.msg));
        }
    }
    if (fflush(stdout) != 0 && rc == SW_EXIT_OK) {
        fprintf(stderr, "scanwatch decode: cannot write to stdout\n");
        rc = SW_EXIT_FAIL;
    }
    sw_decode_stats_print(&stats, stderr);
    sw_buf_free(&out.line);
    sw_decoder_free(d);
    free(r.buf);
    return rc;
}

int sw_cmd_decode(sw_config *cfg, int argc, char **argv)
{
    if (argc > 2) {
        fprintf(stderr, "usage: scanwatch decode [FILE|-]\n");
        return SW_EXIT_USAGE;
    }
    const char *path = argc == 2 ? argv[1] : "-";
    if (strcmp(path, "-") == 0) {
        return decode_stream(cfg, stdin, "stdin");
    }
    FILE *in = fopen(path, "rb");
    if (in == NULL) {
        fprintf(stderr, "scanwatch decode: cannot open %s: %s\n", path, strerror(errno));
        return SW_EXIT_FAIL;
    }
    int rc = decode_stream(cfg, in, path);
    fclose(in);
    return rc;
}
