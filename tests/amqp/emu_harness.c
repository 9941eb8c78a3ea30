/* See emu_harness.h. */
#include "emu_harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *emu_binary(void)
{
    static char path[1024];
    const char *b = getenv("SW_BUILD_DIR");
    snprintf(path, sizeof path, "%s/emulator/scanwatch-emulator", b != NULL ? b : "build");
    return path;
}

bool emu_start(emu *e, const char *const *extra)
{
    memset(e, 0, sizeof *e);
    e->ctl_fd = -1;
    int out[2];
    if (pipe(out) != 0) {
        return false;
    }
    const char *argv[64];
    int n = 0;
    argv[n++] = emu_binary();
    argv[n++] = "--port";
    argv[n++] = "0";
    argv[n++] = "--control-port";
    argv[n++] = "0";
    argv[n++] = "--no-control-stdin";
    const char *host = "127.0.0.1";
    for (int i = 0; extra != NULL && extra[i] != NULL && n < 62; i++) {
        argv[n++] = extra[i];
        if (strcmp(extra[i], "--host") == 0 && extra[i + 1] != NULL) {
            host = extra[i + 1]; /* the control channel listens there too */
        }
    }
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid < 0) {
        return false;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* no orphan emulator when a test dies */
        unsetenv("PN_TRACE_FRM");         /* frame traces on stderr are the client's only */
        dup2(out[1], 1);
        close(out[0]);
        close(out[1]);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(out[1]);
    e->pid = pid;
    FILE *f = fdopen(out[0], "r");
    char line[256];
    bool ready = false;
    while (f != NULL && fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, "ready ", 6) == 0) {
            char *p = strstr(line, "port=");
            char *cp = strstr(line, "control-port=");
            e->port = p != NULL ? (int)strtol(p + 5, NULL, 10) : 0;
            e->control_port = cp != NULL ? (int)strtol(cp + 13, NULL, 10) : 0;
            ready = e->port > 0 && e->control_port > 0;
            break;
        }
    }
    if (f != NULL) {
        fclose(f); /* later stdout lines go to a closed pipe; the emulator prints only "ready" */
    }
    if (!ready) {
        emu_stop(e);
        return false;
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)e->control_port)};
    inet_pton(AF_INET, host, &a.sin_addr);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (fd >= 0) {
            close(fd);
        }
        emu_stop(e);
        return false;
    }
    e->ctl_fd = fd;
    e->ctl_in = fdopen(dup(fd), "r");
    return e->ctl_in != NULL;
}

void emu_stop(emu *e)
{
    if (e->ctl_in != NULL) {
        fclose(e->ctl_in);
        e->ctl_in = NULL;
    }
    if (e->ctl_fd >= 0) {
        close(e->ctl_fd);
        e->ctl_fd = -1;
    }
    if (e->pid > 0) {
        kill(e->pid, SIGTERM);
        for (int i = 0; i < 200; i++) {
            int st;
            if (waitpid(e->pid, &st, WNOHANG) == e->pid) {
                e->pid = 0;
                return;
            }
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        kill(e->pid, SIGKILL);
        waitpid(e->pid, NULL, 0);
        e->pid = 0;
    }
}

bool emu_cmd(emu *e, char *reply, size_t size, const char *fmt, ...)
{
    char line[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof line - 1) {
        return false;
    }
    line[n++] = '\n';
    for (int off = 0; off < n;) {
        ssize_t w = write(e->ctl_fd, line + off, (size_t)(n - off));
        if (w <= 0) {
            return false;
        }
        off += (int)w;
    }
    char tmp[4096];
    if (fgets(tmp, sizeof tmp, e->ctl_in) == NULL) {
        return false;
    }
    tmp[strcspn(tmp, "\r\n")] = '\0';
    if (reply != NULL) {
        snprintf(reply, size, "%s", tmp);
    }
    return strncmp(tmp, "ok", 2) == 0;
}
