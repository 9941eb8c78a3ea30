/*
 * The notifier (SPEC §7): drains the RocksDB outbox of diff records, applies
 * the routes, renders mails (per image or as digests) and delivers them to
 * the configured sink (Microsoft Graph sendMail, a directory, or stdout).
 *
 * Durability: taking a diff record out of the outbox and storing its
 * rendered mails (or digest accumulations) in the notify column family is
 * one atomic batch; a mail entry is deleted only after the sink accepted it
 * (Graph: 202). A crash therefore resends at most the mails that were in
 * flight, and never loses one.
 *
 * Delivery: mail_concurrency sender threads, at most mail_rate mails
 * started per minute; 429/503/504/timeouts pause sending and retry with
 * exponential backoff honouring Retry-After; a 2xx is never retried; a 401
 * refreshes the token once; 400/403/404/413 go to the dead letter with the
 * Graph error code.
 *
 * Ownership: sw_notify_new borrows cfg (only during the call) and st (which
 * must outlive the notifier); sw_notify_free stops the sender threads after
 * their in-flight mail.
 * Thread safety: one thread drives a notifier (step/drain/run); the sender
 * threads are internal. sw_notify_stats may be called from any thread.
 */
#ifndef SCANWATCH_NOTIFY_H
#define SCANWATCH_NOTIFY_H

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "scanwatch/error.h"
#include "scanwatch/finding.h"
#include "scanwatch/state.h"

typedef struct sw_notifier sw_notifier;

#define SW_NOTIFY_FAILURE_KINDS 14

typedef struct sw_notify_stats {
    uint64_t diffs;        /* diff records taken from the outbox */
    uint64_t mails_queued; /* mail entries created (per image, or digest parts) */
    uint64_t mails_sent;   /* accepted by the sink */
    uint64_t retries;      /* transient failures retried */
    uint64_t dead;         /* mails or diffs moved to the dead letter */
    uint64_t pending;      /* mail entries loaded and not yet accepted */
    char sink[32];         /* "graph", "dir", "stdout" */
    /* Failed attempts by reason (for a "mails failed by code" metric); labels from
     * sw_notify_failure_label(i). */
    uint64_t failures[SW_NOTIFY_FAILURE_KINDS];
    /* New findings of the diff records taken, by sw_severity. */
    uint64_t new_by_severity[SW_SEV_COUNT];
} sw_notify_stats;

/* "400", "401", "403", "404", "413", "429", "503", "504", "5xx", "4xx", "timeout", "token",
 * "transport", "io"; NULL past the end. */
const char *sw_notify_failure_label(int i);

/*
 * Validates the notification settings as sw_notify_new does, without starting anything or
 * touching the network: routes and mail_to, the mail sink and, for Graph, graph_base_url (https
 * unless loopback), mail_sender and the Entra ID credential (authority_host, certificate).
 * Stores up to max problems in problems[] (messages name the setting, never a secret's value)
 * and returns how many there are (0 = valid). For `check-config`. Any thread.
 */
size_t sw_notify_check_config(const struct sw_config *cfg, sw_err *problems, size_t max);

/* Validates the notification settings (routes, sink, credentials) and starts the sender threads. */
sw_notifier *sw_notify_new(const struct sw_config *cfg, sw_state *st, sw_err *err);
void sw_notify_free(sw_notifier *n);

/*
 * One non-blocking pass: moves new outbox entries into mail entries or
 * digests, renders digests that are due (all of them when flush_digests),
 * and hands pending mails to the sender threads. *idle (may be NULL) tells
 * whether nothing is left: empty outbox, no pending mail, and (with
 * flush_digests) no pending digest.
 */
bool sw_notify_step(sw_notifier *n, bool flush_digests, bool *idle, sw_err *err);

/* Steps until idle or timeout_us passed (SW_E_TIMEOUT). */
bool sw_notify_drain(sw_notifier *n, int64_t timeout_us, bool flush_digests, sw_err *err);

/* Steps until *stop becomes non-zero (set by another thread, or by a signal
 * handler: a lock-free atomic_int store is async-signal-safe). */
bool sw_notify_run(sw_notifier *n, const atomic_int *stop, sw_err *err);

void sw_notify_stats_get(sw_notifier *n, sw_notify_stats *out);

#endif
