/*
 * Token providers: the one interface through which scanwatch obtains bearer
 * credentials, shared by the Event Hubs client (CBS put-token) and the Graph
 * notifier. A provider is a small vtable value; implementations:
 *   - SAS (amqp/sas.c, scanwatch/sas.h): type "servicebus.windows.net:sastoken",
 *     the scope is the CBS audience URI being signed.
 *   - Entra ID (client secret, certificate, workload identity, managed
 *     identity; consumer/notify): type "jwt", the scope is an OAuth2 scope such
 *     as "https://eventhubs.azure.net/.default".
 *
 * Ownership: the owner of an sw_token_provider value calls
 * sw_token_provider_destroy once; `self` belongs to the provider. Tokens
 * returned by get() are heap strings owned by the caller (free()).
 *
 * Thread safety: a provider is used by one thread at a time unless its
 * constructor says otherwise. get() may block (Entra providers do HTTP); the
 * Event Hubs client calls it on its proactor thread, so implementations
 * should cache tokens and return quickly while a cached token is fresh.
 * Secrets: neither tokens nor keys may appear in an sw_err message or a log.
 */
#ifndef SCANWATCH_TOKEN_H
#define SCANWATCH_TOKEN_H

#include <stdbool.h>
#include <stddef.h>

#include "scanwatch/error.h"
#include "scanwatch/swtime.h"

#define SW_TOKEN_TYPE_SAS "servicebus.windows.net:sastoken"
#define SW_TOKEN_TYPE_JWT "jwt"

typedef struct sw_token_provider {
    /* CBS token type (SW_TOKEN_TYPE_SAS or SW_TOKEN_TYPE_JWT); static string. */
    const char *type;
    void *self;
    /*
     * Produces a token for scope. On success *token_out is a heap string the
     * caller frees and *expires_out its expiry (wall clock, µs). On failure
     * returns false with err set (retriable when trying again may help).
     */
    bool (*get)(void *self, const char *scope, char **token_out, sw_time_us *expires_out,
                sw_err *err);
    /* Releases self; may be NULL when there is nothing to release. */
    void (*destroy)(void *self);
} sw_token_provider;

static inline bool sw_token_provider_get(const sw_token_provider *p, const char *scope,
                                         char **token_out, sw_time_us *expires_out, sw_err *err)
{
    return p->get(p->self, scope, token_out, expires_out, err);
}

/* Releases the provider's state; the struct itself is the caller's. NULL is allowed. */
static inline void sw_token_provider_destroy(sw_token_provider *p)
{
    if (p != NULL && p->destroy != NULL) {
        p->destroy(p->self);
    }
    if (p != NULL) {
        p->self = NULL;
        p->destroy = NULL;
    }
}

#endif
