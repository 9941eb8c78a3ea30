/*
 * libFuzzer target for the AMQP event path: the input is one AMQP 1.0
 * message as a hub sends it (header, message annotations with
 * x-opt-sequence-number / x-opt-offset / x-opt-enqueued-time /
 * x-opt-partition-key, application properties, and a body of data sections,
 * an amqp-value or an amqp-sequence). It goes the way a delivery goes in
 * `scanwatch run`:
 *   sw_amqp_msg_decode (amqp/message.c)
 *   -> the client's acceptance rules for the annotations (amqp/client.c
 *      on_event_delivery: a sequence number and a non-empty offset shorter
 *      than SW_AMQP_OFFSET_MAX, else the delivery is rejected)
 *   -> the service's oversize rule (consumer/service.c on_event: a body above
 *      max_message_size is dead-lettered with a 64 KiB prefix)
 *   -> sw_pipeline_event (decode -> records into the rescan engine, or the
 *      dead letter) on a real state engine in a temporary directory, with the
 *      event time taken from x-opt-enqueued-time (SW_CLOCK_ENQUEUED), and
 *   -> sw_pipeline_routed_event (the route hub's path) with the same body.
 * The engine commits every 64 events; the state is thrown away and opened
 * again every 2000 events so that disk and memory stay bounded. The sequence
 * number given to the engine is a running counter (the service drops
 * non-increasing ones before the engine; a counter lets every input reach
 * it), the offset is the message's.
 *
 * Invariants: a rejected message names a reason; the pipeline never fails on
 * any event (a bad event is dead-lettered, not an engine failure); commits
 * succeed.
 *
 * Built as fuzz_amqp_event with -DSW_FUZZ=ON (clang); otherwise linked with
 * fuzz_main.c and replays tests/fuzz/corpus/amqp_event as a regression test.
 */
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../amqp/message.h"
#include "pipeline.h"
#include "scanwatch/amqp.h"
#include "scanwatch/log.h"
#include "scanwatch/settings.h"
#include "scanwatch/state.h"
#include "scanwatch/state_engine.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define COMMIT_EVERY 64
#define REOPEN_EVERY 2000

static struct {
    bool ready;
    char dir[256];
    sw_config *cfg;
    sw_state *st;
    sw_state_engine *eng;
    sw_pipeline *pl;
    size_t max_message_size;
    int64_t seq;
    unsigned events;
    sw_buf scratch;
} fz;

static void must(bool cond, const char *what, const sw_err *err)
{
    if (!cond) {
        fprintf(stderr, "fuzz_amqp_event: invariant violated: %s (%s)\n", what,
                err != NULL ? err->msg : "");
        abort();
    }
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void close_state(void)
{
    sw_pipeline_free(fz.pl);
    sw_state_engine_free(fz.eng);
    sw_state_close(fz.st);
    fz.pl = NULL;
    fz.eng = NULL;
    fz.st = NULL;
    if (fz.dir[0] != '\0') {
        nftw(fz.dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        fz.dir[0] = '\0';
    }
}

static void open_state(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(fz.dir, sizeof fz.dir, "%s/sw-fuzz-event-XXXXXX",
             tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
    must(mkdtemp(fz.dir) != NULL, "temporary state directory", NULL);
    sw_err err;
    must(sw_config_set(fz.cfg, SW_CFG_STATE_DIR, fz.dir, SW_SRC_FLAG, &err), "state_dir", &err);
    sw_state_opts so;
    sw_state_opts_from_config(&so, fz.cfg);
    fz.st = sw_state_open(&so, &err);
    must(fz.st != NULL, "state opens", &err);
    sw_state_engine_opts eo;
    sw_state_engine_opts_from_config(&eo, fz.cfg);
    fz.eng = sw_state_engine_new(fz.st, &eo, &err);
    must(fz.eng != NULL, "engine starts", &err);
    fz.pl = sw_pipeline_new(fz.cfg, fz.eng, NULL, SW_CLOCK_ENQUEUED, &err);
    must(fz.pl != NULL, "pipeline starts", &err);
    fz.events = 0;
}

static void teardown(void)
{
    close_state();
    sw_config_free(fz.cfg);
    sw_buf_free(&fz.scratch);
}

static void setup(void)
{
    sw_log_set_level(SW_LOG_OFF); /* a line per bad event would dominate the run time */
    fz.cfg = sw_config_new();
    must(fz.cfg != NULL, "config", NULL);
    sw_err err;
    /* Small limits so that the oversize and window-cap paths are reachable. */
    must(sw_config_set(fz.cfg, SW_CFG_MAX_MESSAGE_SIZE, "65536", SW_SRC_FLAG, &err),
         "max_message_size", &err);
    must(sw_config_set(fz.cfg, SW_CFG_MAX_WINDOW_RECORDS, "50", SW_SRC_FLAG, &err),
         "max_window_records", &err);
    fz.max_message_size = (size_t)sw_cfg_int(fz.cfg, SW_CFG_MAX_MESSAGE_SIZE);
    sw_buf_init(&fz.scratch, 1 << 20);
    open_state();
    atexit(teardown);
    fz.ready = true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fz.ready) {
        setup();
    }
    sw_err err;
    sw_amqp_msg m;
    if (!sw_amqp_msg_decode(data, size, &m, &fz.scratch, &err)) {
        must(err.msg[0] != '\0', "a rejected message names a reason", &err);
        return 0;
    }
    if (!m.has_sequence || m.offset == NULL || m.offset_len == 0 ||
        m.offset_len >= SW_AMQP_OFFSET_MAX) {
        return 0; /* the client rejects it */
    }
    must(!m.has_enqueued || (m.enqueued_ms >= 0 && m.enqueued_ms <= SW_AMQP_MAX_TIME_MS),
         "enqueued time in range", NULL);
    char offset[SW_AMQP_OFFSET_MAX];
    memcpy(offset, m.offset, m.offset_len);
    offset[m.offset_len] = '\0';

    size_t keep = m.body_len;
    size_t oversize = 0;
    if (keep > fz.max_message_size) {
        oversize = keep;
        keep = 64 * 1024;
    }
    /* The service copies the body into its queue: an exact-size copy keeps ASan exact. */
    unsigned char *body = malloc(keep > 0 ? keep : 1);
    if (body == NULL) {
        return 0;
    }
    if (keep > 0) {
        memcpy(body, m.body, keep);
    }
    sw_state_pos pos = {"0", offset, ++fz.seq,
                        m.has_enqueued ? m.enqueued_ms * 1000 : SW_TIME_UNSET};
    must(sw_pipeline_event(fz.pl, &pos, body, keep, oversize, &err), "export event handled", &err);
    sw_state_pos rpos = {"route/0", offset, fz.seq, pos.enqueued};
    must(sw_pipeline_routed_event(fz.pl, &rpos, body, keep, &err), "routed event handled", &err);
    free(body);

    fz.events++;
    if (fz.events % COMMIT_EVERY == 0) {
        must(sw_state_engine_commit(fz.eng, &err), "commit", &err);
    }
    if (fz.events >= REOPEN_EVERY) {
        must(sw_state_engine_close_all(fz.eng, &err) && sw_state_engine_commit(fz.eng, &err),
             "close all windows and commit", &err);
        close_state();
        open_state();
    }
    return 0;
}
