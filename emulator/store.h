/*
 * In-memory event store of the emulator: hubs, their partitions and consumer
 * groups, and each partition's retained events.
 *
 * Every event is stored once, already encoded as the AMQP message a receiver
 * gets (sender's sections plus the x-opt-* message annotations), so that a
 * delivery is one pn_link_send of stored bytes. Offsets are byte positions:
 * an event's offset is the sum of the encoded sizes of the events appended to
 * its partition before it (so "0" is the first event of a partition, and
 * offsets grow strictly). Sequence numbers start at 0 per partition.
 *
 * Events published over AMQP are kept in RAM. Events of a --load file are
 * file-backed: the store keeps only an index entry (emu_slot: offset,
 * enqueued time, body position and sizes, 32 bytes) and re-reads the body
 * with pread when the event is delivered, encoding it exactly as it was
 * encoded when indexed, so a 30 GB file needs RAM for its index only.
 *
 * Ownership: the store owns hubs, partitions, events and the load file's
 * descriptor (see emu_store_set_file); pointers returned by lookups stay
 * valid until emu_store_free, except events returned by emu_partition_get:
 * an in-RAM event stays valid until the next append to its partition
 * (retention may free it), a file-backed one only until the next
 * emu_partition_get on any partition of the store (it lives in a scratch
 * buffer).
 * Thread safety: none; the emulator touches the store from its event thread.
 */
#ifndef SW_EMULATOR_STORE_H
#define SW_EMULATOR_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scanwatch/error.h"

#define EMU_NAME_MAX 128
#define EMU_MAX_PARTITIONS 1024
#define EMU_MAX_GROUPS 64
#define EMU_MAX_HUBS 16
/* Largest message (event or batch) a sender may publish, as on Azure. */
#define EMU_MAX_MESSAGE_SIZE (1024 * 1024)

typedef struct emu_event {
    int64_t seq;
    int64_t offset;
    int64_t enqueued_ms; /* ms since the Unix epoch */
    size_t len;
    unsigned char bytes[]; /* encoded message, annotations included */
} emu_event;

/*
 * One retained event: in RAM (body_len == 0, where.mem owned) or file-backed
 * (where.file_pos is the body's byte position in the store's load file).
 */
typedef struct emu_slot {
    int64_t offset;
    int64_t enqueued_ms;
    union {
        emu_event *mem;
        int64_t file_pos;
    } where;
    uint32_t len;      /* encoded size (what the offset of the next event adds) */
    uint32_t body_len; /* > 0: file-backed body of this many bytes */
} emu_slot;

typedef struct emu_hub emu_hub;
typedef struct emu_store emu_store;

typedef struct emu_partition {
    emu_hub *hub;
    int index;
    char id[16];
    emu_slot *ring;
    size_t cap, head, count;
    size_t bytes;               /* sum of retained events' len */
    int64_t begin_seq;          /* seq of the oldest retained event (== next_seq if empty) */
    int64_t next_seq;           /* seq the next append gets */
    int64_t next_offset;        /* offset the next append gets */
    int64_t last_enq_ms;        /* enqueued time of the last appended event, 0 if none */
    int64_t last_offset;        /* offset of the last appended event, -1 if none */
    struct emu_link *receivers; /* the server's receiver links on this partition (not owned) */
} emu_partition;

struct emu_hub {
    char name[EMU_NAME_MAX];
    int partition_count;
    emu_partition *partitions;
    int group_count;
    char groups[EMU_MAX_GROUPS][EMU_NAME_MAX];
    int64_t created_ms;
    unsigned rr;      /* round-robin cursor for hub-addressed sends */
    emu_store *store; /* the store this hub belongs to (reads file-backed events) */
};

/* retain_count / retain_bytes: per-partition limits; 0 = unlimited. */
emu_store *emu_store_new(size_t retain_count, size_t retain_bytes, sw_err *err);
void emu_store_free(emu_store *s);

/*
 * Parses "NAME:PARTITIONS[:CG1,CG2...]" and adds the hub ($default is always
 * one of its groups). Errors name the problem.
 */
bool emu_store_add_hub_spec(emu_store *s, const char *spec, sw_err *err);
int emu_store_hub_count(const emu_store *s);
emu_hub *emu_store_hub_at(emu_store *s, int i);
/* Case-sensitive hub name lookup; NULL when unknown. */
emu_hub *emu_store_hub(emu_store *s, const char *name, size_t name_len);
/* Partition by id string ("0".."N-1"); NULL when not a valid id. */
emu_partition *emu_hub_partition(emu_hub *h, const char *id, size_t id_len);
/* Consumer-group index (case-insensitive like the service), -1 if unknown. */
int emu_hub_group(const emu_hub *h, const char *name, size_t name_len);

/*
 * Partition chosen for a hub-addressed send: by the service's partition-key
 * hash when key is not NULL, else round-robin.
 */
emu_partition *emu_hub_route(emu_hub *h, const char *key, size_t key_len);
/* The service's (and the JS SDK's) partition-key to partition index mapping. */
int emu_partition_for_key(const char *key, size_t key_len, int partition_count);

/*
 * Appends one event. msg is one encoded AMQP message (any sections); its
 * delivery- and message-annotations are replaced by the emulator's, keeping
 * the sender's own message annotations. pkey (may be NULL) is the partition
 * key to record when the message itself carries none (the batch envelope's).
 * now_ms is the enqueued time (kept non-decreasing per partition).
 */
bool emu_partition_append(emu_store *s, emu_partition *p, const unsigned char *msg, size_t len,
                          const char *pkey, size_t pkey_len, int64_t now_ms, sw_err *err);
/* Appends an event whose body is one data section holding body[0..len). */
bool emu_partition_append_body(emu_store *s, emu_partition *p, const void *body, size_t len,
                               const char *pkey, size_t pkey_len, int64_t now_ms, sw_err *err);

/*
 * Makes fd (an open, readable regular file; the store closes it in
 * emu_store_free, also when this fails) the source of file-backed events,
 * all published with partition key pkey (may be NULL; copied). At most one
 * file per store.
 */
bool emu_store_set_file(emu_store *s, int fd, const char *pkey, size_t pkey_len, sw_err *err);
/*
 * Appends a file-backed event whose body (one data section) is the len bytes
 * at file_pos of the store's file (not read now: the encoded size depends on
 * the length only). enq_ms is the enqueued time, kept non-decreasing per
 * partition like emu_partition_append's now_ms.
 */
bool emu_partition_append_file(emu_store *s, emu_partition *p, int64_t file_pos, size_t len,
                               int64_t enq_ms, sw_err *err);

/*
 * Event with sequence number seq, or NULL when not retained or when reading
 * a file-backed event failed (logged; e.g. the file shrank since indexing).
 */
const emu_event *emu_partition_get(const emu_partition *p, int64_t seq);
/*
 * First retained seq whose event's offset / seq / enqueued time is > value
 * (or >= when inclusive); p->next_seq when none yet.
 */
int64_t emu_partition_seek_offset(const emu_partition *p, int64_t value, bool inclusive);
int64_t emu_partition_seek_time(const emu_partition *p, int64_t ms, bool inclusive);

/*
 * Splits a delivery into events: when every data section of msg is itself
 * an encoded AMQP message (the JS SDK's batch format) each is one event,
 * otherwise msg is one event. Calls fn for each; also returns the message
 * annotation x-opt-partition-key of the envelope (pointer into msg) if any.
 */
typedef bool (*emu_event_fn)(void *ctx, const unsigned char *ev, size_t len, sw_err *err);
bool emu_split_message(const unsigned char *msg, size_t len, const char **pkey, size_t *pkey_len,
                       emu_event_fn fn, void *ctx, sw_err *err);

#endif
