/* Unit tests of the table-driven settings: precedence, parsing, errors, secrets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "scanwatch/settings.h"
#include "scanwatch/swtime.h"

static void test_defaults_parse(void **state)
{
    sw_config *cfg = sw_config_new();
    assert_non_null(cfg);
    assert_int_equal(sw_cfg_int(cfg, SW_CFG_SCAN_QUIET), 300 * SW_US_PER_SEC);
    assert_string_equal(sw_cfg_str(cfg, SW_CFG_RESCAN_SEMANTICS), "auto");
    assert_true(sw_cfg_bool(cfg, SW_CFG_STATE_SYNC));
    assert_int_equal(sw_cfg_int(cfg, SW_CFG_BASELINE_UNTIL), SW_TIME_UNSET);
    assert_false(sw_cfg_is_set(cfg, SW_CFG_SCAN_QUIET));
    sw_config_free(cfg);
}

static void test_precedence(void **state)
{
    char path[] = "/tmp/sw-settings-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char yaml[] = "scan_quiet: 10m\nfirst_scan: baseline\ndiff_basis: tag\n";
    assert_int_equal(write(fd, yaml, sizeof yaml - 1), sizeof yaml - 1);
    close(fd);

    char cfgflag[64];
    snprintf(cfgflag, sizeof cfgflag, "--config=%s", path);
    char *argv[] = {"scanwatch",   cfgflag, "--scan-quiet", "90s", "input.ndjson",
                    "--unknown-x", NULL};
    char *envp[] = {"SCANWATCH_SCAN_QUIET=2m", "SCANWATCH_FIRST_SCAN=notify", "PATH=/bin", NULL};
    char *rest[8];
    int nrest = 0;
    sw_err err;
    sw_config *cfg = sw_config_new();
    assert_true(sw_config_load(cfg, 6, argv, envp, rest, &nrest, &err));
    assert_int_equal(sw_cfg_int(cfg, SW_CFG_SCAN_QUIET), 90 * SW_US_PER_SEC); /* flag */
    assert_string_equal(sw_cfg_str(cfg, SW_CFG_FIRST_SCAN), "notify");        /* env */
    assert_string_equal(sw_cfg_str(cfg, SW_CFG_DIFF_BASIS), "tag");           /* file */
    assert_int_equal(sw_cfg_source(cfg, SW_CFG_DIFF_BASIS), SW_SRC_FILE);
    assert_int_equal(nrest, 2);
    assert_string_equal(rest[0], "input.ndjson");
    assert_string_equal(rest[1], "--unknown-x");
    sw_config_free(cfg);
    unlink(path);
}

static void test_errors_name_setting_and_range(void **state)
{
    sw_config *cfg = sw_config_new();
    sw_err err;
    assert_false(sw_config_set(cfg, SW_CFG_SCAN_QUIET, "3d", SW_SRC_FLAG, &err));
    assert_int_equal(err.code, SW_E_CONFIG);
    assert_string_equal(err.msg, "setting scan_quiet (from flag): '3d' is out of range (allowed: "
                                 "1s to 1d)");
    assert_false(sw_config_set(cfg, SW_CFG_RESCAN_SEMANTICS, "sometimes", SW_SRC_ENV, &err));
    assert_string_equal(err.msg, "setting rescan_semantics (from env): 'sometimes' is not one of "
                                 "auto|full|delta");
    assert_false(sw_config_set(cfg, SW_CFG_BASELINE_UNTIL, "yesterday", SW_SRC_FILE, &err));
    assert_non_null(strstr(err.msg, "baseline_until"));
    assert_false(sw_config_load_yaml_string(cfg, "scan_quite: 5\n", 14, "x.yaml", &err));
    assert_string_equal(err.msg, "x.yaml: line 1: unknown setting 'scan_quite' (from file)");
    assert_false(sw_config_load_yaml_string(cfg, "a: [\n", 5, "y.yaml", &err));
    assert_non_null(strstr(err.msg, "y.yaml: YAML error"));
    sw_config_free(cfg);
}

static void test_markdown_lists_every_setting(void **state)
{
    char *out = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&out, &len);
    sw_config_write_markdown(fp);
    fclose(fp);
    const sw_setting_def *defs = sw_setting_defs();
    for (int i = 0; i < SW_CFG_COUNT; i++) {
        char needle[96];
        snprintf(needle, sizeof needle, "| `%s` |", defs[i].name);
        assert_non_null(strstr(out, needle));
    }
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_parse),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_errors_name_setting_and_range),
        cmocka_unit_test(test_markdown_lists_every_setting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
