/*
 * Entra ID (Azure AD) token providers without an SDK, behind the generic
 * sw_token_provider interface (token.h, type "jwt"): client secret,
 * certificate (PS256 client assertion with x5t#S256), workload identity
 * (federated token file re-read on every token request) and managed
 * identity (IMDS, or IDENTITY_ENDPOINT/IDENTITY_HEADER on App Service and
 * Container Apps). The same provider serves Graph (scope
 * "<graph_base_url>/.default") and Event Hubs ("https://eventhubs.azure.net/.default").
 *
 * Tokens are cached per scope and fetched again when less than
 * min(5 min, half the token's lifetime) is left.
 *
 * Ownership: sw_entra_opts strings are borrowed by sw_entra_provider_new,
 * which copies them. The provider is released with sw_token_provider_destroy.
 * Thread safety: an Entra provider may be used from several threads at once
 * (its cache is locked; a token fetch holds the lock, so concurrent callers
 * wait for one fetch instead of starting several).
 * Secrets (client secret, private key, federated token, access tokens) never
 * appear in an sw_err or a log line.
 */
#ifndef SCANWATCH_ENTRA_H
#define SCANWATCH_ENTRA_H

#include <stdbool.h>
#include <stdint.h>

#include "scanwatch/error.h"
#include "scanwatch/token.h"

typedef enum {
    SW_ENTRA_NONE = 0, /* nothing configured */
    SW_ENTRA_CLIENT_SECRET,
    SW_ENTRA_CERTIFICATE,
    SW_ENTRA_WORKLOAD_IDENTITY,
    SW_ENTRA_MANAGED_IDENTITY,
} sw_entra_method;

typedef struct sw_entra_opts {
    sw_entra_method method;
    const char *authority_host; /* https://login.microsoftonline.com (no tenant) */
    const char *tenant_id;
    const char *client_id; /* managed identity: user-assigned client id or NULL */
    const char *client_secret;
    const char *certificate_path;     /* PEM with certificate and RSA private key */
    const char *federated_token_file; /* workload identity */
    const char *imds_endpoint;        /* http://169.254.169.254 */
    const char *identity_endpoint;    /* App Service / Container Apps, or NULL */
    const char *identity_header;
    int64_t timeout_us; /* per token request */
} sw_entra_opts;

struct sw_config;
/*
 * Fills opts from the settings (auth_method, authority_host, tenant_id,
 * client_id, client_secret, client_certificate, imds_endpoint, http_timeout)
 * and the environment (AZURE_CLIENT_ID, AZURE_TENANT_ID,
 * AZURE_FEDERATED_TOKEN_FILE, AZURE_AUTHORITY_HOST, IDENTITY_ENDPOINT,
 * IDENTITY_HEADER) as docs/configuration.md describes. method is
 * SW_ENTRA_NONE when auth_method is auto and nothing is configured. Fails
 * naming the missing setting when an explicit method lacks a value.
 * Strings stay owned by cfg / the environment.
 */
bool sw_entra_opts_from_config(sw_entra_opts *opts, const struct sw_config *cfg, sw_err *err);

/* "client_secret", "certificate", ... ; "none". */
const char *sw_entra_method_name(sw_entra_method m);

/*
 * Builds a provider (type SW_TOKEN_TYPE_JWT). Reads and checks the
 * certificate file at once (a bad file fails here, naming the file).
 */
bool sw_entra_provider_new(const sw_entra_opts *opts, sw_token_provider *out, sw_err *err);

/*
 * Drops the cached token of scope so that the next get() fetches a new one
 * (after Graph answered 401). No effect on a provider that is not an Entra
 * provider.
 */
void sw_entra_invalidate(const sw_token_provider *p, const char *scope);

/*
 * Last token-endpoint error of the provider as "error_code: description"
 * (AADSTS text, never a secret), "" when none. For diagnostics
 * (send-test-mail). Copies into buf.
 */
void sw_entra_last_error(const sw_token_provider *p, char *buf, size_t size);

/*
 * Parses one token endpoint response (Entra ID or managed identity/IMDS):
 * on HTTP 200 a JSON object with access_token and expires_on (epoch seconds)
 * or expires_in (seconds from now; numbers or numeric strings), else the
 * error / error_description (or message) of the error body. On success
 * *token is a new string (the caller frees it) and *expires is set; on
 * failure err names `what` and the status, and last_error (size
 * last_error_size) gets "code: description". Exposed for the provider's
 * fetch and for tests/fuzz (fuzz_notify).
 */
bool sw_entra_parse_token_response(const char *what, long status, const char *body, size_t len,
                                   sw_time_us now, char **token, sw_time_us *expires,
                                   char *last_error, size_t last_error_size, sw_err *err);

#endif
