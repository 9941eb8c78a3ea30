/* The $cbs (put-token) and $management (READ) request/response nodes. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <proton/codec.h>
#include <proton/delivery.h>
#include <proton/message.h>
#include <proton/session.h>
#include <proton/terminus.h>

#include "scanwatch/log.h"
#include "server_int.h"

#define EMU_TOKEN_MAX 8192

static bool prop_get(pn_data_t *props, const char *key)
{
    pn_data_rewind(props);
    if (!pn_data_next(props) || pn_data_type(props) != PN_MAP) {
        return false;
    }
    pn_data_enter(props);
    while (pn_data_next(props)) {
        pn_type_t t = pn_data_type(props);
        pn_bytes_t k = t == PN_STRING   ? pn_data_get_string(props)
                       : t == PN_SYMBOL ? pn_data_get_symbol(props)
                                        : (pn_bytes_t){0, NULL};
        if (!pn_data_next(props)) {
            return false;
        }
        if (k.start != NULL && k.size == strlen(key) && memcmp(k.start, key, k.size) == 0) {
            return true; /* positioned on the value */
        }
    }
    return false;
}

/* String (or symbol) application property; "" when absent. */
static void prop_string(pn_data_t *props, const char *key, char *out, size_t size)
{
    out[0] = '\0';
    if (!prop_get(props, key)) {
        return;
    }
    pn_type_t t = pn_data_type(props);
    if (t != PN_STRING && t != PN_SYMBOL) {
        return;
    }
    pn_bytes_t v = t == PN_STRING ? pn_data_get_string(props) : pn_data_get_symbol(props);
    if (v.size < size) {
        memcpy(out, v.start, v.size);
        out[v.size] = '\0';
    }
}

/* Body as text (amqp-value string/binary/symbol); false when it has another type. */
static bool body_text(pn_message_t *m, char *out, size_t size)
{
    pn_data_t *b = pn_message_body(m);
    pn_data_rewind(b);
    if (!pn_data_next(b)) {
        return false;
    }
    pn_bytes_t v;
    switch (pn_data_type(b)) {
    case PN_STRING:
        v = pn_data_get_string(b);
        break;
    case PN_BINARY:
        v = pn_data_get_binary(b);
        break;
    case PN_SYMBOL:
        v = pn_data_get_symbol(b);
        break;
    default:
        return false;
    }
    if (v.size >= size) {
        return false;
    }
    memcpy(out, v.start, v.size);
    out[v.size] = '\0';
    return true;
}

/*
 * The link that carries replies for a request received on `in`: the one
 * whose target address or name is the request's reply-to, else the only
 * reply link of the same session.
 */
static emu_link *reply_link(emu_conn *ec, emu_link *in, emu_link_kind kind, const char *reply_to)
{
    pn_session_t *ssn = pn_link_session(in->link);
    emu_link *same_session = NULL;
    for (pn_link_t *l = pn_link_head(ec->conn, 0); l != NULL; l = pn_link_next(l, 0)) {
        emu_link *el = pn_link_get_context(l);
        if (el == NULL || el->kind != kind || el->closing) {
            continue;
        }
        const char *taddr = pn_terminus_get_address(pn_link_remote_target(l));
        if (reply_to[0] != '\0' && ((taddr != NULL && strcmp(taddr, reply_to) == 0) ||
                                    strcmp(pn_link_name(l), reply_to) == 0)) {
            return el;
        }
        if (pn_link_session(l) == ssn) {
            same_session = el;
        }
    }
    return same_session;
}

static void put_status(pn_message_t *reply, int code, const char *desc, const char *cond)
{
    pn_data_t *p = pn_message_properties(reply);
    pn_data_put_map(p);
    pn_data_enter(p);
    pn_data_put_string(p, pn_bytes(strlen("status-code"), "status-code"));
    pn_data_put_int(p, code);
    pn_data_put_string(p, pn_bytes(strlen("status-description"), "status-description"));
    pn_data_put_string(p, pn_bytes(strlen(desc), desc));
    if (cond != NULL) {
        pn_data_put_string(p, pn_bytes(strlen("error-condition"), "error-condition"));
        pn_data_put_symbol(p, pn_bytes(strlen(cond), cond));
    }
    pn_data_exit(p);
}

static void send_reply(emu_conn *ec, emu_link *in, emu_link_kind kind, pn_message_t *req,
                       pn_message_t *reply)
{
    const char *rt = pn_message_get_reply_to(req);
    char reply_to[EMU_PATH_MAX];
    snprintf(reply_to, sizeof reply_to, "%s", rt != NULL ? rt : "");
    emu_link *out = reply_link(ec, in, kind, reply_to);
    if (out == NULL) {
        SW_LOG(SW_LOG_WARN, "no reply link for request", SW_LF_STR("reply_to", reply_to));
        return;
    }
    pn_message_set_correlation_id(reply, pn_message_get_id(req));
    if (reply_to[0] != '\0') {
        pn_message_set_address(reply, reply_to);
    }
    uint64_t tag = out->tag++;
    pn_delivery_t *d = pn_delivery(out->link, pn_dtag((const char *)&tag, sizeof tag));
    if (pn_message_send(reply, out->link, NULL) < 0) {
        SW_LOG(SW_LOG_WARN, "cannot encode reply",
               SW_LF_STR("error", pn_error_text(pn_message_error(reply))));
    }
    /* Replies are sent pre-settled: the requester only matches correlation ids. */
    pn_delivery_settle(d);
}

static bool check_token(emu_server *s, const char *type, const char *token, const char *audience,
                        pn_data_t *props, int64_t *expiry_s, sw_err *err)
{
    int64_t now_s = emu_now_ms() / 1000;
    if (s->opt.no_auth) {
        *expiry_s = INT64_MAX;
        return true;
    }
    if (strcmp(type, "servicebus.windows.net:sastoken") == 0 ||
        (type[0] == '\0' && strncmp(token, "SharedAccessSignature ", 22) == 0)) {
        return emu_auth_check_sas(s->auth, token, strlen(token), audience, now_s, expiry_s, err);
    }
    if (strcmp(type, "jwt") == 0 || strcmp(type, "amqp:jwt") == 0 || type[0] == '\0') {
        if (!emu_auth_check_bearer(s->auth, token, strlen(token), err)) {
            return false;
        }
        *expiry_s = INT64_MAX;
        if (props != NULL && prop_get(props, "expiration") && pn_data_type(props) == PN_TIMESTAMP) {
            *expiry_s = pn_data_get_timestamp(props) / 1000;
        }
        if (*expiry_s <= now_s) {
            return sw_err_set(err, SW_E_AUTH, "jwt token expired");
        }
        return true;
    }
    return sw_err_set(err, SW_E_AUTH, "unsupported token type '%.64s'", type);
}

void emu_handle_cbs(emu_conn *ec, emu_link *el, const unsigned char *msg, size_t len)
{
    emu_server *s = ec->srv;
    pn_message_t *req = pn_message();
    pn_message_t *reply = pn_message();
    char token[EMU_TOKEN_MAX] = "";
    char op[64], type[64], name[EMU_PATH_MAX];
    if (req == NULL || reply == NULL) {
        goto out;
    }
    if (pn_message_decode(req, (const char *)msg, len) != 0) {
        SW_LOG(SW_LOG_WARN, "undecodable $cbs request");
        goto out;
    }
    pn_data_t *props = pn_message_properties(req);
    prop_string(props, "operation", op, sizeof op);
    prop_string(props, "type", type, sizeof type);
    prop_string(props, "name", name, sizeof name);
    sw_err err;
    sw_err_clear(&err);
    int64_t expiry = 0;
    char path[EMU_PATH_MAX];
    if (strcmp(op, "put-token") != 0) {
        put_status(reply, 400, "Unsupported operation; $cbs supports put-token",
                   "amqp:not-implemented");
    } else if (name[0] == '\0' || !emu_entity_path(name, strlen(name), path, sizeof path)) {
        put_status(reply, 400, "put-token needs a 'name' (the audience)", "amqp:invalid-field");
    } else if (!body_text(req, token, sizeof token)) {
        put_status(reply, 400, "put-token body must be the token as a string",
                   "amqp:invalid-field");
    } else if (!check_token(s, type, token, name, props, &expiry, &err)) {
        put_status(reply, 401, err.msg, "amqp:unauthorized-access");
        SW_LOG(SW_LOG_INFO, "put-token refused", SW_LF_STR("audience", name),
               SW_LF_STR("reason", err.msg));
    } else {
        emu_conn_add_claim(ec, path, expiry);
        put_status(reply, 202, "Accepted", NULL);
        SW_LOG(SW_LOG_DEBUG, "put-token accepted", SW_LF_STR("audience", name),
               SW_LF_INT("expires", expiry));
    }
    send_reply(ec, el, EMU_LINK_CBS_OUT, req, reply);
out:
    memset(token, 0, sizeof token);
    if (req != NULL) {
        pn_message_free(req);
    }
    if (reply != NULL) {
        pn_message_free(reply);
    }
}

static void put_kv_string(pn_data_t *d, const char *k, const char *v)
{
    pn_data_put_string(d, pn_bytes(strlen(k), k));
    pn_data_put_string(d, pn_bytes(strlen(v), v));
}

static void put_key(pn_data_t *d, const char *k)
{
    pn_data_put_string(d, pn_bytes(strlen(k), k));
}

static void hub_info(pn_data_t *b, const emu_hub *h)
{
    pn_data_put_map(b);
    pn_data_enter(b);
    put_kv_string(b, "name", h->name);
    put_key(b, "type");
    pn_data_put_string(b, pn_bytes(strlen("com.microsoft:eventhub"), "com.microsoft:eventhub"));
    put_key(b, "created_at");
    pn_data_put_timestamp(b, h->created_ms);
    put_key(b, "partition_count");
    pn_data_put_int(b, h->partition_count);
    put_key(b, "partition_ids");
    pn_data_put_array(b, false, PN_STRING);
    pn_data_enter(b);
    for (int i = 0; i < h->partition_count; i++) {
        const char *id = h->partitions[i].id;
        pn_data_put_string(b, pn_bytes(strlen(id), id));
    }
    pn_data_exit(b);
    pn_data_exit(b);
}

static void partition_info(pn_data_t *b, const emu_hub *h, const emu_partition *p)
{
    char off[24];
    bool never = p->next_seq == 0;
    snprintf(off, sizeof off, "%lld", (long long)p->last_offset);
    pn_data_put_map(b);
    pn_data_enter(b);
    put_kv_string(b, "name", h->name);
    put_kv_string(b, "type", "com.microsoft:partition");
    put_kv_string(b, "partition", p->id);
    put_key(b, "begin_sequence_number");
    pn_data_put_long(b, p->count > 0 ? p->begin_seq : (never ? 0 : p->next_seq));
    put_key(b, "last_enqueued_sequence_number");
    pn_data_put_long(b, p->next_seq - 1);
    put_kv_string(b, "last_enqueued_offset", never ? "-1" : off);
    put_key(b, "last_enqueued_time_utc");
    pn_data_put_timestamp(b, never ? 0 : p->last_enq_ms);
    put_key(b, "is_partition_empty");
    pn_data_put_bool(b, p->count == 0);
    pn_data_exit(b);
}

void emu_handle_mgmt(emu_conn *ec, emu_link *el, const unsigned char *msg, size_t len)
{
    emu_server *s = ec->srv;
    pn_message_t *req = pn_message();
    pn_message_t *reply = pn_message();
    char token[EMU_TOKEN_MAX] = "";
    char op[64], type[64], name[EMU_NAME_MAX], part[32];
    if (req == NULL || reply == NULL) {
        goto out;
    }
    if (pn_message_decode(req, (const char *)msg, len) != 0) {
        SW_LOG(SW_LOG_WARN, "undecodable $management request");
        goto out;
    }
    pn_data_t *props = pn_message_properties(req);
    prop_string(props, "operation", op, sizeof op);
    prop_string(props, "type", type, sizeof type);
    prop_string(props, "name", name, sizeof name);
    prop_string(props, "partition", part, sizeof part);
    prop_string(props, "security_token", token, sizeof token);
    sw_err err;
    sw_err_clear(&err);
    int64_t expiry;
    emu_hub *h = emu_store_hub(s->store, name, strlen(name));
    bool authorized = s->opt.no_auth;
    if (!authorized && token[0] != '\0') {
        authorized = check_token(s, "", token, name, NULL, &expiry, &err);
    } else if (!authorized) {
        int64_t now_s = emu_now_ms() / 1000;
        for (int i = 0; i < ec->claim_count && !authorized; i++) {
            authorized =
                ec->claims[i].expiry_s > now_s && emu_claim_covers(ec->claims[i].path, name);
        }
        if (!authorized) {
            sw_err_set(&err, SW_E_AUTH, "no security_token and no token for '%s' on $cbs", name);
        }
    }
    if (strcmp(op, "READ") != 0) {
        put_status(reply, 400, "Unsupported operation; $management supports READ",
                   "amqp:not-implemented");
    } else if (!authorized) {
        put_status(reply, 401, err.msg, "amqp:unauthorized-access");
    } else if (h == NULL) {
        char desc[EMU_DESC_MAX];
        snprintf(desc, sizeof desc, "The messaging entity '%s' could not be found.", name);
        put_status(reply, 404, desc, "amqp:not-found");
    } else if (strcmp(type, "com.microsoft:eventhub") == 0) {
        put_status(reply, 200, "OK", NULL);
        hub_info(pn_message_body(reply), h);
    } else if (strcmp(type, "com.microsoft:partition") == 0) {
        emu_partition *p = emu_hub_partition(h, part, strlen(part));
        if (p == NULL) {
            char desc[EMU_DESC_MAX];
            snprintf(desc, sizeof desc,
                     "The specified partition '%s' is invalid for EventHub '%s'. It should be "
                     "between 0 and %d.",
                     part, h->name, h->partition_count - 1);
            put_status(reply, 404, desc, "amqp:not-found");
        } else {
            put_status(reply, 200, "OK", NULL);
            partition_info(pn_message_body(reply), h, p);
        }
    } else {
        put_status(reply, 400,
                   "Unknown type; use com.microsoft:eventhub or com.microsoft:partition",
                   "amqp:invalid-field");
    }
    send_reply(ec, el, EMU_LINK_MGMT_OUT, req, reply);
out:
    memset(token, 0, sizeof token);
    if (req != NULL) {
        pn_message_free(req);
    }
    if (reply != NULL) {
        pn_message_free(reply);
    }
}
