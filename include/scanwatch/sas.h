/*
 * Shared Access Signature tokens for Event Hubs / Service Bus, and a token
 * provider (scanwatch/token.h) that signs them.
 *
 * Token format (what the Microsoft SDKs send as CBS type
 * "servicebus.windows.net:sastoken"):
 *   SharedAccessSignature sr=<enc(uri)>&sig=<enc(b64(HMAC-SHA256(key, enc(uri) "\n" se)))>&se=<unix
 * s>&skn=<enc(name)> enc() is JavaScript's encodeURIComponent (upper-case hex); the HMAC key is the
 * SharedAccessKey text's bytes, not its base64 decoding.
 *
 * Ownership: returned strings are heap strings owned by the caller (free()).
 * The provider copies the key; sw_token_provider_destroy wipes and frees it.
 * Thread safety: sw_sas_sign is reentrant; a provider is used by one thread at
 * a time.
 */
#ifndef SCANWATCH_SAS_H
#define SCANWATCH_SAS_H

#include <stdbool.h>
#include <stdint.h>

#include "scanwatch/error.h"
#include "scanwatch/token.h"

/* Appends encodeURIComponent(s) to out (bounded); returns false if out is too small. */
bool sw_sas_uri_encode(const char *s, char *out, size_t out_size);

/*
 * Signs a token for audience (a URI such as "sb://ns.servicebus.windows.net/hub")
 * valid until expiry_unix_s. Returns a heap string, or NULL with err set.
 */
char *sw_sas_sign(const char *audience, const char *key_name, const char *key,
                  int64_t expiry_unix_s, sw_err *err);

/*
 * Initialises *out as a provider that signs a fresh token for each get(scope)
 * (scope = the audience) valid for lifetime_us (rounded up to whole seconds,
 * at least 1 s).
 */
bool sw_sas_provider_init(sw_token_provider *out, const char *key_name, const char *key,
                          int64_t lifetime_us, sw_err *err);

/*
 * Initialises *out as a provider that returns one pre-made token (a
 * connection string's SharedAccessSignature) for any scope. Its expiry is the
 * token's `se` field; a token without a valid `se` is rejected.
 */
bool sw_sas_static_provider_init(sw_token_provider *out, const char *token, sw_err *err);

#endif
