/*
 * scanwatch replay --partition P (--from-offset O | --from-time T) [--renotify]
 * scanwatch rebuild --partition P
 *
 * replay re-reads one partition's history through the normal pipeline and
 * stops when it reaches what the hub held at the start. Without --renotify
 * nothing is mailed twice: findings of applied scans are stale or already in
 * the image's set, so they make no diff. With --renotify the range is
 * processed against a fresh scratch state (under state_dir), so every scan in
 * it is diffed and mailed again as if seen for the first time.
 *
 * rebuild restores a route partition's state after ownership moved: it reads
 * the partition from the earliest retained event with notifications off
 * (events enqueued before the rebuild started never notify), then stops;
 * `scanwatch run` continues live from the checkpoint it leaves.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "commands.h"
#include "scanwatch/log.h"
#include "scanwatch/swtime.h"
#include "service.h"

struct replay_args {
    const char *partition;
    const char *from_offset;
    const char *from_time;
    bool renotify;
};

static int parse(const char *cmd, int argc, char **argv, struct replay_args *a, bool rebuild)
{
    memset(a, 0, sizeof *a);
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--partition") == 0 && v != NULL) {
            a->partition = v;
            i++;
        } else if (!rebuild && strcmp(argv[i], "--from-offset") == 0 && v != NULL) {
            a->from_offset = v;
            i++;
        } else if (!rebuild && strcmp(argv[i], "--from-time") == 0 && v != NULL) {
            a->from_time = v;
            i++;
        } else if (!rebuild && strcmp(argv[i], "--renotify") == 0) {
            a->renotify = true;
        } else {
            fprintf(stderr, "scanwatch %s: unknown or incomplete argument '%s'\n", cmd, argv[i]);
            return SW_EXIT_USAGE;
        }
    }
    if (a->partition == NULL) {
        fprintf(stderr, "scanwatch %s: --partition P is required\n", cmd);
        return SW_EXIT_USAGE;
    }
    if (!rebuild && (a->from_offset == NULL) == (a->from_time == NULL)) {
        fprintf(stderr, "scanwatch replay: give exactly one of --from-offset O or --from-time T\n");
        return SW_EXIT_USAGE;
    }
    sw_time_us t;
    if (a->from_time != NULL && !sw_time_parse(a->from_time, strlen(a->from_time), &t)) {
        fprintf(stderr, "scanwatch replay: --from-time '%s' is not an RFC 3339 time\n",
                a->from_time);
        return SW_EXIT_USAGE;
    }
    return SW_EXIT_OK;
}


static int run_bounded(const char *cmd, sw_config *cfg, const sw_service_opts *o)
{
    sw_install_stop_signals();
    sw_service_summary sum;
    sw_err err;
    sw_err_clear(&err);
    if (!sw_service_run(cfg, o, &sum, &err)) {
        sw_err_name_state_dir(&err, cfg);
        fprintf(stderr, "scanwatch %s: %s\n", cmd, err.msg);
        return err.code == SW_E_CONFIG ? SW_EXIT_USAGE : SW_EXIT_FAIL;
    }
    fprintf(stderr,
            "scanwatch %s: partition %s: %llu events, %llu findings, %llu bad, %llu windows "
            "applied, %llu diff records (%llu new findings), %llu mails sent\n",
            cmd, o->only_partition, (unsigned long long)sum.events,
            (unsigned long long)sum.findings, (unsigned long long)sum.bad_events,
            (unsigned long long)sum.windows_applied, (unsigned long long)sum.diff_records,
            (unsigned long long)sum.new_findings, (unsigned long long)sum.mails_sent);
    return SW_EXIT_OK;
}

int sw_cmd_replay(sw_config *cfg, int argc, char **argv)
{
    struct replay_args a;
    int rc = parse("replay", argc, argv, &a, false);
    if (rc != SW_EXIT_OK) {
        return rc;
    }
    sw_service_opts o;
    sw_service_opts_default(&o);
    o.only_partition = a.partition;
    o.start_after_offset = a.from_offset;
    o.start_override = a.from_time;
    o.stop_when_caught_up = true;
    o.drain_outbox = true;
    if (!a.renotify) {
        return run_bounded("replay", cfg, &o);
    }
    /* A scratch state that has never seen these scans: every scan diffs again. */
    char scratch[4096];
    snprintf(scratch, sizeof scratch, "%s/replay-renotify-%lld", sw_cfg_str(cfg, SW_CFG_STATE_DIR),
             (long long)(sw_time_now() / SW_US_PER_SEC));
    sw_err err;
    if (mkdir(sw_cfg_str(cfg, SW_CFG_STATE_DIR), 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "scanwatch replay: cannot create %s: %s\n",
                sw_cfg_str(cfg, SW_CFG_STATE_DIR), strerror(errno));
        return SW_EXIT_FAIL;
    }
    if (!sw_config_set(cfg, SW_CFG_STATE_DIR, scratch, SW_SRC_CODE, &err) ||
        !sw_config_set(cfg, SW_CFG_FIRST_SCAN, "notify", SW_SRC_CODE, &err)) {
        fprintf(stderr, "scanwatch replay: %s\n", err.msg);
        return SW_EXIT_FAIL;
    }
    SW_LOG(SW_LOG_INFO, "replay with renotify uses a scratch state", SW_LF_STR("dir", scratch));
    rc = run_bounded("replay", cfg, &o);
    sw_remove_tree(scratch);
    return rc;
}

int sw_cmd_rebuild(sw_config *cfg, int argc, char **argv)
{
    struct replay_args a;
    int rc = parse("rebuild", argc, argv, &a, true);
    if (rc != SW_EXIT_OK) {
        return rc;
    }
    sw_service_opts o;
    sw_service_opts_default(&o);
    o.only_partition = a.partition;
    o.start_override = "earliest";
    o.stop_when_caught_up = true;
    o.notify = false;
    o.baseline_until_override = sw_time_now();
    return run_bounded("rebuild", cfg, &o);
}
