/*
 * Time in scanwatch: int64 microseconds since the Unix epoch, UTC (sw_time_us).
 * Defender's timeGenerated carries up to 7 fractional digits; microseconds keep
 * the ordering that matters. Event Hubs timestamps are milliseconds (x1000).
 *
 * Thread safety: all functions are reentrant.
 */
#ifndef SCANWATCH_SWTIME_H
#define SCANWATCH_SWTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef int64_t sw_time_us;

#define SW_TIME_UNSET INT64_MIN
#define SW_US_PER_SEC 1000000LL

/*
 * Parses RFC 3339 / ISO 8601 timestamps: "2023-08-20T13:15:34.5404476Z",
 * "...+02:00", a space instead of 'T', no fraction, or no zone (taken as UTC).
 * Digits past microseconds are truncated. Returns false on anything else.
 */
bool sw_time_parse(const char *s, size_t n, sw_time_us *out);
/* Formats as "2023-08-20T13:15:34.540447Z" (always 6 fraction digits). buf >= 32. */
void sw_time_format(sw_time_us t, char *buf, size_t size);
#define SW_TIME_BUF 32
/* Wall clock (CLOCK_REALTIME) and a monotonic clock, both in microseconds. */
sw_time_us sw_time_now(void);
int64_t sw_time_mono_us(void);
/*
 * Parses a duration: a number with an optional unit ms|s|m|h|d (default unit:
 * seconds), e.g. "300", "300s", "5m", "1500ms". Returns false on bad syntax,
 * overflow or a negative value.
 */
bool sw_duration_parse(const char *s, int64_t *out_us);
/* Formats a duration in the largest exact unit ("5m", "300ms", "0s"). */
void sw_duration_format(int64_t us, char *buf, size_t size);

#endif
