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
      "Login-server suffix for an Azure Container Registry named only by its ARM id (Qualys records without registryHost): <name>.<suffix>. azurecr.cn / azurecr.us in national clouds.") \
    X(MAX_SCAN_TIME_SKEW, max_scan_time_skew, DURATION, "1h", SW_S(1), SW_S(7 * 86400), NULL, \
      "A hub event whose finding is scanned more than this after the event was enqueued is a bad event (bad_scan_time): nobody who can send to the hub can move an image's clock into the future and make its real rescans stale. Not checked by `process` (files have no enqueued time).")

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

#define SW_SETTINGS_AMQP(X) \
    X(CONNECTION_STRING, connection_string, SECRET, "", 0, 0, NULL, \
      "Event Hubs connection string: Endpoint=sb://<ns>.servicebus.windows.net/ with SharedAccessKeyName+SharedAccessKey, SharedAccessSignature, or no key (Entra ID); optional EntityPath and UseDevelopmentEmulator=true.") \
    X(EVENTHUB, eventhub, STRING, "", 0, 0, NULL, \
      "Event Hub name; empty = the connection string's EntityPath.") \
    X(CONSUMER_GROUP, consumer_group, STRING, "$Default", 0, 0, NULL, \
      "Consumer group the partition receivers read through.") \
    X(START_POSITION, start_position, STRING, "earliest", 0, 0, NULL, \
      "Where a partition without a checkpoint starts: earliest, latest, or an RFC 3339 time (events enqueued after it).") \
    X(OWNER_LEVEL, owner_level, INT, "0", -1, 9223372036854775807LL, NULL, \
      "com.microsoft:epoch of the receivers: a receiver with an equal or higher level takes a partition over (ownership lost here); -1 = no epoch.") \
    X(PREFETCH, prefetch, INT, "300", 1, 100000, NULL, \
      "Link credit kept outstanding per partition (events buffered ahead of processing).") \
    X(MAX_UNSETTLED, max_unsettled, INT, "3000", 1, 1000000, NULL, \
      "Events handed to processing but not yet durable, over all owned partitions: each partition gets an equal share (at least prefetch) and pauses receiving at it. Each costs about 8 KB of memory with 3 KB events (proton's delivery buffer until settled, the body until decoded, the decoded records until applied); keep it above state_batch_events + prefetch.") \
    X(SAS_TOKEN_LIFETIME, sas_token_lifetime, DURATION, "1h", SW_S(2), SW_S(86400 * 7), NULL, \
      "Lifetime of the SAS tokens signed from SharedAccessKey; each is re-put at 3/4 of its lifetime (at most 10 min before expiry).") \
    X(CA_FILE, ca_file, STRING, "", 0, 0, NULL, \
      "PEM file of CA certificates trusted for the Event Hubs TLS connection, besides the system store.") \
    X(TLS, tls, ENUM, "auto", 0, 0, "auto|on|off", \
      "TLS for AMQP: auto = plain for UseDevelopmentEmulator=true, TLS (port 5671) otherwise; off is refused unless UseDevelopmentEmulator=true.") \
    X(TLS_VERIFY, tls_verify, BOOL, "true", 0, 0, NULL, \
      "Verify the Event Hubs server certificate and host name; false is refused unless UseDevelopmentEmulator=true.") \
    X(IDLE_TIMEOUT, idle_timeout, DURATION, "60s", SW_S(1), SW_S(3600), NULL, \
      "AMQP idle timeout advertised in OPEN (the SDKs use 60 s); heartbeats are sent at half the peer's value.") \
    X(RECONNECT_BACKOFF_MIN, reconnect_backoff_min, DURATION, "1s", 10000, SW_S(3600), NULL, \
      "First delay before reconnecting or reattaching after a transient error; doubles per attempt, with jitter.") \
    X(RECONNECT_BACKOFF_MAX, reconnect_backoff_max, DURATION, "60s", 10000, SW_S(3600), NULL, \
      "Largest reconnect / reattach delay.") \
    X(OPERATION_TIMEOUT, operation_timeout, DURATION, "60s", SW_S(1), SW_S(600), NULL, \
      "Deadline of a CBS put-token, a link attach or a $management request.")

#define SW_SETTINGS_NOTIFY(X) \
    X(MAIL_SINK, mail_sink, STRING, "", 0, 0, NULL, \
      "Where mails go: graph | dir:<path> | stdout. Empty = graph when mail_sender and Entra credentials are configured, else dir:./scanwatch-mail (one Graph request JSON file per mail).") \
    X(MAIL_SENDER, mail_sender, STRING, "", 0, 0, NULL, \
      "Mailbox (user principal name or object id) that sends the mails: POST {graph_base_url}/v1.0/users/{mail_sender}/sendMail.") \
    X(GRAPH_BASE_URL, graph_base_url, STRING, "https://graph.microsoft.com", 0, 0, NULL, \
      "Microsoft Graph root; national clouds: https://graph.microsoft.us, https://dod-graph.microsoft.us, https://microsoftgraph.chinacloudapi.cn. The token scope is <graph_base_url>/.default.") \
    X(AUTHORITY_HOST, authority_host, STRING, "https://login.microsoftonline.com", 0, 0, NULL, \
      "Entra ID authority; national clouds: https://login.microsoftonline.us, https://login.chinacloudapi.cn. Workload identity uses AZURE_AUTHORITY_HOST when this is not set.") \
    X(AUTH_METHOD, auth_method, ENUM, "auto", 0, 0, "auto|client_secret|certificate|workload_identity|managed_identity", \
      "Entra ID credential: auto = client_secret if set, else client_certificate if set, else workload identity if AZURE_FEDERATED_TOKEN_FILE is set, else managed identity if IDENTITY_ENDPOINT is set, else none (Graph not configured).") \
    X(TENANT_ID, tenant_id, STRING, "", 0, 0, NULL, \
      "Entra tenant (directory) id; empty = AZURE_TENANT_ID.") \
    X(CLIENT_ID, client_id, STRING, "", 0, 0, NULL, \
      "Application (client) id; empty = AZURE_CLIENT_ID. With managed identity: the user-assigned identity's client id (empty = system-assigned).") \
    X(CLIENT_SECRET, client_secret, SECRET, "", 0, 0, NULL, \
      "Client secret of the app registration (auth_method client_secret).") \
    X(CLIENT_CERTIFICATE, client_certificate, STRING, "", 0, 0, NULL, \
      "PEM file holding the app's certificate and its RSA private key (auth_method certificate): a PS256 client assertion with x5t#S256.") \
    X(IMDS_ENDPOINT, imds_endpoint, STRING, "http://169.254.169.254", 0, 0, NULL, \
      "Azure Instance Metadata Service root for managed identity (when IDENTITY_ENDPOINT is not set).") \
    X(MAIL_TO, mail_to, STRING, "", 0, 0, NULL, \
      "Comma-separated recipients of the built-in default route (all images, all severities), used when `routes` is empty.") \
    X(ROUTES, routes, JSON, "", 0, 0, NULL, \
      "Ordered list of routes (a YAML list in the config file): registry, repository, min_severity, fixable_only, to, cc, subject_prefix, name, default. See docs/notifications.md.") \
    X(MAIL_MODE, mail_mode, ENUM, "per_image", 0, 0, "per_image|digest", \
      "per_image: one mail per diff (image) and route; digest: one mail per route per digest_interval covering all images, split to stay under Graph's 4 MB request limit.") \
    X(DIGEST_INTERVAL, digest_interval, DURATION, "1h", SW_S(1), SW_S(86400 * 7), NULL, \
      "Digest mode: a route's digest is sent this long after its first pending finding arrived.") \
    X(MAIL_CONCURRENCY, mail_concurrency, INT, "1", 1, 4, NULL, \
      "sendMail requests in flight at once. Graph allows 4 per app and mailbox across all replicas.") \
    X(MAIL_RATE, mail_rate, INT, "30", 1, 6000, NULL, \
      "Most mails started per minute (Exchange Online allows 30 messages per minute per mailbox).") \
    X(MAIL_MAX_REQUEST, mail_max_request, SIZE, "3670016", 65536, 4194304, NULL, \
      "Largest sendMail request body built; larger digests are split into several mails (Graph rejects requests over 4 MB).") \
    X(SAVE_TO_SENT_ITEMS, save_to_sent_items, BOOL, "true", 0, 0, NULL, \
      "Keep a copy of each mail in the sender's Sent Items (Graph saveToSentItems).") \
    X(HTTP_TIMEOUT, http_timeout, DURATION, "30s", 100000, SW_S(600), NULL, \
      "Deadline of one HTTP request to Graph or a token endpoint; a timed-out sendMail is retried (it may have been accepted).") \
    X(MAIL_BACKOFF_MIN, mail_backoff_min, DURATION, "2s", 10000, SW_S(3600), NULL, \
      "First retry delay after 429/503/504/timeout when Graph sends no Retry-After; doubles per attempt.") \
    X(MAIL_BACKOFF_MAX, mail_backoff_max, DURATION, "5m", 10000, SW_S(86400), NULL, \
      "Largest retry delay (Retry-After values above it are capped).")

#define SW_SETTINGS_SERVICE(X) \
    X(REPLICA_INDEX, replica_index, INT, "-1", -1, 1023, NULL, \
      "This replica's index; -1 = the StatefulSet pod ordinal at the end of the host name (0 with one replica).") \
    X(REPLICA_COUNT, replica_count, INT, "1", 1, 1024, NULL, \
      "Number of replicas sharing the hub; partition p belongs to replica p mod replica_count.") \
    X(ROUTE_HUB, route_hub, STRING, "", 0, 0, NULL, \
      "With several replicas: a second hub in the same namespace (same connection string and credentials) to which each replica forwards its partitions' findings, keyed by image, so that one replica keeps each image's state (SPEC §6).") \
    X(METRICS_PORT, metrics_port, INT, "9090", -1, 65535, NULL, \
      "Port of /metrics, /healthz and /readyz; 0 = any free port, -1 = off.") \
    X(METRICS_BIND, metrics_bind, STRING, "0.0.0.0", 0, 0, NULL, \
      "IPv4 address the metrics and health endpoint listens on.") \
    X(PROGRESS_INTERVAL, progress_interval, DURATION, "10s", 0, SW_S(3600), NULL, \
      "Interval of the one-line progress report (a human line on a terminal, a JSON log line otherwise); 0 = off.") \
    X(COMMIT_INTERVAL, commit_interval, DURATION, "200ms", 1000, SW_S(60), NULL, \
      "Longest time processed events wait before their batch is committed and settled.") \
    X(PARTITION_MERGE_WAIT, partition_merge_wait, DURATION, "2s", 0, SW_S(60), NULL, \
      "Events of all partitions are processed in enqueued-time order; this long at most, processing waits for a partition that is behind (events on the hub not yet received).") \
    X(LAG_POLL_INTERVAL, lag_poll_interval, DURATION, "5s", 100000, SW_S(3600), NULL, \
      "How often partition properties are read for lag metrics and the caught-up test of window rule (c).") \
    X(SHUTDOWN_TIMEOUT, shutdown_timeout, DURATION, "20s", SW_S(1), SW_S(600), NULL, \
      "Bound on a graceful shutdown (SIGTERM/SIGINT): receiving stops, due windows close, state commits, the notifier stops.") \
    X(DECODE_AHEAD, decode_ahead, BOOL, "true", 0, 0, NULL, \
      "Decode events (JSON parse, the findings' canonical JSON) on a thread of their own, ahead of the thread that applies them to the state in order: a second core for the busiest stage. false = one processing thread does both.")
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
