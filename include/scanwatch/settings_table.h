/*
 * THE settings table: every setting scanwatch has, in one place. The settings
 * mechanism (settings.h), `scanwatch check-config` and docs/configuration.md
 * are all generated from it.
 *
 * Columns: X(ID, name, type, default, min, max, choices, description)
 *   ID       SW_CFG_<ID> in code
 *   name     the YAML key; the flag is --<name with '-' for '_'>; the env
 *            variable is SCANWATCH_<NAME>. SECRET settings also read
 *            <name>_file / --<name>-file / SCANWATCH_<NAME>_FILE.
 *   type     BOOL INT SIZE DURATION STRING SECRET ENUM TIME JSON
 *   default  text, parsed like any other value ("" = unset)
 *   min,max  bounds for INT, SIZE (bytes) and DURATION (microseconds)
 *   choices  "a|b|c" for ENUM, else NULL
 *
 * Keep each module's settings in its own section so that changes to one
 * concern touch one block.
 */
#ifndef SCANWATCH_SETTINGS_TABLE_H
#define SCANWATCH_SETTINGS_TABLE_H

#define SW_S(n) ((long long)(n) * 1000000LL)
#define SW_MIB(n) ((long long)(n) * 1024LL * 1024LL)

/* clang-format off */
#define SW_SETTINGS_GENERAL(X) \
    X(CONFIG, config, STRING, "", 0, 0, NULL, \
      "Path of a YAML file with settings (flat `name: value` keys). Flags and SCANWATCH_* variables override it.") \
    X(LOG_LEVEL, log_level, ENUM, "info", 0, 0, "debug|info|warn|error", \
      "Lowest level of the JSON-lines log written to stderr.") \
    X(STATE_DIR, state_dir, STRING, "./scanwatch-state", 0, 0, NULL, \
      "Directory of the RocksDB state (image finding sets, open windows, outbox, checkpoints).")

#define SW_SETTINGS_DECODE(X) \
    X(MAX_MESSAGE_SIZE, max_message_size, SIZE, "1048576", 1024, SW_MIB(256), NULL, \
      "Largest event body decoded; larger bodies are bad events (Event Hubs' own limit is 1 MiB).") \
    X(MAX_JSON_DEPTH, max_json_depth, INT, "64", 4, 1000, NULL, \
      "Deepest JSON nesting accepted in an event body; deeper bodies are bad events.") \
    X(ACR_LOGIN_SUFFIX, acr_login_suffix, STRING, "azurecr.io", 0, 0, NULL, \
      "Login-server suffix for an Azure Container Registry named only by its ARM id (Qualys records without registryHost): <name>.<suffix>. azurecr.cn / azurecr.us in national clouds.")

#define SW_SETTINGS_SCAN(X) \
    X(SCAN_QUIET, scan_quiet, DURATION, "300s", SW_S(1), SW_S(86400), NULL, \
      "Tolerance that groups the records of one Defender scan into one rescan window.") \
    X(RESCAN_SEMANTICS, rescan_semantics, ENUM, "auto", 0, 0, "auto|full|delta", \
      "Whether a closed window lists the image's complete finding set (full), only changes (delta), or is judged per window (auto: snapshots and clean markers are full).") \
    X(FIRST_SCAN, first_scan, ENUM, "notify", 0, 0, "notify|baseline", \
      "First scan of an image: report every active finding as new (notify) or store silently (baseline).") \
    X(BASELINE_UNTIL, baseline_until, TIME, "", 0, 0, NULL, \
      "RFC 3339 time; events enqueued before it update state but never notify.") \
    X(DIFF_BASIS, diff_basis, ENUM, "digest", 0, 0, "digest|tag", \
      "Diff an image against its own previous scan (digest) or against the previous digest of the same repo:tag (tag).") \
    X(DIFF_LOG, diff_log, STRING, "", 0, 0, NULL, \
      "Also write each diff record as one JSON line to this file ('-' for stdout).") \
    X(MAX_WINDOW_RECORDS, max_window_records, INT, "100000", 10, 10000000, NULL, \
      "Most records one rescan window holds. A window reaching it is applied at once as a delta (never full, so a cut scan resolves nothing it did not see) and a new window opens; a warning is logged.")

#define SW_SETTINGS_STATE(X) \
    X(STATE_SYNC, state_sync, BOOL, "true", 0, 0, NULL, \
      "fsync the RocksDB WAL on every batch that advances a checkpoint.") \
    X(IMAGE_TTL, image_ttl, DURATION, "30d", SW_S(3600), SW_S(86400LL * 3650), NULL, \
      "Images not rescanned for this long are dropped from state.") \
    X(STATE_BLOCK_CACHE, state_block_cache, SIZE, "16MiB", SW_MIB(1), SW_MIB(65536), NULL, \
      "RocksDB block cache (data, index and filter blocks), shared by all column families.") \
    X(STATE_WRITE_BUFFER, state_write_buffer, SIZE, "4MiB", SW_MIB(1), SW_MIB(1024), NULL, \
      "RocksDB memtable size; all column families together hold at most three times this in memtables.") \
    X(STATE_WINDOW_CACHE, state_window_cache, SIZE, "32MiB", 0, SW_MIB(4096), NULL, \
      "RAM for copies of open windows' records, so closing a window reads nothing back from RocksDB (0 = always read back).") \
    X(STATE_BATCH_EVENTS, state_batch_events, INT, "1000", 1, 1000000, NULL, \
      "Events per RocksDB WriteBatch: one atomic commit of window records, applied windows, outbox records and the checkpoint.") \
    X(DEAD_LETTER_MAX_BYTES, dead_letter_max_bytes, SIZE, "64KiB", 256, SW_MIB(16), NULL, \
      "Bytes of a bad event's body kept in the dead letter (the rest is dropped; the full size is recorded).")

#define SW_SETTINGS_AMQP(X)

#define SW_SETTINGS_NOTIFY(X)

#define SW_SETTINGS_SERVICE(X)
/* clang-format on */

#define SW_SETTINGS_TABLE(X)                                                                       \
    SW_SETTINGS_GENERAL(X)                                                                         \
    SW_SETTINGS_DECODE(X)                                                                          \
    SW_SETTINGS_SCAN(X)                                                                            \
    SW_SETTINGS_STATE(X)                                                                           \
    SW_SETTINGS_AMQP(X)                                                                            \
    SW_SETTINGS_NOTIFY(X)                                                                          \
    SW_SETTINGS_SERVICE(X)

#endif
