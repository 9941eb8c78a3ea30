/*
 * The scanwatch service: Event Hubs partition receivers -> decode -> rescan
 * windows and state -> outbox -> notifier, with the checkpoint discipline of
 * SPEC §4: an event is settled on the hub only after the RocksDB batch that
 * holds its effects and its checkpoint is written.
 *
 * `run`, `demo`, `replay` and `rebuild` are this one loop with different
 * options (which partitions, where to start, when to stop, whether to notify).
 *
 * Threads: sw_service_run runs the processing loop on the calling thread;
 * the AMQP client, the notifier, the lag poller and the HTTP endpoint have
 * their own. sw_service_request_stop may be called from any thread or from a
 * signal handler.
 */
#ifndef SCANWATCH_SERVICE_H
#define SCANWATCH_SERVICE_H

#include <stdbool.h>
#include <stdint.h>

#include "scanwatch/error.h"
#include "scanwatch/settings.h"
#include "scanwatch/swtime.h"

typedef struct sw_service_opts {
    /* Only this partition (replay, rebuild); NULL = the replica's share. */
    const char *only_partition;
    /* Start every partition here instead of at its checkpoint (replay/rebuild):
     * "earliest", "latest", an RFC 3339 time, or NULL = checkpoint / start_position. */
    const char *start_override;
    /* ... or after this offset (exclusive); NULL = not used. */
    const char *start_after_offset;
    /* Stop once every owned partition has been read up to the last event
     * enqueued when the run started and no window is left open (replay,
     * rebuild, demo). */
    bool stop_when_caught_up;
    /* Also wait for the outbox to be delivered before stopping (demo). */
    bool drain_outbox;
    /* false: diff records stay in the outbox, no mail is sent (rebuild). */
    bool notify;
    /* Events enqueued before this time never notify (rebuild: now). */
    sw_time_us baseline_until_override;
    /* Called once the service is listening / receiving, for the demo. */
    void (*on_started)(void *ctx);
    void *ctx;
} sw_service_opts;

typedef struct sw_service_summary {
    uint64_t events;
    uint64_t findings;
    uint64_t bad_events;
    uint64_t windows_applied;
    uint64_t diff_records;
    uint64_t new_findings;
    uint64_t resolved_findings;
    uint64_t mails_sent;
    uint64_t mails_failed;
} sw_service_summary;

void sw_service_opts_default(sw_service_opts *o);

/* Runs until stopped (signal, sw_service_request_stop, or stop_when_caught_up).
 * Returns false with err on a fatal error. */
bool sw_service_run(const sw_config *cfg, const sw_service_opts *o, sw_service_summary *summary,
                    sw_err *err);

/*
 * Checks cfg as `run` does before it connects, without connecting or creating anything:
 * the Event Hubs options (connection_string parsed, hub name, TLS rules, ca_file, ranges, start
 * position), the Event Hubs Entra ID credential when the connection string has no key, the
 * recipients, and the notification settings (sw_notify_check_config: graph_base_url and
 * authority_host https unless loopback, ...). Stores up to max problems (each names its
 * setting, none contains a secret) and returns how many there are (0 = valid). Any thread.
 */
size_t sw_service_check_config(const sw_config *cfg, sw_err *problems, size_t max);

/* Async-signal-safe. */
void sw_service_request_stop(void);

#endif
