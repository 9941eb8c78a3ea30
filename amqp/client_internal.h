/*
 * Internal state of the Event Hubs client (amqp/client.c, amqp/options.c).
 * Not installed; nothing outside amqp/ includes it.
 *
 * Threads: fields marked [mu] are shared and guarded by client->mu; fields
 * marked [thread] belong to the client thread only.
 */
#ifndef SW_AMQP_CLIENT_INTERNAL_H
#define SW_AMQP_CLIENT_INTERNAL_H

#include <proton/connection.h>
#include <proton/delivery.h>
#include <proton/link.h>
#include <proton/message.h>
#include <proton/proactor.h>
#include <proton/session.h>
#include <pthread.h>
#include <stdatomic.h>

#include "scanwatch/amqp.h"
#include "scanwatch/amqp_connstr.h"
#include "scanwatch/buf.h"

#define SW_AMQP_MAX_PARTITIONS 4096

/* One CBS audience: its token state on the current connection. [thread] */
typedef struct sw_amqp_auth {
    char *audience;
    bool ok;             /* a token is in place on this connection */
    uint64_t pending_id; /* put-token request in flight, 0 = none */
    int64_t deadline;    /* mono µs: reply due */
    int64_t refresh_at;  /* mono µs: next put-token */
} sw_amqp_auth;

typedef struct ring_ent {
    int64_t seq;
    pn_delivery_t *d; /* NULL once its link is gone */
    char offset[SW_AMQP_OFFSET_MAX];
} ring_ent;

typedef enum {
    P_IDLE,      /* wanted, nothing in flight */
    P_TOKEN,     /* put-token sent */
    P_ATTACHING, /* attach sent */
    P_ACTIVE,    /* receiving */
    P_BACKOFF,   /* waiting for retry_at */
    P_STOPPED,   /* not receiving (removed, stolen, failed) */
} part_state;

typedef struct sw_amqp_part {
    char id[SW_AMQP_PARTITION_ID_MAX];
    char *address;
    /* [mu] requests from callers */
    bool add_req;
    bool remove_req;
    sw_amqp_position start_req;
    int64_t settle_req;
    bool in_use; /* added and not removed/stopped (as callers see it) */
    /* [thread] */
    part_state st;
    sw_amqp_auth auth;
    pn_link_t *link;
    uint32_t gen;
    int64_t deadline; /* P_ATTACHING: attach reply due */
    int64_t retry_at; /* P_BACKOFF */
    int attempts;
    bool opened_once;
    sw_amqp_position start;
    bool durable_known;
    char durable_offset[SW_AMQP_OFFSET_MAX];
    int64_t durable_seq; /* INT64_MIN = unknown */
    int64_t settled_req_seen;
    int64_t settle_local; /* settle asked from a callback (client thread, no lock) */
    ring_ent *ring;
    size_t ring_cap, ring_head, ring_count;
} sw_amqp_part;

typedef enum { MREQ_HUB, MREQ_PARTITION } mreq_kind;

/* A $management request of a blocked caller; lives on the caller's stack. [mu] */
typedef struct sw_amqp_mreq {
    mreq_kind kind;
    char partition[SW_AMQP_PARTITION_ID_MAX];
    uint64_t msg_id;
    bool sent;
    bool done;
    sw_err err;
    char **ids;
    size_t nids;
    sw_amqp_partition_info info;
    struct sw_amqp_mreq *next;
} sw_amqp_mreq;

typedef enum {
    S_IDLE,      /* no link, nothing in flight */
    S_TOKEN,     /* put-token sent */
    S_ATTACHING, /* attach sent */
    S_ACTIVE,    /* sending */
    S_BACKOFF,   /* waiting for retry_at */
} snd_state;

/* A cached sender link to one target `<hub>/Partitions/<id>`. [thread] */
typedef struct sw_amqp_snd {
    char *address;
    sw_amqp_auth auth;
    pn_link_t *link;
    snd_state st;
    uint32_t gen;
    int64_t deadline; /* S_ATTACHING: attach reply due */
    int64_t retry_at; /* S_BACKOFF */
    int attempts;
    uint64_t max_size; /* remote max-message-size, 0 = no limit */
    bool busy;         /* a request waits for it (set by each drive) */
    struct sw_amqp_snd *next;
} sw_amqp_snd;

/* Per-message progress of a send request. */
enum { SM_PENDING = 0, SM_INFLIGHT = 1, SM_ACCEPTED = 2 };

/* A send request of a blocked caller; lives on the caller's stack. [mu] */
typedef struct sw_amqp_sreq {
    uint64_t id;
    char address[400]; /* <hub>/Partitions/<id> */
    const sw_amqp_out *msgs;
    size_t n;
    unsigned char *mstate; /* SM_* per message */
    size_t cursor;         /* no SM_PENDING message before it */
    size_t accepted;
    bool checked; /* sizes checked against the link's max-message-size */
    bool done;
    sw_err err;
    sw_err last_err; /* last transient error, for the timeout message */
    sw_amqp_snd *snd;
    struct sw_amqp_sreq *next;
} sw_amqp_sreq;

typedef enum { C_DOWN, C_CONNECTING, C_OPEN, C_CLOSING } conn_state;
typedef enum { M_NONE, M_TOKEN, M_ATTACHING, M_READY } mgmt_state;

struct sw_amqp_client {
    /* configuration, immutable after new */
    sw_amqp_options o;
    sw_amqp_connstr cs;
    char *hub, *cg, *addr, *container, *token_scope, *hub_audience;
    char *opt_strings[4];     /* copies behind o's strings */
    sw_token_provider own_tp; /* SAS provider built from the connection string */
    const sw_token_provider *tp;
    bool tls, tls_verify;

    pn_proactor_t *proactor;
    pthread_t thread;
    bool thread_started;
    size_t nparts_seen; /* [thread] parts it has taken commands of (process_commands) */

    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* [mu] */
    bool stop_req;
    bool wake_req;
    pn_connection_t *conn;
    /* parts has SW_AMQP_MAX_PARTITIONS slots from the start and never moves, so
     * that the client thread can read parts[i] without mu for i < nparts_seen. */
    sw_amqp_part **parts;
    size_t nparts;
    sw_amqp_mreq *mreqs;
    bool fatal;
    sw_err fatal_err;

    atomic_bool cmd_pending;
    atomic_bool mgmt_pending;
    _Atomic uint64_t st_events, st_settled, st_connects, st_reattaches, st_token_puts,
        st_duplicates, st_rebound;

    /* [thread] */
    conn_state cst;
    int64_t reconnect_at;
    int conn_attempts;
    int64_t stop_deadline;
    int64_t armed_at; /* deadline the proactor timeout is set for, INT64_MAX = none */
    bool tick_req;
    sw_amqp_part *cur_part; /* partition whose on_event is running */
    uint64_t n_events, n_settled;
    pn_session_t *ctl_ssn, *rx_ssn;
    pn_link_t *cbs_tx, *cbs_rx, *mg_tx, *mg_rx;
    mgmt_state mst;
    sw_amqp_auth mauth;
    int64_t mdeadline;
    uint64_t next_id;
    uint64_t next_tag;
    pn_message_t *msg;
    pn_rwbytes_t enc;
    sw_buf rx, scratch;
    uint64_t rng;
    sw_err conn_err;
    bool conn_err_set;

    /* sender: [mu] requests, [thread] links */
    sw_amqp_sreq *sreqs;
    uint64_t next_sreq_id;
    sw_amqp_snd *snds;
    pn_session_t *tx_ssn;
    _Atomic uint64_t st_sent, st_resent, st_snd_attaches;
};

#endif
