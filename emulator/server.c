#include "server_int.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <proton/condition.h>
#include <proton/delivery.h>
#include <proton/disposition.h>
#include <proton/event.h>
#include <proton/netaddr.h>
#include <proton/sasl.h>
#include <proton/session.h>
#include <proton/terminus.h>
#include <proton/transport.h>

#include "amqpbin.h"
#include "filter.h"
#include "scanwatch/log.h"

/* Credit the emulator keeps open on links where clients publish. */
#define EMU_SENDER_CREDIT 256
/*
 * Deliveries a receiver link may have handed to proton and not yet written:
 * a client's large credit would otherwise buffer megabytes in proton first.
 * Beyond the client's session window proton cannot write them, and it walks
 * every such delivery of the connection on each pass: the JS SDK (credit
 * prefetchCount 3000, rhea's session window 2048 transfers) then kept the
 * emulator at a full core and held itself to ~5,000 events/s.
 */
#define EMU_LINK_QUEUED_MAX 256
/* Non-epoch receivers allowed per partition and consumer group (service quota). */
#define EMU_MAX_NON_EPOCH 5
/* The JS SDK's filter descriptor; .NET uses the symbol form. */
#define EMU_SELECTOR_CODE 0x0000468C00000004ULL

int64_t emu_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t emu_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void copy_str(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src != NULL ? src : "");
}

emu_server *emu_server_new(emu_store *store, emu_auth *auth, const emu_options *opt, sw_err *err)
{
    emu_server *s = calloc(1, sizeof *s);
    if (s == NULL) {
        sw_err_set(err, SW_E_NOMEM, "server");
        return NULL;
    }
    s->store = store;
    s->auth = auth;
    s->opt = *opt;
    s->control_port = -1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    if ((opt->tls_cert != NULL) != (opt->tls_key != NULL)) {
        sw_err_set(err, SW_E_CONFIG, "--tls-cert and --tls-key must be given together");
        emu_server_free(s);
        return NULL;
    }
    if (opt->tls_cert != NULL) {
        s->ssl = pn_ssl_domain(PN_SSL_MODE_SERVER);
        if (s->ssl == NULL ||
            pn_ssl_domain_set_credentials(s->ssl, opt->tls_cert, opt->tls_key, NULL) != 0) {
            sw_err_set(err, SW_E_CONFIG, "cannot load TLS certificate '%s' / key '%s'",
                       opt->tls_cert, opt->tls_key);
            emu_server_free(s);
            return NULL;
        }
        /* One port serves TLS and plain clients (UseDevelopmentEmulator is plain). */
        pn_ssl_domain_allow_unsecured_client(s->ssl);
    }
    s->proactor = pn_proactor();
    if (s->proactor == NULL) {
        sw_err_set(err, SW_E_NOMEM, "proactor");
        emu_server_free(s);
        return NULL;
    }
    return s;
}

void emu_server_free(emu_server *s)
{
    if (s == NULL) {
        return;
    }
    if (s->proactor != NULL) {
        pn_proactor_free(s->proactor);
        s->proactor = NULL;
    }
    if (s->ssl != NULL) {
        pn_ssl_domain_free(s->ssl);
        s->ssl = NULL;
    }
    /*
     * A control thread may still be returning from emu_server_submit; the
     * struct and its mutex then live until exit (control.c keeps a pointer).
     */
    if (!s->threads_started) {
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv);
        free(s);
    }
}

/* ---- registry of receivers per partition ---- */

static void receiver_register(emu_link *el)
{
    emu_partition *p = el->part;
    el->pprev = NULL;
    el->pnext = p->receivers;
    if (p->receivers != NULL) {
        p->receivers->pprev = el;
    }
    p->receivers = el;
}

static void receiver_unregister(emu_link *el)
{
    if (el->kind != EMU_LINK_RECEIVER || el->part == NULL) {
        return;
    }
    emu_partition *p = el->part;
    if (el->pprev != NULL) {
        el->pprev->pnext = el->pnext;
    } else if (p->receivers == el) {
        p->receivers = el->pnext;
    }
    if (el->pnext != NULL) {
        el->pnext->pprev = el->pprev;
    }
    el->pnext = el->pprev = NULL;
    el->part = NULL;
}

void emu_notify_partition(emu_partition *p)
{
    for (emu_link *r = p->receivers; r != NULL; r = r->pnext) {
        pn_connection_wake(r->conn->conn);
    }
}

void emu_link_request_close(emu_link *el, const char *cond, const char *desc)
{
    if (el->closing || el->close_requested) {
        return;
    }
    el->close_requested = true;
    copy_str(el->close_cond, sizeof el->close_cond, cond);
    copy_str(el->close_desc, sizeof el->close_desc, desc);
    /* Free the partition at once: a thief must not wait for the victim's wake. */
    receiver_unregister(el);
    pn_connection_wake(el->conn->conn);
}

/* ---- link lifecycle ---- */

static void link_free(emu_link *el)
{
    receiver_unregister(el);
    sw_buf_free(&el->rx);
    pn_link_set_context(el->link, NULL);
    free(el);
}

static void link_close(emu_link *el, const char *cond, const char *desc)
{
    receiver_unregister(el);
    if (el->closing) {
        return;
    }
    el->closing = true;
    if (cond != NULL && cond[0] != '\0') {
        pn_condition_t *c = pn_link_condition(el->link);
        pn_condition_set_name(c, cond);
        pn_condition_set_description(c, desc);
    }
    pn_link_close(el->link);
    SW_LOG(SW_LOG_INFO, "link detached", SW_LF_STR("link", pn_link_name(el->link)),
           SW_LF_STR("entity", el->entity), SW_LF_STR("condition", cond ? cond : ""));
}

/* Attaches and immediately detaches with a condition, as the service refuses links. */
static void link_refuse(pn_link_t *l, const char *cond, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void link_refuse(pn_link_t *l, const char *cond, const char *fmt, ...)
{
    char desc[EMU_DESC_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(desc, sizeof desc, fmt, ap);
    va_end(ap);
    pn_condition_t *c = pn_link_condition(l);
    pn_condition_set_name(c, cond);
    pn_condition_set_description(c, desc);
    pn_link_open(l);
    pn_link_close(l);
    SW_LOG(SW_LOG_INFO, "attach refused", SW_LF_STR("link", pn_link_name(l)),
           SW_LF_STR("condition", cond), SW_LF_STR("description", desc));
}

void emu_conn_add_claim(emu_conn *ec, const char *path, int64_t expiry_s)
{
    emu_claim *slot = NULL;
    for (int i = 0; i < ec->claim_count; i++) {
        if (strcmp(ec->claims[i].path, path) == 0) {
            slot = &ec->claims[i];
        }
    }
    if (slot == NULL) {
        if (ec->claim_count < EMU_MAX_CLAIMS) {
            slot = &ec->claims[ec->claim_count++];
        } else {
            /* Full: replace the claim that expires first. */
            slot = &ec->claims[0];
            for (int i = 1; i < ec->claim_count; i++) {
                if (ec->claims[i].expiry_s < slot->expiry_s) {
                    slot = &ec->claims[i];
                }
            }
        }
    }
    copy_str(slot->path, sizeof slot->path, path);
    slot->expiry_s = expiry_s;
    /* A renewed token extends the links it covers. */
    for (pn_link_t *l = pn_link_head(ec->conn, 0); l != NULL; l = pn_link_next(l, 0)) {
        emu_link *el = pn_link_get_context(l);
        if (el != NULL && el->auth_expiry_s > 0 && emu_claim_covers(path, el->entity) &&
            expiry_s > el->auth_expiry_s) {
            el->auth_expiry_s = expiry_s;
        }
    }
}

/* Latest expiry among the connection's live claims covering entity; 0 if none. */
static int64_t claim_expiry(const emu_conn *ec, const char *entity)
{
    int64_t now = emu_now_ms() / 1000, best = 0;
    for (int i = 0; i < ec->claim_count; i++) {
        const emu_claim *c = &ec->claims[i];
        if (c->expiry_s > now && c->expiry_s > best && emu_claim_covers(c->path, entity)) {
            best = c->expiry_s;
        }
    }
    return best;
}

static bool take_refusal(emu_server *s, pn_link_t *l)
{
    if (s->refuse_attach <= 0) {
        return false;
    }
    s->refuse_attach--;
    link_refuse(l, s->refuse_cond, "%s", s->refuse_desc);
    return true;
}

/* Splits "<hub>/ConsumerGroups/<cg>/Partitions/<id>" style paths into segments. */
static int split_path(char *path, char **seg, int max)
{
    int n = 0;
    char *p = path;
    while (n < max) {
        seg[n++] = p;
        char *slash = strchr(p, '/');
        if (slash == NULL) {
            break;
        }
        *slash = '\0';
        p = slash + 1;
    }
    return n;
}

static bool get_symbol_key(pn_data_t *d, const char *name)
{
    if (pn_data_type(d) != PN_SYMBOL && pn_data_type(d) != PN_STRING) {
        return false;
    }
    pn_bytes_t b = pn_data_type(d) == PN_SYMBOL ? pn_data_get_symbol(d) : pn_data_get_string(d);
    return b.size == strlen(name) && memcmp(b.start, name, b.size) == 0;
}

static bool read_epoch(pn_link_t *l, int64_t *epoch)
{
    pn_data_t *d = pn_link_remote_properties(l);
    if (d == NULL) {
        return false;
    }
    pn_data_rewind(d);
    if (!pn_data_next(d) || pn_data_type(d) != PN_MAP) {
        return false;
    }
    pn_data_enter(d);
    bool found = false;
    while (pn_data_next(d)) {
        bool is_epoch = get_symbol_key(d, "com.microsoft:epoch");
        if (!pn_data_next(d)) {
            break;
        }
        if (!is_epoch) {
            continue;
        }
        switch (pn_data_type(d)) {
        case PN_LONG:
            *epoch = pn_data_get_long(d);
            found = true;
            break;
        case PN_INT:
            *epoch = pn_data_get_int(d);
            found = true;
            break;
        case PN_UINT:
            *epoch = pn_data_get_uint(d);
            found = true;
            break;
        case PN_ULONG:
            *epoch = (int64_t)pn_data_get_ulong(d);
            found = true;
            break;
        default:
            break;
        }
    }
    pn_data_exit(d);
    return found;
}

/* Finds the selector filter expression; false with *present=false when there is none. */
static bool read_filter(pn_link_t *l, char *expr, size_t size, bool *present)
{
    *present = false;
    pn_data_t *d = pn_terminus_filter(pn_link_remote_source(l));
    pn_data_rewind(d);
    if (!pn_data_next(d) || pn_data_type(d) != PN_MAP) {
        return true;
    }
    pn_data_enter(d);
    bool ok = true;
    while (pn_data_next(d)) {
        bool selector = get_symbol_key(d, "apache.org:selector-filter:string");
        if (!pn_data_next(d)) {
            break;
        }
        if (!pn_data_is_described(d)) {
            continue;
        }
        pn_data_enter(d);
        pn_data_next(d);
        bool code_ok = (pn_data_type(d) == PN_ULONG && pn_data_get_ulong(d) == EMU_SELECTOR_CODE) ||
                       get_symbol_key(d, "apache.org:selector-filter:string");
        if (pn_data_next(d) && (selector || code_ok) && pn_data_type(d) == PN_STRING) {
            pn_bytes_t b = pn_data_get_string(d);
            if (b.size >= size) {
                ok = false;
            } else {
                memcpy(expr, b.start, b.size);
                expr[b.size] = '\0';
                *present = true;
            }
        }
        pn_data_exit(d);
    }
    pn_data_exit(d);
    return ok;
}

/* Applies the epoch rules; false when the new receiver is refused (already detached). */
static bool epoch_admit(pn_link_t *l, emu_link *el)
{
    int64_t max_epoch = INT64_MIN;
    int non_epoch = 0;
    for (emu_link *r = el->part->receivers; r != NULL; r = r->pnext) {
        if (r->group != el->group) {
            continue;
        }
        if (r->has_epoch) {
            max_epoch = r->epoch > max_epoch ? r->epoch : max_epoch;
        } else {
            non_epoch++;
        }
    }
    bool epoch_exists = max_epoch != INT64_MIN;
    if (el->has_epoch) {
        if (epoch_exists && el->epoch < max_epoch) {
            link_refuse(l, "amqp:link:stolen",
                        "Receiver with a higher epoch '%" PRId64 "' already exists. A new "
                        "receiver with epoch '%" PRId64 "' cannot be created.",
                        max_epoch, el->epoch);
            return false;
        }
        /* Equal or higher epoch: everyone else in the group loses the partition. */
        emu_link *r = el->part->receivers;
        while (r != NULL) {
            emu_link *next = r->pnext;
            if (r->group == el->group) {
                char desc[EMU_DESC_MAX];
                snprintf(desc, sizeof desc,
                         "New receiver with higher epoch of '%" PRId64 "' is created hence "
                         "current receiver with epoch '%" PRId64 "' is getting disconnected.",
                         el->epoch, r->has_epoch ? r->epoch : 0);
                emu_link_request_close(r, "amqp:link:stolen", desc);
            }
            r = next;
        }
        return true;
    }
    if (epoch_exists) {
        link_refuse(l, "amqp:link:stolen",
                    "Receiver with epoch '%" PRId64 "' already exists; a receiver without an "
                    "epoch cannot be created.",
                    max_epoch);
        return false;
    }
    if (non_epoch >= EMU_MAX_NON_EPOCH) {
        link_refuse(l, "amqp:resource-limit-exceeded",
                    "Exceeded the maximum number of allowed receivers per partition in a "
                    "consumer group which is %d.",
                    EMU_MAX_NON_EPOCH);
        return false;
    }
    return true;
}

/* Sets el->cursor from the filter; false when refused (already detached). */
static bool position_receiver(pn_link_t *l, emu_link *el)
{
    char expr[512];
    bool present;
    emu_partition *p = el->part;
    if (!read_filter(l, expr, sizeof expr, &present)) {
        link_refuse(l, "com.microsoft:argument-error", "selector filter too long");
        return false;
    }
    if (!present) {
        el->cursor = p->begin_seq;
        return true;
    }
    emu_position pos;
    sw_err err;
    sw_err_clear(&err);
    if (!emu_filter_parse(expr, strlen(expr), &pos, &err)) {
        link_refuse(l, "com.microsoft:argument-error", "%s", err.msg);
        return false;
    }
    int64_t last_seq = p->next_seq - 1;
    switch (pos.kind) {
    case EMU_POS_OFFSET:
        if (pos.start) {
            el->cursor = p->begin_seq;
        } else if (pos.latest) {
            el->cursor = p->next_seq;
        } else if (pos.value > p->last_offset && !(pos.inclusive && pos.value == p->next_offset)) {
            link_refuse(l, "com.microsoft:argument-out-of-range",
                        "The supplied offset '%" PRId64 "' is invalid. The last offset in the "
                        "system is '%" PRId64 "'",
                        pos.value, p->last_offset);
            return false;
        } else {
            el->cursor = emu_partition_seek_offset(p, pos.value, pos.inclusive);
        }
        break;
    case EMU_POS_SEQUENCE:
        if (pos.value > last_seq + (pos.inclusive ? 1 : 0)) {
            link_refuse(l, "com.microsoft:argument-out-of-range",
                        "The supplied sequence number '%" PRId64 "' is invalid. The last "
                        "sequence number in the system is '%" PRId64 "'",
                        pos.value, last_seq);
            return false;
        }
        el->cursor = pos.inclusive ? pos.value : pos.value + 1;
        break;
    case EMU_POS_TIME:
        el->cursor = emu_partition_seek_time(p, pos.value, pos.inclusive);
        break;
    }
    if (el->cursor < p->begin_seq) {
        el->cursor = p->begin_seq;
    }
    return true;
}

/*
 * Resolves an entity address. For receivers: hub/ConsumerGroups/cg/Partitions/id;
 * for senders: hub or hub/Partitions/id. Refuses (and returns false) otherwise.
 */
static bool resolve_entity(emu_server *s, pn_link_t *l, emu_link *el, bool client_receives)
{
    char path[EMU_PATH_MAX];
    char *seg[8];
    copy_str(path, sizeof path, el->entity);
    int n = split_path(path, seg, 8);
    emu_hub *h = emu_store_hub(s->store, seg[0], strlen(seg[0]));
    if (h == NULL) {
        link_refuse(l, "amqp:not-found",
                    "The messaging entity '%s' could not be found. To know more visit "
                    "https://aka.ms/sbResourceMgrExceptions.",
                    el->entity);
        return false;
    }
    el->hub = h;
    if (client_receives) {
        if (n != 5 || strcasecmp(seg[1], "ConsumerGroups") != 0 ||
            strcasecmp(seg[3], "Partitions") != 0) {
            link_refuse(l, "amqp:not-found",
                        "'%s' is not a receive address: expected "
                        "<hub>/ConsumerGroups/<group>/Partitions/<id>",
                        el->entity);
            return false;
        }
        el->group = emu_hub_group(h, seg[2], strlen(seg[2]));
        if (el->group < 0) {
            link_refuse(l, "amqp:not-found",
                        "The messaging entity '%s' could not be found (no consumer group '%s').",
                        el->entity, seg[2]);
            return false;
        }
        el->part = emu_hub_partition(h, seg[4], strlen(seg[4]));
        if (el->part == NULL) {
            link_refuse(l, "amqp:not-found",
                        "The specified partition '%s' is invalid for EventHub '%s'. It should "
                        "be between 0 and %d.",
                        seg[4], h->name, h->partition_count - 1);
            return false;
        }
        return true;
    }
    if (n == 1) {
        return true;
    }
    if (n == 3 && strcasecmp(seg[1], "Partitions") == 0) {
        el->part = emu_hub_partition(h, seg[2], strlen(seg[2]));
        if (el->part != NULL) {
            return true;
        }
        link_refuse(l, "amqp:not-found",
                    "The specified partition '%s' is invalid for EventHub '%s'. It should be "
                    "between 0 and %d.",
                    seg[2], h->name, h->partition_count - 1);
        return false;
    }
    link_refuse(l, "amqp:not-found",
                "'%s' is not a send address: expected <hub> or "
                "<hub>/Partitions/<id>",
                el->entity);
    return false;
}

static bool is_node(const char *entity, const char *node)
{
    /* "$cbs", or "<hub>/$management" as some clients write it. */
    const char *slash = strrchr(entity, '/');
    const char *last = slash != NULL ? slash + 1 : entity;
    return strcmp(last, node) == 0;
}

/*
 * Checks a hub/partition link: fault-injected refusals, the address, the
 * token, and for receivers the start position and epoch rules. False when
 * the link was refused (already detached).
 */
static bool admit_entity_link(emu_server *s, emu_conn *ec, pn_link_t *l, emu_link *el,
                              bool client_receives)
{
    if (take_refusal(s, l) || !resolve_entity(s, l, el, client_receives)) {
        return false;
    }
    if (!s->opt.no_auth) {
        el->auth_expiry_s = claim_expiry(ec, el->entity);
        if (el->auth_expiry_s == 0) {
            link_refuse(l, "amqp:unauthorized-access",
                        "Unauthorized access. '%s' claim(s) are required to perform this "
                        "operation. Resource: '%s'. Put a token for it on $cbs first.",
                        client_receives ? "Listen" : "Send", el->entity);
            return false;
        }
    }
    if (!client_receives) {
        return true;
    }
    el->has_epoch = read_epoch(l, &el->epoch);
    return position_receiver(l, el) && epoch_admit(l, el);
}

/* Answers an attach: echoes the termini, sets the link up for its role, opens. */
static void open_link(pn_link_t *l, emu_link *el, bool client_receives)
{
    pn_terminus_copy(pn_link_source(l), pn_link_remote_source(l));
    pn_terminus_copy(pn_link_target(l), pn_link_remote_target(l));
    if (client_receives) {
        pn_link_set_snd_settle_mode(l, pn_link_remote_snd_settle_mode(l));
    } else {
        pn_link_set_rcv_settle_mode(l, PN_RCV_FIRST);
        /* The JS SDK sizes batches by this; 0 (proton's default) breaks createBatch. */
        pn_link_set_max_message_size(l, EMU_MAX_MESSAGE_SIZE);
        sw_buf_init(&el->rx,
                    el->kind == EMU_LINK_SENDER ? EMU_MAX_MESSAGE_SIZE : EMU_MAX_REQUEST_SIZE);
    }
    pn_link_set_context(l, el);
    pn_link_open(l);
    if (!client_receives) {
        pn_link_flow(l, EMU_SENDER_CREDIT);
    }
    if (el->kind == EMU_LINK_RECEIVER) {
        receiver_register(el);
    }
    SW_LOG(SW_LOG_INFO, "link attached", SW_LF_STR("link", pn_link_name(l)),
           SW_LF_STR("entity", el->entity), SW_LF_BOOL("client_receives", client_receives),
           SW_LF_INT("epoch", el->has_epoch ? el->epoch : -1), SW_LF_INT("cursor", el->cursor));
}

static void on_link_remote_open(emu_server *s, emu_conn *ec, pn_link_t *l)
{
    bool client_receives = pn_link_is_sender(l);
    pn_terminus_t *remote = client_receives ? pn_link_remote_source(l) : pn_link_remote_target(l);
    const char *addr = pn_terminus_get_address(remote);
    emu_link *el = calloc(1, sizeof *el);
    if (el == NULL) {
        link_refuse(l, "amqp:internal-error", "out of memory");
        return;
    }
    el->link = l;
    el->conn = ec;
    if (addr == NULL || !emu_entity_path(addr, strlen(addr), el->entity, sizeof el->entity)) {
        free(el);
        link_refuse(l, "amqp:not-found", "link address missing or too long");
        return;
    }
    if (is_node(el->entity, "$cbs")) {
        el->kind = client_receives ? EMU_LINK_CBS_OUT : EMU_LINK_CBS_IN;
    } else if (is_node(el->entity, "$management")) {
        el->kind = client_receives ? EMU_LINK_MGMT_OUT : EMU_LINK_MGMT_IN;
    } else {
        el->kind = client_receives ? EMU_LINK_RECEIVER : EMU_LINK_SENDER;
        if (!admit_entity_link(s, ec, l, el, client_receives)) {
            free(el);
            return;
        }
    }
    open_link(l, el, client_receives);
}

/* ---- delivery to receivers ---- */

static pn_millis_t timer_period(const emu_server *s);

static void deliver(emu_server *s, emu_link *el)
{
    if (el->kind != EMU_LINK_RECEIVER || el->closing || el->close_requested || el->part == NULL) {
        return;
    }
    pn_link_t *l = el->link;
    emu_partition *p = el->part;
    if (el->cursor < p->begin_seq) {
        el->cursor = p->begin_seq;
    }
    if (pn_link_credit(l) <= 0 || el->cursor >= p->next_seq) {
        return;
    }
    if (s->delay_ms > 0) {
        int64_t now = emu_mono_ms();
        if (el->due_ms == 0) {
            el->due_ms = now + s->delay_ms;
            return;
        }
        if (now < el->due_ms) {
            return;
        }
    }
    el->due_ms = 0;
    bool settled = pn_link_snd_settle_mode(l) == PN_SND_SETTLED;
    int queued = pn_link_queued(l);
    bool added = false;
    while (pn_link_credit(l) > 0 && el->cursor < p->next_seq && queued < EMU_LINK_QUEUED_MAX) {
        const emu_event *e = emu_partition_get(p, el->cursor);
        if (e == NULL) {
            /* A loaded event could not be re-read (logged); the client may retry. */
            link_close(el, "amqp:internal-error", "cannot read a loaded event");
            return;
        }
        uint64_t tag = el->tag++;
        pn_delivery_t *d = pn_delivery(l, pn_dtag((const char *)&tag, sizeof tag));
        pn_link_send(l, (const char *)e->bytes, e->len);
        pn_link_advance(l);
        if (settled) {
            pn_delivery_settle(d);
        }
        el->cursor++;
        queued++;
        added = true;
    }
    if (pn_link_credit(l) > 0 && el->cursor < p->next_seq) {
        if (added || queued < el->queued_seen) {
            /* Let the proactor write what is queued, then continue on the wake. */
            pn_connection_wake(el->conn->conn);
        } else {
            /* Nothing was written since the last pass: the client's session
             * window is closed. Its dispositions (PN_DELIVERY) or credit
             * (PN_LINK_FLOW) call here again; a window reopened by a bare
             * session flow raises no event, so the timer polls meanwhile. */
            if (!s->stalled) {
                s->stalled = true;
                pn_proactor_set_timeout(s->proactor, timer_period(s));
            }
        }
    }
    el->queued_seen = queued;
    if (queued > s->queued_max) {
        s->queued_max = queued;
    }
}

/* ---- incoming messages ---- */

typedef struct {
    emu_server *s;
    emu_partition *part;
    const char *pkey;
    size_t pkey_len;
    int64_t now_ms;
    int events;
} append_ctx;

static bool check_event(void *ctx, const unsigned char *ev, size_t len, sw_err *err)
{
    append_ctx *a = ctx;
    for (size_t at = 0; at < len;) {
        size_t size, vat;
        unsigned code;
        if (!emu_amqp_section(ev + at, len - at, &size, &code, &vat)) {
            return sw_err_set(err, SW_E_PARSE, "event %d: malformed AMQP section at byte %zu",
                              a->events, at);
        }
        at += size;
    }
    a->events++;
    return true;
}

static bool append_event(void *ctx, const unsigned char *ev, size_t len, sw_err *err)
{
    append_ctx *a = ctx;
    return emu_partition_append(a->s->store, a->part, ev, len, a->pkey, a->pkey_len, a->now_ms,
                                err);
}

static void settle_in(pn_delivery_t *d, uint64_t outcome, const char *cond, const char *desc)
{
    if (cond != NULL) {
        pn_condition_t *c = pn_disposition_condition(pn_delivery_local(d));
        pn_condition_set_name(c, cond);
        pn_condition_set_description(c, desc);
    }
    pn_delivery_update(d, outcome);
    pn_delivery_settle(d);
}

static void on_publish(emu_server *s, emu_link *el, pn_delivery_t *d)
{
    const unsigned char *msg = (const unsigned char *)el->rx.data;
    size_t len = el->rx.len;
    append_ctx a = {.s = s, .now_ms = emu_now_ms()};
    sw_err err;
    sw_err_clear(&err);
    if (!emu_split_message(msg, len, &a.pkey, &a.pkey_len, check_event, &a, &err)) {
        settle_in(d, PN_REJECTED, "amqp:decode-error", err.msg);
        return;
    }
    a.part = el->part != NULL ? el->part : emu_hub_route(el->hub, a.pkey, a.pkey_len);
    if (!emu_split_message(msg, len, &a.pkey, &a.pkey_len, append_event, &a, &err)) {
        settle_in(d, PN_REJECTED, "amqp:internal-error", err.msg);
        return;
    }
    settle_in(d, PN_ACCEPTED, NULL, NULL);
    emu_notify_partition(a.part);
}

static void on_incoming(emu_server *s, emu_conn *ec, emu_link *el, pn_delivery_t *d)
{
    pn_link_t *l = el->link;
    if (!pn_delivery_readable(d)) {
        return;
    }
    char chunk[16384];
    for (;;) {
        ssize_t n = pn_link_recv(l, chunk, sizeof chunk);
        if (n <= 0) {
            break;
        }
        if (!el->oversize && !sw_buf_append(&el->rx, chunk, (size_t)n)) {
            el->oversize = true;
        }
    }
    if (pn_delivery_partial(d)) {
        return;
    }
    pn_link_advance(l);
    if (el->closing || ec->drop_requested) {
        /*
         * The link is detached on our side, or the connection is about to be
         * dropped (the control command already answered): the client never
         * sees an outcome and retries, so storing would duplicate the events.
         */
        pn_delivery_settle(d);
    } else if (el->oversize) {
        char desc[EMU_DESC_MAX];
        snprintf(desc, sizeof desc,
                 "The received message exceeds the limit of %d bytes for this entity.",
                 EMU_MAX_MESSAGE_SIZE);
        settle_in(d, PN_REJECTED, "amqp:link:message-size-exceeded", desc);
    } else if (el->kind == EMU_LINK_SENDER) {
        on_publish(s, el, d);
    } else {
        const unsigned char *m = (const unsigned char *)el->rx.data;
        settle_in(d, PN_ACCEPTED, NULL, NULL);
        if (el->kind == EMU_LINK_CBS_IN) {
            emu_handle_cbs(ec, el, m, el->rx.len);
        } else {
            emu_handle_mgmt(ec, el, m, el->rx.len);
        }
    }
    sw_buf_reset(&el->rx);
    el->oversize = false;
    if (pn_link_credit(l) < EMU_SENDER_CREDIT / 2) {
        pn_link_flow(l, EMU_SENDER_CREDIT - pn_link_credit(l));
    }
}

/* ---- connections ---- */

static void conn_free(emu_server *s, emu_conn *ec)
{
    for (pn_link_t *l = pn_link_head(ec->conn, 0); l != NULL; l = pn_link_next(l, 0)) {
        emu_link *el = pn_link_get_context(l);
        if (el != NULL) {
            link_free(el);
        }
    }
    if (ec->prev != NULL) {
        ec->prev->next = ec->next;
    } else {
        s->conns = ec->next;
    }
    if (ec->next != NULL) {
        ec->next->prev = ec->prev;
    }
    pn_connection_set_context(ec->conn, NULL);
    free(ec);
}

static void on_wake(emu_server *s, emu_conn *ec)
{
    pn_connection_t *c = ec->conn;
    if (ec->drop_requested) {
        /* Abrupt: no close frame, the socket just goes away. */
        pn_transport_t *t = pn_connection_transport(c);
        if (t != NULL) {
            pn_transport_close_tail(t);
            pn_transport_close_head(t);
        }
        return;
    }
    if (ec->close_requested) {
        ec->close_requested = false;
        pn_condition_t *cond = pn_connection_condition(c);
        pn_condition_set_name(cond, ec->close_cond);
        pn_condition_set_description(cond, ec->close_desc);
        pn_connection_close(c);
        return;
    }
    int64_t now_s = emu_now_ms() / 1000;
    for (pn_link_t *l = pn_link_head(c, 0); l != NULL; l = pn_link_next(l, 0)) {
        emu_link *el = pn_link_get_context(l);
        if (el == NULL || el->closing) {
            continue;
        }
        if (el->close_requested) {
            link_close(el, el->close_cond, el->close_desc);
        } else if (el->auth_expiry_s > 0 && el->auth_expiry_s <= now_s) {
            link_close(el, "amqp:unauthorized-access",
                       "The token for this link has expired; put a new token on $cbs.");
        } else {
            deliver(s, el);
        }
    }
}

static void on_accept(emu_server *s, pn_listener_t *listener)
{
    pn_transport_t *t = pn_transport();
    if (t == NULL) {
        return;
    }
    pn_transport_set_server(t);
    pn_transport_require_auth(t, false);
    pn_sasl_allowed_mechs(pn_sasl(t), "ANONYMOUS");
    if (s->ssl != NULL) {
        pn_ssl_init(pn_ssl(t), s->ssl, NULL);
    }
    pn_transport_require_encryption(t, false);
    pn_transport_set_idle_timeout(t, (pn_millis_t)s->opt.idle_timeout_ms);
    pn_listener_accept2(listener, NULL, t);
}

static void on_listener_open(emu_server *s, pn_listener_t *listener)
{
    char host[64], port[16];
    const pn_netaddr_t *na = pn_listener_addr(listener);
    if (na == NULL || pn_netaddr_host_port(na, host, sizeof host, port, sizeof port) != 0) {
        s->failed = true;
        sw_err_set(&s->fail_err, SW_E_IO, "cannot read the listening address");
        s->stop = true;
        return;
    }
    char *end = NULL;
    long p = strtol(port, &end, 10);
    s->port = (end != port && *end == '\0') ? (int)p : -1;
    if (s->control_port >= 0) {
        printf("ready port=%d control-port=%d\n", s->port, s->control_port);
    } else {
        printf("ready port=%d\n", s->port);
    }
    fflush(stdout);
    SW_LOG(SW_LOG_INFO, "emulator listening", SW_LF_STR("host", host), SW_LF_INT("port", s->port),
           SW_LF_BOOL("tls", s->ssl != NULL), SW_LF_BOOL("auth", !s->opt.no_auth));
}

static void drain_commands(emu_server *s)
{
    pthread_mutex_lock(&s->mu);
    emu_cmd *c = s->queue_head;
    s->queue_head = s->queue_tail = NULL;
    pthread_mutex_unlock(&s->mu);
    while (c != NULL) {
        emu_cmd *next = c->next;
        emu_execute_command(s, c->line, c->reply, c->reply_size);
        pthread_mutex_lock(&s->mu);
        c->done = true;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        c = next;
    }
}

void emu_server_submit(emu_server *s, const char *line, char *reply, size_t reply_size)
{
    emu_cmd c = {.line = line, .reply = reply, .reply_size = reply_size};
    pthread_mutex_lock(&s->mu);
    if (s->closed) {
        pthread_mutex_unlock(&s->mu);
        snprintf(reply, reply_size, "error the emulator is stopping");
        return;
    }
    if (s->queue_tail != NULL) {
        s->queue_tail->next = &c;
    } else {
        s->queue_head = &c;
    }
    s->queue_tail = &c;
    /* Under the lock: emu_server_run's shutdown cannot free the proactor meanwhile. */
    pn_proactor_interrupt(s->proactor);
    while (!c.done) {
        pthread_cond_wait(&s->cv, &s->mu);
    }
    pthread_mutex_unlock(&s->mu);
}

/* After the loop: refuse further commands, answer queued ones, free connection contexts. */
static void shutdown_server(emu_server *s)
{
    pthread_mutex_lock(&s->mu);
    s->closed = true;
    for (emu_cmd *c = s->queue_head; c != NULL; c = c->next) {
        snprintf(c->reply, c->reply_size, "error the emulator is stopping");
        c->done = true;
    }
    s->queue_head = s->queue_tail = NULL;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    while (s->conns != NULL) {
        conn_free(s, s->conns);
    }
}

static pn_millis_t timer_period(const emu_server *s)
{
    return s->delay_ms > 0 || s->stalled ? 10 : 1000;
}

static void on_timeout(emu_server *s)
{
    /* Token expiry, delayed deliveries and stalled links are checked by each
     * connection on wake; a link still stalled sets the flag again. */
    s->stalled = false;
    for (emu_conn *ec = s->conns; ec != NULL; ec = ec->next) {
        pn_connection_wake(ec->conn);
    }
    pn_proactor_set_timeout(s->proactor, timer_period(s));
}

static void on_listener_close(emu_server *s, pn_listener_t *listener)
{
    pn_condition_t *cond = pn_listener_condition(listener);
    if (pn_condition_is_set(cond)) {
        sw_err_set(&s->fail_err, SW_E_IO, "listen on %s:%d failed: %s", s->opt.host, s->opt.port,
                   pn_condition_get_description(cond));
        s->failed = true;
    }
    s->stop = true;
}

static void on_connection_init(emu_server *s, pn_connection_t *c, pn_event_t *e)
{
    emu_conn *ec = calloc(1, sizeof *ec);
    if (ec == NULL) {
        pn_transport_close_tail(pn_event_transport(e));
        return;
    }
    ec->srv = s;
    ec->conn = c;
    ec->next = s->conns;
    if (s->conns != NULL) {
        s->conns->prev = ec;
    }
    s->conns = ec;
    pn_connection_set_context(c, ec);
    pn_connection_set_container(c, "scanwatch-emulator");
}

/* The client detached (closed or not): forget the link and answer in kind. */
static void on_link_remote_end(pn_link_t *l, bool closed)
{
    emu_link *el = pn_link_get_context(l);
    if (el != NULL) {
        el->closing = true;
        link_free(el);
    }
    if (!(pn_link_state(l) & PN_LOCAL_CLOSED)) {
        if (closed) {
            pn_link_close(l);
        } else {
            pn_link_detach(l);
        }
    }
}

static void on_delivery(emu_server *s, emu_conn *ec, pn_delivery_t *d)
{
    pn_link_t *l = pn_delivery_link(d);
    emu_link *el = pn_link_get_context(l);
    if (pn_link_is_sender(l)) {
        /* The client's outcome for an unsettled delivery: done with it. */
        if (pn_delivery_updated(d) && pn_delivery_remote_state(d) != 0) {
            pn_delivery_settle(d);
        }
        if (el != NULL) {
            deliver(s, el); /* the client has taken deliveries: its window may be open */
        }
    } else if (el != NULL && ec != NULL) {
        on_incoming(s, ec, el, d);
    } else if (!pn_delivery_partial(d)) {
        pn_link_advance(l);
        settle_in(d, PN_RELEASED, NULL, NULL);
    }
}

static void handle(emu_server *s, pn_event_t *e)
{
    pn_connection_t *c = pn_event_connection(e);
    emu_conn *ec = c != NULL ? pn_connection_get_context(c) : NULL;
    emu_link *el = pn_event_link(e) != NULL ? pn_link_get_context(pn_event_link(e)) : NULL;
    switch (pn_event_type(e)) {
    case PN_LISTENER_OPEN:
        on_listener_open(s, pn_event_listener(e));
        break;
    case PN_LISTENER_ACCEPT:
        on_accept(s, pn_event_listener(e));
        break;
    case PN_LISTENER_CLOSE:
        on_listener_close(s, pn_event_listener(e));
        break;
    case PN_CONNECTION_INIT:
        on_connection_init(s, c, e);
        break;
    case PN_CONNECTION_REMOTE_OPEN:
        pn_connection_open(c);
        break;
    case PN_CONNECTION_REMOTE_CLOSE:
        pn_connection_close(c);
        break;
    case PN_SESSION_REMOTE_OPEN:
        pn_session_open(pn_event_session(e));
        break;
    case PN_SESSION_REMOTE_CLOSE:
        pn_session_close(pn_event_session(e));
        break;
    case PN_LINK_REMOTE_OPEN:
        if (ec != NULL) {
            on_link_remote_open(s, ec, pn_event_link(e));
        }
        break;
    case PN_LINK_REMOTE_CLOSE:
    case PN_LINK_REMOTE_DETACH:
        on_link_remote_end(pn_event_link(e), pn_event_type(e) == PN_LINK_REMOTE_CLOSE);
        break;
    case PN_LINK_FLOW:
        if (el != NULL) {
            deliver(s, el);
        }
        break;
    case PN_DELIVERY:
        on_delivery(s, ec, pn_event_delivery(e));
        break;
    case PN_CONNECTION_WAKE:
        if (ec != NULL) {
            on_wake(s, ec);
        }
        break;
    case PN_TRANSPORT_CLOSED:
        if (ec != NULL) {
            conn_free(s, ec);
        }
        break;
    case PN_PROACTOR_TIMEOUT:
        on_timeout(s);
        break;
    case PN_PROACTOR_INTERRUPT:
        drain_commands(s);
        break;
    default:
        break;
    }
}

bool emu_server_run(emu_server *s, sw_err *err)
{
    char addr[128];
    snprintf(addr, sizeof addr, "%s:%d", s->opt.host, s->opt.port);
    s->listener = pn_listener();
    pn_proactor_listen(s->proactor, s->listener, addr, 64);
    pn_proactor_set_timeout(s->proactor, timer_period(s));
    while (!s->stop) {
        pn_event_batch_t *batch = pn_proactor_wait(s->proactor);
        pn_event_t *e = pn_event_batch_next(batch);
        while (e != NULL) {
            handle(s, e);
            e = pn_event_batch_next(batch);
        }
        pn_proactor_done(s->proactor, batch);
    }
    shutdown_server(s);
    if (s->failed) {
        if (err != NULL) {
            *err = s->fail_err;
        }
        return false;
    }
    return true;
}
