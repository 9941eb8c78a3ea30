/* scanwatch: the one binary. Loads settings, then runs a subcommand. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "scanwatch/log.h"
#include "scanwatch/settings.h"

extern char **environ;

struct command {
    const char *name;
    int (*run)(sw_config *cfg, int argc, char **argv);
    const char *usage;
};

static const struct command commands[] = {
    {"run", sw_cmd_run,
     "run                                the service: event hub -> state -> mail (default)"},
    {"replay", sw_cmd_replay,
     "replay --partition P (--from-offset O|--from-time T) [--renotify]   re-read history"},
    {"rebuild", sw_cmd_rebuild,
     "rebuild --partition P              restore a partition's state from the hub, no mail"},
    {"check-config", sw_cmd_check_config,
     "check-config [--json|--markdown]   validate settings and print the effective values"},
    {"demo", sw_cmd_demo,
     "demo [STREAM.ndjson]               decode the bundled sample stream and summarize it"},
    {"decode", sw_cmd_decode,
     "decode [FILE|-]                    NDJSON message bodies in, normalized findings out"},
    {"process", sw_cmd_process,
     "process --state DIR [--diff-log FILE] FILE...   NDJSON bodies -> windows -> state, offline"},
    {"state", sw_cmd_state,
     "state images|show IMAGE|checkpoints|outbox|dead-letter --state DIR [--json]"},
    {"notify", sw_cmd_notify,
     "notify [--state DIR] [--follow] [--flush-digests]   deliver the outbox's mails, then exit"},
    {"send-test-mail", sw_cmd_send_test_mail,
     "send-test-mail --to ADDRESS        check token, permission and mailbox with one mail"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: scanwatch <command> [--setting value ...] [args]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        fprintf(out, "  %s\n", commands[i].usage);
    }
    fprintf(out, "\nEvery setting is also a flag (--scan-quiet 5m); see docs/configuration.md.\n");
}

int main(int argc, char **argv)
{
    const char *name = argc > 1 && argv[1][0] != '-' ? argv[1] : "run";
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
                     strcmp(argv[1], "help") == 0)) {
        usage(stdout);
        return SW_EXIT_OK;
    }
    const struct command *cmd = NULL;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(commands[i].name, name) == 0) {
            cmd = &commands[i];
        }
    }
    if (cmd == NULL) {
        fprintf(stderr, "scanwatch: unknown command '%s'\n\n", name);
        usage(stderr);
        return SW_EXIT_USAGE;
    }

    sw_config *cfg = sw_config_new();
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    if (cfg == NULL || rest == NULL) {
        fprintf(stderr, "scanwatch: out of memory\n");
        return SW_EXIT_FAIL;
    }
    /* Skip the command word so that only settings and command arguments remain. */
    int skip = argc > 1 && argv[1][0] != '-' ? 1 : 0;
    int rest_count = 0;
    sw_err err;
    sw_err_clear(&err);
    rest[rest_count++] = (char *)cmd->name;
    int sub_rest = 0;
    if (!sw_config_load(cfg, argc - skip, argv + skip, environ, rest + 1, &sub_rest, &err)) {
        fprintf(stderr, "scanwatch: %s\n", err.msg);
        sw_config_free(cfg);
        free(rest);
        return SW_EXIT_USAGE;
    }
    rest_count += sub_rest;
    sw_log_level level = SW_LOG_INFO;
    sw_log_level_parse(sw_cfg_str(cfg, SW_CFG_LOG_LEVEL), &level);
    sw_log_set_level(level);

    int rc = cmd->run(cfg, rest_count, rest);
    sw_config_free(cfg);
    free(rest);
    return rc;
}
