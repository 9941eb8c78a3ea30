/*
 * Internals shared by the emulator's server files (server.c: connections and
 * links; nodes.c: the $cbs and $management request/response nodes;
 * control.c: the fault-injection command channel).
 *
 * Ownership: emu_conn and emu_link are owned by the server and attached to
 * their proton objects as context; they are freed when the link closes or the
 * transport closes. Thread safety: everything here is touched only from the
 * event thread, except the command queue (mutex-protected).
 */
#ifndef SW_EMULATOR_SERVER_INT_H
#define SW_EMULATOR_SERVER_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <proton/connection.h>
#include <proton/link.h>
#include <proton/listener.h>
#include <proton/proactor.h>
#include <proton/ssl.h>

#include "scanwatch/buf.h"
#include "server.h"

#define EMU_MAX_CLAIMS 64
#define EMU_COND_MAX 64
#define EMU_DESC_MAX 256
/* Requests to $cbs / $management are small; anything larger is refused. */
#define EMU_MAX_REQUEST_SIZE (256 * 1024)

typedef enum {
    EMU_LINK_CBS_IN,   /* client -> $cbs requests */
    EMU_LINK_CBS_OUT,  /* $cbs -> client replies */
    EMU_LINK_MGMT_IN,  /* client -> $management requests */
    EMU_LINK_MGMT_OUT, /* $management -> client replies */
    EMU_LINK_SENDER,   /* client publishes to a hub or a partition */
    EMU_LINK_RECEIVER, /* client consumes a partition of a consumer group */
} emu_link_kind;

typedef struct emu_conn emu_conn;

typedef struct emu_link {
    pn_link_t *link;
    emu_conn *conn;
    emu_link_kind kind;
    emu_hub *hub;
    emu_partition *part; /* NULL for a hub-addressed sender */
    int group;
    int64_t cursor; /* next sequence number to deliver */
    bool has_epoch;
    int64_t epoch;
    int64_t auth_expiry_s; /* 0 = no token needed */
    char entity[EMU_PATH_MAX];
    bool closing;
    bool close_requested; /* by fault injection or epoch theft, done on wake */
    char close_cond[EMU_COND_MAX];
    char close_desc[EMU_DESC_MAX];
    uint64_t tag;
    int64_t due_ms;                 /* delayed delivery due (monotonic ms), 0 = none */
    int queued_seen;                /* pn_link_queued at the end of the last deliver() */
    bool oversize;                  /* the incoming delivery exceeded the limit */
    sw_buf rx;                      /* incoming delivery being reassembled */
    struct emu_link *pnext, *pprev; /* in part->receivers */
} emu_link;

typedef struct emu_claim {
    char path[EMU_PATH_MAX];
    int64_t expiry_s; /* INT64_MAX: no expiry */
} emu_claim;

struct emu_conn {
    emu_server *srv;
    pn_connection_t *conn;
    emu_claim claims[EMU_MAX_CLAIMS];
    int claim_count;
    bool drop_requested;
    bool close_requested;
    char close_cond[EMU_COND_MAX];
    char close_desc[EMU_DESC_MAX];
    emu_conn *next, *prev;
};

typedef struct emu_cmd {
    const char *line;
    char *reply;
    size_t reply_size;
    bool done;
    struct emu_cmd *next;
} emu_cmd;

struct emu_server {
    emu_store *store;
    emu_auth *auth;
    emu_options opt;
    pn_proactor_t *proactor;
    pn_listener_t *listener;
    pn_ssl_domain_t *ssl;
    emu_conn *conns;
    int port;
    int control_port;
    bool stop;
    bool failed;
    sw_err fail_err;
    /* fault injection */
    int refuse_attach;
    char refuse_cond[EMU_COND_MAX];
    char refuse_desc[EMU_DESC_MAX];
    int64_t delay_ms;
    bool stalled;   /* a receiver link waits for its session window (see deliver) */
    int queued_max; /* most deliveries one receiver link had queued in proton */
    /* control queue */
    bool threads_started; /* control threads may hold the server until exit */
    bool closed;          /* under mu: the loop ended, submit no longer touches the proactor */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    emu_cmd *queue_head, *queue_tail;
};

int64_t emu_now_ms(void);
int64_t emu_mono_ms(void);

/* nodes.c */
void emu_handle_cbs(emu_conn *ec, emu_link *el, const unsigned char *msg, size_t len);
void emu_handle_mgmt(emu_conn *ec, emu_link *el, const unsigned char *msg, size_t len);

/* server.c, used by nodes.c and control.c */
void emu_conn_add_claim(emu_conn *ec, const char *path, int64_t expiry_s);
void emu_link_request_close(emu_link *el, const char *cond, const char *desc);
void emu_notify_partition(emu_partition *p);
void emu_execute_command(emu_server *s, const char *line, char *reply, size_t reply_size);

#endif
