/* sw-gen: writes a deterministic Defender export stream as NDJSON (see --help). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "gen.h"

static bool write_line(void *ctx, const char *body, size_t len)
{
    FILE *out = ctx;
    return fwrite(body, 1, len, out) == len && putc('\n', out) != EOF;
}

/* "<enqueued time>\t<body>\n": scanwatch-emulator --load-format timed. */
static bool write_timed_line(void *ctx, sw_time_us enqueued, const char *body, size_t len)
{
    FILE *out = ctx;
    char t[SW_TIME_BUF];
    sw_time_format(enqueued, t, sizeof t);
    return fputs(t, out) != EOF && putc('\t', out) != EOF && write_line(ctx, body, len);
}

int main(int argc, char **argv)
{
    sw_gen_opts o;
    sw_gen_opts_default(&o);
    const char *path = NULL;
    bool help = false;
    sw_err err;
    sw_err_clear(&err);
    if (!sw_gen_parse_args(&o, argc, argv, &path, &help, &err)) {
        fprintf(stderr, "sw-gen: %s\n", err.msg);
        return 2;
    }
    if (help) {
        fputs(sw_gen_usage, stdout);
        return 0;
    }
    FILE *out = stdout;
    if (path != NULL && strcmp(path, "-") != 0) {
        out = fopen(path, "wb");
        if (out == NULL) {
            fprintf(stderr, "sw-gen: cannot open %s: %s\n", path, strerror(errno));
            return 1;
        }
    }
    sw_gen_counts counts;
    bool ok = o.emit_enqueued ? sw_gen_run_timed(&o, write_timed_line, out, &counts, &err)
                              : sw_gen_run(&o, write_line, out, &counts, &err);
    bool write_ok = !ferror(out) && fflush(out) == 0;
    if (out != stdout) {
        write_ok = fclose(out) == 0 && write_ok;
    }
    if (!ok || !write_ok) {
        fprintf(stderr, "sw-gen: %s\n", ok ? "write failed" : err.msg);
        return ok || err.code != SW_E_INVALID_ARG ? 1 : 2;
    }
    return 0;
}
