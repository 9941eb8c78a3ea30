/*
 * The `scanwatch` subcommands. Each lives in its own cmd_<name>.c and is
 * listed once in main.c's table.
 *
 * A command gets the loaded settings (owned by main) and the arguments that
 * were not setting flags: argv[0] is the command name. It returns the process
 * exit status: 0 success, 1 runtime failure, 2 usage or configuration error.
 */
#ifndef SCANWATCH_COMMANDS_H
#define SCANWATCH_COMMANDS_H

#include "scanwatch/settings.h"

#define SW_EXIT_OK 0
#define SW_EXIT_FAIL 1
#define SW_EXIT_USAGE 2

int sw_cmd_check_config(sw_config *cfg, int argc, char **argv);
int sw_cmd_run(sw_config *cfg, int argc, char **argv);
int sw_cmd_replay(sw_config *cfg, int argc, char **argv);
int sw_cmd_rebuild(sw_config *cfg, int argc, char **argv);
/* SIGTERM/SIGINT request a graceful stop of the service; SIGPIPE is ignored. */
void sw_install_stop_signals(void);
/* A state error (SW_E_STATE) gets "state_dir '<dir>': " in front unless it
 * already names it, so that a fatal disk error says which directory failed. */
void sw_err_name_state_dir(sw_err *err, const sw_config *cfg);
/* Removes a directory tree (the demo's output, replay's scratch state); missing is fine. */
void sw_remove_tree(const char *path);
int sw_cmd_process(sw_config *cfg, int argc, char **argv);
int sw_cmd_state(sw_config *cfg, int argc, char **argv);
int sw_cmd_decode(sw_config *cfg, int argc, char **argv);
int sw_cmd_demo(sw_config *cfg, int argc, char **argv);
int sw_cmd_notify(sw_config *cfg, int argc, char **argv);
int sw_cmd_send_test_mail(sw_config *cfg, int argc, char **argv);

#endif
