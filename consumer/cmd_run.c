/*
 * scanwatch run: the service (the default command). SIGTERM / SIGINT stop it
 * gracefully: receiving ends, due windows close, state commits and the
 * notifier stops with the outbox persisted; exit status 0.
 */
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "scanwatch/log.h"
#include "service.h"

static void on_signal(int sig)
{
    (void)sig;
    sw_service_request_stop();
}

void sw_install_stop_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

void sw_err_name_state_dir(sw_err *err, const sw_config *cfg)
{
    if (err->code == SW_E_STATE && strstr(err->msg, "state_dir '") == NULL) {
        sw_err_prefix(err, "state_dir '%s'", sw_cfg_str(cfg, SW_CFG_STATE_DIR));
    }
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void sw_remove_tree(const char *path)
{
    nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int sw_cmd_run(sw_config *cfg, int argc, char **argv)
{
    if (argc > 1) {
        fprintf(stderr, "scanwatch run: unexpected argument '%s' (settings are --name value)\n",
                argv[1]);
        return SW_EXIT_USAGE;
    }
    sw_install_stop_signals();
    sw_service_opts o;
    sw_service_opts_default(&o);
    sw_service_summary sum;
    sw_err err;
    sw_err_clear(&err);
    SW_LOG(SW_LOG_INFO, "scanwatch starting", SW_LF_STR("state_dir", sw_cfg_str(cfg, SW_CFG_STATE_DIR)));
    if (!sw_service_run(cfg, &o, &sum, &err)) {
        sw_err_name_state_dir(&err, cfg);
        SW_LOG_ERR(SW_LOG_ERROR, "scanwatch stopped on an error", &err);
        fprintf(stderr, "scanwatch run: %s\n", err.msg);
        return err.code == SW_E_CONFIG ? SW_EXIT_USAGE : SW_EXIT_FAIL;
    }
    SW_LOG(SW_LOG_INFO, "scanwatch stopped", SW_LF_UINT("events", sum.events),
           SW_LF_UINT("diff_records", sum.diff_records), SW_LF_UINT("mails_sent", sum.mails_sent));
    return SW_EXIT_OK;
}
