/* scanwatch check-config: validate every source and print the effective settings. */
#include <stdio.h>
#include <string.h>

#include "commands.h"

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
    if (!json) {
        fprintf(stderr, "configuration is valid\n");
    }
    return SW_EXIT_OK;
}
