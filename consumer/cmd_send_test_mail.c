/*
 * scanwatch send-test-mail --to ADDRESS
 *
 * Checks the Graph path end to end -- credentials, token, Mail.Send
 * permission, sender mailbox -- by sending one small mail, and says in plain
 * words what is wrong: the failing step, Graph's or Entra's error code and
 * the likely fix. Exit status: 0 accepted, 1 a step failed, 2 usage/config.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "notify_internal.h"
#include "scanwatch/entra.h"

struct hint {
    const char *code;
    const char *fix;
};

/* Entra token errors: AADSTS numbers and OAuth error words. */
static const struct hint token_hints[] = {
    {"AADSTS7000215", "the client secret is wrong: copy the secret's Value (not its ID) from the "
                      "app registration's Certificates & secrets page"},
    {"AADSTS7000222", "the client secret has expired: create a new one in the app registration"},
    {"AADSTS700016", "no application with this client_id exists in the tenant: check client_id and "
                     "tenant_id"},
    {"AADSTS90002", "the tenant was not found: check tenant_id and authority_host (national "
                    "clouds use their own authority)"},
    {"AADSTS700027", "the certificate assertion was rejected: upload this certificate (public "
                     "part) to the app registration"},
    {"AADSTS70021", "no federated credential matches the workload identity token: check the "
                    "federated credential's issuer and subject (system:serviceaccount:NS:SA)"},
    {"AADSTS700024", "the client assertion is outside its validity time: check the clock"},
    {"AADSTS70011", "the scope is invalid: graph_base_url must be a Graph root such as "
                    "https://graph.microsoft.com"},
    {"invalid_client", "the credential was rejected: check client_id, the secret or certificate"},
    {"Required metadata header", "IMDS rejected the request (this is not an Azure VM?)"},
};

/* Graph sendMail error codes. */
static const struct hint graph_hints[] = {
    {"ErrorAccessDenied", "the app may not send as this mailbox: an Exchange application access "
                          "policy or RBAC for Applications scope excludes it, or Mail.Send lacks "
                          "admin consent"},
    {"NoPermissionsInAccessToken", "the token has no Mail.Send role: add the Microsoft Graph "
                                   "application permission Mail.Send and grant admin consent"},
    {"Authorization_RequestDenied", "add the Mail.Send application permission and grant admin "
                                    "consent"},
    {"MailboxNotEnabledForRESTAPI", "the sender has no Exchange Online mailbox (unlicensed, "
                                    "guest or on-premises): use a licensed or shared mailbox"},
    {"ErrorInvalidUser", "mail_sender is not a user in this tenant: use its user principal name "
                         "or object id"},
    {"ResourceNotFound", "mail_sender was not found in this tenant"},
    {"ErrorInvalidRecipients", "the --to address is not valid"},
    {"InvalidAuthenticationToken", "Graph rejected the token: the token's cloud/audience must "
                                   "match graph_base_url (same national cloud as authority_host)"},
    {"ApplicationThrottled", "Graph is throttling this app and mailbox: lower mail_concurrency "
                             "(at most 4 across all replicas) and retry later"},
    {"ErrorQuotaExceeded", "the sender mailbox is full"},
    {"ErrorSendAsDenied", "the app may not send as this mailbox"},
};

static const char *find_hint(const struct hint *h, size_t n, const char *text)
{
    for (size_t i = 0; i < n; i++) {
        if (text != NULL && strstr(text, h[i].code) != NULL) {
            return h[i].fix;
        }
    }
    return NULL;
}

static int b64val(int c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    return c == '-' || c == '+' ? 62 : c == '_' || c == '/' ? 63 : -1;
}

/* The claims of a JWT access token, or NULL when it is not a readable JWT. */
static cJSON *jwt_claims(const char *tok)
{
    const char *a = strchr(tok, '.');
    const char *b = a ? strchr(a + 1, '.') : NULL;
    if (b == NULL) {
        return NULL;
    }
    sw_buf out;
    sw_buf_init(&out, 64 * 1024);
    unsigned acc = 0;
    int bits = 0;
    for (const char *p = a + 1; p < b; p++) {
        int v = b64val((unsigned char)*p);
        if (v < 0) {
            sw_buf_free(&out);
            return NULL;
        }
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            sw_buf_append_char(&out, (char)((acc >> bits) & 0xff));
        }
    }
    cJSON *doc = out.failed ? NULL : cJSON_ParseWithLength(out.data, out.len);
    sw_buf_free(&out);
    return doc;
}

static char *test_mail(const char *to, const char *sender, bool save)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON *msg = cJSON_AddObjectToObject(doc, "message");
    cJSON_AddStringToObject(msg, "subject", "scanwatch test mail");
    cJSON *body = cJSON_AddObjectToObject(msg, "body");
    cJSON_AddStringToObject(body, "contentType", "HTML");
    sw_buf html;
    sw_buf_init(&html, 64 * 1024);
    sw_buf_append_str(&html, "<html><body style=\"font-family:'Segoe UI',Arial,sans-serif;"
                             "font-size:14px;\"><p>This is a test mail from <b>scanwatch</b>, "
                             "sent through Microsoft Graph as <b>");
    sw_html_escape(&html, sender);
    sw_buf_append_str(&html, "</b>.</p><p>If you can read it, the token, the Mail.Send "
                             "permission and the sender mailbox work.</p></body></html>");
    cJSON_AddStringToObject(body, "content", html.failed ? "scanwatch test mail" : html.data);
    sw_buf_free(&html);
    cJSON *tos = cJSON_AddArrayToObject(msg, "toRecipients");
    cJSON *r = cJSON_CreateObject();
    cJSON *ea = cJSON_AddObjectToObject(r, "emailAddress");
    cJSON_AddStringToObject(ea, "address", to);
    cJSON_AddItemToArray(tos, r);
    cJSON *hdrs = cJSON_AddArrayToObject(msg, "internetMessageHeaders");
    cJSON *h = cJSON_CreateObject();
    cJSON_AddStringToObject(h, "name", "x-scanwatch-test");
    cJSON_AddStringToObject(h, "value", "true");
    cJSON_AddItemToArray(hdrs, h);
    cJSON_AddBoolToObject(doc, "saveToSentItems", save);
    char *s = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    return s;
}

static int check_token(sw_token_provider *tp, const char *scope)
{
    char *tok = NULL;
    sw_time_us exp = 0;
    sw_err err;
    sw_err_clear(&err);
    if (!sw_token_provider_get(tp, scope, &tok, &exp, &err)) {
        char last[300];
        sw_entra_last_error(tp, last, sizeof last);
        printf("FAIL  token: %s\n", err.msg);
        const char *fix =
            find_hint(token_hints, sizeof token_hints / sizeof token_hints[0], err.msg);
        if (fix != NULL) {
            printf("      likely fix: %s\n", fix);
        }
        return SW_EXIT_FAIL;
    }
    printf("ok    token for %s (valid for %lld min)\n", scope,
           (long long)((exp - sw_time_now()) / (60 * SW_US_PER_SEC)));
    cJSON *claims = jwt_claims(tok);
    free(tok);
    if (claims == NULL) {
        printf("skip  permission: the token is not a readable JWT, cannot list its roles\n");
        return SW_EXIT_OK;
    }
    const cJSON *roles = cJSON_GetObjectItemCaseSensitive(claims, "roles");
    bool has = false;
    const cJSON *ro;
    cJSON_ArrayForEach(ro, roles)
    {
        has = has || (cJSON_GetStringValue(ro) && strcmp(ro->valuestring, "Mail.Send") == 0);
    }
    cJSON_Delete(claims);
    if (!has) {
        printf("FAIL  permission: the token has no Mail.Send application role\n"
               "      likely fix: add the Microsoft Graph application permission Mail.Send to "
               "the app registration and grant admin consent\n");
        return SW_EXIT_FAIL;
    }
    printf("ok    permission: the token carries the Mail.Send application role\n");
    return SW_EXIT_OK;
}

int sw_cmd_send_test_mail(sw_config *cfg, int argc, char **argv)
{
    const char *to = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--to") == 0 && i + 1 < argc) {
            to = argv[++i];
        } else if (strncmp(argv[i], "--to=", 5) == 0) {
            to = argv[i] + 5;
        } else {
            to = NULL;
            break;
        }
    }
    if (to == NULL) {
        fprintf(stderr, "usage: scanwatch send-test-mail --to ADDRESS [settings...]\n");
        return SW_EXIT_USAGE;
    }
    sw_routes probe;
    sw_err err;
    sw_err_clear(&err);
    if (!sw_notify_routes_parse("", to, &probe, &err)) {
        printf("FAIL  --to: %s\n", err.msg);
        return SW_EXIT_USAGE;
    }
    sw_notify_routes_free(&probe);
    const char *sender = sw_cfg_str(cfg, SW_CFG_MAIL_SENDER);
    if (sender[0] == '\0') {
        printf("FAIL  config: mail_sender is not set (the mailbox that sends, e.g. "
               "alerts@contoso.com)\n");
        return SW_EXIT_USAGE;
    }
    sw_entra_opts eo;
    if (!sw_entra_opts_from_config(&eo, cfg, &err)) {
        printf("FAIL  config: %s\n", err.msg);
        return SW_EXIT_USAGE;
    }
    if (eo.method == SW_ENTRA_NONE) {
        printf("FAIL  config: no Entra ID credential: set tenant_id, client_id and client_secret "
               "(or client_certificate), or run with workload identity or a managed identity\n");
        return SW_EXIT_USAGE;
    }
    printf("ok    config: %s credential, tenant %s, sender %s, Graph %s\n",
           sw_entra_method_name(eo.method), eo.tenant_id ? eo.tenant_id : "(managed identity)",
           sender, sw_cfg_str(cfg, SW_CFG_GRAPH_BASE_URL));
    sw_token_provider tp;
    if (!sw_entra_provider_new(&eo, &tp, &err)) {
        printf("FAIL  credential: %s\n", err.msg);
        return SW_EXIT_USAGE;
    }
    sw_graph *g = sw_graph_new(sw_cfg_str(cfg, SW_CFG_GRAPH_BASE_URL), sender, &tp,
                               sw_cfg_int(cfg, SW_CFG_HTTP_TIMEOUT), &err);
    if (g == NULL) {
        printf("FAIL  graph: %s\n", err.msg);
        sw_token_provider_destroy(&tp);
        return SW_EXIT_FAIL;
    }
    int rc = check_token(&tp, sw_graph_scope(g));
    char *body = rc == SW_EXIT_OK
                     ? test_mail(to, sender, sw_cfg_bool(cfg, SW_CFG_SAVE_TO_SENT_ITEMS))
                     : NULL;
    if (rc == SW_EXIT_OK && body == NULL) {
        printf("FAIL  out of memory\n");
        rc = SW_EXIT_FAIL;
    }
    if (body != NULL) {
        sw_graph_result res;
        if (!sw_graph_send(g, body, strlen(body), &res, &err)) {
            printf("FAIL  sendMail: no answer from Graph: %s\n", err.msg);
            printf("      likely fix: check graph_base_url, network access and http_timeout\n");
            rc = SW_EXIT_FAIL;
        } else if (res.status == 202) {
            printf("ok    sendMail: Graph accepted the mail (202, request-id %s) to %s.\n"
                   "      Delivery happens after this; if it does not arrive, look for a "
                   "non-delivery report in %s's inbox.\n",
                   res.request_id[0] ? res.request_id : "-", to, sender);
        } else {
            printf("FAIL  sendMail: HTTP %ld %s: %s\n", res.status,
                   res.code[0] ? res.code : "(no error code)", res.message);
            const char *fix =
                find_hint(graph_hints, sizeof graph_hints / sizeof graph_hints[0], res.code);
            if (fix == NULL && res.status == 403) {
                fix = graph_hints[0].fix;
            }
            if (fix == NULL && res.status == 404) {
                fix = "mail_sender does not exist in this tenant or has no mailbox";
            }
            if (fix != NULL) {
                printf("      likely fix: %s\n", fix);
            }
            rc = SW_EXIT_FAIL;
        }
        free(body);
    }
    sw_graph_free(g);
    sw_token_provider_destroy(&tp);
    return rc;
}
