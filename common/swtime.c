#include "scanwatch/swtime.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static bool digits(const char *s, size_t n, size_t at, size_t count, int *out)
{
    if (at + count > n) {
        return false;
    }
    int v = 0;
    for (size_t i = 0; i < count; i++) {
        char c = s[at + i];
        if (c < '0' || c > '9') {
            return false;
        }
        v = v * 10 + (c - '0');
    }
    *out = v;
    return true;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
    static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : dm[m - 1];
}

bool sw_time_parse(const char *s, size_t n, sw_time_us *out)
{
    int y, mo, d, h, mi, se;
    if (!digits(s, n, 0, 4, &y) || n < 19 || s[4] != '-' || !digits(s, n, 5, 2, &mo) ||
        s[7] != '-' || !digits(s, n, 8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        !digits(s, n, 11, 2, &h) || s[13] != ':' || !digits(s, n, 14, 2, &mi) || s[16] != ':' ||
        !digits(s, n, 17, 2, &se)) {
        return false;
    }
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || se > 60) {
        return false;
    }
    size_t i = 19;
    int64_t frac = 0;
    if (i < n && s[i] == '.') {
        i++;
        size_t start = i;
        int scale = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            if (scale < 6) {
                frac = frac * 10 + (s[i] - '0');
                scale++;
            }
            i++;
        }
        if (i == start) {
            return false;
        }
        while (scale < 6) {
            frac *= 10;
            scale++;
        }
    }
    int64_t offset_s = 0;
    if (i < n) {
        if ((s[i] == 'Z' || s[i] == 'z') && i + 1 == n) {
            i++;
        } else if ((s[i] == '+' || s[i] == '-') && i + 6 == n && s[i + 3] == ':') {
            int oh, om;
            if (!digits(s, n, i + 1, 2, &oh) || !digits(s, n, i + 4, 2, &om) || oh > 23 ||
                om > 59) {
                return false;
            }
            offset_s = (int64_t)(oh * 3600 + om * 60) * (s[i] == '+' ? 1 : -1);
            i = n;
        } else {
            return false;
        }
    }
    int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - offset_s;
    *out = secs * SW_US_PER_SEC + frac;
    return true;
}

/* y-m-d of a day count from 1970-01-01 (the inverse of days_from_civil). */
static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static char *put_digits(char *p, int64_t v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
    return p + width;
}

/* Digits by hand, not snprintf: this runs once per finding stored and per diff record. */
void sw_time_format(sw_time_us t, char *buf, size_t size)
{
    int64_t secs = t / SW_US_PER_SEC;
    int64_t us = t % SW_US_PER_SEC;
    if (us < 0) {
        us += SW_US_PER_SEC;
        secs -= 1;
    }
    int64_t days = secs / 86400;
    int64_t sod = secs % 86400;
    if (sod < 0) {
        sod += 86400;
        days -= 1;
    }
    int64_t y;
    int m, d;
    civil_from_days(days, &y, &m, &d);
    if (y < 0 || y > 9999 || size < 28) {
        snprintf(buf, size, "%s", size < 28 ? "" : "invalid");
        return;
    }
    char *p = put_digits(buf, y, 4);
    *p++ = '-';
    p = put_digits(p, m, 2);
    *p++ = '-';
    p = put_digits(p, d, 2);
    *p++ = 'T';
    p = put_digits(p, sod / 3600, 2);
    *p++ = ':';
    p = put_digits(p, sod / 60 % 60, 2);
    *p++ = ':';
    p = put_digits(p, sod % 60, 2);
    *p++ = '.';
    p = put_digits(p, us, 6);
    *p++ = 'Z';
    *p = '\0';
}

sw_time_us sw_time_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (sw_time_us)ts.tv_sec * SW_US_PER_SEC + ts.tv_nsec / 1000;
}

int64_t sw_time_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * SW_US_PER_SEC + ts.tv_nsec / 1000;
}

bool sw_duration_parse(const char *s, int64_t *out_us)
{
    if (s == NULL || *s == '\0') {
        return false;
    }
    int64_t v = 0;
    const char *p = s;
    while (*p >= '0' && *p <= '9') {
        if (v > (INT64_MAX - 9) / 10) {
            return false;
        }
        v = v * 10 + (*p - '0');
        p++;
    }
    if (p == s) {
        return false;
    }
    int64_t mult;
    if (*p == '\0' || strcmp(p, "s") == 0) {
        mult = SW_US_PER_SEC;
    } else if (strcmp(p, "ms") == 0) {
        mult = 1000;
    } else if (strcmp(p, "m") == 0) {
        mult = 60 * SW_US_PER_SEC;
    } else if (strcmp(p, "h") == 0) {
        mult = 3600 * SW_US_PER_SEC;
    } else if (strcmp(p, "d") == 0) {
        mult = 86400 * SW_US_PER_SEC;
    } else {
        return false;
    }
    if (v > INT64_MAX / mult) {
        return false;
    }
    *out_us = v * mult;
    return true;
}

void sw_duration_format(int64_t us, char *buf, size_t size)
{
    static const struct {
        int64_t mult;
        const char *unit;
    } units[] = {{86400 * SW_US_PER_SEC, "d"},
                 {3600 * SW_US_PER_SEC, "h"},
                 {60 * SW_US_PER_SEC, "m"},
                 {SW_US_PER_SEC, "s"},
                 {1000, "ms"}};
    if (us == 0) {
        snprintf(buf, size, "0s");
        return;
    }
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (us % units[i].mult == 0) {
            snprintf(buf, size, "%lld%s", (long long)(us / units[i].mult), units[i].unit);
            return;
        }
    }
    snprintf(buf, size, "%lldus", (long long)us);
}
