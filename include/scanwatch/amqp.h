/*
 * Event Hubs consumer client over AMQP 1.0 (qpid-proton proactor).
 *
 * One client = one AMQP connection, driven by one internal thread (the
 * "client thread"). It authenticates every link with CBS put-token (SAS
 * signed from the connection string, a pre-made SharedAccessSignature, or an
 * Entra ID token provider), discovers partitions through `$management`, and
 * runs one receiver link per added partition. Transport loss and transient
 * link errors are retried with jittered exponential backoff, resuming from
 * the last position the caller declared durable (sw_amqp_settle).
 * `amqp:link:stolen` stops that partition (ownership lost); non-retryable
 * conditions stop the partition (link errors) or the client (connection and
 * token errors) and are reported with the condition name and description.
 *
 * It also sends (sw_amqp_send): one cached sender link per target partition,
 * authorized the same way, blocking the caller until the service accepted
 * every message (at-least-once; see docs/amqp.md "Sending").
 *
 * This module knows nothing of what the events contain.
 *
 * Ownership: sw_amqp_client_new copies every string of the options; the
 * token provider (if any) is borrowed and must outlive the client. Event
 * fields are valid only during the on_event call.
 *
 * Threads: callbacks run on the client thread, one at a time, and must not
 * block for long (they hold up every partition). sw_amqp_add_partition,
 * sw_amqp_remove_partition, sw_amqp_settle and sw_amqp_stats may be called
 * from any thread, including from callbacks. The discovery calls block the
 * caller and must not be called from a callback. sw_amqp_client_free must not
 * be called from a callback.
 */
#ifndef SCANWATCH_AMQP_H
#define SCANWATCH_AMQP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scanwatch/error.h"
#include "scanwatch/settings.h"
#include "scanwatch/swtime.h"
#include "scanwatch/token.h"

#define SW_AMQP_OFFSET_MAX 64       /* longest offset string kept, incl. NUL */
#define SW_AMQP_PARTITION_ID_MAX 64 /* longest partition id, incl. NUL */

typedef struct sw_amqp_client sw_amqp_client;

/* How the body of the AMQP message was encoded. */
typedef enum {
    SW_AMQP_BODY_NONE,     /* no body section */
    SW_AMQP_BODY_DATA,     /* one or more data sections, concatenated */
    SW_AMQP_BODY_STRING,   /* amqp-value string (UTF-8 bytes) */
    SW_AMQP_BODY_BINARY,   /* amqp-value binary */
    SW_AMQP_BODY_VALUE,    /* other amqp-value: the AMQP encoding of the value */
    SW_AMQP_BODY_SEQUENCE, /* amqp-sequence sections: their AMQP encoding */
} sw_amqp_body_kind;

/* One event = one AMQP message. Pointers are valid during on_event only. */
typedef struct sw_amqp_event {
    const char *partition;
    const unsigned char *body;
    size_t body_len;
    sw_amqp_body_kind body_kind;
    const char *offset;        /* x-opt-offset, opaque string */
    int64_t sequence_number;   /* x-opt-sequence-number */
    sw_time_us enqueued_time;  /* x-opt-enqueued-time, SW_TIME_UNSET if absent */
    const char *partition_key; /* x-opt-partition-key (NUL-terminated) or NULL */
    size_t partition_key_len;
} sw_amqp_event;

typedef enum {
    SW_AMQP_START_EARLIEST,       /* oldest retained event */
    SW_AMQP_START_LATEST,         /* only events enqueued after the link attaches */
    SW_AMQP_START_AFTER_OFFSET,   /* after a checkpoint (exclusive) */
    SW_AMQP_START_ENQUEUED_AFTER, /* events enqueued after a time */
} sw_amqp_start_kind;

typedef struct sw_amqp_position {
    sw_amqp_start_kind kind;
    char offset[SW_AMQP_OFFSET_MAX]; /* AFTER_OFFSET */
    int64_t sequence_number;         /* AFTER_OFFSET: the checkpoint's sequence number, or -1 */
    sw_time_us enqueued_time;        /* ENQUEUED_AFTER */
} sw_amqp_position;

/* Parses start_position text: "earliest", "latest" or an RFC 3339 time. */
bool sw_amqp_position_parse(const char *text, sw_amqp_position *out, sw_err *err);
/* A position after a checkpoint (offset, sequence number; seq may be -1). */
bool sw_amqp_position_after(sw_amqp_position *out, const char *offset, int64_t sequence_number,
                            sw_err *err);

typedef struct sw_amqp_callbacks {
    void *ctx;
    /* Required. Each event once per client, in order per partition. */
    void (*on_event)(void *ctx, const sw_amqp_event *ev);
    /* A partition's receiver is attached (also after each reattach). Optional. */
    void (*on_partition_open)(void *ctx, const char *partition);
    /*
     * A partition stopped for good: err->code SW_E_OWNERSHIP_LOST for
     * amqp:link:stolen, else a non-retryable link error. The partition is
     * removed; unsettled events of it are not settled. Optional.
     */
    void (*on_partition_closed)(void *ctx, const char *partition, const sw_err *err);
    /*
     * A partition's receiver is not attached any more and is being re-attached
     * with backoff: its link was detached by the service with a retryable
     * condition (err->msg names it, e.g. com.microsoft:server-busy), its attach
     * was refused or not answered, or its token could not be renewed. Called
     * again on each failed re-attach; on_partition_open follows once it is back.
     * Not called when the whole connection drops (on_error with partition NULL
     * says that: every partition is then detached). on_error is also called
     * with the same err. Optional.
     */
    void (*on_partition_detached)(void *ctx, const char *partition, const sw_err *err);
    /*
     * An error. partition is NULL for connection-level errors. fatal=true
     * means the client stopped (a rejected token, TLS or configuration error
     * that retrying cannot fix); otherwise it is retrying. Optional.
     */
    void (*on_error)(void *ctx, const char *partition, const sw_err *err, bool fatal);
} sw_amqp_callbacks;

typedef enum { SW_AMQP_TLS_AUTO, SW_AMQP_TLS_ON, SW_AMQP_TLS_OFF } sw_amqp_tls_mode;

typedef struct sw_amqp_options {
    const char *connection_string; /* required (secret) */
    const char *eventhub;          /* hub name; NULL/"" = the connection string's EntityPath */
    const char *consumer_group;    /* NULL/"" = "$Default" */
    /* Entra ID: a "jwt" provider used when the connection string has no key. Borrowed. */
    const sw_token_provider *token_provider;
    const char *token_scope; /* jwt scope; NULL = "https://eventhubs.azure.net/.default" */
    int64_t owner_level;     /* com.microsoft:epoch; < 0 = none */
    uint32_t prefetch;       /* link credit kept outstanding (>= 1) */
    uint32_t max_unsettled;  /* events handed out but not settled, over all partitions: each gets
                                * an equal share, at least min(prefetch, max_unsettled) */
    int64_t sas_token_lifetime_us;
    const char *ca_file; /* extra trusted CAs (PEM); NULL = system store only */
    sw_amqp_tls_mode tls;
    bool tls_verify; /* false only allowed with UseDevelopmentEmulator=true */
    int64_t idle_timeout_us;
    int64_t backoff_min_us, backoff_max_us;
    int64_t operation_timeout_us; /* CBS, attach and $management replies */
    uint32_t max_message_size;    /* largest delivery accepted */
    sw_amqp_callbacks cb;
} sw_amqp_options;

/* The defaults of the settings table, with no connection string. */
void sw_amqp_options_default(sw_amqp_options *o);
/*
 * Fills o (strings borrowed from cfg) and *start from the settings; errors
 * name the setting. Callbacks and token provider are left for the caller.
 */
bool sw_amqp_options_from_config(const sw_config *cfg, sw_amqp_options *o, sw_amqp_position *start,
                                 sw_err *err);

/*
 * Validates o as sw_amqp_client_new does, without connecting or starting anything: ranges, the
 * connection string (parsed; errors never contain the key), the hub name, the TLS rules and
 * ca_file. A connection string without a key or signature is accepted here (Entra ID: the caller
 * checks its credential). For `check-config`. Any thread.
 */
bool sw_amqp_options_check(const sw_amqp_options *o, sw_err *err);

/* Validates the options and starts the client thread (it connects at once). */
sw_amqp_client *sw_amqp_client_new(const sw_amqp_options *o, sw_err *err);
/* Stops the thread, closes the connection, frees everything. NULL is allowed. */
void sw_amqp_client_free(sw_amqp_client *c);

/* Starts receiving partition at start. Adding a partition twice is an error. */
bool sw_amqp_add_partition(sw_amqp_client *c, const char *partition, const sw_amqp_position *start,
                           sw_err *err);
/* Stops receiving; deliveries not yet durable are settled locally without an outcome (the
 * service gives them to the next reader). Unknown ids are ignored. */
void sw_amqp_remove_partition(sw_amqp_client *c, const char *partition);
/*
 * Declares every event of partition with sequence number <= up_to durable:
 * they are accepted and settled, and a reconnect resumes after them.
 */
void sw_amqp_settle(sw_amqp_client *c, const char *partition, int64_t up_to);

/* Partition ids of the hub ($management READ com.microsoft:eventhub). Blocks. */
bool sw_amqp_get_partition_ids(sw_amqp_client *c, char ***ids_out, size_t *count_out, sw_err *err);
void sw_amqp_free_partition_ids(char **ids, size_t count);

typedef struct sw_amqp_partition_info {
    char partition[SW_AMQP_PARTITION_ID_MAX];
    int64_t begin_sequence_number;
    int64_t last_enqueued_sequence_number;
    char last_enqueued_offset[SW_AMQP_OFFSET_MAX];
    sw_time_us last_enqueued_time; /* SW_TIME_UNSET if unknown */
    bool is_empty;
} sw_amqp_partition_info;

/* Runtime properties of one partition ($management READ com.microsoft:partition). Blocks. */
bool sw_amqp_get_partition_info(sw_amqp_client *c, const char *partition,
                                sw_amqp_partition_info *out, sw_err *err);

typedef struct sw_amqp_stats {
    uint64_t events;     /* handed to on_event */
    uint64_t settled;    /* deliveries accepted and settled */
    uint64_t connects;   /* successful connection opens */
    uint64_t reattaches; /* receiver attaches after the first per partition */
    uint64_t token_puts; /* CBS put-token accepted */
    uint64_t duplicates; /* redeliveries at or before the durable position, dropped */
    uint64_t rebound;    /* redeliveries of events handed out, not yet durable: kept for settling,
                            not handed out again */
} sw_amqp_stats;

void sw_amqp_get_stats(sw_amqp_client *c, sw_amqp_stats *out);

/*
 * Sender (route hub, SPEC §6). One message to send: body bytes, sent as one AMQP data
 * section. The bytes are borrowed for the duration of sw_amqp_send.
 */
typedef struct sw_amqp_out {
    const void *body;
    size_t len;
} sw_amqp_out;

/*
 * Sends msgs to partition `partition` of hub `hub` (NULL = the client's own hub) and blocks until
 * every message is accepted by the service (or fails). Each message is one transfer (proton 0.37
 * cannot set the batch message-format 0x80013700), pipelined up to the link credit; a message
 * whose encoding exceeds the link's max-message-size fails the call before anything is sent.
 * Transient errors (detach-forced, server-busy, released/modified outcomes, connection loss,
 * timeouts) are retried with the client's backoff until operation_timeout x 3; on false nothing
 * can be assumed about which messages arrived (callers resend all: at-least-once). A rejected
 * outcome or a non-retryable detach fails the call with the condition.
 * Thread safety: any thread except the client thread (not from callbacks), not concurrently with
 * sw_amqp_client_free. Several callers may send concurrently. Links are cached per target
 * (`<hub>/Partitions/<id>`) and authorized with CBS like receivers. A client used only to send
 * needs no on_event callback and no partitions.
 */
bool sw_amqp_send(sw_amqp_client *c, const char *hub, const char *partition,
                  const sw_amqp_out *msgs, size_t n, sw_err *err);

/* Sender counters (sw_amqp_get_send_stats). */
typedef struct sw_amqp_send_stats {
    uint64_t sent;     /* messages accepted by the service */
    uint64_t resent;   /* transfers repeated after a detach, connection loss or release */
    uint64_t attaches; /* sender link attaches */
} sw_amqp_send_stats;

void sw_amqp_get_send_stats(sw_amqp_client *c, sw_amqp_send_stats *out);

#endif
