/*
 * The service loop. Event flow and the one rule that keeps it exact:
 *
 *   AMQP client thread --on_event--> queue (bounded by max_unsettled over all
 *   partitions, because the client stops granting credit past it)
 *   decoding thread (decode_ahead): queue -> decoded records, each partition's
 *       order kept
 *   processing thread: decoded queue -> pipeline (windows, state batch)
 *       -> sw_state_engine_commit (one atomic RocksDB batch: effects + checkpoint)
 *       -> sw_amqp_settle (only now is the event acknowledged on the hub)
 *   notifier thread: outbox -> routes -> mails -> sink
 *
 * A crash anywhere resumes each partition after its RocksDB checkpoint; the
 * hub's own settlement only frees credit.
 */
#include "service.h"

#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pipeline.h"
#include "route.h"
#include "scanwatch/amqp.h"
#include "scanwatch/amqp_connstr.h"
#include "scanwatch/entra.h"
#include "scanwatch/log.h"
#include "scanwatch/metrics.h"
#include "scanwatch/notify.h"
#include "scanwatch/state.h"
#include "scanwatch/state_engine.h"

#define MAX_PARTITIONS 1024
#define TICK_US (1000 * 1000)

static volatile sig_atomic_t stop_requested;

void sw_service_request_stop(void)
{
    stop_requested = 1;
}

void sw_service_opts_default(sw_service_opts *o)
{
    memset(o, 0, sizeof *o);
    o->notify = true;
    o->baseline_until_override = SW_TIME_UNSET;
}

/* One event copied off the client thread. */
typedef struct ev_node {
    struct ev_node *next;
    int part; /* index into svc.parts */
    char offset[SW_AMQP_OFFSET_MAX];
    int64_t seq;
    sw_time_us enqueued;
    size_t len;
    size_t oversize;
    bool direct;     /* state kept here: decoded ahead when decode_ahead is on */
    sw_decoded *dec; /* decoded ahead, or NULL: the processing thread decodes it */
    unsigned char body[];
} ev_node;

typedef struct evq {
    ev_node *head, *tail;
    size_t n;
} evq;

static void evq_push(evq *q, ev_node *n)
{
    n->next = NULL;
    if (q->tail != NULL) {
        q->tail->next = n;
    } else {
        q->head = n;
    }
    q->tail = n;
    q->n++;
}

static ev_node *evq_pop(evq *q)
{
    ev_node *n = q->head;
    if (n != NULL) {
        q->head = n->next;
        q->tail = q->head != NULL ? q->tail : NULL;
        q->n--;
    }
    return n;
}

/* Appends src to dst, leaving src empty. */
static void evq_move(evq *dst, evq *src)
{
    if (src->head == NULL) {
        return;
    }
    if (dst->tail != NULL) {
        dst->tail->next = src->head;
    } else {
        dst->head = src->head;
    }
    dst->tail = src->tail;
    dst->n += src->n;
    memset(src, 0, sizeof *src);
}

static void node_free(ev_node *n)
{
    if (n != NULL) {
        sw_decoded_free(n->dec);
        free(n);
    }
}

static void evq_free(evq *q)
{
    ev_node *n;
    while ((n = evq_pop(q)) != NULL) {
        node_free(n);
    }
}

/* Where a partition's events go. */
typedef enum {
    PART_DIRECT, /* export hub, state kept here (one replica) */
    PART_EXPORT, /* export hub, findings forwarded to the route hub (several replicas) */
    PART_ROUTE,  /* route hub: routed records into state (several replicas) */
} part_kind;

typedef struct part {
    char id[SW_AMQP_PARTITION_ID_MAX];
    part_kind kind;
    sw_amqp_client *client;                      /* the client receiving it */
    char state_id[SW_AMQP_PARTITION_ID_MAX + 8]; /* its checkpoint's name in state */
    evq in;                                      /* filled by the client thread, under svc.mu */
    evq decoded;        /* decode_ahead: filled by the decoding thread, under svc.mu */
    evq ready;          /* the processing thread's own */
    bool more_expected; /* snapshot for the merge: the hub holds events not yet received */
    bool active;        /* owned and receiving */
    bool open;          /* receiver attached */
    /* Why and since when the receiver link is detached and re-attaching (set by
     * on_partition_detached, cleared by on_partition_open), for /readyz; "" = none. */
    char detached_why[sizeof(((sw_err *)0)->msg)];
    sw_time_us detached_since;
    int64_t processed_seq;    /* last event handed to the pipeline */
    int64_t settled_seq;      /* last settle call */
    int64_t target_seq;       /* last enqueued when the run started (stop_when_caught_up) */
    int64_t last_enqueued;    /* from $management; -1 = empty or unknown */
    sw_time_us last_enq_time; /* from $management */
    bool info_known;
    /* Bumped when the receiver (re)attaches or the connection drops: lag info read before
     * is stale (events were enqueued meanwhile) and must not tell the merge "nothing more". */
    uint32_t info_gen;
} part;

/* Routed records for one route partition, sent before the batch commits. */
typedef struct fwd_queue {
    sw_buf bodies;
    size_t *ends; /* end offset of each body in `bodies` */
    size_t n, cap;
} fwd_queue;

typedef struct svc {
    const sw_config *cfg;
    const sw_service_opts *o;
    sw_metrics *metrics;
    sw_http *http;
    sw_state *st;
    sw_state_engine *eng;
    sw_pipeline *pl;
    sw_amqp_client *amqp;  /* the export hub */
    sw_amqp_client *route; /* the route hub (several replicas), or NULL */
    sw_pipeline *fwd;      /* export partitions' pipeline in forward mode */
    uint32_t route_n;      /* route hub partitions */
    char **route_ids;
    struct fwd_queue *fwdq; /* per route partition: routed records not yet sent */
    size_t fwd_pending;
    struct cbctx {
        struct svc *s;
        bool route;
    } cb_export, cb_route;
    sw_notifier *notifier;
    sw_token_provider entra; /* Event Hubs with Entra ID (no key in the connection string) */
    bool has_entra;

    pthread_mutex_t mu; /* guards parts[].in/open/active/last_enqueued/info_known, fatal */
    pthread_cond_t cv;
    /* Events received and not yet taken by the processing thread: in parts[].in, being
     * decoded ahead, or in parts[].decoded. */
    size_t queued;
    /* decode_ahead: the decoding thread between the client thread and the processing
     * thread. It takes events from parts[].in (in_n of them) and puts them, decoded, on
     * parts[].decoded (decoded_n), keeping each partition's order. */
    bool ahead;
    size_t in_n, decoded_n;
    pthread_cond_t cv_decode; /* wakes the decoding thread */
    bool decode_stop;
    pthread_t decode_thread;
    bool decode_started;
    sw_predecoder *pre;
    part parts[MAX_PARTITIONS];
    size_t n_parts;
    bool fatal;
    sw_err fatal_err;
    /* The last connection-level error and since when the hub has been out of reach
     * (0 = reachable), for /readyz; under mu. */
    char hub_error[sizeof(((sw_err *)0)->msg)];
    sw_time_us hub_down_since;
    bool discovered; /* partitions known: the run loop is receiving */
    atomic_bool connected;
    atomic_bool lag_poll_now;    /* a receiver (re)attached: refresh lag info at once */
    atomic_llong heartbeat_us;   /* monotonic time of the last loop pass */
    int64_t merge_blocked_since; /* monotonic; 0 = the merge is not waiting */
    int64_t merge_wait_us;

    pthread_t lag_thread, notify_thread;
    bool lag_started, notify_started;
    atomic_bool threads_stop;
    atomic_int notify_stop; /* the notifier thread's sw_notify_run flag */

    size_t max_message_size;
    sw_metric *m_lag, *m_outbox, *m_latency, *m_windows, *m_new, *m_resolved, *m_diffs, *m_mails,
        *m_failed, *m_new_sev, *m_owned, *m_stale, *m_attached;
    sw_state_engine_stats last_stats;
} svc;

/* ---- AMQP callbacks (client thread) -------------------------------------- */

static int part_index(svc *s, bool route, const char *id)
{
    for (size_t i = 0; i < s->n_parts; i++) {
        if ((s->parts[i].kind == PART_ROUTE) == route && strcmp(s->parts[i].id, id) == 0) {
            return (int)i;
        }
    }
    return -1;
}

static void on_event(void *ctx, const sw_amqp_event *ev)
{
    struct cbctx *cb = ctx;
    svc *s = cb->s;
    int idx = part_index(s, cb->route, ev->partition);
    if (idx < 0) {
        return;
    }
    /* Oversized bodies are dead-lettered with a bounded prefix, never dropped silently. */
    size_t keep = ev->body_len;
    size_t oversize = 0;
    if (keep > s->max_message_size) {
        oversize = keep;
        keep = 64 * 1024;
    }
    ev_node *n = malloc(sizeof *n + keep);
    if (n == NULL) {
        pthread_mutex_lock(&s->mu);
        s->fatal = true;
        sw_err_set(&s->fatal_err, SW_E_NOMEM, "out of memory queueing an event");
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
        return;
    }
    n->next = NULL;
    n->part = idx;
    /* a bounded copy without printf: this runs once per event on the client thread */
    size_t olen = ev->offset != NULL ? strnlen(ev->offset, sizeof n->offset - 1) : 0;
    memcpy(n->offset, ev->offset != NULL ? ev->offset : "", olen);
    n->offset[olen] = '\0';
    n->seq = ev->sequence_number;
    n->enqueued = ev->enqueued_time;
    n->len = keep;
    n->oversize = oversize;
    n->direct = s->parts[idx].kind == PART_DIRECT;
    n->dec = NULL;
    if (keep > 0) {
        memcpy(n->body, ev->body, keep);
    }
    pthread_mutex_lock(&s->mu);
    evq_push(&s->parts[idx].in, n);
    /* The next thread waits only while it has nothing: wake it for the first event, not
     * for every one (a futex wake per event cost ~2% of the service's CPU). */
    if (s->ahead) {
        if (s->in_n++ == 0) {
            pthread_cond_signal(&s->cv_decode);
        }
    } else if (s->queued == 0) {
        pthread_cond_signal(&s->cv);
    }
    s->queued++;
    pthread_mutex_unlock(&s->mu);
}

static void on_partition_open(void *ctx, const char *partition)
{
    struct cbctx *cb = ctx;
    svc *s = cb->s;
    pthread_mutex_lock(&s->mu);
    int idx = part_index(s, cb->route, partition);
    if (idx >= 0) {
        s->parts[idx].open = true;
        s->parts[idx].detached_why[0] = '\0';
        s->parts[idx].detached_since = 0;
        s->parts[idx].info_known = false;
        s->parts[idx].info_gen++;
    }
    s->hub_down_since = 0;
    pthread_mutex_unlock(&s->mu);
    atomic_store(&s->lag_poll_now, true);
    atomic_store(&s->connected, true); /* the client logs "partition receiving" */
}

static void on_partition_closed(void *ctx, const char *partition, const sw_err *err)
{
    struct cbctx *cb = ctx;
    svc *s = cb->s;
    pthread_mutex_lock(&s->mu);
    int idx = part_index(s, cb->route, partition);
    if (idx >= 0) {
        s->parts[idx].open = false;
        s->parts[idx].active = false;
    }
    pthread_mutex_unlock(&s->mu);
    if (err->code == SW_E_OWNERSHIP_LOST) {
        SW_LOG_ERR(SW_LOG_WARN, "partition ownership lost; another consumer took it", err,
                   SW_LF_STR("partition", partition));
    } else {
        SW_LOG_ERR(SW_LOG_ERROR, "partition stopped", err, SW_LF_STR("partition", partition));
    }
}

/* One receiver link is gone and re-attaching: not receiving until on_partition_open. */
static void on_partition_detached(void *ctx, const char *partition, const sw_err *err)
{
    struct cbctx *cb = ctx;
    svc *s = cb->s;
    pthread_mutex_lock(&s->mu);
    int idx = part_index(s, cb->route, partition);
    if (idx >= 0) {
        part *p = &s->parts[idx];
        p->open = false;
        p->info_known = false;
        p->info_gen++;
        snprintf(p->detached_why, sizeof p->detached_why, "%s", err->msg);
        if (p->detached_since == 0) {
            p->detached_since = sw_time_now();
        }
    }
    pthread_mutex_unlock(&s->mu);
    /* on_error logs the error itself */
}

static void on_error(void *ctx, const char *partition, const sw_err *err, bool fatal)
{
    struct cbctx *cb = ctx;
    svc *s = cb->s;
    if (partition == NULL) {
        atomic_store(&s->connected, false);
        pthread_mutex_lock(&s->mu);
        for (size_t i = 0; i < s->n_parts; i++) {
            if ((s->parts[i].kind == PART_ROUTE) == cb->route) {
                s->parts[i].open = false;
                s->parts[i].detached_why[0] = '\0'; /* the connection error says why now */
                s->parts[i].detached_since = 0;
                s->parts[i].info_known = false;
                s->parts[i].info_gen++;
            }
        }
        snprintf(s->hub_error, sizeof s->hub_error, "%s", err->msg);
        if (s->hub_down_since == 0) {
            s->hub_down_since = sw_time_now();
        }
        pthread_mutex_unlock(&s->mu);
    } else {
        /* A link error: the receiver may be re-attaching; what lag info said is stale. */
        pthread_mutex_lock(&s->mu);
        int idx = part_index(s, cb->route, partition);
        if (idx >= 0) {
            s->parts[idx].info_known = false;
            s->parts[idx].info_gen++;
        }
        pthread_mutex_unlock(&s->mu);
        atomic_store(&s->lag_poll_now, true);
    }
    SW_LOG_ERR(fatal ? SW_LOG_ERROR : SW_LOG_WARN,
               fatal ? "event hub client stopped" : "event hub error, retrying", err,
               SW_LF_STR("partition", partition != NULL ? partition : ""));
    if (fatal) {
        pthread_mutex_lock(&s->mu);
        if (!s->fatal) {
            s->fatal = true;
            s->fatal_err = *err;
        }
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
    }
}

/* ---- health ----------------------------------------------------------------- */

static bool healthz(void *ctx, sw_buf *text)
{
    svc *s = ctx;
    int64_t idle = sw_time_mono_us() - atomic_load(&s->heartbeat_us);
    pthread_mutex_lock(&s->mu);
    bool fatal = s->fatal;
    pthread_mutex_unlock(&s->mu);
    if (fatal) {
        sw_buf_append_str(text, "fatal error: see the log\n");
        return false;
    }
    if (idle > 60 * SW_US_PER_SEC) {
        sw_buf_printf(text, "processing loop stalled for %lld s\n",
                      (long long)(idle / SW_US_PER_SEC));
        return false;
    }
    sw_buf_append_str(text, "ok\n");
    return true;
}

static bool readyz(void *ctx, sw_buf *text)
{
    svc *s = ctx;
    if (!atomic_load(&s->connected)) {
        pthread_mutex_lock(&s->mu);
        bool discovered = s->discovered;
        sw_time_us since = s->hub_down_since;
        char why[sizeof s->hub_error];
        memcpy(why, s->hub_error, sizeof why);
        pthread_mutex_unlock(&s->mu);
        sw_buf_append_str(text, discovered ? "not connected to the event hub"
                                           : "not connected to the event hub yet (discovering "
                                             "partitions)");
        if (since != 0) {
            char ts[SW_TIME_BUF];
            sw_time_format(since, ts, sizeof ts);
            sw_buf_printf(text, " since %s (%lld s); last error: %s; retrying with backoff", ts,
                          (long long)((sw_time_now() - since) / SW_US_PER_SEC), why);
        }
        sw_buf_append_char(text, '\n');
        return false;
    }
    size_t waiting = 0, active = 0;
    sw_buf why;
    sw_buf_init(&why, 16 * 1024);
    sw_time_us now = sw_time_now();
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->n_parts; i++) {
        const part *p = &s->parts[i];
        if (!p->active) {
            continue;
        }
        active++;
        if (p->open) {
            continue;
        }
        waiting++;
        /* Name each one: a single detached partition stalls its share of the images. */
        if (p->detached_why[0] != '\0') {
            char ts[SW_TIME_BUF];
            sw_time_format(p->detached_since, ts, sizeof ts);
            sw_buf_printf(&why, "partition %s detached since %s (%lld s), re-attaching: %s\n",
                          p->state_id, ts, (long long)((now - p->detached_since) / SW_US_PER_SEC),
                          p->detached_why);
        } else {
            sw_buf_printf(&why, "partition %s not attached yet\n", p->state_id);
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (waiting > 0) {
        sw_buf_printf(text, "%zu of %zu partitions not attached\n", waiting, active);
        sw_buf_append(text, why.data, why.len);
        sw_buf_free(&why);
        return false;
    }
    sw_buf_free(&why);
    sw_buf_printf(text, "ready: %zu partitions receiving\n", active);
    return true;
}

/* ---- lag poller (own thread: $management calls block) ------------------------ */

static void sleep_us(int64_t us)
{
    struct timespec ts = {(time_t)(us / SW_US_PER_SEC), (long)(us % SW_US_PER_SEC) * 1000};
    nanosleep(&ts, NULL);
}

static void poll_lag_once(svc *s)
{
    atomic_store(&s->lag_poll_now, false);
    for (size_t i = 0; i < s->n_parts && !atomic_load(&s->threads_stop); i++) {
        sw_amqp_partition_info info;
        sw_err err;
        pthread_mutex_lock(&s->mu);
        uint32_t gen = s->parts[i].info_gen;
        pthread_mutex_unlock(&s->mu);
        if (!sw_amqp_get_partition_info(s->parts[i].client, s->parts[i].id, &info, &err)) {
            SW_LOG_ERR(SW_LOG_DEBUG, "partition properties unavailable", &err,
                       SW_LF_STR("partition", s->parts[i].id));
            continue;
        }
        pthread_mutex_lock(&s->mu);
        s->parts[i].last_enqueued = info.is_empty ? -1 : info.last_enqueued_sequence_number;
        s->parts[i].last_enq_time = info.last_enqueued_time;
        /* Known only if no (re)attach happened while asking (else ask again at once). */
        s->parts[i].info_known = gen == s->parts[i].info_gen;
        bool again = !s->parts[i].info_known;
        pthread_mutex_unlock(&s->mu);
        if (again) {
            atomic_store(&s->lag_poll_now, true);
        }
    }
}

static void *lag_main(void *arg)
{
    svc *s = arg;
    int64_t interval = sw_cfg_int(s->cfg, SW_CFG_LAG_POLL_INTERVAL);
    if (s->o->stop_when_caught_up && interval > 500 * 1000) {
        interval = 500 * 1000;
    }
    while (!atomic_load(&s->threads_stop)) {
        poll_lag_once(s);
        for (int64_t slept = 0;
             slept < interval && !atomic_load(&s->threads_stop) && !atomic_load(&s->lag_poll_now);
             slept += 20 * 1000) {
            sleep_us(20 * 1000);
        }
    }
    return NULL;
}

/* ---- notifier thread ---------------------------------------------------------- */

static void *notify_main(void *arg)
{
    svc *s = arg;
    sw_err err;
    if (!sw_notify_run(s->notifier, &s->notify_stop, &err)) {
        SW_LOG_ERR(SW_LOG_ERROR, "notifier stopped", &err);
        pthread_mutex_lock(&s->mu);
        if (!s->fatal) {
            s->fatal = true;
            s->fatal_err = err;
        }
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
    }
    return NULL;
}

/* ---- set-up ------------------------------------------------------------------- */

/* The StatefulSet ordinal: the digits after the last '-' of the host name. */
/* Events decoded per pass of the decoding thread: small enough that the processing
 * thread is fed while the rest of a large backlog is decoded. */
#define DECODE_PASS 64

/*
 * The decoding thread (decode_ahead): events of the state's own partitions are
 * decoded here, ahead of the processing thread, which applies them in order.
 * Takes at most DECODE_PASS events per pass, round-robin over the partitions
 * from each queue's head, so every partition's order is kept.
 */
static void *decode_main(void *arg)
{
    svc *s = arg;
    evq pass = {0};
    pthread_mutex_lock(&s->mu);
    while (!s->decode_stop) {
        if (s->in_n == 0) {
            pthread_cond_wait(&s->cv_decode, &s->mu);
            continue;
        }
        for (bool took = true; took && pass.n < DECODE_PASS;) {
            took = false;
            for (size_t i = 0; i < s->n_parts && pass.n < DECODE_PASS; i++) {
                ev_node *n = evq_pop(&s->parts[i].in);
                if (n != NULL) {
                    evq_push(&pass, n);
                    took = true;
                }
            }
        }
        s->in_n -= pass.n;
        pthread_mutex_unlock(&s->mu);
        for (ev_node *n = pass.head; n != NULL; n = n->next) {
            if (n->direct) {
                n->dec = sw_predecode(s->pre, n->enqueued, n->body, n->len, n->oversize);
            }
        }
        pthread_mutex_lock(&s->mu);
        bool wake = s->decoded_n == 0;
        s->decoded_n += pass.n;
        ev_node *n;
        while ((n = evq_pop(&pass)) != NULL) {
            if (n->dec != NULL && !sw_decoded_needs_body(n->dec) && n->len > 0) {
                /* Decoded: the body is not needed any more, and the queue between the
                 * threads holds up to max_unsettled events. realloc to a smaller size
                 * stays in place or moves; either way n is what is queued. */
                ev_node *small = realloc(n, sizeof *n);
                if (small != NULL) {
                    n = small;
                    n->len = 0;
                }
            }
            evq_push(&s->parts[n->part].decoded, n);
        }
        if (wake) {
            pthread_cond_signal(&s->cv);
        }
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static void stop_decode_thread(svc *s)
{
    if (!s->decode_started) {
        return;
    }
    pthread_mutex_lock(&s->mu);
    s->decode_stop = true;
    pthread_cond_signal(&s->cv_decode);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->decode_thread, NULL);
    s->decode_started = false;
}

static bool replica_from_hostname(int *out, char *host, size_t size)
{
    if (gethostname(host, size) != 0) {
        return false;
    }
    host[size - 1] = '\0';
    const char *dash = strrchr(host, '-');
    if (dash == NULL || dash[1] == '\0') {
        return false;
    }
    char *end = NULL;
    long v = strtol(dash + 1, &end, 10);
    if (*end != '\0' || v < 0 || v > 1023) {
        return false;
    }
    *out = (int)v;
    return true;
}

static bool replica_index(const sw_config *cfg, int *out, sw_err *err)
{
    int count = (int)sw_cfg_int(cfg, SW_CFG_REPLICA_COUNT);
    int idx = (int)sw_cfg_int(cfg, SW_CFG_REPLICA_INDEX);
    if (idx < 0) {
        char host[256];
        if (!replica_from_hostname(&idx, host, sizeof host)) {
            if (count > 1) {
                return sw_err_set(err, SW_E_CONFIG,
                                  "replica_index is -1 but the host name '%s' ends in no ordinal "
                                  "(like scanwatch-2); set replica_index",
                                  host);
            }
            idx = 0;
        }
    }
    if (idx >= count) {
        return sw_err_set(err, SW_E_CONFIG, "replica_index %d is not below replica_count %d", idx,
                          count);
    }
    *out = idx;
    return true;
}

/* Partition ids are "0".."n-1" on Event Hubs; others are placed by list order. */
static long partition_number(const char *id, size_t list_pos)
{
    char *end = NULL;
    long v = strtol(id, &end, 10);
    return end != id && *end == '\0' && v >= 0 ? v : (long)list_pos;
}

/* Adds this replica's share of a hub's partitions (or only_partition). */
static bool take_partitions(svc *s, sw_amqp_client *c, part_kind kind, int idx, int count,
                            const char *only, char **ids, size_t n, sw_err *err)
{
    size_t before = s->n_parts;
    for (size_t i = 0; i < n; i++) {
        bool mine =
            only != NULL ? strcmp(ids[i], only) == 0 : partition_number(ids[i], i) % count == idx;
        if (!mine) {
            continue;
        }
        if (s->n_parts == MAX_PARTITIONS) {
            return sw_err_set(err, SW_E_UNSUPPORTED, "more than %d partitions", MAX_PARTITIONS);
        }
        part *p = &s->parts[s->n_parts++];
        memset(p, 0, sizeof *p);
        snprintf(p->id, sizeof p->id, "%s", ids[i]);
        /* Export and route partitions share one state: their checkpoints differ by name. */
        snprintf(p->state_id, sizeof p->state_id, "%s%s", kind == PART_EXPORT ? "export/" : "",
                 ids[i]);
        p->kind = kind;
        p->client = c;
        p->processed_seq = -1;
        p->settled_seq = -1;
        p->target_seq = -1;
        p->last_enqueued = -1;
    }
    if (only != NULL && s->n_parts == before) {
        return sw_err_set(err, SW_E_NOT_FOUND, "the hub has no partition '%s'", only);
    }
    return true;
}

/*
 * Partition discovery waits for the hub however long it is out of reach (not started yet,
 * network or DNS down): the client reconnects with its backoff and logs each failure, this
 * loop logs a summary every 30 s, /readyz says why. Only errors that retrying cannot fix
 * (rejected credentials, unknown hub) or a stop request end it.
 */
static bool discover(svc *s, sw_amqp_client *c, const char *what, char ***ids, size_t *n,
                     sw_err *err)
{
    int64_t start = sw_time_mono_us(), last_log = start;
    for (;;) {
        /* Waiting is not stalling: /healthz stays 200 (a liveness probe must not restart us). */
        atomic_store(&s->heartbeat_us, sw_time_mono_us());
        sw_amqp_stats st;
        sw_amqp_get_stats(c, &st);
        pthread_mutex_lock(&s->mu);
        bool fatal = s->fatal;
        if (fatal) {
            *err = s->fatal_err;
        }
        char why[sizeof s->hub_error];
        memcpy(why, s->hub_error, sizeof why);
        pthread_mutex_unlock(&s->mu);
        if (fatal) {
            return false;
        }
        if (stop_requested) {
            return sw_err_set(err, SW_E_SHUTDOWN, "stopped while %s", what);
        }
        /* Asked only once a connection opened: the call blocks for operation_timeout. */
        if (st.connects > 0) {
            if (sw_amqp_get_partition_ids(c, ids, n, err)) {
                return true;
            }
            if (!err->retriable) {
                return false;
            }
            snprintf(why, sizeof why, "%s", err->msg);
        }
        int64_t now = sw_time_mono_us();
        if (now - last_log >= 30 * SW_US_PER_SEC) {
            SW_LOG(SW_LOG_WARN, "event hub still out of reach; retrying", SW_LF_STR("while", what),
                   SW_LF_INT("waiting_s", (now - start) / SW_US_PER_SEC),
                   SW_LF_STR("last_error", why));
            last_log = now;
        }
        sleep_us(100 * 1000);
    }
}

static bool choose_partitions(svc *s, sw_err *err)
{
    char **ids = NULL;
    size_t n = 0;
    int idx = 0;
    int count = (int)sw_cfg_int(s->cfg, SW_CFG_REPLICA_COUNT);
    if (!replica_index(s->cfg, &idx, err)) {
        return false;
    }
    if (count > 1 && s->route == NULL && s->o->only_partition == NULL) {
        /* Defender sets no partition key: every replica would see part of every
         * scan, and its diffs would be wrong. */
        return sw_err_set(err, SW_E_CONFIG,
                          "replica_count %d needs route_hub: several replicas re-key findings "
                          "by image through a second hub (docs/deploy.md, \"Replicas\")",
                          count);
    }
    bool ok = true;
    /* replay/rebuild name one partition: of the route hub when there is one. */
    if (s->route == NULL || s->o->only_partition == NULL) {
        if (!discover(s, s->amqp, "discovering partitions", &ids, &n, err)) {
            sw_err_prefix(err, "discovering partitions");
            return false;
        }
        ok = take_partitions(s, s->amqp, s->route != NULL ? PART_EXPORT : PART_DIRECT, idx, count,
                             s->o->only_partition, ids, n, err);
        sw_amqp_free_partition_ids(ids, n);
    }
    if (ok && s->route != NULL) {
        if (!discover(s, s->route, "discovering the route hub's partitions", &s->route_ids, &n,
                      err)) {
            sw_err_prefix(err, "discovering the route hub's partitions");
            return false;
        }
        s->route_n = (uint32_t)n;
        s->fwdq = calloc(n > 0 ? n : 1, sizeof *s->fwdq);
        ok = s->fwdq != NULL || sw_err_set(err, SW_E_NOMEM, "out of memory");
        ok = ok && n > 0;
        ok = ok && take_partitions(s, s->route, PART_ROUTE, idx, count, s->o->only_partition,
                                   s->route_ids, n, err);
    }
    if (ok) {
        pthread_mutex_lock(&s->mu);
        s->discovered = true;
        pthread_mutex_unlock(&s->mu);
        SW_LOG(SW_LOG_INFO, "partitions assigned", SW_LF_UINT("owned", s->n_parts),
               SW_LF_UINT("route_partitions", s->route_n), SW_LF_INT("replica_index", idx),
               SW_LF_INT("replica_count", count));
    }
    return ok;
}

static bool start_position(svc *s, part *p, sw_amqp_position *pos, sw_err *err)
{
    if (s->o->start_after_offset != NULL) {
        return sw_amqp_position_after(pos, s->o->start_after_offset, -1, err);
    }
    if (s->o->start_override != NULL) {
        return sw_amqp_position_parse(s->o->start_override, pos, err);
    }
    sw_state_checkpoint cp;
    bool found = false;
    if (!sw_state_checkpoint_get(s->st, p->state_id, &cp, &found, err)) {
        return false;
    }
    if (found) {
        p->processed_seq = cp.sequence;
        p->settled_seq = cp.sequence;
        return sw_amqp_position_after(pos, cp.offset, cp.sequence, err);
    }
    return sw_amqp_position_parse(sw_cfg_str(s->cfg, SW_CFG_START_POSITION), pos, err);
}

static void define_metrics(svc *s)
{
    static const double lat_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                        1,     2.5,  5,     10,   30,  60,   300};
    s->m_lag =
        sw_metrics_define(s->metrics, SW_METRIC_GAUGE, "scanwatch_partition_lag_events",
                          "Events enqueued on the partition and not yet checkpointed.", NULL, 0);
    s->m_outbox = sw_metrics_define(s->metrics, SW_METRIC_GAUGE, "scanwatch_outbox_depth",
                                    "Diff records waiting in the outbox.", NULL, 0);
    s->m_latency =
        sw_metrics_define(s->metrics, SW_METRIC_HISTOGRAM, "scanwatch_processing_latency_seconds",
                          "Time from an event's enqueue on the hub to its processing.", lat_bounds,
                          (int)(sizeof lat_bounds / sizeof lat_bounds[0]));
    s->m_windows =
        sw_metrics_define(s->metrics, SW_METRIC_COUNTER, "scanwatch_windows_closed_total",
                          "Rescan windows applied to image state.", NULL, 0);
    s->m_new = sw_metrics_define(s->metrics, SW_METRIC_COUNTER, "scanwatch_new_findings_total",
                                 "New findings in diff records.", NULL, 0);
    s->m_resolved =
        sw_metrics_define(s->metrics, SW_METRIC_COUNTER, "scanwatch_resolved_findings_total",
                          "Resolved findings in diff records.", NULL, 0);
    s->m_diffs = sw_metrics_define(s->metrics, SW_METRIC_COUNTER, "scanwatch_diff_records_total",
                                   "Diff records written to the outbox.", NULL, 0);
    s->m_stale = sw_metrics_define(s->metrics, SW_METRIC_COUNTER, "scanwatch_stale_findings_total",
                                   "Findings older than the image's last scan, ignored.", NULL, 0);
    s->m_mails =
        sw_metrics_define(s->metrics, SW_METRIC_GAUGE, "scanwatch_mails",
                          "Mails by state (sent, retried, dead, pending) since start.", NULL, 0);
    s->m_failed = sw_metrics_define(s->metrics, SW_METRIC_GAUGE, "scanwatch_mail_failures",
                                    "Failed mail attempts since start, by HTTP status or reason "
                                    "(retried or dead-lettered).",
                                    NULL, 0);
    s->m_new_sev = sw_metrics_define(s->metrics, SW_METRIC_GAUGE, "scanwatch_notified_new_findings",
                                     "New findings of the diff records handed to notification "
                                     "since start, by severity.",
                                     NULL, 0);
    s->m_owned = sw_metrics_define(s->metrics, SW_METRIC_GAUGE, "scanwatch_partitions_owned",
                                   "Partitions this replica receives.", NULL, 0);
    s->m_attached = sw_metrics_define(
        s->metrics, SW_METRIC_GAUGE, "scanwatch_partition_attached",
        "1 while the partition's receiver link is attached, 0 while it is detached or "
        "re-attaching (see /readyz for why).",
        NULL, 0);
}

/*
 * A connection string without SharedAccessKey or SharedAccessSignature means
 * Entra ID: the same credential settings as Graph, CBS token type jwt
 * (role "Azure Event Hubs Data Receiver" on the hub).
 */
static bool event_hubs_entra(const sw_config *cfg, const char *connection_string, bool *keyless,
                             sw_entra_opts *eo, sw_err *err)
{
    sw_amqp_connstr cs;
    if (!sw_amqp_connstr_parse(connection_string, &cs, err)) {
        return false;
    }
    *keyless = cs.key == NULL && cs.sas == NULL;
    sw_amqp_connstr_free(&cs);
    if (!*keyless) {
        return true;
    }
    if (!sw_entra_opts_from_config(eo, cfg, err)) {
        return false;
    }
    if (eo->method == SW_ENTRA_NONE) {
        return sw_err_set(err, SW_E_CONFIG,
                          "connection_string has no SharedAccessKey or SharedAccessSignature, and "
                          "no Entra ID credential is configured (auth_method, tenant_id, "
                          "client_id, client_secret or client_certificate, or workload/managed "
                          "identity)");
    }
    return true;
}

static bool event_hubs_identity(svc *s, const sw_config *cfg, sw_amqp_options *ao, sw_err *err)
{
    bool keyless = false;
    sw_entra_opts eo;
    if (!event_hubs_entra(cfg, ao->connection_string, &keyless, &eo, err)) {
        return false;
    }
    if (!keyless) {
        return true;
    }
    if (!sw_entra_provider_new(&eo, &s->entra, err)) {
        return false;
    }
    s->has_entra = true;
    ao->token_provider = &s->entra;
    return true;
}

/* Records one problem (the first max are kept; all are counted). */
static void add_problem(sw_err *problems, size_t max, size_t *n, const sw_err *e)
{
    if (*n < max) {
        problems[*n] = *e;
    }
    (*n)++;
}

size_t sw_service_check_config(const sw_config *cfg, sw_err *problems, size_t max)
{
    size_t n = 0;
    sw_err e;
    sw_err_clear(&e);
    sw_amqp_options ao;
    sw_amqp_position start;
    if (!sw_amqp_options_from_config(cfg, &ao, &start, &e) || !sw_amqp_options_check(&ao, &e)) {
        if (strstr(e.msg, "connection string") == e.msg) {
            sw_err_prefix(&e, "connection_string"); /* the parser says "connection string: ..." */
        }
        add_problem(problems, max, &n, &e);
    } else {
        bool keyless = false;
        sw_entra_opts eo;
        sw_token_provider tp;
        if (!event_hubs_entra(cfg, ao.connection_string, &keyless, &eo, &e)) {
            add_problem(problems, max, &n, &e);
        } else if (keyless) {
            /* built to validate (authority_host, certificate), never used */
            if (sw_entra_provider_new(&eo, &tp, &e)) {
                sw_token_provider_destroy(&tp);
            } else {
                sw_err_prefix(&e, "Event Hubs credential (connection_string has no key)");
                add_problem(problems, max, &n, &e);
            }
        }
    }
    if (sw_cfg_str(cfg, SW_CFG_ROUTES)[0] == '\0' && sw_cfg_str(cfg, SW_CFG_MAIL_TO)[0] == '\0' &&
        sw_cfg_str(cfg, SW_CFG_DIFF_LOG)[0] == '\0') {
        sw_err_set(&e, SW_E_CONFIG,
                   "no recipients: set mail_to or routes (or diff_log, to only log diffs)");
        add_problem(problems, max, &n, &e);
    }
    sw_err more[8];
    size_t m = sw_notify_check_config(cfg, more, sizeof more / sizeof more[0]);
    for (size_t i = 0; i < m && i < sizeof more / sizeof more[0]; i++) {
        add_problem(problems, max, &n, &more[i]);
    }
    return n;
}

/* ---- the loop ------------------------------------------------------------------ */

/* Queues f's routed record for its route partition (the pipeline's forward hook). */
static bool forward_finding(void *ctx, const sw_finding *f, const sw_state_pos *pos, sw_err *err)
{
    svc *s = ctx;
    fwd_queue *q = &s->fwdq[sw_route_partition(f->image, s->route_n)];
    if (q->n == q->cap) {
        size_t cap = q->cap == 0 ? 64 : q->cap * 2;
        size_t *ends = realloc(q->ends, cap * sizeof *ends);
        if (ends == NULL) {
            return sw_err_set(err, SW_E_NOMEM, "out of memory queueing a routed record");
        }
        q->ends = ends;
        q->cap = cap;
    }
    if (!sw_route_encode(f, pos->enqueued, &q->bodies)) {
        return sw_buf_check(&q->bodies, err);
    }
    q->ends[q->n++] = q->bodies.len;
    s->fwd_pending++;
    return true;
}

/* Sends every queued routed record and waits until the route hub accepted them. */
static bool flush_forwards(svc *s, sw_err *err)
{
    for (uint32_t r = 0; r < s->route_n && s->fwd_pending > 0; r++) {
        fwd_queue *q = &s->fwdq[r];
        if (q->n == 0) {
            continue;
        }
        sw_amqp_out *out = malloc(q->n * sizeof *out);
        if (out == NULL) {
            return sw_err_set(err, SW_E_NOMEM, "out of memory sending routed records");
        }
        size_t start = 0;
        for (size_t i = 0; i < q->n; i++) {
            out[i].body = q->bodies.data + start;
            out[i].len = q->ends[i] - start;
            start = q->ends[i];
        }
        bool ok = sw_amqp_send(s->route, NULL, s->route_ids[r], out, q->n, err);
        free(out);
        if (!ok) {
            sw_err_prefix(err, "forwarding to route partition %s", s->route_ids[r]);
            return false;
        }
        s->fwd_pending -= q->n;
        q->n = 0;
        sw_buf_reset(&q->bodies);
    }
    return true;
}

static bool commit_and_settle(svc *s, sw_err *err)
{
    /* Export checkpoints advance only after their forwards are accepted. */
    if (!flush_forwards(s, err) || !sw_state_engine_commit(s->eng, err)) {
        return false;
    }
    for (size_t i = 0; i < s->n_parts; i++) {
        part *p = &s->parts[i];
        if (p->processed_seq > p->settled_seq) {
            sw_amqp_settle(p->client, p->id, p->processed_seq);
            p->settled_seq = p->processed_seq;
        }
    }
    return true;
}

/*
 * Commits the batch; while the engine stopped closing windows at
 * batch_bytes_max (sw_state_engine_more_due: many windows due at once), goes
 * on closing them in further commits, so no batch outgrows that budget.
 * settle: settle what the commits made durable (not at shutdown, when the
 * client is gone; the checkpoints are durable all the same).
 */
static bool commit_closing(svc *s, bool caught_up, bool settle, sw_err *err)
{
    for (;;) {
        bool more = sw_state_engine_more_due(s->eng);
        bool ok = settle ? commit_and_settle(s, err)
                         : flush_forwards(s, err) && sw_state_engine_commit(s->eng, err);
        if (!ok) {
            return false;
        }
        if (!more) {
            return true;
        }
        if (!sw_state_engine_tick(s->eng, sw_time_now(), SW_TIME_UNSET, caught_up, err)) {
            return false;
        }
    }
}

static bool process_node(svc *s, ev_node *n, sw_time_us now, sw_err *err)
{
    part *p = &s->parts[n->part];
    if (n->seq <= p->processed_seq) {
        return true; /* a redelivery of something already in the batch */
    }
    sw_state_pos pos = {p->state_id, n->offset, n->seq, n->enqueued};
    bool ok;
    if (n->dec != NULL) {
        ok = sw_pipeline_apply(s->pl, &pos, n->dec, n->body, n->len, err);
    } else if (p->kind == PART_ROUTE) {
        ok = sw_pipeline_routed_event(s->pl, &pos, n->body, n->len, err);
    } else if (p->kind == PART_EXPORT) {
        ok = sw_pipeline_event(s->fwd, &pos, n->body, n->len, n->oversize, err);
    } else {
        ok = sw_pipeline_event(s->pl, &pos, n->body, n->len, n->oversize, err);
    }
    if (ok) {
        p->processed_seq = n->seq;
        if (n->enqueued != SW_TIME_UNSET && now >= n->enqueued) {
            sw_metric_observe(s->m_latency, NULL, (double)(now - n->enqueued) / 1e6);
        }
    }
    return ok;
}

/* Every owned partition read up to what the hub had (rule c, and the end of replay). */
static bool caught_up(svc *s, bool against_target)
{
    bool all = true;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->n_parts; i++) {
        part *p = &s->parts[i];
        if (!p->active) {
            continue;
        }
        int64_t goal = against_target ? p->target_seq : p->last_enqueued;
        if (!p->info_known || p->processed_seq < goal || p->ready.n > 0) {
            all = false;
        }
    }
    bool queued = s->queued > 0;
    pthread_mutex_unlock(&s->mu);
    return all && !queued;
}

static void update_metrics(svc *s)
{
    sw_state_engine_stats st;
    sw_state_engine_get_stats(s->eng, &st);
    sw_metric_add(s->m_windows, NULL, (double)(st.windows_applied - s->last_stats.windows_applied));
    sw_metric_add(s->m_new, NULL, (double)(st.new_findings - s->last_stats.new_findings));
    sw_metric_add(s->m_resolved, NULL,
                  (double)(st.resolved_findings - s->last_stats.resolved_findings));
    sw_metric_add(s->m_diffs, NULL, (double)(st.diff_records - s->last_stats.diff_records));
    sw_metric_add(s->m_stale, NULL, (double)(st.stale - s->last_stats.stale));
    s->last_stats = st;
    uint64_t depth = 0;
    sw_err err;
    if (sw_state_outbox_count(s->st, &depth, &err)) {
        sw_metric_set(s->m_outbox, NULL, (double)depth);
    }
    size_t owned = 0;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->n_parts; i++) {
        part *p = &s->parts[i];
        owned += p->active ? 1 : 0;
        char labels[96], id[64];
        sw_metrics_label_escape(p->state_id, id, sizeof id);
        snprintf(labels, sizeof labels, "partition=\"%s\"", id);
        if (p->active) {
            sw_metric_set(s->m_attached, labels, p->open ? 1.0 : 0.0);
        }
        if (p->info_known) {
            int64_t lag = p->last_enqueued - p->settled_seq;
            sw_metric_set(s->m_lag, labels, (double)(lag > 0 ? lag : 0));
        }
    }
    pthread_mutex_unlock(&s->mu);
    sw_metric_set(s->m_owned, NULL, (double)owned);
    if (s->notifier != NULL) {
        sw_notify_stats ns;
        sw_notify_stats_get(s->notifier, &ns);
        sw_metric_set(s->m_mails, "state=\"sent\"", (double)ns.mails_sent);
        sw_metric_set(s->m_mails, "state=\"retried\"", (double)ns.retries);
        sw_metric_set(s->m_mails, "state=\"dead\"", (double)ns.dead);
        sw_metric_set(s->m_mails, "state=\"pending\"", (double)ns.pending);
        for (int v = 0; v < SW_SEV_COUNT; v++) {
            char labels[64];
            snprintf(labels, sizeof labels, "severity=\"%s\"", sw_severity_name((sw_severity)v));
            sw_metric_set(s->m_new_sev, labels, (double)ns.new_by_severity[v]);
        }
        for (int i = 0; i < SW_NOTIFY_FAILURE_KINDS; i++) {
            char labels[96];
            snprintf(labels, sizeof labels, "code=\"%s\"", sw_notify_failure_label(i));
            sw_metric_set(s->m_failed, labels, (double)ns.failures[i]);
        }
    }
}

static void progress(svc *s, int64_t elapsed_us, uint64_t events_then, uint64_t events_now)
{
    sw_state_engine_stats st;
    sw_state_engine_get_stats(s->eng, &st);
    double rate =
        elapsed_us > 0 ? (double)(events_now - events_then) * 1e6 / (double)elapsed_us : 0;
    int64_t lag = 0;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->n_parts; i++) {
        int64_t l = s->parts[i].last_enqueued - s->parts[i].processed_seq;
        lag += l > 0 ? l : 0;
    }
    pthread_mutex_unlock(&s->mu);
    if (isatty(STDERR_FILENO)) {
        fprintf(stderr,
                "scanwatch: %" PRIu64 " events (%.0f/s), %" PRIu64 " windows applied, %" PRIu64
                " open, %" PRIu64 " diff records (%" PRIu64 " new findings), lag %lld events\n",
                events_now, rate, st.windows_applied, st.open_windows, st.diff_records,
                st.new_findings, (long long)lag);
    } else {
        SW_LOG(SW_LOG_INFO, "progress", SW_LF_UINT("events", events_now),
               SW_LF_DBL("events_per_s", rate), SW_LF_UINT("windows_applied", st.windows_applied),
               SW_LF_UINT("open_windows", st.open_windows),
               SW_LF_UINT("diff_records", st.diff_records),
               SW_LF_UINT("new_findings", st.new_findings), SW_LF_INT("lag", lag));
    }
}

static bool outbox_empty(svc *s)
{
    if (s->notifier == NULL) {
        return true;
    }
    sw_notify_stats ns;
    sw_notify_stats_get(s->notifier, &ns);
    uint64_t depth = 0;
    sw_err err;
    return sw_state_outbox_count(s->st, &depth, &err) && depth == 0 && ns.pending == 0;
}

/*
 * Moves what the client thread queued to the partitions' ready queues (waiting
 * up to 50 ms for something to arrive) and snapshots which partitions still
 * have events on the hub that are not here yet. false: a fatal error.
 */
static bool take_events(svc *s, bool all, sw_err *err)
{
    pthread_mutex_lock(&s->mu);
    /* all: after the decoding thread stopped, what it did not decode is decoded here. */
    bool undecoded = !s->ahead || all;
    if ((undecoded ? s->queued : s->decoded_n) == 0 && !s->fatal && !all) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    for (size_t i = 0; i < s->n_parts; i++) {
        part *p = &s->parts[i];
        evq_move(&p->ready, &p->decoded);
        if (undecoded) {
            evq_move(&p->ready, &p->in);
        }
        /* Not attached, or attached since lag info was read: its events may be on the hub. */
        p->more_expected =
            p->active && (!p->open || !p->info_known || p->processed_seq < p->last_enqueued);
    }
    if (undecoded) {
        s->queued = s->in_n = s->decoded_n = 0;
    } else {
        s->queued -= s->decoded_n;
        s->decoded_n = 0;
    }
    bool fatal = s->fatal;
    if (fatal) {
        *err = s->fatal_err;
    }
    pthread_mutex_unlock(&s->mu);
    return !fatal;
}

/* Enqueued-time order; within one millisecond, the k-th event of each
 * partition before the (k+1)-th, which is how round-robin publishing spreads
 * a burst (ties between partitions go to the lower index). */
static bool earlier(const ev_node *a, const ev_node *b)
{
    if (a->enqueued != b->enqueued) {
        return a->enqueued < b->enqueued;
    }
    return a->seq < b->seq;
}

/*
 * Processes ready events in enqueued-time order across partitions. Defender
 * sets no partition key, so one scan's records are spread over every
 * partition; when catching up on a backlog, reading partitions one after the
 * other would interleave scans that were a day apart. So the next event is
 * the oldest head of all partitions, and the merge waits (at most
 * partition_merge_wait) while a partition whose queue is empty still has
 * events on the hub. force: process everything now (shutdown).
 */
static bool process_ready(svc *s, bool force, uint64_t *events, int64_t *last_commit, size_t batch,
                          sw_err *err)
{
    sw_time_us now = sw_time_now();
    for (;;) {
        int best = -1;
        bool blocked = false;
        for (size_t i = 0; i < s->n_parts; i++) {
            part *p = &s->parts[i];
            if (p->kind == PART_EXPORT) {
                /* Forwarded as they come: order matters on the route hub, not here. */
                if (p->ready.n > 0) {
                    best = (int)i;
                    blocked = false;
                    break;
                }
                continue;
            }
            if (p->ready.n == 0) {
                blocked = blocked || p->more_expected;
            } else if (best < 0 || earlier(p->ready.head, s->parts[best].ready.head)) {
                best = (int)i;
            }
        }
        if (best < 0) {
            s->merge_blocked_since = 0;
            return true;
        }
        if (blocked && !force) {
            int64_t mono = sw_time_mono_us();
            if (s->merge_blocked_since == 0) {
                s->merge_blocked_since = mono;
            }
            if (mono - s->merge_blocked_since < s->merge_wait_us) {
                return true; /* wait for the lagging partition's events */
            }
        } else {
            s->merge_blocked_since = 0;
        }
        ev_node *n = evq_pop(&s->parts[best].ready);
        bool ok = process_node(s, n, now, err);
        node_free(n);
        (*events)++;
        if (ok && (sw_state_engine_pending_events(s->eng) >= batch ||
                   sw_state_engine_more_due(s->eng))) {
            ok = commit_closing(s, false, true, err);
            *last_commit = sw_time_mono_us();
        }
        if (!ok) {
            return false;
        }
    }
}

static bool run_loop(svc *s, sw_err *err)
{
    int64_t commit_interval = sw_cfg_int(s->cfg, SW_CFG_COMMIT_INTERVAL);
    int64_t progress_interval = sw_cfg_int(s->cfg, SW_CFG_PROGRESS_INTERVAL);
    size_t batch = (size_t)sw_cfg_int(s->cfg, SW_CFG_STATE_BATCH_EVENTS);
    int64_t now_mono = sw_time_mono_us();
    int64_t last_commit = now_mono, last_tick = now_mono, last_progress = now_mono;
    int64_t last_sweep = now_mono;
    uint64_t events = 0, events_at_progress = 0;
    bool targets_set = !s->o->stop_when_caught_up;

    while (!stop_requested) {
        atomic_store(&s->heartbeat_us, sw_time_mono_us());
        if (!take_events(s, false, err) ||
            !process_ready(s, false, &events, &last_commit, batch, err)) {
            return false;
        }
        now_mono = sw_time_mono_us();
        if (sw_state_engine_pending_events(s->eng) > 0 &&
            now_mono - last_commit >= commit_interval) {
            if (!commit_and_settle(s, err)) {
                return false;
            }
            last_commit = now_mono;
        }
        if (now_mono - last_tick >= TICK_US ||
            (s->o->stop_when_caught_up && now_mono - last_tick >= TICK_US / 5)) {
            last_tick = now_mono;
            if (!targets_set) {
                /* The goal of a bounded run: what the hub held when we began. */
                pthread_mutex_lock(&s->mu);
                bool known = true;
                for (size_t i = 0; i < s->n_parts; i++) {
                    known = known && s->parts[i].info_known;
                }
                if (known) {
                    for (size_t i = 0; i < s->n_parts; i++) {
                        s->parts[i].target_seq = s->parts[i].last_enqueued;
                    }
                    targets_set = true;
                }
                pthread_mutex_unlock(&s->mu);
            }
            bool up = caught_up(s, false);
            if (!sw_state_engine_tick(s->eng, sw_time_now(), SW_TIME_UNSET, up, err) ||
                !commit_closing(s, up, true, err)) {
                return false;
            }
            last_commit = now_mono;
            update_metrics(s);
            /* glibc keeps what is freed in its arenas: at the end of the 10.9M-finding
             * benchmark a third of the RSS (43 of 157 MiB) was free memory. Handing it back
             * once a tick costs well under a millisecond. */
            malloc_trim(0);
            if (s->o->stop_when_caught_up && targets_set && caught_up(s, true)) {
                sw_state_engine_stats st;
                sw_state_engine_get_stats(s->eng, &st);
                if (st.open_windows == 0 && (!s->o->drain_outbox || outbox_empty(s))) {
                    SW_LOG(SW_LOG_INFO, "caught up; stopping", SW_LF_UINT("events", events));
                    return true;
                }
            }
        }
        if (progress_interval > 0 && now_mono - last_progress >= progress_interval) {
            progress(s, now_mono - last_progress, events_at_progress, events);
            events_at_progress = events;
            last_progress = now_mono;
        }
        if (now_mono - last_sweep >= 3600 * SW_US_PER_SEC) {
            uint64_t dropped = 0;
            if (!sw_state_engine_sweep(s->eng, sw_time_now(), sw_cfg_int(s->cfg, SW_CFG_IMAGE_TTL),
                                       &dropped, err)) {
                return false;
            }
            last_sweep = now_mono;
        }
    }
    return true;
}

/* Graceful stop: receiving ends first, then what was received is made durable. */
static bool shutdown_service(svc *s, bool loop_ok, sw_err *err)
{
    int64_t deadline = sw_time_mono_us() + sw_cfg_int(s->cfg, SW_CFG_SHUTDOWN_TIMEOUT);
    /* The lag poller uses the client: it stops first. */
    atomic_store(&s->threads_stop, true);
    if (s->lag_started) {
        pthread_join(s->lag_thread, NULL);
        s->lag_started = false;
    }
    sw_amqp_client_free(s->amqp);
    s->amqp = NULL;
    for (size_t i = 0; s->route != NULL && i < s->n_parts; i++) {
        if (s->parts[i].kind == PART_ROUTE) {
            sw_amqp_remove_partition(s->route, s->parts[i].id); /* keep sending, stop receiving */
        }
    }
    stop_decode_thread(s);
    bool ok = loop_ok;
    if (ok) {
        uint64_t events = 0;
        int64_t last_commit = 0;
        size_t batch = (size_t)sw_cfg_int(s->cfg, SW_CFG_STATE_BATCH_EVENTS);
        ok = take_events(s, true, err) && process_ready(s, true, &events, &last_commit, batch, err);
        /* Windows that are due close now; the others stay durable and open. */
        /* Export events already processed are forwarded before their checkpoints commit. */
        ok = ok && sw_state_engine_tick(s->eng, sw_time_now(), SW_TIME_UNSET, false, err) &&
             commit_closing(s, false, false, err);
    }
    sw_amqp_client_free(s->route);
    s->route = NULL;
    if (s->notifier != NULL && s->notify_started) {
        /* Give queued mails until the deadline; whatever is left stays in the outbox. */
        if (s->o->drain_outbox && ok) {
            while (!outbox_empty(s) && sw_time_mono_us() < deadline) {
                sleep_us(50 * 1000);
            }
        }
        atomic_store(&s->notify_stop, 1);
        pthread_join(s->notify_thread, NULL);
    }
    for (size_t i = 0; i < s->n_parts; i++) {
        evq_free(&s->parts[i].in);
        evq_free(&s->parts[i].decoded);
        evq_free(&s->parts[i].ready);
    }
    return ok;
}

bool sw_service_run(const sw_config *cfg, const sw_service_opts *o, sw_service_summary *summary,
                    sw_err *err)
{
    svc *s = calloc(1, sizeof *s);
    if (s == NULL) {
        return sw_err_set(err, SW_E_NOMEM, "out of memory");
    }
    stop_requested = 0;
    /* glibc gives each thread that allocates its own 64 MiB arena: RocksDB's
     * background threads, the decoding and the processing thread would each keep
     * their own free memory (15 MiB more peak RSS on the e2e benchmark's 1M-finding
     * stream, docs/benchmarks.md). Two arenas are enough for our contention; an
     * operator's MALLOC_ARENA_MAX still wins. */
    if (getenv("MALLOC_ARENA_MAX") == NULL) {
        mallopt(M_ARENA_MAX, 2);
    }
    s->cfg = cfg;
    s->o = o;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    pthread_cond_init(&s->cv_decode, NULL);
    s->ahead = sw_cfg_bool(cfg, SW_CFG_DECODE_AHEAD);
    atomic_store(&s->heartbeat_us, sw_time_mono_us());
    s->max_message_size = (size_t)sw_cfg_int(cfg, SW_CFG_MAX_MESSAGE_SIZE);
    s->merge_wait_us = sw_cfg_int(cfg, SW_CFG_PARTITION_MERGE_WAIT);
    s->metrics = sw_metrics_new();
    bool ok = s->metrics != NULL;
    if (!ok) {
        sw_err_set(err, SW_E_NOMEM, "out of memory");
    }
    if (ok) {
        define_metrics(s);
    }

    sw_state_opts so;
    sw_state_opts_from_config(&so, cfg);
    sw_state_engine_opts eo;
    sw_state_engine_opts_from_config(&eo, cfg);
    if (o->baseline_until_override != SW_TIME_UNSET) {
        eo.baseline_until = o->baseline_until_override;
    }
    ok = ok && (s->st = sw_state_open(&so, err)) != NULL;
    ok = ok && (s->eng = sw_state_engine_new(s->st, &eo, err)) != NULL;
    ok = ok && (s->pl = sw_pipeline_new(cfg, s->eng, s->metrics, SW_CLOCK_ENQUEUED, err)) != NULL;
    if (ok && o->notify && sw_cfg_str(cfg, SW_CFG_ROUTES)[0] == '\0' &&
        sw_cfg_str(cfg, SW_CFG_MAIL_TO)[0] == '\0' && sw_cfg_str(cfg, SW_CFG_DIFF_LOG)[0] == '\0') {
        /* Diff records would leave the outbox with no mail and no log line. */
        ok = sw_err_set(err, SW_E_CONFIG,
                        "no recipients: set mail_to or routes (or diff_log, to only log diffs)");
    }
    if (ok && o->notify) {
        ok = (s->notifier = sw_notify_new(cfg, s->st, err)) != NULL;
    }
    int port = (int)sw_cfg_int(cfg, SW_CFG_METRICS_PORT);
    if (ok && port >= 0) {
        s->http = sw_http_start(sw_cfg_str(cfg, SW_CFG_METRICS_BIND), port, s->metrics, healthz,
                                readyz, s, err);
        ok = s->http != NULL;
        if (ok) {
            SW_LOG(SW_LOG_INFO, "metrics and health endpoint",
                   SW_LF_STR("bind", sw_cfg_str(cfg, SW_CFG_METRICS_BIND)),
                   SW_LF_INT("port", sw_http_port(s->http)));
        }
    }

    sw_amqp_options ao;
    sw_amqp_position default_start;
    ok = ok && sw_amqp_options_from_config(cfg, &ao, &default_start, err);
    ok = ok && event_hubs_identity(s, cfg, &ao, err);
    if (ok) {
        ao.max_message_size = (uint32_t)(s->max_message_size > 1024 * 1024 ? s->max_message_size
                                                                           : 1024 * 1024 + 4096);
        s->cb_export = (struct cbctx){s, false};
        s->cb_route = (struct cbctx){s, true};
        ao.cb = (sw_amqp_callbacks){.ctx = &s->cb_export,
                                    .on_event = on_event,
                                    .on_partition_open = on_partition_open,
                                    .on_partition_closed = on_partition_closed,
                                    .on_partition_detached = on_partition_detached,
                                    .on_error = on_error};
        ok = (s->amqp = sw_amqp_client_new(&ao, err)) != NULL;
    }
    const char *route_hub = sw_cfg_str(cfg, SW_CFG_ROUTE_HUB);
    if (ok && route_hub[0] != '\0') {
        /* The route hub: same namespace and credentials, another hub. */
        ao.eventhub = route_hub;
        ao.cb.ctx = &s->cb_route;
        ok = (s->route = sw_amqp_client_new(&ao, err)) != NULL;
        ok = ok &&
             (s->fwd = sw_pipeline_new(cfg, s->eng, s->metrics, SW_CLOCK_ENQUEUED, err)) != NULL;
        if (ok) {
            sw_pipeline_set_forward(s->fwd, forward_finding, s);
        }
    }
    if (ok && s->notifier != NULL) {
        /* Before discovery: the outbox is delivered while the hub is out of reach. */
        ok = pthread_create(&s->notify_thread, NULL, notify_main, s) == 0 ||
             sw_err_set(err, SW_E_INTERNAL, "cannot start the notifier thread");
        s->notify_started = ok;
    }
    if (ok && s->ahead) {
        ok = (s->pre = sw_predecoder_new(cfg, err)) != NULL;
        ok = ok && (pthread_create(&s->decode_thread, NULL, decode_main, s) == 0 ||
                    sw_err_set(err, SW_E_INTERNAL, "cannot start the decoding thread"));
        s->decode_started = ok;
    }
    ok = ok && choose_partitions(s, err);
    if (!ok && err->code == SW_E_SHUTDOWN && !o->stop_when_caught_up) {
        /* SIGTERM while `run` waits for the hub: a clean stop, nothing received (a bounded
         * run -- replay, rebuild -- that did not happen fails). */
        ok = true;
        SW_LOG(SW_LOG_INFO, "stopped before the event hub could be reached");
    }
    for (size_t i = 0; ok && i < s->n_parts; i++) {
        sw_amqp_position pos;
        ok = start_position(s, &s->parts[i], &pos, err);
        if (ok) {
            pthread_mutex_lock(&s->mu);
            s->parts[i].active = true;
            pthread_mutex_unlock(&s->mu);
            ok = sw_amqp_add_partition(s->parts[i].client, s->parts[i].id, &pos, err);
        }
    }
    if (ok) {
        ok = pthread_create(&s->lag_thread, NULL, lag_main, s) == 0 ||
             sw_err_set(err, SW_E_INTERNAL, "cannot start the lag poller thread");
        s->lag_started = ok;
    }
    if (ok && o->on_started != NULL) {
        o->on_started(o->ctx);
    }
    bool loop_ok = ok && run_loop(s, err);
    if (s->eng != NULL) {
        sw_err serr;
        bool sok = shutdown_service(s, loop_ok, &serr);
        if (loop_ok && !sok) {
            *err = serr;
        }
        loop_ok = loop_ok && sok;
    } else {
        sw_amqp_client_free(s->amqp);
        sw_amqp_client_free(s->route);
    }

    if (summary != NULL) {
        memset(summary, 0, sizeof *summary);
        for (int k = 0; k < 2; k++) {
            sw_pipeline *pl = k == 0 ? s->pl : s->fwd;
            if (pl != NULL) {
                const sw_decode_stats *ds = sw_pipeline_stats(pl);
                summary->events += ds->bodies;
                summary->findings += ds->findings;
                summary->bad_events += ds->bad;
            }
        }
        if (s->eng != NULL) {
            sw_state_engine_stats st;
            sw_state_engine_get_stats(s->eng, &st);
            summary->windows_applied = st.windows_applied;
            summary->diff_records = st.diff_records;
            summary->new_findings = st.new_findings;
            summary->resolved_findings = st.resolved_findings;
        }
        if (s->notifier != NULL) {
            sw_notify_stats ns;
            sw_notify_stats_get(s->notifier, &ns);
            summary->mails_sent = ns.mails_sent;
            summary->mails_failed = ns.dead;
        }
    }
    sw_notify_free(s->notifier);
    if (s->has_entra) {
        sw_token_provider_destroy(&s->entra);
    }
    sw_http_stop(s->http);
    stop_decode_thread(s);
    sw_predecoder_free(s->pre);
    sw_pipeline_free(s->pl);
    sw_pipeline_free(s->fwd);
    for (uint32_t r = 0; s->fwdq != NULL && r < s->route_n; r++) {
        sw_buf_free(&s->fwdq[r].bodies);
        free(s->fwdq[r].ends);
    }
    free(s->fwdq);
    sw_amqp_free_partition_ids(s->route_ids, s->route_n);
    sw_state_engine_free(s->eng);
    sw_state_close(s->st);
    sw_metrics_free(s->metrics);
    pthread_cond_destroy(&s->cv);
    pthread_cond_destroy(&s->cv_decode);
    pthread_mutex_destroy(&s->mu);
    free(s);
    return loop_ok;
}
