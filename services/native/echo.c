/* iolab-echo: the lab's native reference server, a ruler rather than a model.
 *
 * One thread, one level-triggered epoll loop, non-blocking sockets, written
 * in C so that what it costs per reply is close to what the kernel costs.
 * It answers the lab's line protocol: every line is echoed back, except a
 * line whose first word is one of the lab's commands (SLEEP, BLOCK, WORK,
 * INCR, RAISE, CRASH, STATS), which gets "ERR not supported": the reference
 * measures the I/O path, not the effects.
 *
 *   iolab-echo [--port 12345] [--backlog 128] [--trace off|conn|msg]
 *
 * What it must get right, like every server in the lab:
 *   - partial lines wait in the connection's buffer; pipelined lines are
 *     answered in order, all replies of one read in one send;
 *   - back-pressure: a send that would block keeps the rest and watches
 *     EPOLLOUT; while replies wait, the connection is not read (a client
 *     that never reads cannot make the server's memory grow);
 *   - a line over 1 MiB gets "ERR line too long" and the connection closes;
 *   - EMFILE/ENFILE/ENOMEM/ENOBUFS on accept: log, stop accepting for
 *     100 ms, go on (a ready listener would otherwise spin);
 *   - SIGTERM/SIGINT: a "stop" event, exit 0.
 *
 * Events are JSON lines on stdout in the lab's shape (t is CLOCK_MONOTONIC):
 *   {"t":..,"ev":"start","model":"native","pid":..,"tid":..,"port":..,"backlog":..}
 * then accept/close at --trace conn, also recv/send (with the first 80
 * bytes) at --trace msg, and stop at the end.  Output is buffered and
 * flushed once per loop turn; throughput runs use off or conn.
 *
 * Build: gcc -O2 -Wall -Wextra -o iolab-echo echo.c   (libc only)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "flags.h"

#define MAX_LINE (1 << 20)      /* the lab's longest request line */
#define READ_CHUNK 65536        /* bytes read per readiness report */
#define OUT_HIGH (256 * 1024)   /* stop reading while this much waits to be sent */
#define ACCEPT_BATCH 64         /* accepts per report of the listener */
#define BACKOFF_MS 100          /* pause after running out of descriptors */
#define MAX_EVENTS 256

enum trace_level { TRACE_OFF, TRACE_CONN, TRACE_MSG };
#define PREVIEW 80              /* payload bytes shown in msg-level events */

struct conn {
    int fd;
    char *in;                   /* bytes of an unfinished line */
    size_t in_len, in_cap;
    char *out;                  /* replies not yet sent: out[out_off..out_len) */
    size_t out_len, out_off, out_cap;
    unsigned mask;              /* what epoll watches for it now */
    int eof;                    /* the peer closed its side: close once drained */
    int closing;                /* a rejection is on its way: close once drained */
    char name[64];              /* peer ip:port, as in the lab's events */
};

static volatile sig_atomic_t stop_signal;
static enum trace_level trace = TRACE_CONN;
static const char *trace_name = "conn";
static long pid, tid;
static unsigned long accepted;

static const char *const COMMANDS[] = {"SLEEP", "BLOCK", "WORK", "INCR", "RAISE", "CRASH", "STATS"};
static const char NOT_SUPPORTED[] = "ERR not supported\n";
static const char TOO_LONG[] = "ERR line too long\n";

static double now_mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double now_wall(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* One event line: the common fields, then `fmt` (already JSON, starting with
 * a comma, or empty).  Buffered: flushed once per loop turn. */
static void event(const char *ev, const char *conn, const char *fmt, ...) {
    printf("{\"t\":%.6f,\"ev\":\"%s\",\"model\":\"native\",\"pid\":%ld,\"tid\":%ld",
           now_mono(), ev, pid, tid);
    if (conn)
        printf(",\"conn\":\"%s\"", conn);
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fputs("}\n", stdout);
}

/* A msg-level event: its size and the first PREVIEW bytes as a JSON string
 * (bytes that are not printable ASCII show as U+FFFD or \u00XX escapes). */
static void msg_event(const char *ev, const char *conn, const char *data, size_t n) {
    char text[PREVIEW * 6 + 1], *w = text;
    for (size_t i = 0; i < n && i < PREVIEW; i++) {
        unsigned char b = (unsigned char)data[i];
        if (b == '"' || b == '\\')
            w += sprintf(w, "\\%c", b);
        else if (b < 0x20)
            w += sprintf(w, "\\u%04x", b);
        else if (b >= 0x80)
            w += sprintf(w, "\\ufffd");
        else
            *w++ = (char)b;
    }
    *w = 0;
    event(ev, conn, ",\"bytes\":%zu,\"data\":\"%s\"", n, text);
}

static void on_signal(int sig) { stop_signal = sig; }

static void usage(const char *why) {
    fprintf(stderr, "iolab-echo: error: %s (usage: iolab-echo [--port N] [--backlog N] "
                    "[--trace off|conn|msg])\n", why);
    exit(2);
}

static long number(const char *flag, const char *text, long low, long high) {
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < low || v > high) {
        char why[160];
        snprintf(why, sizeof why, "%s wants a whole number %ld..%ld, got '%s'", flag, low, high, text);
        usage(why);
    }
    return v;
}

static int is_command(const char *line, size_t len) {
    if (len == 0 || line[0] < 'A' || line[0] > 'Z')  /* the common case: one compare */
        return 0;
    size_t word = 0;
    while (word < len && line[word] != ' ' && line[word] != '\r')
        word++;
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        if (strlen(COMMANDS[i]) == word && memcmp(COMMANDS[i], line, word) == 0)
            return 1;
    return 0;
}

static void reserve(char **buf, size_t *cap, size_t need) {
    if (need <= *cap)
        return;
    size_t cap2 = *cap ? *cap : 4096;
    while (cap2 < need)
        cap2 *= 2;
    char *p = realloc(*buf, cap2);
    if (!p) {
        perror("iolab-echo: realloc");
        exit(70);
    }
    *buf = p;
    *cap = cap2;
}

static void queue(struct conn *c, const char *data, size_t n) {
    if (c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    reserve(&c->out, &c->out_cap, c->out_len + n);
    memcpy(c->out + c->out_len, data, n);
    c->out_len += n;
}

static void close_conn(int ep, struct conn *c, const char *reason) {
    if (trace >= TRACE_CONN)
        event("close", c->name, ",\"reason\":\"%s\"", reason);
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->in);
    free(c->out);
    free(c);
}

/* Send what is queued.  Returns 0, or -1 after closing the connection. */
static int flush_out(int ep, struct conn *c) {
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            if (trace >= TRACE_MSG)
                msg_event("send", c->name, c->out + c->out_off, (size_t)n);
            c->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        close_conn(ep, c, errno == EPIPE || errno == ECONNRESET ? "reset" : "error");
        return -1;
    }
    c->out_off = c->out_len = 0;
    if (c->eof || c->closing) {
        close_conn(ep, c, c->closing ? "rejected" : "eof");
        return -1;
    }
    return 0;
}

/* Watch what the connection waits for: input unless replies pile up or the
 * peer is done; output while replies wait. */
static void update(int ep, struct conn *c) {
    size_t waiting = c->out_len - c->out_off;
    unsigned mask = 0;
    if (!c->eof && !c->closing && waiting < OUT_HIGH)
        mask |= EPOLLIN;
    if (waiting)
        mask |= EPOLLOUT;
    if (mask != c->mask) {
        struct epoll_event e = {.events = mask, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
        c->mask = mask;
    }
}

/* Answer every complete line in data[0..n); keep the unfinished rest. */
static void answer(struct conn *c, const char *data, size_t n) {
    const char *p = data, *end = data + n;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            break;
        size_t len = (size_t)(nl - p);
        if (is_command(p, len))
            queue(c, NOT_SUPPORTED, sizeof NOT_SUPPORTED - 1);
        else
            queue(c, p, len + 1);
        p = nl + 1;
    }
    size_t rest = (size_t)(end - p);
    if (rest > MAX_LINE) {
        queue(c, TOO_LONG, sizeof TOO_LONG - 1);
        c->closing = 1;
        rest = 0;
    }
    if (rest) {
        reserve(&c->in, &c->in_cap, rest);
        memmove(c->in, p, rest);
    }
    c->in_len = rest;
}

static void on_readable(int ep, struct conn *c) {
    static char chunk[READ_CHUNK];
    ssize_t n = recv(c->fd, chunk, sizeof chunk, 0);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return;
        close_conn(ep, c, errno == ECONNRESET ? "reset" : "error");
        return;
    }
    if (n == 0) {
        c->eof = 1;  /* half-close: what was asked is still answered */
        if (flush_out(ep, c) == 0)
            update(ep, c);
        return;
    }
    if (trace >= TRACE_MSG)
        msg_event("recv", c->name, chunk, (size_t)n);
    if (c->in_len == 0) {
        answer(c, chunk, (size_t)n);  /* the common case: whole lines, no copy */
    } else {
        reserve(&c->in, &c->in_cap, c->in_len + (size_t)n);
        memcpy(c->in + c->in_len, chunk, (size_t)n);
        size_t len = c->in_len;
        c->in_len = 0;
        /* answer() moves the unfinished rest to the front of c->in itself
         * (it is never longer than what is there, so no realloc moves it) */
        answer(c, c->in, len + (size_t)n);
    }
    if (flush_out(ep, c) == 0)
        update(ep, c);
}

static void on_accept(int ep, int lfd, int *paused, double *resume_at) {
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_in6 addr;
        socklen_t alen = sizeof addr;
        int fd = accept4(lfd, (struct sockaddr *)&addr, &alen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            if (errno == EMFILE || errno == ENFILE || errno == ENOMEM || errno == ENOBUFS) {
                event("error", NULL, ",\"kind\":\"accept\",\"errno\":\"%s\",\"detail\":\"%s\",\"backoff\":%.1f",
                      errno == EMFILE ? "EMFILE" : errno == ENFILE ? "ENFILE" :
                      errno == ENOMEM ? "ENOMEM" : "ENOBUFS", strerror(errno), BACKOFF_MS / 1000.0);
                epoll_ctl(ep, EPOLL_CTL_DEL, lfd, NULL);
                *paused = 1;
                *resume_at = now_mono() + BACKOFF_MS / 1000.0;
                return;
            }
            continue;  /* the peer left before accept (ECONNABORTED, ...): go on */
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        c->fd = fd;
        char host[INET6_ADDRSTRLEN] = "?";
        int port = 0;
        if (addr.sin6_family == AF_INET) {
            struct sockaddr_in *a4 = (struct sockaddr_in *)&addr;
            inet_ntop(AF_INET, &a4->sin_addr, host, sizeof host);
            port = ntohs(a4->sin_port);
        } else {
            inet_ntop(AF_INET6, &addr.sin6_addr, host, sizeof host);
            port = ntohs(addr.sin6_port);
        }
        snprintf(c->name, sizeof c->name, "%s:%d", host, port);
        c->mask = EPOLLIN;
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) < 0) {
            close(fd);
            free(c);
            continue;
        }
        accepted++;
        if (trace >= TRACE_CONN)
            event("accept", c->name, "");
    }
}

static long read_somaxconn(void) {
    FILE *f = fopen("/proc/sys/net/core/somaxconn", "r");
    long v = -1;
    if (f) {
        if (fscanf(f, "%ld", &v) != 1)
            v = -1;
        fclose(f);
    }
    return v;
}

int main(int argc, char **argv) {
    long port = 12345, backlog = 128;
    for (int i = 1; i < argc; i++) {
        const char *value;
        char flag[32];
        if (next_flag(argc, argv, &i, flag, sizeof flag, &value) < 0)
            usage("unknown flag");
        if (!strcmp(flag, "--help") || !strcmp(flag, "-h")) {
            printf("usage: iolab-echo [--port N] [--backlog N] [--trace off|conn|msg]\n");
            return 0;
        }
        if (!value) {
            char why[64];
            snprintf(why, sizeof why, "%s needs a value", flag);
            usage(why);
        }
        if (!strcmp(flag, "--port"))
            port = number("--port", value, 0, 65535);
        else if (!strcmp(flag, "--backlog"))
            backlog = number("--backlog", value, 1, 1 << 20);
        else if (!strcmp(flag, "--trace")) {
            if (!strcmp(value, "off"))
                trace = TRACE_OFF, trace_name = "off";
            else if (!strcmp(value, "conn"))
                trace = TRACE_CONN, trace_name = "conn";
            else if (!strcmp(value, "msg"))
                trace = TRACE_MSG, trace_name = "msg";
            else
                usage("--trace is off, conn or msg");
        } else {
            char why[64];
            snprintf(why, sizeof why, "unknown flag %s", flag);
            usage(why);
        }
    }
    pid = getpid();
    tid = syscall(SYS_gettid);
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);
    signal(SIGPIPE, SIG_IGN);

    /* SIGTERM/SIGINT stay blocked except inside epoll_pwait: a signal can
     * never slip in between the check of stop_signal and the wait. */
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigset_t stops, waiting;
    sigemptyset(&stops);
    sigaddset(&stops, SIGTERM);
    sigaddset(&stops, SIGINT);
    sigprocmask(SIG_BLOCK, &stops, &waiting);
    sigdelset(&waiting, SIGTERM);
    sigdelset(&waiting, SIGINT);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                               .sin_addr.s_addr = htonl(INADDR_ANY)};
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(lfd, (int)backlog) < 0) {
        event("error", NULL, ",\"kind\":\"listen\",\"detail\":\"%s\"", strerror(errno));
        fflush(stdout);
        fprintf(stderr, "iolab-echo: cannot listen on port %ld: %s\n", port, strerror(errno));
        return 2;
    }
    socklen_t alen = sizeof addr;
    getsockname(lfd, (struct sockaddr *)&addr, &alen);
    struct rlimit nofile;
    getrlimit(RLIMIT_NOFILE, &nofile);
    event("start", NULL, ",\"host\":\"0.0.0.0\",\"port\":%d,\"backlog\":%ld,\"somaxconn\":%ld,"
          "\"nofile\":%llu,\"nofile_hard\":%llu,\"trace\":\"%s\",\"wall\":%.6f",
          ntohs(addr.sin_port), backlog, read_somaxconn(), (unsigned long long)nofile.rlim_cur,
          (unsigned long long)nofile.rlim_max, trace_name, now_wall());
    fflush(stdout);

    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event le = {.events = EPOLLIN, .data.ptr = NULL};  /* NULL: the listener */
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &le);
    int paused = 0;
    double resume_at = 0;
    struct epoll_event events[MAX_EVENTS];
    while (!stop_signal) {
        fflush(stdout);
        int timeout = -1;
        if (paused) {
            double left = resume_at - now_mono();
            timeout = left > 0 ? (int)(left * 1000) + 1 : 0;
        }
        int n = epoll_pwait(ep, events, MAX_EVENTS, timeout, &waiting);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("iolab-echo: epoll_pwait");
            return 70;
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if (!c) {
                on_accept(ep, lfd, &paused, &resume_at);
                continue;
            }
            unsigned ev = events[i].events;
            if (ev & EPOLLOUT) {
                if (flush_out(ep, c) < 0)
                    continue;
                update(ep, c);
            }
            if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP))
                on_readable(ep, c);  /* reports the error or EOF if that is all there is */
        }
        if (paused && now_mono() >= resume_at) {
            epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &le);
            paused = 0;
        }
    }
    event("stop", NULL, ",\"reason\":\"%s\",\"accepted\":%lu",
          stop_signal == SIGINT ? "SIGINT" : "SIGTERM", accepted);
    fflush(stdout);
    return 0;
}
