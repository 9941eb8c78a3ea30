/*
 * Event Hubs connection strings:
 *   Endpoint=sb://<ns>.servicebus.windows.net/;SharedAccessKeyName=<rule>;SharedAccessKey=<key>[;EntityPath=<hub>]
 *   Endpoint=sb://<ns>.servicebus.windows.net/;SharedAccessSignature=SharedAccessSignature
 * sr=...[;EntityPath=<hub>] Endpoint=sb://localhost[:port];...;UseDevelopmentEmulator=true
 *   Endpoint=sb://<ns>.servicebus.windows.net/[;EntityPath=<hub>]   (no key: Entra ID auth)
 * Parts are separated by ';', split at the first '=', trimmed; keys are
 * case-sensitive as in the Microsoft SDKs. Errors name the offending part but
 * never echo a key or signature.
 *
 * Ownership: sw_amqp_connstr owns its strings; free with sw_amqp_connstr_free.
 * Thread safety: reentrant.
 */
#ifndef SCANWATCH_AMQP_CONNSTR_H
#define SCANWATCH_AMQP_CONNSTR_H

#include <stdbool.h>

#include "scanwatch/error.h"

typedef struct sw_amqp_connstr {
    char *endpoint;    /* Endpoint with a trailing '/', e.g. "sb://ns.servicebus.windows.net/" */
    char *host;        /* host name without port, e.g. "ns.servicebus.windows.net" */
    int port;          /* port given in Endpoint, 0 if none */
    char *key_name;    /* SharedAccessKeyName or NULL */
    char *key;         /* SharedAccessKey or NULL (secret) */
    char *sas;         /* SharedAccessSignature or NULL (secret) */
    char *entity_path; /* EntityPath or NULL */
    bool emulator;     /* UseDevelopmentEmulator=true */
} sw_amqp_connstr;

/* Parses s into *out (zeroed first). On failure *out holds nothing to free. */
bool sw_amqp_connstr_parse(const char *s, sw_amqp_connstr *out, sw_err *err);
/* Frees (and wipes the secrets of) cs; NULL is allowed. */
void sw_amqp_connstr_free(sw_amqp_connstr *cs);

#endif
