/* Settings -> store and engine options. */
#include <string.h>

#include "scanwatch/settings.h"
#include "scanwatch/state.h"
#include "scanwatch/state_engine.h"

void sw_state_opts_from_config(sw_state_opts *o, const sw_config *cfg)
{
    memset(o, 0, sizeof *o);
    o->dir = sw_cfg_str(cfg, SW_CFG_STATE_DIR);
    o->sync = sw_cfg_bool(cfg, SW_CFG_STATE_SYNC);
    o->block_cache_bytes = (size_t)sw_cfg_int(cfg, SW_CFG_STATE_BLOCK_CACHE);
    o->write_buffer_bytes = (size_t)sw_cfg_int(cfg, SW_CFG_STATE_WRITE_BUFFER);
    o->dead_letter_max_bytes = (size_t)sw_cfg_int(cfg, SW_CFG_DEAD_LETTER_MAX_BYTES);
}

void sw_state_engine_opts_from_config(sw_state_engine_opts *o, const sw_config *cfg)
{
    memset(o, 0, sizeof *o);
    o->scan_quiet_us = sw_cfg_int(cfg, SW_CFG_SCAN_QUIET);
    const char *sem = sw_cfg_str(cfg, SW_CFG_RESCAN_SEMANTICS);
    o->semantics = strcmp(sem, "full") == 0    ? SW_RESCAN_FULL
                   : strcmp(sem, "delta") == 0 ? SW_RESCAN_DELTA
                                               : SW_RESCAN_AUTO;
    o->first_scan = strcmp(sw_cfg_str(cfg, SW_CFG_FIRST_SCAN), "baseline") == 0
                        ? SW_FIRST_SCAN_BASELINE
                        : SW_FIRST_SCAN_NOTIFY;
    o->baseline_until = sw_cfg_int(cfg, SW_CFG_BASELINE_UNTIL);
    o->diff_basis = strcmp(sw_cfg_str(cfg, SW_CFG_DIFF_BASIS), "tag") == 0 ? SW_DIFF_BASIS_TAG
                                                                           : SW_DIFF_BASIS_DIGEST;
    o->diff_log = sw_cfg_str(cfg, SW_CFG_DIFF_LOG);
    o->max_window_records = (size_t)sw_cfg_int(cfg, SW_CFG_MAX_WINDOW_RECORDS);
    o->window_cache_bytes = (size_t)sw_cfg_int(cfg, SW_CFG_STATE_WINDOW_CACHE);
}
