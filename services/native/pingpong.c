/* iolab-pingpong: the lab's native load client, the ruler the swarm is held to.
 *
 * Closed loop over the line protocol: each of --connections connections
 * keeps --pipeline requests of --size bytes in flight; every reply buys the
 * next request.  One thread, one epoll loop, non-blocking sockets, no
 * allocation per reply: what it costs per reply is close to what the kernel
 * costs, so the swarm's own cost can be told apart from the server's.
 *
 *   iolab-pingpong --target HOST:PORT [--connections 100] [--duration 10]
 *                  [--warmup 1] [--size 64] [--pipeline 1] [--connect-timeout 5]
 *
 * --duration includes --warmup, as in the swarm: the measured window is the
 * rest.  It prints one JSON object on stdout:
 *   replies, replies_per_s (the measured window), connections (asked,
 *   connected), errors by kind, cpu user_s/sys_s over the window
 *   (getrusage), cpu_us_per_reply, latency p50/p90/p99/p99.9/max in
 *   microseconds, from the write of a request to the read of its reply.
 * Exit status: 0 it ran (see "connected" and "errors"), 1 no connection
 * could be made, 2 bad flags.
 *
 * Build: gcc -O2 -Wall -Wextra -o iolab-pingpong pingpong.c   (libc only)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "flags.h"

#define MAX_EVENTS 512
#define READ_CHUNK 65536
/* Latency histogram: HdrHistogram-style buckets, 3 significant digits
 * (2048 sub-buckets per power of two), values in microseconds. */
#define SUB_BITS 11
#define HALF_BITS (SUB_BITS - 1)
#define MAX_BITS 40  /* up to 2^40 us: 12 days */
#define HIST_SIZE (((MAX_BITS - SUB_BITS + 1) << HALF_BITS) + (1 << HALF_BITS))

enum { CONNECTING, OPEN, CLOSED };
enum { E_REFUSED, E_RESET, E_TIMEOUT, E_EOF, E_UNREACHABLE, E_OTHER, E_KINDS };
static const char *const KIND_NAMES[E_KINDS] = {"refused", "reset", "timeout", "eof", "unreachable", "other"};

struct conn {
    int fd, state;
    uint64_t *sent_at;          /* ring of the in-flight requests' send times (ns) */
    unsigned head, inflight;    /* oldest request, requests in flight */
    size_t owed;                /* request bytes not yet written (the socket was full) */
};

static uint64_t hist[HIST_SIZE];
static uint64_t hist_total, hist_max;
static long errors[E_KINDS];
static int pipeline_depth = 1;
static char *requests;          /* pipeline_depth requests, back to back */
static size_t req_size = 64;
static int ep;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static unsigned bucket(uint64_t v) {
    int bits = 64 - __builtin_clzll(v | 1);
    int shift = bits - SUB_BITS;
    if (shift <= 0)
        return (unsigned)v;
    unsigned i = ((unsigned)shift << HALF_BITS) + (unsigned)(v >> shift);
    return i < HIST_SIZE ? i : HIST_SIZE - 1;
}

static uint64_t bucket_high(unsigned i) {
    if (i < (1u << SUB_BITS))
        return i;
    unsigned shift = (i >> HALF_BITS) - 1;
    uint64_t low = (uint64_t)(i - (shift << HALF_BITS)) << shift;
    return low + ((uint64_t)1 << shift) - 1;
}

static uint64_t percentile(double p) {
    if (!hist_total)
        return 0;
    uint64_t want = (uint64_t)(p / 100.0 * (double)hist_total + 0.999999);
    if (want < 1)
        want = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_SIZE; i++) {
        seen += hist[i];
        if (seen >= want) {
            uint64_t v = bucket_high(i);
            return v < hist_max ? v : hist_max;
        }
    }
    return hist_max;
}

static void usage(const char *why) {
    fprintf(stderr, "iolab-pingpong: error: %s (usage: iolab-pingpong --target HOST:PORT "
                    "[--connections N] [--duration S] [--warmup S] [--size B] [--pipeline D] "
                    "[--connect-timeout S])\n", why);
    exit(2);
}

static double number(const char *flag, const char *text, double low, double high) {
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || !(v >= low && v <= high)) {
        char why[160];
        snprintf(why, sizeof why, "%s wants a number %g..%g, got '%s'", flag, low, high, text);
        usage(why);
    }
    return v;
}

static int kind_of(int err) {
    switch (err) {
    case ECONNREFUSED: return E_REFUSED;
    case ECONNRESET: case EPIPE: case ECONNABORTED: return E_RESET;
    case ETIMEDOUT: return E_TIMEOUT;
    case ENETUNREACH: case EHOSTUNREACH: case ENETDOWN: case EHOSTDOWN: return E_UNREACHABLE;
    default: return E_OTHER;
    }
}

static void lose(struct conn *c, int kind) {
    errors[kind]++;
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->state = CLOSED;
}

static void watch(struct conn *c, unsigned mask) {
    struct epoll_event e = {.events = mask, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
}

/* Write k more requests (stamped `now`), plus whatever is owed. */
static void send_requests(struct conn *c, unsigned k, uint64_t now) {
    unsigned depth = (unsigned)pipeline_depth;
    for (unsigned j = 0; j < k; j++)
        c->sent_at[(c->head + c->inflight + j) % depth] = now;
    c->inflight += k;
    int was_owing = c->owed > 0;
    c->owed += k * req_size;
    while (c->owed) {
        /* requests are identical, so the owed bytes are a suffix of the block */
        size_t block = depth * req_size;
        size_t n = c->owed < block ? c->owed : block;
        ssize_t w = send(c->fd, requests + (block - n), n, MSG_NOSIGNAL);
        if (w > 0) {
            c->owed -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!was_owing)
                watch(c, EPOLLIN | EPOLLOUT);
            return;
        }
        lose(c, kind_of(errno));
        return;
    }
    if (was_owing)
        watch(c, EPOLLIN);
}

int main(int argc, char **argv) {
    const char *target = NULL;
    long connections = 100;
    double duration = 10, warmup = 1, connect_timeout = 5;
    for (int i = 1; i < argc; i++) {
        const char *value;
        char flag[32];
        if (next_flag(argc, argv, &i, flag, sizeof flag, &value) < 0)
            usage("unknown flag");
        if (!value)
            usage("every flag needs a value");
        if (!strcmp(flag, "--target"))
            target = value;
        else if (!strcmp(flag, "--connections"))
            connections = (long)number(flag, value, 1, 100000);
        else if (!strcmp(flag, "--duration"))
            duration = number(flag, value, 0.001, 86400);
        else if (!strcmp(flag, "--warmup"))
            warmup = number(flag, value, 0, 86400);
        else if (!strcmp(flag, "--size"))
            req_size = (size_t)number(flag, value, 2, 1 << 20);
        else if (!strcmp(flag, "--pipeline"))
            pipeline_depth = (int)number(flag, value, 1, 4096);
        else if (!strcmp(flag, "--connect-timeout"))
            connect_timeout = number(flag, value, 0.001, 3600);
        else {
            char why[64];
            snprintf(why, sizeof why, "unknown flag %s", flag);
            usage(why);
        }
    }
    if (!target)
        usage("--target HOST:PORT is required");
    if (warmup >= duration)
        usage("--warmup leaves nothing of --duration");
    const char *colon = strrchr(target, ':');
    if (!colon || colon == target || !colon[1])
        usage("--target must be HOST:PORT");
    char host[256];
    size_t hlen = (size_t)(colon - target);
    if (hlen >= sizeof host)
        usage("--target: host name too long");
    memcpy(host, target, hlen);
    host[hlen] = 0;
    if (host[0] == '[' && hlen > 2 && host[hlen - 1] == ']') {
        memmove(host, host + 1, hlen - 2);
        host[hlen - 2] = 0;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
    int gai = getaddrinfo(host, colon + 1, &hints, &ai);
    if (gai) {
        fprintf(stderr, "iolab-pingpong: cannot resolve %s: %s\n", target, gai_strerror(gai));
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);

    /* every request is the same line: "pingpong" padded with dots */
    requests = malloc((size_t)pipeline_depth * req_size);
    struct conn *conns = calloc((size_t)connections, sizeof *conns);
    uint64_t *rings = calloc((size_t)connections * (size_t)pipeline_depth, sizeof *rings);
    if (!requests || !conns || !rings) {
        perror("iolab-pingpong: out of memory");
        return 70;
    }
    for (int j = 0; j < pipeline_depth; j++) {
        char *r = requests + (size_t)j * req_size;
        memset(r, '.', req_size - 1);
        memcpy(r, "pingpong", req_size - 1 < 8 ? req_size - 1 : 8);
        r[req_size - 1] = '\n';
    }

    ep = epoll_create1(EPOLL_CLOEXEC);
    uint64_t t0 = now_ns();
    uint64_t warm_end = t0 + (uint64_t)(warmup * 1e9), t_end = t0 + (uint64_t)(duration * 1e9);
    uint64_t connect_end = t0 + (uint64_t)(connect_timeout * 1e9);
    long connecting = 0, connected = 0;
    for (long i = 0; i < connections; i++) {
        struct conn *c = &conns[i];
        c->sent_at = rings + i * pipeline_depth;
        c->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (c->fd < 0) {
            errors[E_OTHER]++;
            c->state = CLOSED;
            continue;
        }
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(c->fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
            errors[kind_of(errno)]++;
            close(c->fd);
            c->state = CLOSED;
            continue;
        }
        c->state = CONNECTING;
        connecting++;
        struct epoll_event e = {.events = EPOLLOUT, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &e);
    }
    freeaddrinfo(ai);

    static char chunk[READ_CHUNK];
    struct epoll_event events[MAX_EVENTS];
    uint64_t replies = 0, measured = 0;
    struct rusage ru0 = {0}, ru1;
    int window_open = 0;
    for (;;) {
        uint64_t now = now_ns();
        if (!window_open && now >= warm_end) {
            getrusage(RUSAGE_SELF, &ru0);
            window_open = 1;
        }
        if (now >= t_end)
            break;
        if (connecting && now >= connect_end) {
            for (long i = 0; i < connections; i++)
                if (conns[i].state == CONNECTING) {
                    lose(&conns[i], E_TIMEOUT);
                    connecting--;
                }
        }
        uint64_t next = window_open ? t_end : warm_end;
        int timeout = (int)((next - now) / 1000000u) + 1;
        int n = epoll_wait(ep, events, MAX_EVENTS, timeout);
        if (n < 0 && errno != EINTR) {
            perror("iolab-pingpong: epoll_wait");
            return 70;
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            now = now_ns();
            if (now >= t_end)
                break;  /* the window is closed: what arrives now is not counted */
            if (c->state == CONNECTING) {
                int err = 0;
                socklen_t len = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
                connecting--;
                if (err) {
                    lose(c, kind_of(err));
                    continue;
                }
                c->state = OPEN;
                connected++;
                watch(c, EPOLLIN);
                send_requests(c, (unsigned)pipeline_depth, now);
                continue;
            }
            if (c->state != OPEN)
                continue;
            if (events[i].events & EPOLLOUT && c->owed) {
                send_requests(c, 0, now);
                if (c->state != OPEN)
                    continue;
            }
            if (!(events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
                continue;
            ssize_t got = recv(c->fd, chunk, sizeof chunk, 0);
            if (got < 0) {
                if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                    lose(c, kind_of(errno));
                continue;
            }
            if (got == 0) {
                lose(c, E_EOF);
                continue;
            }
            unsigned k = 0;
            const char *p = chunk, *end = chunk + got;
            while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
                p++;
                if (!c->inflight)
                    continue;  /* a line nobody asked for: not counted */
                uint64_t us = (now - c->sent_at[c->head]) / 1000u;
                c->head = (c->head + 1) % (unsigned)pipeline_depth;
                c->inflight--;
                k++;
                if (now >= warm_end) {
                    hist[bucket(us)]++;
                    hist_total++;
                    if (us > hist_max)
                        hist_max = us;
                }
            }
            replies += k;
            if (now >= warm_end)
                measured += k;
            if (k)
                send_requests(c, k, now);
        }
    }
    getrusage(RUSAGE_SELF, &ru1);
    double window = (double)(t_end - warm_end) / 1e9;
    double user = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) +
                  (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e6;
    double sys = (double)(ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
                 (double)(ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6;
    printf("{\"tool\":\"iolab-pingpong\",\"target\":\"%s\",\"connections\":%ld,\"connected\":%ld,"
           "\"pipeline\":%d,\"size\":%zu,\"duration_s\":%g,\"warmup_s\":%g,\"window_s\":%.3f,"
           "\"replies\":%llu,\"replies_measured\":%llu,\"replies_per_s\":%.1f,\"errors\":{",
           target, connections, connected, pipeline_depth, req_size, duration, warmup, window,
           (unsigned long long)replies, (unsigned long long)measured, measured / window);
    for (int k = 0; k < E_KINDS; k++)
        printf("%s\"%s\":%ld", k ? "," : "", KIND_NAMES[k], errors[k]);
    printf("},\"cpu\":{\"user_s\":%.3f,\"sys_s\":%.3f,\"cores\":%.3f},\"cpu_us_per_reply\":%.2f,"
           "\"latency\":{\"count\":%llu,\"p50_us\":%llu,\"p90_us\":%llu,\"p99_us\":%llu,"
           "\"p99_9_us\":%llu,\"max_us\":%llu}}\n",
           user, sys, (user + sys) / window, measured ? (user + sys) * 1e6 / (double)measured : 0.0,
           (unsigned long long)hist_total, (unsigned long long)percentile(50),
           (unsigned long long)percentile(90), (unsigned long long)percentile(99),
           (unsigned long long)percentile(99.9), (unsigned long long)hist_max);
    for (long i = 0; i < connections; i++)
        if (conns[i].state != CLOSED)
            close(conns[i].fd);
    return connected ? 0 : 1;
}
