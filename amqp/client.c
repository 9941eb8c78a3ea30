/*
 * Event Hubs consumer client on the proton proactor (see scanwatch/amqp.h).
 *
 * One thread runs pn_proactor_wait. Proton objects of the connection are
 * touched only while handling that connection's events; other threads post
 * requests under client->mu and wake the connection (pn_connection_wake) or
 * the proactor (pn_proactor_interrupt). Timers are one proactor timeout set
 * to the earliest deadline of all partitions and the connection.
 */
#include <inttypes.h>
#include <proton/condition.h>
#include <proton/event.h>
#include <proton/sasl.h>
#include <proton/ssl.h>
#include <proton/terminus.h>
#include <proton/transport.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_internal.h"
#include "message.h"
#include "scanwatch/log.h"
#include "scanwatch/sas.h"

#define FILTER_KEY "apache.org:selector-filter:string"
#define FILTER_DESCRIPTOR 0x0000468C00000004ULL
#define DEFAULT_JWT_SCOPE "https://eventhubs.azure.net/.default"
#define CBS_REPLY "cbs-reply"
#define MGMT_REPLY "mgmt-reply"
#define CTL_CREDIT 16

static void drive(sw_amqp_client *c);
static void conn_fail(sw_amqp_client *c, const sw_err *why);
static void client_fatal(sw_amqp_client *c, const sw_err *why);
static void drive_senders(sw_amqp_client *c, int64_t now);
static int64_t snd_next_deadline(sw_amqp_client *c, int64_t next);
static void snd_token_ok(sw_amqp_client *c, sw_amqp_snd *s);
static void on_snd_open(sw_amqp_client *c, pn_link_t *l);
static void on_snd_close(sw_amqp_client *c, pn_link_t *l);
static void on_snd_delivery(sw_amqp_client *c, pn_link_t *l, pn_delivery_t *d);
static void snd_pump(sw_amqp_client *c, sw_amqp_snd *s);
static void snd_connection_gone(sw_amqp_client *c, const sw_err *why);
static void sreq_finish_locked(sw_amqp_client *c, sw_amqp_sreq *r, const sw_err *err);

/* ---------------------------------------------------------------- helpers */

static int64_t now_mono(void)
{
    return sw_time_mono_us();
}

static uint64_t rng_next(sw_amqp_client *c)
{
    /* xorshift64*: jitter only, not security */
    c->rng ^= c->rng >> 12;
    c->rng ^= c->rng << 25;
    c->rng ^= c->rng >> 27;
    return c->rng * 2685821657736338717ULL;
}

/* Exponential backoff with jitter in [d/2, d], d = min(max, min * 2^attempt). */
static int64_t backoff_delay(sw_amqp_client *c, int attempt)
{
    int64_t d = c->o.backoff_min_us;
    for (int i = 0; i < attempt && d < c->o.backoff_max_us; i++) {
        d *= 2;
    }
    if (d > c->o.backoff_max_us) {
        d = c->o.backoff_max_us;
    }
    int64_t half = d / 2;
    return half + (half > 0 ? (int64_t)(rng_next(c) % (uint64_t)(half + 1)) : 0);
}

static char *dup_str(const char *s)
{
    return s == NULL ? NULL : strdup(s);
}

static char *concat3(const char *a, const char *b, const char *c3)
{
    sw_buf b0;
    sw_buf_init(&b0, 4096);
    sw_buf_append_str(&b0, a);
    sw_buf_append_str(&b0, b);
    sw_buf_append_str(&b0, c3);
    if (b0.failed) {
        sw_buf_free(&b0);
        return NULL;
    }
    return sw_buf_detach(&b0, NULL);
}

static void cond_text(pn_condition_t *cond, const char **name, const char **desc)
{
    *name = NULL;
    *desc = NULL;
    if (cond != NULL && pn_condition_is_set(cond)) {
        *name = pn_condition_get_name(cond);
        *desc = pn_condition_get_description(cond);
    }
    if (*desc == NULL) {
        *desc = "";
    }
}

static bool cond_is(const char *name, const char *want)
{
    return name != NULL && strcmp(name, want) == 0;
}

/* Conditions that retrying cannot fix (SPEC §5). */
static bool cond_fatal(const char *name)
{
    static const char *const fatal[] = {
        "amqp:not-found",
        "amqp:unauthorized-access",
        "com.microsoft:argument-out-of-range",
        "com.microsoft:argument-error",
        "amqp:resource-limit-exceeded",
        "amqp:not-allowed",
        "amqp:not-implemented",
        "amqp:invalid-field",
        "amqp:precondition-failed",
        "amqp:decode-error",
    };
    for (size_t i = 0; i < sizeof fatal / sizeof fatal[0]; i++) {
        if (cond_is(name, fatal[i])) {
            return true;
        }
    }
    return false;
}

static sw_code cond_code(const char *name)
{
    if (cond_is(name, "amqp:not-found")) {
        return SW_E_NOT_FOUND;
    }
    if (cond_is(name, "amqp:unauthorized-access")) {
        return SW_E_AUTH;
    }
    if (cond_is(name, "com.microsoft:argument-out-of-range") ||
        cond_is(name, "com.microsoft:argument-error") || cond_is(name, "amqp:invalid-field")) {
        return SW_E_INVALID_ARG;
    }
    if (cond_is(name, "com.microsoft:server-busy")) {
        return SW_E_BUSY;
    }
    if (cond_is(name, "com.microsoft:timeout")) {
        return SW_E_TIMEOUT;
    }
    return SW_E_AMQP;
}

static void report_error(sw_amqp_client *c, const char *partition, const sw_err *err, bool fatal)
{
    SW_LOG(fatal ? SW_LOG_ERROR : SW_LOG_WARN, fatal ? "amqp fatal error" : "amqp error",
           SW_LF_STR("partition", partition != NULL ? partition : ""),
           SW_LF_STR("code", sw_code_name(err->code)), SW_LF_STR("error", err->msg));
    if (c->o.cb.on_error != NULL) {
        c->o.cb.on_error(c->o.cb.ctx, partition, err, fatal);
    }
}

/* Asks the client thread to look at posted requests soon. Caller holds no lock. */
static void poke(sw_amqp_client *c)
{
    atomic_store(&c->cmd_pending, true);
    if (c->thread_started && pthread_equal(pthread_self(), c->thread)) {
        return; /* processed at the end of the current batch */
    }
    pthread_mutex_lock(&c->mu);
    if (c->conn != NULL) {
        if (!c->wake_req) {
            c->wake_req = true;
            pn_connection_wake(c->conn);
        }
    } else {
        pn_proactor_interrupt(c->proactor);
    }
    pthread_mutex_unlock(&c->mu);
}

/* ------------------------------------------------------------- ring */

static ring_ent *ring_at(sw_amqp_part *p, size_t i)
{
    return &p->ring[(p->ring_head + i) % p->ring_cap];
}

static bool ring_push(sw_amqp_client *c, sw_amqp_part *p, int64_t seq, const char *off,
                      size_t off_len, pn_delivery_t *d)
{
    if (p->ring_count == p->ring_cap) {
        size_t ncap = p->ring_cap == 0 ? 256 : p->ring_cap * 2;
        if (ncap > c->o.max_unsettled + (size_t)c->o.prefetch) {
            ncap = c->o.max_unsettled + (size_t)c->o.prefetch;
        }
        if (ncap <= p->ring_cap) {
            return false;
        }
        ring_ent *n = malloc(ncap * sizeof *n);
        if (n == NULL) {
            return false;
        }
        for (size_t i = 0; i < p->ring_count; i++) {
            n[i] = *ring_at(p, i);
        }
        free(p->ring);
        p->ring = n;
        p->ring_cap = ncap;
        p->ring_head = 0;
    }
    ring_ent *e = ring_at(p, p->ring_count);
    e->seq = seq;
    e->d = d;
    memcpy(e->offset, off, off_len);
    e->offset[off_len] = '\0';
    p->ring_count++;
    return true;
}

/* Drops delivery handles (their link is gone); entries stay for settle(). */
static void ring_forget_deliveries(sw_amqp_part *p, bool settle_locally)
{
    for (size_t i = 0; i < p->ring_count; i++) {
        ring_ent *e = ring_at(p, i);
        if (e->d != NULL && settle_locally) {
            pn_delivery_settle(e->d);
        }
        e->d = NULL;
    }
}

/* ------------------------------------------------------------- messages */

static pn_delivery_t *new_delivery(sw_amqp_client *c, pn_link_t *l)
{
    char tag[8];
    uint64_t t = ++c->next_tag;
    memcpy(tag, &t, sizeof tag);
    return pn_delivery(l, pn_dtag(tag, sizeof tag));
}

static bool send_msg(sw_amqp_client *c, pn_link_t *l, sw_err *err)
{
    pn_delivery_t *d = new_delivery(c, l);
    ssize_t n = pn_message_send(c->msg, l, &c->enc);
    if (n < 0) {
        return sw_err_set(err, SW_E_AMQP, "encoding a request failed: %s",
                          pn_error_text(pn_message_error(c->msg)));
    }
    pn_delivery_settle(d); /* requests are sent pre-settled; the reply is the answer */
    return true;
}

static void put_app_prop(pn_data_t *props, const char *k, const char *v)
{
    pn_data_put_string(props, pn_bytes(strlen(k), k));
    pn_data_put_string(props, pn_bytes(strlen(v), v));
}

static bool get_token(sw_amqp_client *c, const char *audience, char **tok, sw_time_us *exp,
                      sw_err *err)
{
    const char *scope = strcmp(c->tp->type, SW_TOKEN_TYPE_JWT) == 0 ? c->token_scope : audience;
    if (!sw_token_provider_get(c->tp, scope, tok, exp, err)) {
        sw_err_prefix(err, "getting a token for %s", audience);
        return false;
    }
    return true;
}

/* Sends a CBS put-token for a->audience. */
static bool put_token(sw_amqp_client *c, sw_amqp_auth *a, sw_err *err)
{
    char *tok = NULL;
    sw_time_us exp = 0;
    if (!get_token(c, a->audience, &tok, &exp, err)) {
        return false;
    }
    if (exp <= sw_time_now()) {
        free(tok);
        char when[SW_TIME_BUF];
        sw_time_format(exp, when, sizeof when);
        return sw_err_set(err, SW_E_AUTH, "the token for %s expired at %s", a->audience, when);
    }
    pn_message_clear(c->msg);
    pn_message_set_inferred(c->msg, false);
    uint64_t id = ++c->next_id;
    pn_message_set_id(c->msg, (pn_atom_t){.type = PN_ULONG, .u.as_ulong = id});
    pn_message_set_address(c->msg, "$cbs");
    pn_message_set_reply_to(c->msg, CBS_REPLY);
    pn_data_t *props = pn_message_properties(c->msg);
    pn_data_put_map(props);
    pn_data_enter(props);
    put_app_prop(props, "operation", "put-token");
    put_app_prop(props, "type", c->tp->type);
    put_app_prop(props, "name", a->audience);
    pn_data_exit(props);
    pn_data_t *body = pn_message_body(c->msg);
    pn_data_put_string(body, pn_bytes(strlen(tok), tok));
    bool ok = send_msg(c, c->cbs_tx, err);
    pn_data_clear(body); /* do not keep the token around */
    free(tok);
    if (!ok) {
        return false;
    }
    a->pending_id = id;
    a->deadline = now_mono() + c->o.operation_timeout_us;
    int64_t life = exp - sw_time_now();
    int64_t margin = life / 4 < 600 * SW_US_PER_SEC ? life / 4 : 600 * SW_US_PER_SEC;
    a->refresh_at = now_mono() + life - margin;
    return true;
}

/* ------------------------------------------------------------- links */

static pn_link_t *open_ctl_link(sw_amqp_client *c, bool sender, const char *node, const char *reply)
{
    char name[96];
    snprintf(name, sizeof name, "%s-%s", sender ? "tx" : reply, node);
    pn_link_t *l = sender ? pn_sender(c->ctl_ssn, name) : pn_receiver(c->ctl_ssn, reply);
    if (sender) {
        pn_terminus_set_address(pn_link_target(l), node);
        pn_terminus_set_address(pn_link_source(l), name);
    } else {
        pn_terminus_set_address(pn_link_source(l), node);
        pn_terminus_set_address(pn_link_target(l), reply);
    }
    pn_link_open(l);
    if (!sender) {
        pn_link_flow(l, CTL_CREDIT);
    }
    return l;
}

/* The filter expression of where partition p (re)starts. */
static void start_filter(const sw_amqp_part *p, char *buf, size_t size)
{
    if (p->durable_known) {
        snprintf(buf, size, "amqp.annotation.x-opt-offset > '%s'", p->durable_offset);
    } else if (p->ring_count > 0) {
        /* handed out but nothing durable yet: re-read from the first one handed out */
        snprintf(buf, size, "amqp.annotation.x-opt-offset >= '%s'", p->ring[p->ring_head].offset);
    } else if (p->start.kind == SW_AMQP_START_LATEST) {
        snprintf(buf, size, "amqp.annotation.x-opt-offset > '@latest'");
    } else if (p->start.kind == SW_AMQP_START_ENQUEUED_AFTER) {
        snprintf(buf, size, "amqp.annotation.x-opt-enqueued-time > '%lld'",
                 (long long)(p->start.enqueued_time / 1000));
    } else {
        snprintf(buf, size, "amqp.annotation.x-opt-offset > '-1'");
    }
}

/*
 * max_unsettled bounds the events handed out and not durable over all the
 * partitions this client receives, so memory does not grow with the number of
 * partitions: each gets an equal share, at least min(prefetch, max_unsettled)
 * so that a partition never starves on tiny credits.
 */
static int64_t unsettled_share(const sw_amqp_client *c)
{
    int64_t receiving = 0;
    for (size_t i = 0; i < c->nparts_seen; i++) {
        receiving += c->parts[i]->st != P_STOPPED;
    }
    int64_t total = (int64_t)c->o.max_unsettled;
    int64_t floor = (int64_t)c->o.prefetch < total ? (int64_t)c->o.prefetch : total;
    int64_t share = total / (receiving > 0 ? receiving : 1);
    return share > floor ? share : floor;
}

static void grant_credit(sw_amqp_client *c, sw_amqp_part *p)
{
    if (p->link == NULL) {
        return;
    }
    int credit = pn_link_credit(p->link);
    if (credit < 0) {
        credit = 0;
    }
    int64_t room = (int64_t)unsettled_share(c) - (int64_t)p->ring_count - credit;
    int64_t want = (int64_t)c->o.prefetch - credit;
    /* top up in chunks so that flow frames stay rare */
    if (want <= 0 || (credit > 0 && want < (int64_t)c->o.prefetch / 2)) {
        return;
    }
    if (want > room) {
        want = room;
    }
    if (want > 0) {
        pn_link_flow(p->link, (int)want);
    }
}

static void attach_partition(sw_amqp_client *c, sw_amqp_part *p)
{
    char name[160], filter[160];
    snprintf(name, sizeof name, "%s-%s-p%s-%u", c->container, c->hub, p->id, ++p->gen);
    pn_link_t *l = pn_receiver(c->rx_ssn, name);
    pn_terminus_set_address(pn_link_source(l), p->address);
    pn_terminus_set_address(pn_link_target(l), name);
    start_filter(p, filter, sizeof filter);
    pn_data_t *f = pn_terminus_filter(pn_link_source(l));
    pn_data_put_map(f);
    pn_data_enter(f);
    pn_data_put_symbol(f, pn_bytes(strlen(FILTER_KEY), FILTER_KEY));
    pn_data_put_described(f);
    pn_data_enter(f);
    pn_data_put_ulong(f, FILTER_DESCRIPTOR);
    pn_data_put_string(f, pn_bytes(strlen(filter), filter));
    pn_data_exit(f);
    pn_data_exit(f);
    pn_data_t *props = pn_link_properties(l);
    pn_data_put_map(props);
    pn_data_enter(props);
    if (c->o.owner_level >= 0) {
        pn_data_put_symbol(props, pn_bytes(strlen("com.microsoft:epoch"), "com.microsoft:epoch"));
        pn_data_put_long(props, c->o.owner_level);
    }
    const char *rn = "com.microsoft:receiver-name";
    pn_data_put_symbol(props, pn_bytes(strlen(rn), rn));
    pn_data_put_string(props, pn_bytes(strlen(c->container), c->container));
    pn_data_exit(props);
    pn_link_set_rcv_settle_mode(l, PN_RCV_FIRST);
    pn_link_set_context(l, p);
    pn_link_open(l);
    p->link = l;
    p->st = P_ATTACHING;
    p->deadline = now_mono() + c->o.operation_timeout_us;
    grant_credit(c, p);
    SW_LOG(SW_LOG_DEBUG, "attaching partition", SW_LF_STR("partition", p->id),
           SW_LF_STR("filter", filter));
}

/* Detaches p's receiver (if any); its unsettled deliveries are settled locally, no outcome. */
static void drop_link(sw_amqp_part *p)
{
    if (p->link != NULL) {
        ring_forget_deliveries(p, true);
        pn_link_set_context(p->link, NULL);
        pn_link_close(p->link);
        p->link = NULL;
    }
}

/* Stops a partition for good and tells the caller why. */
static void partition_stop(sw_amqp_client *c, sw_amqp_part *p, const sw_err *why)
{
    drop_link(p);
    p->st = P_STOPPED;
    p->ring_count = 0;
    p->ring_head = 0;
    if (why != NULL) {
        /* stopped by the service: callers may add it again (unless they already did) */
        pthread_mutex_lock(&c->mu);
        if (!p->add_req) {
            p->in_use = false;
        }
        pthread_mutex_unlock(&c->mu);
        SW_LOG(SW_LOG_WARN, "partition stopped", SW_LF_STR("partition", p->id),
               SW_LF_STR("code", sw_code_name(why->code)), SW_LF_STR("error", why->msg));
        if (c->o.cb.on_partition_closed != NULL) {
            c->o.cb.on_partition_closed(c->o.cb.ctx, p->id, why);
        }
    }
}

static void partition_retry(sw_amqp_client *c, sw_amqp_part *p, const sw_err *why)
{
    drop_link(p);
    int64_t delay = backoff_delay(c, p->attempts++);
    p->st = P_BACKOFF;
    p->retry_at = now_mono() + delay;
    SW_LOG(SW_LOG_INFO, "partition reattach scheduled", SW_LF_STR("partition", p->id),
           SW_LF_INT("delay_ms", delay / 1000));
    report_error(c, p->id, why, false);
    if (c->o.cb.on_partition_detached != NULL) {
        c->o.cb.on_partition_detached(c->o.cb.ctx, p->id, why);
    }
}

/* ------------------------------------------------------------- settle */

static void settle_partition(sw_amqp_client *c, sw_amqp_part *p, int64_t up_to)
{
    size_t n = 0;
    while (p->ring_count > 0 && ring_at(p, 0)->seq <= up_to) {
        ring_ent *e = ring_at(p, 0);
        if (e->d != NULL) {
            pn_delivery_update(e->d, PN_ACCEPTED);
            pn_delivery_settle(e->d);
        }
        p->durable_known = true;
        p->durable_seq = e->seq;
        memcpy(p->durable_offset, e->offset, sizeof p->durable_offset);
        p->ring_head = (p->ring_head + 1) % p->ring_cap;
        p->ring_count--;
        n++;
    }
    if (n > 0) {
        /* single writer: a plain count published with a relaxed store (no locked add) */
        c->n_settled += n;
        atomic_store_explicit(&c->st_settled, c->n_settled, memory_order_relaxed);
        grant_credit(c, p);
    }
}

/* Takes the callers' requests (under mu) and acts on them (without mu). */
static void process_commands(sw_amqp_client *c)
{
    if (!atomic_exchange(&c->cmd_pending, false)) {
        return;
    }
    bool changed = atomic_exchange(&c->mgmt_pending, false);
    pthread_mutex_lock(&c->mu);
    size_t n = c->nparts;
    pthread_mutex_unlock(&c->mu);
    c->nparts_seen = n;
    for (size_t i = 0; i < n; i++) {
        pthread_mutex_lock(&c->mu);
        sw_amqp_part *p = c->parts[i];
        bool add = p->add_req, remove = p->remove_req;
        int64_t settle = p->settle_req;
        sw_amqp_position start = p->start_req;
        p->add_req = false;
        p->remove_req = false;
        pthread_mutex_unlock(&c->mu);
        changed = changed || add || remove;
        if (remove && p->st != P_STOPPED) {
            partition_stop(c, p, NULL);
        }
        if (add) {
            drop_link(p); /* removed and added again before this thread saw the removal */
            p->start = start;
            p->durable_known = start.kind == SW_AMQP_START_AFTER_OFFSET;
            p->durable_seq = INT64_MIN;
            if (p->durable_known) {
                memcpy(p->durable_offset, start.offset, sizeof p->durable_offset);
                p->durable_seq = start.sequence_number >= 0 ? start.sequence_number : INT64_MIN;
            }
            p->settled_req_seen = INT64_MIN;
            p->settle_local = INT64_MIN;
            p->ring_count = 0;
            p->ring_head = 0;
            p->attempts = 0;
            p->opened_once = false;
            p->auth.ok = false;
            p->auth.pending_id = 0;
            p->st = P_IDLE;
        }
        if (p->st != P_STOPPED && settle > p->settled_req_seen) {
            p->settled_req_seen = settle;
            settle_partition(c, p, settle);
        }
    }
    /* settles alone (the common case, once per batch) need no drive */
    if (changed && c->cst == C_OPEN) {
        drive(c);
    }
}

/* ------------------------------------------------------------- connection */

static bool start_connection(sw_amqp_client *c)
{
    pn_connection_t *conn = pn_connection();
    pn_transport_t *t = pn_transport();
    if (conn == NULL || t == NULL) {
        return false;
    }
    pn_connection_set_container(conn, c->container);
    /* before bind: proton uses it for SASL, SNI and certificate name checks */
    pn_connection_set_hostname(conn, c->cs.host);
    pn_transport_set_idle_timeout(t, (pn_millis_t)(2 * c->o.idle_timeout_us / 1000));
    pn_sasl_allowed_mechs(pn_sasl(t), "ANONYMOUS");
    if (c->tls) {
        pn_ssl_domain_t *dom = pn_ssl_domain(PN_SSL_MODE_CLIENT);
        if (dom == NULL) {
            pn_transport_free(t);
            pn_connection_free(conn);
            return false;
        }
        if (c->o.ca_file != NULL && *c->o.ca_file != '\0') {
            pn_ssl_domain_set_trusted_ca_db(dom, c->o.ca_file);
        }
        pn_ssl_domain_set_peer_authentication(
            dom, c->tls_verify ? PN_SSL_VERIFY_PEER_NAME : PN_SSL_ANONYMOUS_PEER, NULL);
        pn_ssl_init(pn_ssl(t), dom, NULL);
        pn_ssl_domain_free(dom);
    }
    pn_connection_open(conn);
    c->ctl_ssn = pn_session(conn);
    pn_session_open(c->ctl_ssn);
    c->rx_ssn = pn_session(conn);
    /* The session window is capacity / max-frame frames; proton's default (1 MiB) would
     * cap small events in flight far below the links' credit. Credit bounds memory. */
    pn_session_set_incoming_capacity(c->rx_ssn, 64u * 1024u * 1024u);
    pn_session_open(c->rx_ssn);
    c->cbs_tx = open_ctl_link(c, true, "$cbs", CBS_REPLY);
    c->cbs_rx = open_ctl_link(c, false, "$cbs", CBS_REPLY);
    c->mg_tx = NULL;
    c->mg_rx = NULL;
    c->mst = M_NONE;
    c->mauth.ok = false;
    c->mauth.pending_id = 0;
    c->conn_err_set = false;
    c->cst = C_CONNECTING;
    c->mdeadline = now_mono() + c->o.operation_timeout_us;
    SW_LOG(SW_LOG_INFO, "amqp connecting", SW_LF_STR("address", c->addr),
           SW_LF_BOOL("tls", c->tls));
    pn_proactor_connect2(c->proactor, conn, t, c->addr);
    /* Published to other threads only now: pn_connection_wake on a connection
     * the proactor does not have yet is lost, and wake_req would then stay
     * set, so that no later request (attach, $management, stop) woke this
     * thread again. Until here poke() interrupts the proactor instead. */
    pthread_mutex_lock(&c->mu);
    c->conn = conn;
    c->wake_req = false;
    pthread_mutex_unlock(&c->mu);
    return true;
}

/* Every proton object of the connection is gone: forget handles, plan reconnect. */
static void connection_gone(sw_amqp_client *c)
{
    pthread_mutex_lock(&c->mu);
    c->conn = NULL;
    c->wake_req = false;
    for (sw_amqp_mreq *r = c->mreqs; r != NULL; r = r->next) {
        r->sent = false;
    }
    bool stopping = c->stop_req || c->fatal;
    pthread_mutex_unlock(&c->mu);
    c->ctl_ssn = c->rx_ssn = NULL;
    c->cbs_tx = c->cbs_rx = c->mg_tx = c->mg_rx = NULL;
    c->mst = M_NONE;
    c->mauth.ok = false;
    c->mauth.pending_id = 0;
    snd_connection_gone(c, c->conn_err_set ? &c->conn_err : NULL);
    for (size_t i = 0; i < c->nparts_seen; i++) {
        sw_amqp_part *p = c->parts[i];
        p->link = NULL;
        ring_forget_deliveries(p, false);
        p->auth.ok = false;
        p->auth.pending_id = 0;
        if (p->st != P_STOPPED && p->st != P_BACKOFF) {
            p->st = P_IDLE;
        }
    }
    if (stopping) {
        c->cst = C_DOWN;
        c->reconnect_at = INT64_MAX;
        return;
    }
    sw_err e;
    if (c->conn_err_set) {
        e = c->conn_err;
    } else {
        sw_err_set(&e, SW_E_AMQP, "connection closed");
    }
    int64_t delay = backoff_delay(c, c->conn_attempts++);
    c->cst = C_DOWN;
    c->reconnect_at = now_mono() + delay;
    SW_LOG(SW_LOG_INFO, "amqp reconnect scheduled", SW_LF_INT("delay_ms", delay / 1000));
    report_error(c, NULL, &e, false);
}

/* A transient connection-level failure: close and let TRANSPORT_CLOSED reconnect. */
static void conn_fail(sw_amqp_client *c, const sw_err *why)
{
    if (!c->conn_err_set) {
        c->conn_err = *why;
        c->conn_err_set = true;
    }
    pthread_mutex_lock(&c->mu);
    pn_connection_t *conn = c->conn;
    pthread_mutex_unlock(&c->mu);
    if (conn != NULL && c->cst != C_CLOSING) {
        c->cst = C_CLOSING;
        pn_condition_t *cond = pn_connection_condition(conn);
        if (!pn_condition_is_set(cond)) {
            pn_condition_set_name(cond, "amqp:internal-error");
            pn_condition_set_description(cond, "scanwatch client closing after an error");
        }
        pn_connection_close(conn);
        pn_transport_close_tail(pn_connection_transport(conn));
    }
}

static void client_fatal(sw_amqp_client *c, const sw_err *why)
{
    pthread_mutex_lock(&c->mu);
    bool already = c->fatal;
    if (!already) {
        c->fatal = true;
        c->fatal_err = *why;
        c->fatal_err.retriable = false;
        for (sw_amqp_mreq *r = c->mreqs; r != NULL; r = r->next) {
            if (!r->done) {
                r->done = true;
                r->err = c->fatal_err;
            }
        }
        for (sw_amqp_sreq *r = c->sreqs; r != NULL; r = r->next) {
            sreq_finish_locked(c, r, &c->fatal_err);
        }
        pthread_cond_broadcast(&c->cv);
    }
    pthread_mutex_unlock(&c->mu);
    if (already) {
        return;
    }
    report_error(c, NULL, why, true);
    conn_fail(c, why);
}

/* ------------------------------------------------------------- drive */

/*
 * No token could be produced: an expired pre-made signature or a refused
 * credential is fatal; a transient failure (an Entra endpoint unreachable)
 * is retried with backoff, per partition or, for $management, per connection.
 */
static void token_failed(sw_amqp_client *c, sw_amqp_part *p, const sw_err *err)
{
    sw_amqp_auth *a = p != NULL ? &p->auth : &c->mauth;
    if (!err->retriable) {
        client_fatal(c, err);
    } else if (a->ok) {
        /* a refresh: the current token still holds; try again a little later */
        a->refresh_at = now_mono() + backoff_delay(c, 0);
        report_error(c, p != NULL ? p->id : NULL, err, false);
    } else if (p != NULL) {
        partition_retry(c, p, err);
    } else {
        conn_fail(c, err);
    }
}

static void drive_partition(sw_amqp_client *c, sw_amqp_part *p, int64_t now)
{
    sw_err err;
    sw_err_clear(&err);
    if (p->st == P_BACKOFF && now >= p->retry_at) {
        p->st = P_IDLE;
    }
    if (p->st == P_IDLE && !p->auth.ok && p->auth.pending_id == 0) {
        if (!put_token(c, &p->auth, &err)) {
            token_failed(c, p, &err);
            return;
        }
        p->st = P_TOKEN;
    } else if (p->st == P_IDLE && p->auth.ok) {
        attach_partition(c, p);
    }
    if (p->auth.pending_id != 0 && now >= p->auth.deadline) {
        sw_err_set(&err, SW_E_TIMEOUT, "no CBS reply for %s within %lld ms", p->auth.audience,
                   (long long)(c->o.operation_timeout_us / 1000));
        conn_fail(c, &err);
        return;
    }
    if (p->auth.ok && p->auth.pending_id == 0 && now >= p->auth.refresh_at && p->st != P_STOPPED) {
        if (!put_token(c, &p->auth, &err)) {
            token_failed(c, p, &err);
            return;
        }
    }
    if (p->st == P_ATTACHING && now >= p->deadline) {
        sw_err_set(&err, SW_E_TIMEOUT, "attach of partition %s not answered within %lld ms", p->id,
                   (long long)(c->o.operation_timeout_us / 1000));
        partition_retry(c, p, &err);
    }
}

static bool mreq_waiting(sw_amqp_client *c)
{
    pthread_mutex_lock(&c->mu);
    bool any = false;
    for (sw_amqp_mreq *r = c->mreqs; r != NULL; r = r->next) {
        any = any || (!r->sent && !r->done);
    }
    pthread_mutex_unlock(&c->mu);
    return any;
}

static bool send_mreq(sw_amqp_client *c, sw_amqp_mreq *r_copy, sw_err *err)
{
    char *tok = NULL;
    sw_time_us exp;
    if (!get_token(c, c->hub_audience, &tok, &exp, err)) {
        return false;
    }
    pn_message_clear(c->msg);
    pn_message_set_inferred(c->msg, false);
    pn_message_set_id(c->msg, (pn_atom_t){.type = PN_ULONG, .u.as_ulong = r_copy->msg_id});
    pn_message_set_reply_to(c->msg, MGMT_REPLY);
    pn_message_set_address(c->msg, "$management");
    pn_data_t *props = pn_message_properties(c->msg);
    pn_data_put_map(props);
    pn_data_enter(props);
    put_app_prop(props, "operation", "READ");
    put_app_prop(props, "name", c->hub);
    put_app_prop(props, "type",
                 r_copy->kind == MREQ_HUB ? "com.microsoft:eventhub" : "com.microsoft:partition");
    if (r_copy->kind == MREQ_PARTITION) {
        put_app_prop(props, "partition", r_copy->partition);
    }
    put_app_prop(props, "security_token", tok);
    pn_data_exit(props);
    pn_data_put_binary(pn_message_body(c->msg), pn_bytes(2, "[]"));
    bool ok = send_msg(c, c->mg_tx, err);
    pn_data_clear(props);
    free(tok);
    return ok;
}

static void drive_mgmt(sw_amqp_client *c, int64_t now)
{
    sw_err err;
    sw_err_clear(&err);
    if (c->mst == M_NONE && mreq_waiting(c)) {
        if (!put_token(c, &c->mauth, &err)) {
            token_failed(c, NULL, &err);
            return;
        }
        c->mst = M_TOKEN;
    }
    if (c->mauth.pending_id != 0 && now >= c->mauth.deadline) {
        sw_err_set(&err, SW_E_TIMEOUT, "no CBS reply for %s", c->mauth.audience);
        conn_fail(c, &err);
        return;
    }
    if (c->mauth.ok && c->mauth.pending_id == 0 && now >= c->mauth.refresh_at) {
        if (!put_token(c, &c->mauth, &err)) {
            token_failed(c, NULL, &err);
            return;
        }
    }
    if (c->mst == M_ATTACHING && now >= c->mdeadline) {
        sw_err_set(&err, SW_E_TIMEOUT, "$management attach not answered");
        conn_fail(c, &err);
        return;
    }
    if (c->mst != M_READY) {
        return;
    }
    for (;;) {
        sw_amqp_mreq copy;
        bool found = false;
        pthread_mutex_lock(&c->mu);
        for (sw_amqp_mreq *r = c->mreqs; r != NULL; r = r->next) {
            if (!r->sent && !r->done) {
                r->sent = true;
                r->msg_id = ++c->next_id;
                copy = *r;
                found = true;
                break;
            }
        }
        pthread_mutex_unlock(&c->mu);
        if (!found) {
            break;
        }
        if (!send_mreq(c, &copy, &err)) {
            client_fatal(c, &err);
            return;
        }
    }
}

static void drive(sw_amqp_client *c)
{
    if (c->cst != C_OPEN) {
        return;
    }
    int64_t now = now_mono();
    for (size_t i = 0; i < c->nparts_seen && c->cst == C_OPEN; i++) {
        if (c->parts[i]->st != P_STOPPED) {
            drive_partition(c, c->parts[i], now);
        }
    }
    if (c->cst == C_OPEN) {
        drive_mgmt(c, now);
    }
    if (c->cst == C_OPEN) {
        drive_senders(c, now);
    }
}

static void reschedule(sw_amqp_client *c)
{
    int64_t next = INT64_MAX;
    if (c->cst == C_DOWN && c->reconnect_at < next) {
        next = c->reconnect_at;
    }
    if (c->stop_deadline != 0 && c->stop_deadline < next) {
        next = c->stop_deadline;
    }
    if (c->cst == C_CONNECTING && c->mdeadline < next) {
        next = c->mdeadline;
    }
    if (c->cst == C_OPEN) {
        for (size_t i = 0; i < c->nparts_seen; i++) {
            sw_amqp_part *p = c->parts[i];
            int64_t t = INT64_MAX;
            if (p->st == P_BACKOFF) {
                t = p->retry_at;
            } else if (p->st == P_ATTACHING) {
                t = p->deadline;
            }
            if (p->st != P_STOPPED && p->auth.pending_id != 0 && p->auth.deadline < t) {
                t = p->auth.deadline;
            }
            if (p->st != P_STOPPED && p->auth.ok && p->auth.refresh_at < t) {
                t = p->auth.refresh_at;
            }
            if (t < next) {
                next = t;
            }
        }
        if (c->mauth.pending_id != 0 && c->mauth.deadline < next) {
            next = c->mauth.deadline;
        }
        if (c->mauth.ok && c->mauth.refresh_at < next) {
            next = c->mauth.refresh_at;
        }
        if (c->mst == M_ATTACHING && c->mdeadline < next) {
            next = c->mdeadline;
        }
        next = snd_next_deadline(c, next);
    }
    /* re-arming costs a syscall: only when the earliest deadline moved */
    if (next == c->armed_at) {
        return;
    }
    c->armed_at = next;
    if (next == INT64_MAX) {
        pn_proactor_cancel_timeout(c->proactor);
        return;
    }
    int64_t ms = (next - now_mono() + 999) / 1000;
    pn_proactor_set_timeout(c->proactor, (pn_millis_t)(ms < 0 ? 0 : ms > 3600000 ? 3600000 : ms));
}

/* ------------------------------------------------------------- replies */

static sw_amqp_part *part_by_link(pn_link_t *l)
{
    return pn_link_get_context(l);
}

/* Reads status-code / status-description from the reply's application properties. */
static int reply_status(pn_message_t *m, char *desc, size_t desc_size)
{
    int status = -1;
    desc[0] = '\0';
    pn_data_t *props = pn_message_properties(m);
    pn_data_rewind(props);
    if (!pn_data_next(props) || pn_data_type(props) != PN_MAP) {
        return -1;
    }
    pn_data_enter(props);
    while (pn_data_next(props)) {
        pn_bytes_t k = pn_data_type(props) == PN_STRING   ? pn_data_get_string(props)
                       : pn_data_type(props) == PN_SYMBOL ? pn_data_get_symbol(props)
                                                          : pn_bytes(0, NULL);
        if (!pn_data_next(props)) {
            break;
        }
        bool is_code = (k.size == 11 && memcmp(k.start, "status-code", 11) == 0) ||
                       (k.size == 10 && memcmp(k.start, "statusCode", 10) == 0);
        bool is_desc = (k.size == 18 && memcmp(k.start, "status-description", 18) == 0) ||
                       (k.size == 17 && memcmp(k.start, "statusDescription", 17) == 0);
        if (is_code) {
            switch (pn_data_type(props)) {
            case PN_INT:
                status = pn_data_get_int(props);
                break;
            case PN_UINT:
                status = (int)pn_data_get_uint(props);
                break;
            case PN_LONG:
                status = (int)pn_data_get_long(props);
                break;
            case PN_ULONG:
                status = (int)pn_data_get_ulong(props);
                break;
            case PN_SHORT:
                status = pn_data_get_short(props);
                break;
            case PN_USHORT:
                status = pn_data_get_ushort(props);
                break;
            default:
                break;
            }
        } else if (is_desc && pn_data_type(props) == PN_STRING) {
            pn_bytes_t v = pn_data_get_string(props);
            snprintf(desc, desc_size, "%.*s", (int)(v.size > 300 ? 300 : v.size), v.start);
        }
    }
    pn_data_exit(props);
    return status;
}

static uint64_t reply_correlation(pn_message_t *m)
{
    pn_atom_t id = pn_message_get_correlation_id(m);
    if (id.type == PN_ULONG) {
        return id.u.as_ulong;
    }
    if (id.type == PN_STRING && id.u.as_bytes.size < 24) {
        char tmp[24];
        memcpy(tmp, id.u.as_bytes.start, id.u.as_bytes.size);
        tmp[id.u.as_bytes.size] = '\0';
        char *end = NULL;
        unsigned long long v = strtoull(tmp, &end, 10);
        return (end != tmp && *end == '\0') ? v : 0;
    }
    return 0;
}

/* Receives one whole delivery into c->rx. Returns false while still partial. */
static bool read_delivery(sw_amqp_client *c, pn_delivery_t *d, sw_err *err, bool *too_big)
{
    *too_big = false;
    if (pn_delivery_partial(d)) {
        return false;
    }
    size_t n = pn_delivery_pending(d);
    sw_buf_reset(&c->rx);
    if (n > c->o.max_message_size || !sw_buf_reserve(&c->rx, n + 1)) {
        *too_big = true;
        sw_err_set(err, SW_E_TOO_LARGE, "a message of %zu bytes exceeds the limit of %u bytes", n,
                   c->o.max_message_size);
        pn_link_recv(pn_delivery_link(d), NULL, 0);
        return true;
    }
    ssize_t got = pn_link_recv(pn_delivery_link(d), c->rx.data, n);
    c->rx.len = got > 0 ? (size_t)got : 0;
    return true;
}

static void on_cbs_reply(sw_amqp_client *c, pn_message_t *m)
{
    uint64_t id = reply_correlation(m);
    char desc[320];
    int status = reply_status(m, desc, sizeof desc);
    sw_amqp_auth *a = NULL;
    sw_amqp_part *owner = NULL;
    if (id != 0 && c->mauth.pending_id == id) {
        a = &c->mauth;
    }
    for (size_t i = 0; a == NULL && id != 0 && i < c->nparts_seen; i++) {
        if (c->parts[i]->auth.pending_id == id) {
            a = &c->parts[i]->auth;
            owner = c->parts[i];
        }
    }
    sw_amqp_snd *sowner = NULL;
    for (sw_amqp_snd *s = c->snds; a == NULL && id != 0 && s != NULL; s = s->next) {
        if (s->auth.pending_id == id) {
            a = &s->auth;
            sowner = s;
        }
    }
    if (a == NULL) {
        return; /* a reply to a request of an earlier state; nothing waits for it */
    }
    a->pending_id = 0;
    if (status != 200 && status != 202) {
        sw_err err;
        sw_err_set(&err, SW_E_AUTH, "CBS put-token for %s rejected: status %d%s%s", a->audience,
                   status, desc[0] != '\0' ? ": " : "", desc);
        client_fatal(c, &err);
        return;
    }
    a->ok = true;
    atomic_fetch_add_explicit(&c->st_token_puts, 1, memory_order_relaxed);
    if (owner != NULL && owner->st == P_TOKEN) {
        attach_partition(c, owner);
    } else if (sowner != NULL) {
        snd_token_ok(c, sowner);
    } else if (owner == NULL && c->mst == M_TOKEN) {
        c->mg_tx = open_ctl_link(c, true, "$management", MGMT_REPLY);
        c->mg_rx = open_ctl_link(c, false, "$management", MGMT_REPLY);
        c->mst = M_ATTACHING;
        c->mdeadline = now_mono() + c->o.operation_timeout_us;
    }
}

static int64_t map_long(pn_data_t *d)
{
    switch (pn_data_type(d)) {
    case PN_LONG:
        return pn_data_get_long(d);
    case PN_ULONG:
        return (int64_t)pn_data_get_ulong(d);
    case PN_INT:
        return pn_data_get_int(d);
    case PN_UINT:
        return pn_data_get_uint(d);
    case PN_TIMESTAMP:
        return pn_data_get_timestamp(d);
    case PN_STRING: {
        pn_bytes_t b = pn_data_get_string(d);
        char tmp[32];
        if (b.size == 0 || b.size >= sizeof tmp) {
            return -1;
        }
        memcpy(tmp, b.start, b.size);
        tmp[b.size] = '\0';
        char *end = NULL;
        long long v = strtoll(tmp, &end, 10);
        return *end == '\0' ? v : -1;
    }
    default:
        return -1;
    }
}

static void copy_str(pn_data_t *d, char *out, size_t size)
{
    out[0] = '\0';
    if (pn_data_type(d) == PN_STRING || pn_data_type(d) == PN_SYMBOL) {
        pn_bytes_t b = pn_data_type(d) == PN_STRING ? pn_data_get_string(d) : pn_data_get_symbol(d);
        if (b.size < size) {
            memcpy(out, b.start, b.size);
            out[b.size] = '\0';
        }
    } else if (pn_data_type(d) == PN_LONG) {
        snprintf(out, size, "%" PRId64, pn_data_get_long(d));
    }
}

/* Parses a READ reply body (a map with string keys) into r. */
static bool parse_mgmt_body(pn_message_t *m, sw_amqp_mreq *r, sw_err *err)
{
    pn_data_t *b = pn_message_body(m);
    pn_data_rewind(b);
    if (!pn_data_next(b) || pn_data_type(b) != PN_MAP) {
        return sw_err_set(err, SW_E_PARSE, "$management reply body is not a map");
    }
    pn_data_enter(b);
    r->info.last_enqueued_time = SW_TIME_UNSET;
    bool have_ids = false;
    while (pn_data_next(b)) {
        char key[64];
        copy_str(b, key, sizeof key);
        if (!pn_data_next(b)) {
            break;
        }
        if (strcmp(key, "partition_ids") == 0 &&
            (pn_data_type(b) == PN_ARRAY || pn_data_type(b) == PN_LIST)) {
            size_t n = pn_data_type(b) == PN_ARRAY ? pn_data_get_array(b) : pn_data_get_list(b);
            if (n > SW_AMQP_MAX_PARTITIONS) {
                pn_data_exit(b);
                return sw_err_set(err, SW_E_TOO_LARGE, "hub reports %zu partitions", n);
            }
            r->ids = calloc(n > 0 ? n : 1, sizeof *r->ids);
            if (r->ids == NULL) {
                pn_data_exit(b);
                return sw_err_set(err, SW_E_NOMEM, "out of memory");
            }
            pn_data_enter(b);
            for (size_t i = 0; i < n && pn_data_next(b); i++) {
                char id[SW_AMQP_PARTITION_ID_MAX];
                copy_str(b, id, sizeof id);
                r->ids[r->nids] = strdup(id);
                if (r->ids[r->nids] != NULL) {
                    r->nids++;
                }
            }
            pn_data_exit(b);
            have_ids = true;
        } else if (strcmp(key, "partition") == 0) {
            copy_str(b, r->info.partition, sizeof r->info.partition);
        } else if (strcmp(key, "begin_sequence_number") == 0) {
            r->info.begin_sequence_number = map_long(b);
        } else if (strcmp(key, "last_enqueued_sequence_number") == 0) {
            r->info.last_enqueued_sequence_number = map_long(b);
        } else if (strcmp(key, "last_enqueued_offset") == 0) {
            copy_str(b, r->info.last_enqueued_offset, sizeof r->info.last_enqueued_offset);
        } else if (strcmp(key, "last_enqueued_time_utc") == 0) {
            int64_t ms = map_long(b);
            r->info.last_enqueued_time = ms > 0 ? ms * 1000 : SW_TIME_UNSET;
        } else if (strcmp(key, "is_partition_empty") == 0 && pn_data_type(b) == PN_BOOL) {
            r->info.is_empty = pn_data_get_bool(b);
        }
    }
    pn_data_exit(b);
    if (r->kind == MREQ_HUB && !have_ids) {
        return sw_err_set(err, SW_E_PARSE, "$management reply has no partition_ids");
    }
    return true;
}

static void on_mgmt_reply(sw_amqp_client *c, pn_message_t *m)
{
    uint64_t id = reply_correlation(m);
    char desc[320];
    int status = reply_status(m, desc, sizeof desc);
    sw_amqp_mreq res;
    memset(&res, 0, sizeof res);
    pthread_mutex_lock(&c->mu);
    sw_amqp_mreq *r = c->mreqs;
    while (r != NULL && !(r->sent && !r->done && r->msg_id == id)) {
        r = r->next;
    }
    if (r != NULL) {
        res.kind = r->kind;
    }
    pthread_mutex_unlock(&c->mu);
    if (r == NULL) {
        return; /* its caller gave up */
    }
    sw_err err;
    sw_err_clear(&err);
    if (status != 200) {
        sw_code code = status == 401 || status == 403 ? SW_E_AUTH
                       : status == 404                ? SW_E_NOT_FOUND
                                                      : SW_E_AMQP;
        sw_err_set(&err, code, "$management READ failed: status %d%s%s", status,
                   desc[0] != '\0' ? ": " : "", desc);
    } else {
        parse_mgmt_body(m, &res, &err);
        c->conn_attempts = 0;
    }
    pthread_mutex_lock(&c->mu);
    for (r = c->mreqs; r != NULL; r = r->next) {
        if (r->sent && !r->done && r->msg_id == id) {
            r->done = true;
            r->err = err;
            r->ids = res.ids;
            r->nids = res.nids;
            r->info = res.info;
            res.ids = NULL;
            break;
        }
    }
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    sw_amqp_free_partition_ids(res.ids, res.nids);
}

static void on_ctl_delivery(sw_amqp_client *c, pn_link_t *l, pn_delivery_t *d)
{
    sw_err err;
    bool too_big;
    if (!read_delivery(c, d, &err, &too_big)) {
        return;
    }
    pn_link_advance(l);
    bool decoded = !too_big && pn_message_decode(c->msg, c->rx.data, c->rx.len) == 0;
    pn_delivery_update(d, decoded ? PN_ACCEPTED : PN_REJECTED);
    pn_delivery_settle(d);
    if (pn_link_credit(l) < CTL_CREDIT / 2) {
        pn_link_flow(l, CTL_CREDIT - pn_link_credit(l));
    }
    if (!decoded) {
        return;
    }
    if (l == c->cbs_rx) {
        on_cbs_reply(c, c->msg);
    } else {
        on_mgmt_reply(c, c->msg);
    }
}

/* ------------------------------------------------------------- events */

static void on_event_delivery(sw_amqp_client *c, sw_amqp_part *p, pn_link_t *l, pn_delivery_t *d)
{
    sw_err err;
    bool too_big;
    if (!read_delivery(c, d, &err, &too_big)) {
        return;
    }
    pn_link_advance(l);
    if (pn_delivery_aborted(d)) {
        pn_delivery_settle(d);
        grant_credit(c, p);
        return;
    }
    sw_amqp_msg m;
    if (too_big ||
        !sw_amqp_msg_decode((const unsigned char *)c->rx.data, c->rx.len, &m, &c->scratch, &err)) {
        pn_delivery_update(d, PN_REJECTED);
        pn_delivery_settle(d);
        report_error(c, p->id, &err, false);
        grant_credit(c, p);
        return;
    }
    if (!m.has_sequence || m.offset == NULL || m.offset_len == 0 ||
        m.offset_len >= SW_AMQP_OFFSET_MAX) {
        sw_err_set(&err, SW_E_PARSE,
                   "event without a usable x-opt-sequence-number / x-opt-offset annotation");
        pn_delivery_update(d, PN_REJECTED);
        pn_delivery_settle(d);
        report_error(c, p->id, &err, false);
        grant_credit(c, p);
        return;
    }
    bool handed = p->ring_count > 0 && m.sequence <= ring_at(p, p->ring_count - 1)->seq;
    if ((p->durable_known && p->durable_seq != INT64_MIN && m.sequence <= p->durable_seq) ||
        (handed && m.sequence < ring_at(p, 0)->seq)) {
        /* already durable: a redelivery after a reconnect */
        pn_delivery_update(d, PN_ACCEPTED);
        pn_delivery_settle(d);
        atomic_fetch_add_explicit(&c->st_duplicates, 1, memory_order_relaxed);
        grant_credit(c, p);
        return;
    }
    if (handed) {
        /* handed out before the reconnect, not yet durable: keep the new delivery to settle */
        for (size_t i = 0; i < p->ring_count; i++) {
            ring_ent *e = ring_at(p, i);
            if (e->seq == m.sequence) {
                if (e->d != NULL) {
                    pn_delivery_settle(e->d);
                }
                e->d = d;
                d = NULL;
                atomic_fetch_add_explicit(&c->st_rebound, 1, memory_order_relaxed);
                break;
            }
        }
        if (d != NULL) {
            pn_delivery_update(d, PN_ACCEPTED);
            pn_delivery_settle(d);
        }
        grant_credit(c, p);
        return;
    }
    if (!ring_push(c, p, m.sequence, m.offset, m.offset_len, d)) {
        sw_err_set(&err, SW_E_NOMEM, "unsettled-event ring of partition %s is full", p->id);
        pn_delivery_update(d, PN_RELEASED);
        pn_delivery_settle(d);
        partition_retry(c, p, &err);
        return;
    }
    char offset[SW_AMQP_OFFSET_MAX];
    memcpy(offset, m.offset, m.offset_len);
    offset[m.offset_len] = '\0';
    char pkey_small[256];
    char *pkey = NULL;
    if (m.partition_key != NULL) {
        pkey =
            m.partition_key_len < sizeof pkey_small ? pkey_small : malloc(m.partition_key_len + 1);
        if (pkey != NULL) {
            memcpy(pkey, m.partition_key, m.partition_key_len);
            pkey[m.partition_key_len] = '\0';
        }
    }
    sw_amqp_event ev = {
        .partition = p->id,
        .body = m.body,
        .body_len = m.body_len,
        .body_kind = m.body_kind,
        .offset = offset,
        .sequence_number = m.sequence,
        .enqueued_time = m.has_enqueued ? m.enqueued_ms * 1000 : SW_TIME_UNSET,
        .partition_key = pkey,
        .partition_key_len = pkey != NULL ? m.partition_key_len : 0,
    };
    p->attempts = 0;
    c->conn_attempts = 0;
    atomic_store_explicit(&c->st_events, ++c->n_events, memory_order_relaxed);
    c->cur_part = p;
    c->o.cb.on_event(c->o.cb.ctx, &ev);
    c->cur_part = NULL;
    if (p->settle_local > p->settled_req_seen && p->st != P_STOPPED) {
        /* settled from the callback: settle now, while the delivery is still in cache */
        p->settled_req_seen = p->settle_local;
        settle_partition(c, p, p->settle_local);
    }
    if (pkey != NULL && pkey != pkey_small) {
        free(pkey);
    }
    if (p->link == l) {
        grant_credit(c, p);
    }
}

static void on_link_remote_open(sw_amqp_client *c, pn_link_t *l)
{
    if (l == c->mg_tx || l == c->mg_rx) {
        if (c->mst == M_ATTACHING && c->mg_tx != NULL && c->mg_rx != NULL &&
            (pn_link_state(c->mg_tx) & PN_REMOTE_ACTIVE) &&
            (pn_link_state(c->mg_rx) & PN_REMOTE_ACTIVE)) {
            c->mst = M_READY;
            drive(c);
        }
        return;
    }
    if (pn_link_is_sender(l)) {
        on_snd_open(c, l);
        return;
    }
    sw_amqp_part *p = part_by_link(l);
    if (p == NULL || p->link != l || p->st != P_ATTACHING) {
        return;
    }
    if (pn_terminus_get_type(pn_link_remote_source(l)) == PN_UNSPECIFIED) {
        return; /* refused: a detach with the reason follows */
    }
    p->st = P_ACTIVE;
    if (p->opened_once) {
        atomic_fetch_add_explicit(&c->st_reattaches, 1, memory_order_relaxed);
    }
    p->opened_once = true;
    SW_LOG(SW_LOG_INFO, "partition receiving", SW_LF_STR("partition", p->id));
    if (c->o.cb.on_partition_open != NULL) {
        c->o.cb.on_partition_open(c->o.cb.ctx, p->id);
    }
}

static void on_link_remote_close(sw_amqp_client *c, pn_link_t *l)
{
    const char *name, *desc;
    cond_text(pn_link_remote_condition(l), &name, &desc);
    sw_err err;
    if (l == c->cbs_tx || l == c->cbs_rx || l == c->mg_tx || l == c->mg_rx) {
        sw_err_set(&err, cond_code(name), "%s link detached: %s %s",
                   (l == c->cbs_tx || l == c->cbs_rx) ? "$cbs" : "$management",
                   name != NULL ? name : "(no condition)", desc);
        if (cond_fatal(name)) {
            client_fatal(c, &err);
        } else {
            conn_fail(c, &err);
        }
        return;
    }
    if (pn_link_is_sender(l)) {
        on_snd_close(c, l);
        return;
    }
    sw_amqp_part *p = part_by_link(l);
    if (!(pn_link_state(l) & PN_LOCAL_CLOSED)) {
        pn_link_close(l);
    }
    if (p == NULL || p->link != l) {
        return; /* a link we already gave up */
    }
    if (cond_is(name, "amqp:link:stolen")) {
        sw_err_set(&err, SW_E_OWNERSHIP_LOST, "partition %s: amqp:link:stolen: %s", p->id, desc);
        partition_stop(c, p, &err);
    } else if (cond_fatal(name)) {
        sw_err_set_retriable(&err, cond_code(name), false, "partition %s: %s: %s", p->id, name,
                             desc);
        partition_stop(c, p, &err);
    } else {
        sw_err_set(&err, cond_code(name), "partition %s: receiver detached: %s %s", p->id,
                   name != NULL ? name : "(no condition)", desc);
        partition_retry(c, p, &err);
    }
}

static void on_transport_problem(sw_amqp_client *c, pn_event_t *e)
{
    const char *name, *desc;
    pn_transport_t *t = pn_event_transport(e);
    cond_text(t != NULL ? pn_transport_condition(t) : NULL, &name, &desc);
    if (name == NULL || c->conn_err_set) {
        return;
    }
    bool cert =
        strstr(desc, "certificate verify failed") != NULL || strstr(desc, "certificate") != NULL;
    sw_err err;
    sw_err_set(&err, cert ? SW_E_AUTH : SW_E_IO, "connection to %s: %s %s", c->addr, name, desc);
    if (cert) {
        client_fatal(c, &err); /* an untrusted server stays untrusted */
    }
    c->conn_err = err;
    c->conn_err_set = true;
}

static void on_conn_remote_close(sw_amqp_client *c, pn_connection_t *conn)
{
    const char *name, *desc;
    cond_text(pn_connection_remote_condition(conn), &name, &desc);
    sw_err err;
    sw_err_set(&err, cond_code(name), "connection closed by the service: %s %s",
               name != NULL ? name : "(no condition)", desc);
    if (cond_fatal(name)) {
        client_fatal(c, &err);
    }
    if (!c->conn_err_set) {
        c->conn_err = err;
        c->conn_err_set = true;
    }
    c->cst = C_CLOSING;
    pn_connection_close(conn);
}

static void handle(sw_amqp_client *c, pn_event_t *e, bool *exit_loop)
{
    switch (pn_event_type(e)) {
    case PN_CONNECTION_REMOTE_OPEN:
        if (c->cst == C_CONNECTING) {
            c->cst = C_OPEN;
            atomic_fetch_add_explicit(&c->st_connects, 1, memory_order_relaxed);
            SW_LOG(SW_LOG_INFO, "amqp connected", SW_LF_STR("address", c->addr));
            drive(c);
        }
        break;
    case PN_CONNECTION_REMOTE_CLOSE:
        on_conn_remote_close(c, pn_event_connection(e));
        break;
    case PN_CONNECTION_WAKE: {
        pthread_mutex_lock(&c->mu);
        c->wake_req = false;
        bool stop = c->stop_req;
        pthread_mutex_unlock(&c->mu);
        if (stop && c->cst != C_CLOSING) {
            c->cst = C_CLOSING;
            pn_connection_close(pn_event_connection(e));
            break;
        }
        atomic_store(&c->cmd_pending, true);
        process_commands(c);
        if (c->tick_req) {
            c->tick_req = false;
            drive(c);
        }
        break;
    }
    case PN_TRANSPORT_ERROR:
        on_transport_problem(c, e);
        break;
    case PN_TRANSPORT_CLOSED:
        on_transport_problem(c, e);
        connection_gone(c);
        pthread_mutex_lock(&c->mu);
        *exit_loop = c->stop_req;
        pthread_mutex_unlock(&c->mu);
        break;
    case PN_LINK_REMOTE_OPEN:
        on_link_remote_open(c, pn_event_link(e));
        break;
    case PN_LINK_REMOTE_CLOSE:
    case PN_LINK_REMOTE_DETACH:
        on_link_remote_close(c, pn_event_link(e));
        break;
    case PN_DELIVERY: {
        pn_delivery_t *d = pn_event_delivery(e);
        pn_link_t *l = pn_delivery_link(d);
        if (l == c->cbs_rx || l == c->mg_rx) {
            on_ctl_delivery(c, l, d);
        } else if (pn_link_is_receiver(l)) {
            sw_amqp_part *p = part_by_link(l);
            if (p != NULL && p->link == l) {
                on_event_delivery(c, p, l, d);
            } else if (!pn_delivery_partial(d)) {
                pn_link_advance(l);
                pn_delivery_settle(d);
            }
        } else if (l != c->cbs_tx && l != c->mg_tx) {
            on_snd_delivery(c, l, d);
        }
        break;
    }
    case PN_LINK_FLOW: {
        pn_link_t *l = pn_event_link(e);
        if (pn_link_is_sender(l) && l != c->cbs_tx && l != c->mg_tx) {
            sw_amqp_snd *s = pn_link_get_context(l);
            if (s != NULL && s->link == l) {
                snd_pump(c, s);
            }
        }
        break;
    }
    case PN_PROACTOR_TIMEOUT: {
        c->armed_at = INT64_MAX; /* fired */
        pthread_mutex_lock(&c->mu);
        bool stop = c->stop_req;
        pn_connection_t *conn = c->conn;
        pthread_mutex_unlock(&c->mu);
        if (stop && c->stop_deadline != 0 && now_mono() >= c->stop_deadline) {
            pn_proactor_disconnect(c->proactor, NULL);
            if (conn == NULL) {
                *exit_loop = true;
            }
        } else if (c->cst == C_DOWN && !stop && now_mono() >= c->reconnect_at) {
            pthread_mutex_lock(&c->mu);
            bool fatal = c->fatal;
            pthread_mutex_unlock(&c->mu);
            if (!fatal && !start_connection(c)) {
                c->reconnect_at = now_mono() + backoff_delay(c, c->conn_attempts++);
            }
        } else if (c->cst == C_CONNECTING && now_mono() >= c->mdeadline) {
            sw_err err;
            sw_err_set(&err, SW_E_TIMEOUT, "no AMQP open from %s within %lld ms", c->addr,
                       (long long)(c->o.operation_timeout_us / 1000));
            c->conn_err = err;
            c->conn_err_set = true;
            pn_proactor_disconnect(c->proactor, NULL);
        } else if (conn != NULL) {
            c->tick_req = true;
            pthread_mutex_lock(&c->mu);
            if (c->conn != NULL && !c->wake_req) {
                c->wake_req = true;
                pn_connection_wake(c->conn);
            }
            pthread_mutex_unlock(&c->mu);
        }
        break;
    }
    case PN_PROACTOR_INTERRUPT: {
        pthread_mutex_lock(&c->mu);
        bool stop = c->stop_req;
        pn_connection_t *conn = c->conn;
        if (conn != NULL && !c->wake_req) {
            c->wake_req = true;
            pn_connection_wake(conn);
        }
        pthread_mutex_unlock(&c->mu);
        if (stop) {
            if (conn == NULL) {
                *exit_loop = true;
            } else if (c->stop_deadline == 0) {
                c->stop_deadline = now_mono() + 2 * SW_US_PER_SEC;
            }
        } else if (conn == NULL) {
            process_commands(c); /* adds and settles are recorded for the next connection */
        }
        break;
    }
    default:
        break;
    }
}

static void *client_thread(void *arg)
{
    sw_amqp_client *c = arg;
    bool exit_loop = false;
    pthread_mutex_lock(&c->mu);
    bool go = !c->stop_req;
    pthread_mutex_unlock(&c->mu);
    if (go && !start_connection(c)) {
        sw_err err;
        sw_err_set(&err, SW_E_NOMEM, "cannot create an AMQP connection");
        client_fatal(c, &err);
    }
    while (!exit_loop) {
        pn_event_batch_t *batch = pn_proactor_wait(c->proactor);
        bool conn_batch = false;
        for (pn_event_t *e = pn_event_batch_next(batch); e != NULL;
             e = pn_event_batch_next(batch)) {
            conn_batch = conn_batch || pn_event_connection(e) != NULL;
            handle(c, e, &exit_loop);
        }
        if (conn_batch && c->cst == C_OPEN) {
            process_commands(c);
        }
        reschedule(c);
        pn_proactor_done(c->proactor, batch);
    }
    return NULL;
}

/* ------------------------------------------------------------- sender */

/*
 * Send requests (sw_amqp_sreq) are posted by callers under mu and found by id;
 * a delivery's 16-byte tag is (request id, message index), so an outcome that
 * arrives after its caller gave up finds nothing and is only settled. Each
 * message is one transfer whose payload is a single data section: 00 53 75
 * (descriptor) b0 (vbin32) + 4-byte big-endian length, then the body bytes.
 */
#define SND_DATA_HDR 8
#define SND_TAG_LEN 16

static bool snd_cond_fatal(const char *name)
{
    return cond_fatal(name) || cond_is(name, "amqp:link:message-size-exceeded");
}

/* The cached sender of address, created on first use. [thread, mu held] */
static sw_amqp_snd *snd_get(sw_amqp_client *c, const char *address)
{
    size_t count = 0;
    for (sw_amqp_snd *s = c->snds; s != NULL; s = s->next) {
        if (strcmp(s->address, address) == 0) {
            return s;
        }
        count++;
    }
    if (count >= SW_AMQP_MAX_PARTITIONS) {
        return NULL; /* bounded: one cached link per target */
    }
    sw_amqp_snd *s = calloc(1, sizeof *s);
    if (s == NULL) {
        return NULL;
    }
    s->address = strdup(address);
    s->auth.audience = concat3(c->cs.endpoint, address, "");
    if (s->address == NULL || s->auth.audience == NULL) {
        free(s->address);
        free(s->auth.audience);
        free(s);
        return NULL;
    }
    s->st = S_IDLE;
    s->next = c->snds;
    c->snds = s;
    return s;
}

/* Ends a request and wakes its caller. [mu held] */
static void sreq_finish_locked(sw_amqp_client *c, sw_amqp_sreq *r, const sw_err *err)
{
    if (r->done) {
        return;
    }
    r->done = true;
    if (err != NULL) {
        r->err = *err;
    } else {
        sw_err_clear(&r->err);
    }
    pthread_cond_broadcast(&c->cv);
}

static sw_amqp_sreq *sreq_find_locked(sw_amqp_client *c, uint64_t id)
{
    for (sw_amqp_sreq *r = c->sreqs; r != NULL; r = r->next) {
        if (r->id == id) {
            return r;
        }
    }
    return NULL;
}

/* Messages in flight on s (or on every sender when s is NULL) go back to pending. [mu held] */
static void snd_requeue_locked(sw_amqp_client *c, sw_amqp_snd *s, const sw_err *why)
{
    for (sw_amqp_sreq *r = c->sreqs; r != NULL; r = r->next) {
        if (r->done || r->snd == NULL || (s != NULL && r->snd != s)) {
            continue;
        }
        for (size_t i = 0; i < r->n; i++) {
            if (r->mstate[i] == SM_INFLIGHT) {
                r->mstate[i] = SM_PENDING;
                if (i < r->cursor) {
                    r->cursor = i;
                }
                atomic_fetch_add_explicit(&c->st_resent, 1, memory_order_relaxed);
            }
        }
        if (why != NULL) {
            r->last_err = *why;
        }
    }
}

static void snd_fail_locked(sw_amqp_client *c, sw_amqp_snd *s, const sw_err *err)
{
    for (sw_amqp_sreq *r = c->sreqs; r != NULL; r = r->next) {
        if (!r->done && r->snd == s) {
            sreq_finish_locked(c, r, err);
        }
    }
}

static void snd_drop_link(sw_amqp_snd *s)
{
    if (s->link != NULL) {
        pn_link_set_context(s->link, NULL);
        pn_link_close(s->link);
        s->link = NULL;
    }
}

/* A transient failure: in-flight messages are resent after the sender's backoff. */
static void snd_retry(sw_amqp_client *c, sw_amqp_snd *s, const sw_err *why)
{
    snd_drop_link(s);
    pthread_mutex_lock(&c->mu);
    snd_requeue_locked(c, s, why);
    pthread_mutex_unlock(&c->mu);
    int64_t delay = backoff_delay(c, s->attempts++);
    s->st = S_BACKOFF;
    s->retry_at = now_mono() + delay;
    SW_LOG(SW_LOG_WARN, "sender retry scheduled", SW_LF_STR("target", s->address),
           SW_LF_INT("delay_ms", delay / 1000), SW_LF_STR("code", sw_code_name(why->code)),
           SW_LF_STR("error", why->msg));
}

static void snd_attach(sw_amqp_client *c, sw_amqp_snd *s)
{
    if (c->tx_ssn == NULL) {
        c->tx_ssn = pn_session(pn_session_connection(c->ctl_ssn));
        pn_session_open(c->tx_ssn);
    }
    char name[512];
    snprintf(name, sizeof name, "%s-tx-%s-%u", c->container, s->address, ++s->gen);
    pn_link_t *l = pn_sender(c->tx_ssn, name);
    pn_terminus_set_address(pn_link_target(l), s->address);
    pn_terminus_set_address(pn_link_source(l), name);
    pn_link_set_snd_settle_mode(l, PN_SND_UNSETTLED);
    pn_link_set_context(l, s);
    pn_link_open(l);
    s->link = l;
    s->st = S_ATTACHING;
    s->deadline = now_mono() + c->o.operation_timeout_us;
    SW_LOG(SW_LOG_DEBUG, "attaching sender", SW_LF_STR("target", s->address));
}

static void snd_transfer(sw_amqp_snd *s, const sw_amqp_sreq *r, size_t i)
{
    unsigned char tag[SND_TAG_LEN];
    uint64_t idx = i;
    memcpy(tag, &r->id, 8);
    memcpy(tag + 8, &idx, 8);
    pn_delivery(s->link, pn_dtag((const char *)tag, sizeof tag));
    uint32_t len = (uint32_t)r->msgs[i].len;
    const unsigned char hdr[SND_DATA_HDR] = {
        0x00,
        0x53,
        0x75,
        0xb0,
        (unsigned char)(len >> 24),
        (unsigned char)(len >> 16),
        (unsigned char)(len >> 8),
        (unsigned char)len,
    };
    pn_link_send(s->link, (const char *)hdr, sizeof hdr);
    if (len > 0) {
        pn_link_send(s->link, r->msgs[i].body, len);
    }
    pn_link_advance(s->link);
}

/* Sends pending messages of s's requests, oldest request first, while there is credit. */
static void snd_pump(sw_amqp_client *c, sw_amqp_snd *s)
{
    if (s->st != S_ACTIVE || s->link == NULL) {
        return;
    }
    int credit = pn_link_credit(s->link);
    pthread_mutex_lock(&c->mu);
    for (sw_amqp_sreq *r = c->sreqs; r != NULL && credit > 0; r = r->next) {
        if (r->snd != s || r->done) {
            continue;
        }
        if (!r->checked) {
            bool ok = true;
            for (size_t i = 0; i < r->n && ok; i++) {
                uint64_t size = (uint64_t)r->msgs[i].len + SND_DATA_HDR;
                uint64_t limit =
                    s->max_size != 0 && s->max_size < UINT32_MAX ? s->max_size : UINT32_MAX;
                if (size > limit) {
                    sw_err e;
                    sw_err_set_retriable(&e, SW_E_TOO_LARGE, false,
                                         "message %zu of %zu is %llu bytes encoded (body %zu "
                                         "bytes), over the max-message-size of %s (%llu bytes)",
                                         i, r->n, (unsigned long long)size, r->msgs[i].len,
                                         s->address, (unsigned long long)limit);
                    sreq_finish_locked(c, r, &e);
                    ok = false;
                }
            }
            if (!ok) {
                continue;
            }
            r->checked = true;
        }
        while (credit > 0 && r->cursor < r->n) {
            size_t i = r->cursor++;
            if (r->mstate[i] == SM_PENDING) {
                snd_transfer(s, r, i);
                r->mstate[i] = SM_INFLIGHT;
                credit--;
            }
        }
    }
    pthread_mutex_unlock(&c->mu);
}

static void snd_token_failed(sw_amqp_client *c, sw_amqp_snd *s, const sw_err *err)
{
    if (!err->retriable) {
        client_fatal(c, err);
    } else if (s->auth.ok && s->link != NULL) {
        s->auth.refresh_at = now_mono() + backoff_delay(c, 0);
    } else {
        snd_retry(c, s, err);
    }
}

static void drive_sender(sw_amqp_client *c, sw_amqp_snd *s, int64_t now)
{
    sw_err err;
    sw_err_clear(&err);
    if (s->st == S_BACKOFF && now >= s->retry_at) {
        s->st = S_IDLE;
    }
    bool need_token = s->auth.pending_id == 0 && (!s->auth.ok || now >= s->auth.refresh_at) &&
                      (s->busy || s->link != NULL);
    if (need_token && s->st != S_BACKOFF) {
        if (!put_token(c, &s->auth, &err)) {
            snd_token_failed(c, s, &err);
            return;
        }
        if (s->st == S_IDLE) {
            s->st = S_TOKEN;
        }
    } else if (s->st == S_IDLE && s->busy && s->auth.ok && s->auth.pending_id == 0) {
        snd_attach(c, s);
    }
    if (s->auth.pending_id != 0 && now >= s->auth.deadline) {
        sw_err_set(&err, SW_E_TIMEOUT, "no CBS reply for %s within %lld ms", s->auth.audience,
                   (long long)(c->o.operation_timeout_us / 1000));
        conn_fail(c, &err);
        return;
    }
    if (s->st == S_ATTACHING && now >= s->deadline) {
        sw_err_set(&err, SW_E_TIMEOUT, "attach of sender %s not answered within %lld ms",
                   s->address, (long long)(c->o.operation_timeout_us / 1000));
        snd_retry(c, s, &err);
        return;
    }
    snd_pump(c, s);
}

static void drive_senders(sw_amqp_client *c, int64_t now)
{
    pthread_mutex_lock(&c->mu);
    for (sw_amqp_snd *s = c->snds; s != NULL; s = s->next) {
        s->busy = false;
    }
    for (sw_amqp_sreq *r = c->sreqs; r != NULL; r = r->next) {
        if (r->done) {
            continue;
        }
        if (r->snd == NULL) {
            r->snd = snd_get(c, r->address);
        }
        if (r->snd == NULL) {
            sw_err e;
            sw_err_set(&e, SW_E_NOMEM,
                       "no sender for %s: out of memory or more than %d targets in use", r->address,
                       SW_AMQP_MAX_PARTITIONS);
            sreq_finish_locked(c, r, &e);
            continue;
        }
        r->snd->busy = true;
    }
    pthread_mutex_unlock(&c->mu);
    for (sw_amqp_snd *s = c->snds; s != NULL && c->cst == C_OPEN; s = s->next) {
        drive_sender(c, s, now);
    }
}

/* The earliest deadline of the senders, or next. */
static int64_t snd_next_deadline(sw_amqp_client *c, int64_t next)
{
    for (sw_amqp_snd *s = c->snds; s != NULL; s = s->next) {
        int64_t t = INT64_MAX;
        if (s->st == S_BACKOFF && s->busy) {
            t = s->retry_at;
        } else if (s->st == S_ATTACHING) {
            t = s->deadline;
        }
        if (s->auth.pending_id != 0 && s->auth.deadline < t) {
            t = s->auth.deadline;
        }
        if (s->auth.ok && (s->link != NULL || s->busy) && s->auth.refresh_at < t) {
            t = s->auth.refresh_at;
        }
        if (t < next) {
            next = t;
        }
    }
    return next;
}

/* The put-token for a sender was accepted. */
static void snd_token_ok(sw_amqp_client *c, sw_amqp_snd *s)
{
    if (s->st == S_TOKEN) {
        s->st = S_IDLE;
        if (s->busy) {
            snd_attach(c, s);
        }
    }
}

static void on_snd_open(sw_amqp_client *c, pn_link_t *l)
{
    sw_amqp_snd *s = pn_link_get_context(l);
    if (s == NULL || s->link != l || s->st != S_ATTACHING) {
        return;
    }
    if (pn_terminus_get_type(pn_link_remote_target(l)) == PN_UNSPECIFIED) {
        return; /* refused: a detach with the reason follows */
    }
    s->st = S_ACTIVE;
    s->max_size = pn_link_remote_max_message_size(l);
    atomic_fetch_add_explicit(&c->st_snd_attaches, 1, memory_order_relaxed);
    SW_LOG(SW_LOG_INFO, "sender attached", SW_LF_STR("target", s->address),
           SW_LF_INT("max_message_size", (int64_t)s->max_size));
    snd_pump(c, s);
}

static void on_snd_close(sw_amqp_client *c, pn_link_t *l)
{
    sw_amqp_snd *s = pn_link_get_context(l);
    if (!(pn_link_state(l) & PN_LOCAL_CLOSED)) {
        pn_link_close(l);
    }
    if (s == NULL || s->link != l) {
        return; /* a link we already gave up */
    }
    const char *name, *desc;
    cond_text(pn_link_remote_condition(l), &name, &desc);
    sw_err err;
    if (snd_cond_fatal(name)) {
        sw_err_set_retriable(&err, cond_code(name), false, "sender %s: %s: %s", s->address, name,
                             desc);
        pn_link_set_context(l, NULL);
        s->link = NULL;
        s->st = S_IDLE;
        s->auth.ok = false; /* an unauthorized-access is retried with a fresh token next time */
        pthread_mutex_lock(&c->mu);
        snd_fail_locked(c, s, &err);
        pthread_mutex_unlock(&c->mu);
        SW_LOG(SW_LOG_WARN, "sender failed", SW_LF_STR("target", s->address),
               SW_LF_STR("error", err.msg));
        return;
    }
    sw_err_set(&err, cond_code(name), "sender %s detached: %s %s", s->address,
               name != NULL ? name : "(no condition)", desc);
    snd_retry(c, s, &err);
}

/* An outcome for one of our transfers. */
static void on_snd_delivery(sw_amqp_client *c, pn_link_t *l, pn_delivery_t *d)
{
    uint64_t rs = pn_delivery_remote_state(d);
    bool rsettled = pn_delivery_settled(d);
    if (!rsettled && (rs == 0 || rs == PN_RECEIVED)) {
        return; /* not an outcome yet */
    }
    sw_amqp_snd *s = pn_link_get_context(l);
    pn_delivery_tag_t tag = pn_delivery_tag(d);
    uint64_t id = 0, idx = 0;
    if (tag.size == SND_TAG_LEN) {
        memcpy(&id, tag.start, 8);
        memcpy(&idx, tag.start + 8, 8);
    }
    char why[400] = "";
    if (rs == PN_REJECTED) {
        const char *name, *desc;
        cond_text(pn_disposition_condition(pn_delivery_remote(d)), &name, &desc);
        snprintf(why, sizeof why, "%s %.300s", name != NULL ? name : "(no condition)", desc);
    }
    pn_delivery_settle(d);
    bool current = s != NULL && s->link == l;
    bool accepted = false;
    pthread_mutex_lock(&c->mu);
    sw_amqp_sreq *r = id != 0 ? sreq_find_locked(c, id) : NULL;
    if (r != NULL && !r->done && idx < r->n) {
        if (rs == PN_ACCEPTED) {
            accepted = true;
            if (r->mstate[idx] != SM_ACCEPTED) {
                r->mstate[idx] = SM_ACCEPTED;
                r->accepted++;
                atomic_fetch_add_explicit(&c->st_sent, 1, memory_order_relaxed);
            }
            if (r->accepted == r->n) {
                sreq_finish_locked(c, r, NULL);
            }
        } else if (rs == PN_REJECTED) {
            sw_err e;
            sw_err_set_retriable(&e, SW_E_AMQP, false, "message %llu of %zu to %s rejected: %s",
                                 (unsigned long long)idx, r->n, r->address, why);
            sreq_finish_locked(c, r, &e);
        } else if (current && r->mstate[idx] == SM_INFLIGHT) {
            /* released, modified or settled without an outcome: send it again */
            r->mstate[idx] = SM_PENDING;
            if (idx < r->cursor) {
                r->cursor = (size_t)idx;
            }
            sw_err_set(&r->last_err, SW_E_AMQP, "message %llu to %s %s by the service",
                       (unsigned long long)idx, r->address,
                       rs == PN_RELEASED   ? "released"
                       : rs == PN_MODIFIED ? "modified"
                                           : "settled without an outcome");
            atomic_fetch_add_explicit(&c->st_resent, 1, memory_order_relaxed);
        }
    }
    pthread_mutex_unlock(&c->mu);
    if (current) {
        if (accepted) {
            s->attempts = 0;
        }
        snd_pump(c, s);
    }
}

/* The connection is gone: links are forgotten, in-flight messages resent on the next one. */
static void snd_connection_gone(sw_amqp_client *c, const sw_err *why)
{
    c->tx_ssn = NULL;
    for (sw_amqp_snd *s = c->snds; s != NULL; s = s->next) {
        s->link = NULL;
        s->auth.ok = false;
        s->auth.pending_id = 0;
        if (s->st != S_BACKOFF) {
            s->st = S_IDLE;
        }
    }
    pthread_mutex_lock(&c->mu);
    snd_requeue_locked(c, NULL, why);
    pthread_mutex_unlock(&c->mu);
}

/* ------------------------------------------------------------- public API */

static bool setup_auth(sw_amqp_client *c, sw_err *err)
{
    if (c->cs.sas != NULL) {
        if (!sw_sas_static_provider_init(&c->own_tp, c->cs.sas, err)) {
            return false;
        }
        c->tp = &c->own_tp;
    } else if (c->cs.key != NULL) {
        if (!sw_sas_provider_init(&c->own_tp, c->cs.key_name, c->cs.key, c->o.sas_token_lifetime_us,
                                  err)) {
            return false;
        }
        c->tp = &c->own_tp;
    } else if (c->o.token_provider != NULL) {
        c->tp = c->o.token_provider;
    } else {
        return sw_err_set(err, SW_E_CONFIG,
                          "connection string has neither SharedAccessKeyName/SharedAccessKey nor "
                          "SharedAccessSignature, and no Entra ID credential is configured");
    }
    return true;
}

/* The hub name and TLS rules of o with connection string cs (shared with sw_amqp_options_check). */
static bool check_names(const sw_amqp_options *o, const sw_amqp_connstr *cs, sw_err *err)
{
    const char *hub = (o->eventhub != NULL && *o->eventhub != '\0') ? o->eventhub : cs->entity_path;
    if (hub == NULL || *hub == '\0') {
        return sw_err_set(err, SW_E_CONFIG,
                          "no Event Hub name: set eventhub or EntityPath in the connection string");
    }
    if (cs->entity_path != NULL && o->eventhub != NULL && *o->eventhub != '\0' &&
        strcmp(cs->entity_path, o->eventhub) != 0) {
        return sw_err_set(err, SW_E_CONFIG,
                          "eventhub '%.100s' differs from the connection string's EntityPath "
                          "'%.100s'",
                          o->eventhub, cs->entity_path);
    }
    bool tls = o->tls == SW_AMQP_TLS_ON || (o->tls == SW_AMQP_TLS_AUTO && !cs->emulator);
    if (!tls && !cs->emulator) {
        return sw_err_set(err, SW_E_CONFIG,
                          "tls=off is only allowed with UseDevelopmentEmulator=true (tokens would "
                          "travel in clear text)");
    }
    if (!o->tls_verify && !cs->emulator) {
        return sw_err_set(err, SW_E_CONFIG,
                          "tls_verify=false is only allowed with UseDevelopmentEmulator=true");
    }
    return true;
}

static bool setup_names(sw_amqp_client *c, sw_err *err)
{
    if (!check_names(&c->o, &c->cs, err)) {
        return false;
    }
    const char *hub =
        (c->o.eventhub != NULL && *c->o.eventhub != '\0') ? c->o.eventhub : c->cs.entity_path;
    const char *cg = (c->o.consumer_group != NULL && *c->o.consumer_group != '\0')
                         ? c->o.consumer_group
                         : "$Default";
    c->hub = strdup(hub);
    c->cg = strdup(cg);
    c->token_scope = strdup(c->o.token_scope != NULL ? c->o.token_scope : DEFAULT_JWT_SCOPE);
    c->hub_audience = concat3(c->cs.endpoint, hub, "");
    c->mauth.audience = concat3(c->cs.endpoint, hub, "/$management");
    char rnd[32];
    snprintf(rnd, sizeof rnd, "%08x", (unsigned)(c->rng >> 17));
    c->container = concat3("scanwatch-", hub, "");
    char *ct = c->container != NULL ? concat3(c->container, "-", rnd) : NULL;
    free(c->container);
    c->container = ct;
    bool tls = c->o.tls == SW_AMQP_TLS_ON || (c->o.tls == SW_AMQP_TLS_AUTO && !c->cs.emulator);
    int port = c->cs.port != 0 ? c->cs.port : tls ? 5671 : 5672;
    char addr[300];
    snprintf(addr, sizeof addr, "%.256s:%d", c->cs.host, port);
    c->addr = strdup(addr);
    c->tls = tls;
    c->tls_verify = c->o.tls_verify;
    if (c->hub == NULL || c->cg == NULL || c->token_scope == NULL || c->hub_audience == NULL ||
        c->mauth.audience == NULL || c->container == NULL || c->addr == NULL) {
        return sw_err_set(err, SW_E_NOMEM, "out of memory");
    }
    return true;
}

static bool check_options(const sw_amqp_options *o, sw_err *err)
{
    if (o->prefetch < 1 || o->prefetch > 100000) {
        return sw_err_set(err, SW_E_CONFIG, "prefetch must be 1..100000");
    }
    if (o->max_unsettled < 1) {
        return sw_err_set(err, SW_E_CONFIG, "max_unsettled must be at least 1");
    }
    if (o->backoff_min_us <= 0 || o->backoff_max_us < o->backoff_min_us) {
        return sw_err_set(err, SW_E_CONFIG,
                          "reconnect backoff: need 0 < reconnect_backoff_min <= "
                          "reconnect_backoff_max");
    }
    if (o->idle_timeout_us < SW_US_PER_SEC || o->operation_timeout_us < 100000 ||
        o->sas_token_lifetime_us < SW_US_PER_SEC) {
        return sw_err_set(err, SW_E_CONFIG,
                          "idle_timeout and sas_token_lifetime must be at least 1 s, "
                          "operation_timeout at least 100 ms");
    }
    return true;
}

static bool check_ca_file(const char *ca_file, sw_err *err)
{
    if (ca_file == NULL || *ca_file == '\0') {
        return true;
    }
    FILE *f = fopen(ca_file, "r");
    if (f == NULL) {
        return sw_err_set(err, SW_E_CONFIG, "ca_file '%.200s' cannot be read", ca_file);
    }
    fclose(f);
    return true;
}

bool sw_amqp_options_check(const sw_amqp_options *o, sw_err *err)
{
    if (!check_options(o, err)) {
        return false;
    }
    if (o->connection_string == NULL || *o->connection_string == '\0') {
        return sw_err_set(err, SW_E_CONFIG, "connection_string is not set");
    }
    sw_amqp_connstr cs;
    if (!sw_amqp_connstr_parse(o->connection_string, &cs, err)) {
        return false;
    }
    bool ok = check_names(o, &cs, err) && check_ca_file(o->ca_file, err);
    if (ok && cs.key != NULL) {
        /* the same signing setup as the client, then dropped */
        sw_token_provider tp;
        ok = sw_sas_provider_init(&tp, cs.key_name, cs.key, o->sas_token_lifetime_us, err);
        if (ok) {
            sw_token_provider_destroy(&tp);
        }
    }
    sw_amqp_connstr_free(&cs);
    return ok;
}

sw_amqp_client *sw_amqp_client_new(const sw_amqp_options *o, sw_err *err)
{
    if (!check_options(o, err)) {
        return NULL;
    }
    sw_amqp_client *c = calloc(1, sizeof *c);
    if (c == NULL) {
        sw_err_set(err, SW_E_NOMEM, "out of memory");
        return NULL;
    }
    c->o = *o;
    c->armed_at = INT64_MAX;
    c->rng = (uint64_t)sw_time_now() ^ ((uint64_t)(uintptr_t)c << 16) ^ 0x9e3779b97f4a7c15ULL;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    sw_buf_init(&c->rx, (size_t)o->max_message_size + 1);
    sw_buf_init(&c->scratch, (size_t)o->max_message_size + 1);
    c->opt_strings[0] = dup_str(o->eventhub);
    c->opt_strings[1] = dup_str(o->consumer_group);
    c->opt_strings[2] = dup_str(o->ca_file);
    c->opt_strings[3] = dup_str(o->token_scope);
    c->o.eventhub = c->opt_strings[0];
    c->o.consumer_group = c->opt_strings[1];
    c->o.ca_file = c->opt_strings[2];
    c->o.token_scope = c->opt_strings[3];
    c->o.connection_string = NULL; /* parsed below; not kept as text */
    bool ok = sw_amqp_connstr_parse(o->connection_string, &c->cs, err) && setup_names(c, err) &&
              setup_auth(c, err);
    ok = ok && check_ca_file(c->o.ca_file, err);
    if (ok) {
        c->msg = pn_message();
        c->proactor = pn_proactor();
        c->parts = calloc(SW_AMQP_MAX_PARTITIONS, sizeof *c->parts);
        if (c->msg == NULL || c->proactor == NULL || c->parts == NULL) {
            ok = sw_err_set(err, SW_E_NOMEM, "cannot create proton objects");
        }
    }
    if (ok && pthread_create(&c->thread, NULL, client_thread, c) != 0) {
        ok = sw_err_set(err, SW_E_INTERNAL, "cannot start the AMQP client thread");
    }
    if (!ok) {
        sw_amqp_client_free(c);
        return NULL;
    }
    c->thread_started = true;
    return c;
}

void sw_amqp_client_free(sw_amqp_client *c)
{
    if (c == NULL) {
        return;
    }
    if (c->thread_started) {
        pthread_mutex_lock(&c->mu);
        c->stop_req = true;
        pthread_mutex_unlock(&c->mu);
        pn_proactor_interrupt(c->proactor);
        pthread_join(c->thread, NULL);
    }
    if (c->proactor != NULL) {
        pn_proactor_free(c->proactor);
    }
    if (c->msg != NULL) {
        pn_message_free(c->msg);
    }
    free(c->enc.start);
    for (size_t i = 0; i < c->nparts; i++) {
        free(c->parts[i]->address);
        free(c->parts[i]->auth.audience);
        free(c->parts[i]->ring);
        free(c->parts[i]);
    }
    free(c->parts);
    for (sw_amqp_snd *s = c->snds, *next; s != NULL; s = next) {
        next = s->next;
        free(s->address);
        free(s->auth.audience);
        free(s);
    }
    sw_token_provider_destroy(&c->own_tp);
    sw_amqp_connstr_free(&c->cs);
    for (size_t i = 0; i < 4; i++) {
        free(c->opt_strings[i]);
    }
    free(c->hub);
    free(c->cg);
    free(c->addr);
    free(c->container);
    free(c->token_scope);
    free(c->hub_audience);
    free(c->mauth.audience);
    sw_buf_free(&c->rx);
    sw_buf_free(&c->scratch);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
}

static sw_amqp_part *find_part_locked(sw_amqp_client *c, const char *id)
{
    for (size_t i = 0; i < c->nparts; i++) {
        if (strcmp(c->parts[i]->id, id) == 0) {
            return c->parts[i];
        }
    }
    return NULL;
}

static sw_amqp_part *new_part_locked(sw_amqp_client *c, const char *id, sw_err *err)
{
    if (c->nparts == SW_AMQP_MAX_PARTITIONS) {
        sw_err_set(err, SW_E_TOO_LARGE, "more than %d partitions", SW_AMQP_MAX_PARTITIONS);
        return NULL;
    }
    sw_amqp_part *p = calloc(1, sizeof *p);
    char *tail = concat3("/ConsumerGroups/", c->cg, "/Partitions/");
    char *addr = tail != NULL ? concat3(c->hub, tail, id) : NULL;
    char *aud = addr != NULL ? concat3(c->cs.endpoint, addr, "") : NULL;
    free(tail);
    if (p == NULL || addr == NULL || aud == NULL) {
        free(p);
        free(addr);
        free(aud);
        sw_err_set(err, SW_E_NOMEM, "out of memory");
        return NULL;
    }
    memcpy(p->id, id, strlen(id) + 1);
    p->address = addr;
    p->auth.audience = aud;
    p->st = P_STOPPED;
    p->settle_req = INT64_MIN;
    c->parts[c->nparts++] = p;
    return p;
}

bool sw_amqp_add_partition(sw_amqp_client *c, const char *partition, const sw_amqp_position *start,
                           sw_err *err)
{
    if (partition == NULL || *partition == '\0' || strlen(partition) >= SW_AMQP_PARTITION_ID_MAX ||
        strchr(partition, '/') != NULL) {
        return sw_err_set(err, SW_E_INVALID_ARG, "invalid partition id");
    }
    if (c->o.cb.on_event == NULL) {
        return sw_err_set(err, SW_E_INVALID_ARG, "on_event callback is required to receive");
    }
    sw_amqp_position def;
    if (start == NULL) {
        sw_amqp_position_parse("earliest", &def, NULL);
        start = &def;
    }
    if (start->kind == SW_AMQP_START_AFTER_OFFSET) {
        sw_amqp_position chk;
        if (!sw_amqp_position_after(&chk, start->offset, start->sequence_number, err)) {
            return false;
        }
    }
    pthread_mutex_lock(&c->mu);
    if (c->fatal) {
        sw_err e = c->fatal_err;
        pthread_mutex_unlock(&c->mu);
        if (err != NULL) {
            *err = e;
        }
        return false;
    }
    sw_amqp_part *p = find_part_locked(c, partition);
    if (p != NULL && p->in_use) {
        pthread_mutex_unlock(&c->mu);
        return sw_err_set(err, SW_E_INVALID_ARG, "partition %s is already added", partition);
    }
    if (p == NULL) {
        p = new_part_locked(c, partition, err);
    }
    if (p == NULL) {
        pthread_mutex_unlock(&c->mu);
        return false;
    }
    p->in_use = true;
    p->add_req = true;
    p->remove_req = false;
    p->start_req = *start;
    p->settle_req = INT64_MIN;
    pthread_mutex_unlock(&c->mu);
    poke(c);
    return true;
}

void sw_amqp_remove_partition(sw_amqp_client *c, const char *partition)
{
    pthread_mutex_lock(&c->mu);
    sw_amqp_part *p = find_part_locked(c, partition);
    if (p != NULL && p->in_use) {
        p->in_use = false;
        p->add_req = false;
        p->remove_req = true;
    }
    pthread_mutex_unlock(&c->mu);
    poke(c);
}

void sw_amqp_settle(sw_amqp_client *c, const char *partition, int64_t up_to)
{
    /* from a callback (client thread, cur_part is its own): no lock, settled right after */
    bool own_thread = c->thread_started && pthread_equal(pthread_self(), c->thread);
    sw_amqp_part *cur = own_thread ? c->cur_part : NULL;
    if (cur != NULL && (partition == cur->id || strcmp(partition, cur->id) == 0)) {
        if (up_to > cur->settle_local) {
            cur->settle_local = up_to;
        }
        return;
    }
    bool changed = false;
    pthread_mutex_lock(&c->mu);
    sw_amqp_part *p = find_part_locked(c, partition);
    if (p != NULL && p->in_use && up_to > p->settle_req) {
        p->settle_req = up_to;
        changed = true;
    }
    pthread_mutex_unlock(&c->mu);
    if (changed) {
        poke(c);
    }
}

void sw_amqp_get_stats(sw_amqp_client *c, sw_amqp_stats *out)
{
    out->events = atomic_load(&c->st_events);
    out->settled = atomic_load(&c->st_settled);
    out->connects = atomic_load(&c->st_connects);
    out->reattaches = atomic_load(&c->st_reattaches);
    out->token_puts = atomic_load(&c->st_token_puts);
    out->duplicates = atomic_load(&c->st_duplicates);
    out->rebound = atomic_load(&c->st_rebound);
}

/* Posts r, waits for its reply or the operation timeout. */
static bool mgmt_call(sw_amqp_client *c, sw_amqp_mreq *r, sw_err *err)
{
    if (c->thread_started && pthread_equal(pthread_self(), c->thread)) {
        return sw_err_set(err, SW_E_INVALID_ARG,
                          "discovery calls must not be made from an amqp callback");
    }
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    int64_t ns = (int64_t)until.tv_nsec + (c->o.operation_timeout_us % SW_US_PER_SEC) * 1000;
    until.tv_sec += (time_t)(c->o.operation_timeout_us / SW_US_PER_SEC + ns / 1000000000);
    until.tv_nsec = (long)(ns % 1000000000);
    pthread_mutex_lock(&c->mu);
    if (c->fatal) {
        sw_err e = c->fatal_err;
        pthread_mutex_unlock(&c->mu);
        if (err != NULL) {
            *err = e;
        }
        return false;
    }
    r->next = c->mreqs;
    c->mreqs = r;
    pthread_mutex_unlock(&c->mu);
    atomic_store(&c->mgmt_pending, true);
    poke(c);
    pthread_mutex_lock(&c->mu);
    int rc = 0;
    while (!r->done && rc == 0) {
        rc = pthread_cond_timedwait(&c->cv, &c->mu, &until);
    }
    for (sw_amqp_mreq **pp = &c->mreqs; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == r) {
            *pp = r->next;
            break;
        }
    }
    bool done = r->done;
    pthread_mutex_unlock(&c->mu);
    if (!done) {
        return sw_err_set(err, SW_E_TIMEOUT, "$management request not answered within %lld ms",
                          (long long)(c->o.operation_timeout_us / 1000));
    }
    if (r->err.code != SW_OK) {
        if (err != NULL) {
            *err = r->err;
        }
        sw_amqp_free_partition_ids(r->ids, r->nids);
        r->ids = NULL;
        return false;
    }
    return true;
}

bool sw_amqp_get_partition_ids(sw_amqp_client *c, char ***ids_out, size_t *count_out, sw_err *err)
{
    sw_amqp_mreq r;
    memset(&r, 0, sizeof r);
    r.kind = MREQ_HUB;
    if (!mgmt_call(c, &r, err)) {
        return false;
    }
    *ids_out = r.ids;
    *count_out = r.nids;
    return true;
}

void sw_amqp_free_partition_ids(char **ids, size_t count)
{
    if (ids == NULL) {
        return;
    }
    for (size_t i = 0; i < count; i++) {
        free(ids[i]);
    }
    free(ids);
}

bool sw_amqp_get_partition_info(sw_amqp_client *c, const char *partition,
                                sw_amqp_partition_info *out, sw_err *err)
{
    if (partition == NULL || *partition == '\0' || strlen(partition) >= SW_AMQP_PARTITION_ID_MAX) {
        return sw_err_set(err, SW_E_INVALID_ARG, "invalid partition id");
    }
    sw_amqp_mreq r;
    memset(&r, 0, sizeof r);
    r.kind = MREQ_PARTITION;
    memcpy(r.partition, partition, strlen(partition) + 1);
    if (!mgmt_call(c, &r, err)) {
        return false;
    }
    sw_amqp_free_partition_ids(r.ids, r.nids);
    *out = r.info;
    if (out->partition[0] == '\0') {
        memcpy(out->partition, partition, strlen(partition) + 1);
    }
    return true;
}

/* ------------------------------------------------------------- sender API */

static struct timespec abs_deadline(int64_t from_now_us)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    int64_t ns = (int64_t)t.tv_nsec + (from_now_us % SW_US_PER_SEC) * 1000;
    t.tv_sec += (time_t)(from_now_us / SW_US_PER_SEC + ns / 1000000000);
    t.tv_nsec = (long)(ns % 1000000000);
    return t;
}

bool sw_amqp_send(sw_amqp_client *c, const char *hub, const char *partition,
                  const sw_amqp_out *msgs, size_t n, sw_err *err)
{
    if (c->thread_started && pthread_equal(pthread_self(), c->thread)) {
        return sw_err_set(err, SW_E_INVALID_ARG,
                          "sw_amqp_send must not be called from an amqp "
                          "callback");
    }
    if (partition == NULL || *partition == '\0' || strlen(partition) >= SW_AMQP_PARTITION_ID_MAX ||
        strchr(partition, '/') != NULL) {
        return sw_err_set(err, SW_E_INVALID_ARG, "invalid partition id");
    }
    const char *h = hub != NULL ? hub : c->hub;
    if (*h == '\0' || strlen(h) > 256 || strchr(h, '/') != NULL) {
        return sw_err_set(err, SW_E_INVALID_ARG, "invalid Event Hub name");
    }
    if (n == 0) {
        return true;
    }
    if (msgs == NULL) {
        return sw_err_set(err, SW_E_INVALID_ARG, "no messages to send");
    }
    for (size_t i = 0; i < n; i++) {
        if (msgs[i].body == NULL && msgs[i].len > 0) {
            return sw_err_set(err, SW_E_INVALID_ARG, "message %zu has no body", i);
        }
        if (msgs[i].len > UINT32_MAX - SND_DATA_HDR) {
            return sw_err_set(err, SW_E_TOO_LARGE, "message %zu of %zu bytes is too large", i,
                              msgs[i].len);
        }
    }
    sw_amqp_sreq r;
    memset(&r, 0, sizeof r);
    snprintf(r.address, sizeof r.address, "%s/Partitions/%s", h, partition);
    r.msgs = msgs;
    r.n = n;
    r.mstate = calloc(n, 1);
    if (r.mstate == NULL) {
        return sw_err_set(err, SW_E_NOMEM, "out of memory");
    }
    int64_t budget = 3 * c->o.operation_timeout_us;
    struct timespec until = abs_deadline(budget);
    pthread_mutex_lock(&c->mu);
    if (c->fatal) {
        sw_err e = c->fatal_err;
        pthread_mutex_unlock(&c->mu);
        free(r.mstate);
        if (err != NULL) {
            *err = e;
        }
        return false;
    }
    r.id = ++c->next_sreq_id;
    sw_amqp_sreq **tail = &c->sreqs;
    while (*tail != NULL) {
        tail = &(*tail)->next;
    }
    *tail = &r;
    pthread_mutex_unlock(&c->mu);
    atomic_store(&c->mgmt_pending, true); /* makes the client thread drive (senders too) */
    poke(c);
    pthread_mutex_lock(&c->mu);
    int rc = 0;
    while (!r.done && rc == 0) {
        rc = pthread_cond_timedwait(&c->cv, &c->mu, &until);
    }
    for (sw_amqp_sreq **pp = &c->sreqs; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == &r) {
            *pp = r.next;
            break;
        }
    }
    pthread_mutex_unlock(&c->mu);
    free(r.mstate);
    if (!r.done) {
        return sw_err_set(err, SW_E_TIMEOUT,
                          "send to %s: %zu of %zu messages accepted within %lld ms%s%s", r.address,
                          r.accepted, r.n, (long long)(budget / 1000),
                          r.last_err.msg[0] != '\0' ? "; last error: " : "", r.last_err.msg);
    }
    if (r.err.code != SW_OK) {
        if (err != NULL) {
            *err = r.err;
        }
        return false;
    }
    return true;
}

void sw_amqp_get_send_stats(sw_amqp_client *c, sw_amqp_send_stats *out)
{
    out->sent = atomic_load(&c->st_sent);
    out->resent = atomic_load(&c->st_resent);
    out->attaches = atomic_load(&c->st_snd_attaches);
}
