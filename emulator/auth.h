/*
 * Token checks for the emulator's CBS node: SAS tokens signed with a
 * configured key, and a configured bearer token for type "jwt".
 *
 * Ownership: emu_auth owns copies of the configured names and keys; tokens
 * and audiences are borrowed for the duration of a call. Thread safety: none
 * (configured at start-up, then used from the event thread).
 */
#ifndef SW_EMULATOR_AUTH_H
#define SW_EMULATOR_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scanwatch/error.h"

#define EMU_AUTH_MAX_KEYS 8
#define EMU_PATH_MAX 512

typedef struct emu_auth emu_auth;

emu_auth *emu_auth_new(sw_err *err);
void emu_auth_free(emu_auth *a);
/* "NAME=KEY": a shared access policy (the key is used as its UTF-8 text, as the SDKs do). */
bool emu_auth_add_key_spec(emu_auth *a, const char *spec, sw_err *err);
/* The bearer token accepted for put-token type "jwt" (NULL disables jwt). */
bool emu_auth_set_bearer(emu_auth *a, const char *token, sw_err *err);
int emu_auth_key_count(const emu_auth *a);

/*
 * Checks a SAS token "SharedAccessSignature sr=..&sig=..&se=..&skn=..":
 * known key name, HMAC-SHA256 over sr-as-sent "\n" se, not expired at now_s,
 * and sr (decoded) equal to audience (when audience is not NULL).
 * On success *expires_s is se. Errors are SW_E_AUTH with a reason that never
 * contains the key or the signature.
 */
bool emu_auth_check_sas(const emu_auth *a, const char *token, size_t token_len,
                        const char *audience, int64_t now_s, int64_t *expires_s, sw_err *err);
/* Checks the configured bearer token (constant-time comparison). */
bool emu_auth_check_bearer(const emu_auth *a, const char *token, size_t token_len, sw_err *err);

/*
 * Reduces an audience or link address to the entity path: strips
 * "scheme://host[:port]" and leading '/', drops a trailing '/'.
 * Writes at most size-1 bytes; false when it does not fit.
 */
bool emu_entity_path(const char *addr, size_t len, char *out, size_t size);

/*
 * True when a token for audience path `claim` grants `entity`: equal, the
 * claim is the namespace root (""), or the claim is a '/'-prefix of entity.
 * Consumer-group segments compare case-insensitively.
 */
bool emu_claim_covers(const char *claim, const char *entity);

#endif
