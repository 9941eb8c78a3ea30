/*
 * scanwatch notify [--state DIR] [--follow] [--flush-digests] [--timeout DURATION]
 *
 * Delivers the outbox of a state directory with the configured routes and
 * sink, then exits (the service runs the same notifier in-process). With
 * --follow it keeps delivering until SIGTERM/SIGINT. --flush-digests sends
 * pending digests now instead of waiting for digest_interval.
 * Exit status: 0 drained, 1 delivery or state error (or timeout), 2 usage.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "scanwatch/log.h"
#include "scanwatch/notify.h"
#include "scanwatch/state.h"

static atomic_int stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&stop_flag, 1);
}

int sw_cmd_notify(sw_config *cfg, int argc, char **argv)
{
    bool follow = false, flush = false;
    int64_t timeout = 600 * SW_US_PER_SEC;
    sw_err err;
    sw_err_clear(&err);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--follow") == 0) {
            follow = true;
        } else if (strcmp(a, "--flush-digests") == 0) {
            flush = true;
        } else if (strcmp(a, "--state") == 0 && i + 1 < argc) {
            if (!sw_config_set(cfg, SW_CFG_STATE_DIR, argv[++i], SW_SRC_FLAG, &err)) {
                fprintf(stderr, "scanwatch notify: %s\n", err.msg);
                return SW_EXIT_USAGE;
            }
        } else if (strcmp(a, "--timeout") == 0 && i + 1 < argc) {
            if (!sw_duration_parse(argv[++i], &timeout) || timeout <= 0) {
                fprintf(stderr, "scanwatch notify: --timeout: '%s' is not a duration\n", argv[i]);
                return SW_EXIT_USAGE;
            }
        } else {
            fprintf(stderr, "usage: scanwatch notify [--state DIR] [--follow] [--flush-digests] "
                            "[--timeout DURATION]\n");
            return SW_EXIT_USAGE;
        }
    }
    sw_state_opts so;
    sw_state_opts_from_config(&so, cfg);
    sw_state *st = sw_state_open(&so, &err);
    if (st == NULL) {
        fprintf(stderr, "scanwatch notify: %s\n", err.msg);
        return SW_EXIT_FAIL;
    }
    sw_notifier *n = sw_notify_new(cfg, st, &err);
    if (n == NULL) {
        fprintf(stderr, "scanwatch notify: %s\n", err.msg);
        sw_state_close(st);
        return err.code == SW_E_CONFIG ? SW_EXIT_USAGE : SW_EXIT_FAIL;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    bool ok =
        follow ? sw_notify_run(n, &stop_flag, &err) : sw_notify_drain(n, timeout, flush, &err);
    sw_notify_stats stats;
    sw_notify_stats_get(n, &stats);
    sw_notify_free(n);
    sw_state_close(st);
    fprintf(stderr,
            "scanwatch notify: %llu diff records, %llu mails queued, %llu sent (%s), %llu "
            "retries, %llu dead-lettered\n",
            (unsigned long long)stats.diffs, (unsigned long long)stats.mails_queued,
            (unsigned long long)stats.mails_sent, stats.sink, (unsigned long long)stats.retries,
            (unsigned long long)stats.dead);
    if (!ok) {
        sw_err_name_state_dir(&err, cfg);
        fprintf(stderr, "scanwatch notify: %s\n", err.msg);
        return SW_EXIT_FAIL;
    }
    return SW_EXIT_OK;
}
