/*
 * Minimal reader/writer for the AMQP 1.0 type encoding, for the emulator's
 * byte-level work on messages (splitting batches, re-writing annotations)
 * without a decode/encode round trip through proton's pn_data.
 *
 * Ownership: readers only point into the caller's buffer; writers append to
 * a caller-owned sw_buf. Thread safety: pure functions.
 */
#ifndef SW_EMULATOR_AMQPBIN_H
#define SW_EMULATOR_AMQPBIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scanwatch/buf.h"

/* Section descriptor codes (AMQP 1.0 §3.2). */
enum {
    EMU_SEC_HEADER = 0x70,
    EMU_SEC_DELIVERY_ANN = 0x71,
    EMU_SEC_MESSAGE_ANN = 0x72,
    EMU_SEC_PROPERTIES = 0x73,
    EMU_SEC_APP_PROPS = 0x74,
    EMU_SEC_DATA = 0x75,
    EMU_SEC_SEQUENCE = 0x76,
    EMU_SEC_VALUE = 0x77,
    EMU_SEC_FOOTER = 0x78,
};

/* Size of the one encoded value at p (n bytes available); false if truncated. */
bool emu_amqp_value_size(const unsigned char *p, size_t n, size_t *size);

/*
 * Reads the section at p: its total size, its descriptor code (0 when the
 * descriptor is not a known section) and where its value starts.
 */
bool emu_amqp_section(const unsigned char *p, size_t n, size_t *size, unsigned *code,
                      size_t *value_at);

/* Binary, string or symbol value at p: pointer to its bytes and length. */
bool emu_amqp_bytes(const unsigned char *p, size_t n, const unsigned char **out, size_t *len);

/* Map at p: count of elements (keys + values) and where the first starts. */
bool emu_amqp_map(const unsigned char *p, size_t n, uint32_t *count, size_t *items_at);

/* Writers (append to b; failures are sticky in b->failed). */
void emu_amqp_put_symbol(sw_buf *b, const char *s, size_t len);
void emu_amqp_put_string(sw_buf *b, const char *s, size_t len);
void emu_amqp_put_long(sw_buf *b, int64_t v);
void emu_amqp_put_timestamp(sw_buf *b, int64_t ms);
void emu_amqp_put_binary(sw_buf *b, const void *p, size_t len);
/* Only the type code and length of a binary of len bytes (the caller adds the bytes). */
void emu_amqp_put_binary_header(sw_buf *b, size_t len);
/* Section header bytes: 0x00 0x53 code. */
void emu_amqp_put_descriptor(sw_buf *b, unsigned code);
/* map32 header for count elements whose encoding is body_len bytes. */
void emu_amqp_put_map32_header(sw_buf *b, uint32_t count, size_t body_len);

#endif
