/*
 * scanwatch check-config: validate every source, print the effective settings (secrets masked),
 * then check them as `run` does before it connects (connection string, Entra ID and Graph URLs,
 * recipients, mail sink). Each problem goes to stderr naming its setting; exit 2 if any.
 */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "service.h"

#define MAX_PROBLEMS 16

int sw_cmd_check_config(sw_config *cfg, int argc, char **argv)
{
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (strcmp(argv[i], "--markdown") == 0) {
            sw_config_write_markdown(stdout);
            return SW_EXIT_OK;
        } else {
            fprintf(stderr, "scanwatch check-config: unknown argument '%s'\n", argv[i]);
            return SW_EXIT_USAGE;
        }
    }
    sw_config_print(cfg, stdout, json);
    fflush(stdout);
    sw_err problems[MAX_PROBLEMS];
    size_t n = sw_service_check_config(cfg, problems, MAX_PROBLEMS);
    for (size_t i = 0; i < n && i < MAX_PROBLEMS; i++) {
        fprintf(stderr, "scanwatch check-config: %s\n", problems[i].msg);
    }
    if (n > 0) {
        fprintf(stderr, "configuration has %zu problem%s: `scanwatch run` would refuse it\n", n,
                n == 1 ? "" : "s");
        return SW_EXIT_USAGE;
    }
    if (!json) {
        fprintf(stderr, "configuration is valid\n");
    }
    return SW_EXIT_OK;
}
