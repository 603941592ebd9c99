/* The swarm's native fast path: closed-loop ping-pong on the line protocol.
 *
 * Why: a CPython loop spends more per reply (about 10 us on a 2-core VM)
 * than the fastest servers the lab measures, so the swarm, not the model,
 * would set the figure.  This library runs a worker's steady state in C,
 * called through ctypes (no Python headers, so any CPython 3 runs it):
 * epoll_wait, read, count the replies, time them, refill, write.  It follows
 * the rules of the Python side: one clock read per epoll turn, latency from
 * the batch's send to that turn, truncated to whole microseconds, below 0
 * counted as 0 and as clamped (book.Ledger._took); ioschema/hist.py's
 * buckets (bucket_of is its index_of; fp_layout lets a unit test compare).
 *
 * A connection is *owned* here between fp_put and fp_take, and only while
 * its ledger is the simple case: one batch of n requests in flight, each
 * reply batch answering all n, each refilled with the same prebuilt bytes.
 * Whatever else happens to it (fewer or more replies than in flight, the end
 * of its budget or of its timeline room, EOF, an error, a short write) stops
 * here and goes back to Python as a *leftover*, with the turn's clock; so
 * does every event of a socket this library does not own (connects, the
 * signal wake-up, EPOLLOUT, other patterns).  Python then takes the
 * connection back: fp_take hands over what changed since fp_put as a
 * `delta` and the timeline `pair`s kept, which book.Ledger.apply adds in.
 *
 * Everything crosses as arrays of the structs below (fastpath.py mirrors
 * them with ctypes): a turn's leftovers, a connection's delta and pairs.
 *
 * A test seam: fp_set_clock gives a loop a scripted clock (the worker's
 * injected one), so a test can feed this loop and Python's the same bytes at
 * the same times and compare their books (tests/unit/test_fastpath_parity.py).
 * While it is set, a turn reads it instead of CLOCK_MONOTONIC, never waits in
 * epoll (a scripted clock does not pass while epoll waits) and is one turn.
 * One branch per turn when unset: the run's cost does not change.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>

/* ioschema/hist.py's layout: SUB_BITS, HALF_BITS and values up to 2^63 - 1 */
#define SUB_BITS 11
#define HALF_BITS (SUB_BITS - 1)
#define MAX_BITS 63
#define HIST_SIZE ((((int64_t)MAX_BITS - SUB_BITS + 1) << HALF_BITS) + ((int64_t)1 << HALF_BITS))

/* What a leftover is (fastpath.py: EVENT, LOST, REPLIED, SHORT). */
enum { FP_EVENT = 0, FP_LOST = 1, FP_REPLIED = 2, FP_SHORT = 3 };

/* One socket's turn that Python must finish. */
typedef struct {
    int32_t fd;
    uint32_t events;  /* the epoll events reported */
    int32_t kind;     /* FP_EVENT: a plain event, nothing done here; else what was begun: */
    int32_t err;      /* FP_LOST: errno of the read (0: end of file); FP_SHORT: of the write (0: none) */
    int64_t n;        /* FP_REPLIED: replies read and not booked; FP_SHORT: bytes of the booked refill written */
} leftover;

/* What changed on a connection since fp_put (book.Ledger.apply adds it in). */
typedef struct {
    double t;          /* the batch in flight was sent at t (its size n never changes here) */
    double first, last; /* replies' times; -1: none */
    int64_t sent;      /* requests booked and refilled: one per reply, each answered the whole batch */
    int64_t bytes_in, lat_sum, lat_max;
    int64_t pairs;     /* timeline pairs kept */
} delta;

typedef struct {
    double sent, reply;
} pair;

typedef struct {
    int on;
    int64_t n;         /* requests in the batch in flight */
    int64_t left;      /* the send budget */
    char *req;         /* n requests, prebuilt */
    size_t reqlen;
    int tl_on;         /* timeline pairs still wanted (Python reserves the room) */
    int64_t tl_room;
    pair *tl;
    delta d;
} slot;

typedef struct {
    int epfd, max_events;
    struct epoll_event *events;
    char *buf;
    size_t bufsize;
    slot *slots;       /* by fd */
    int nslots;
    int64_t *counts;   /* the histogram of measured replies (hist.py's layout) */
    int64_t total, sum, max, low, clamped;
    leftover *out;     /* the leftovers of the last turn */
    double now;
    double scripted;   /* the test seam's clock (fp_set_clock); < 0: CLOCK_MONOTONIC */
} loop;

static double clock_now(const loop *l) {
    if (l->scripted >= 0) return l->scripted;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);  /* what time.monotonic() reads */
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int bit_length(uint64_t v) { return v ? 64 - __builtin_clzll(v) : 0; }

/* hist.index_of: the bucket a non-negative value is counted in. */
static int64_t bucket_of(int64_t v) {
    int shift = bit_length((uint64_t)v) - SUB_BITS;
    return shift <= 0 ? v : ((int64_t)shift << HALF_BITS) + (v >> shift);
}

/* For the unit test that holds this file to ioschema/hist.py. */
void fp_layout(int64_t *out) { out[0] = SUB_BITS; out[1] = HALF_BITS; out[2] = HIST_SIZE; }
int64_t fp_bucket_of(int64_t v) { return bucket_of(v); }

void *fp_new(int epfd, int max_events, int64_t bufsize) {
    loop *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->epfd = epfd;
    l->max_events = max_events;
    l->bufsize = (size_t)bufsize;
    l->low = INT64_MAX;
    l->scripted = -1.0;
    l->events = calloc((size_t)max_events, sizeof *l->events);
    l->out = calloc((size_t)max_events, sizeof *l->out);
    l->buf = malloc(l->bufsize);
    l->counts = calloc((size_t)HIST_SIZE, sizeof *l->counts);
    if (!l->events || !l->out || !l->buf || !l->counts) {
        free(l->events); free(l->out); free(l->buf); free(l->counts); free(l);
        return NULL;
    }
    return l;
}

static void drop(slot *s) {
    free(s->req);
    free(s->tl);
    memset(s, 0, sizeof *s);
}

/* The test seam: every turn from now on reads t (t < 0: CLOCK_MONOTONIC again). */
void fp_set_clock(loop *l, double t) { l->scripted = t; }

void fp_free(loop *l) {
    for (int fd = 0; fd < l->nslots; fd++) drop(&l->slots[fd]);
    free(l->slots); free(l->events); free(l->out); free(l->buf); free(l->counts); free(l);
}

/* Own fd from now on; 0, or -1 when out of memory (Python keeps it then). */
int fp_put(loop *l, int fd, double t, int64_t n, int64_t left, const char *req, int64_t reqlen,
           int tl_on, int64_t tl_room) {
    if (fd >= l->nslots) {
        int grown = fd + 1 > 2 * l->nslots ? fd + 1 : 2 * l->nslots;
        slot *more = realloc(l->slots, (size_t)grown * sizeof *more);
        if (!more) return -1;
        memset(more + l->nslots, 0, (size_t)(grown - l->nslots) * sizeof *more);
        l->slots = more;
        l->nslots = grown;
    }
    slot *s = &l->slots[fd];
    drop(s);
    s->req = malloc((size_t)reqlen);
    s->tl = tl_room > 0 ? malloc((size_t)tl_room * sizeof *s->tl) : NULL;
    if (!s->req || (tl_room > 0 && !s->tl)) { drop(s); return -1; }
    memcpy(s->req, req, (size_t)reqlen);
    s->reqlen = (size_t)reqlen;
    s->n = n; s->left = left;
    s->tl_on = tl_on; s->tl_room = tl_room;
    s->d.t = t;
    s->d.first = s->d.last = -1.0;
    s->on = 1;
    return 0;
}

/* Give fd back: what changed into *out, its timeline pairs into tl (room
 * for the tl_room pairs fp_put was given).  1 if it was owned, else 0. */
int fp_take(loop *l, int fd, delta *out, pair *tl) {
    if (fd < 0 || fd >= l->nslots || !l->slots[fd].on) return 0;
    slot *s = &l->slots[fd];
    *out = s->d;
    if (s->d.pairs) memcpy(tl, s->tl, (size_t)s->d.pairs * sizeof *tl);
    drop(s);
    return 1;
}

/* Histogram.record: a value below 0 counts as 0, and as clamped. */
static void record(loop *l, int64_t us, int64_t k) {
    if (us < 0) { us = 0; l->clamped += k; }
    int64_t i = bucket_of(us);
    if (i < HIST_SIZE) l->counts[i] += k;
    l->total += k;
    l->sum += us * k;
    if (us > l->max) l->max = us;
    if (us < l->low) l->low = us;
}

/* book.Ledger's common case: the k replies of the batch in flight, answered
 * whole at now, timed, and the batch refilled (sent now). */
static void book(loop *l, slot *s, int64_t k, int measure) {
    double now = l->now;
    int64_t us = (int64_t)((now - s->d.t) * 1e6);  /* truncated, as Python's int() */
    if (measure) record(l, us, k);
    if (us < 0) us = 0;
    s->d.lat_sum += us * k;
    if (us > s->d.lat_max) s->d.lat_max = us;
    for (int64_t j = 0; s->tl_on && j < k; j++, s->d.pairs++)
        s->tl[s->d.pairs] = (pair){s->d.t, now};
    if (s->d.first < 0) s->d.first = now;
    s->d.last = now;
    s->d.t = now;
    s->d.sent += k;
    s->left -= k;
}

/* One owned socket is readable: 1 when handled here, else 0 with *o filled. */
static int readable(loop *l, int fd, slot *s, int measure, leftover *o) {
    ssize_t got;
    do got = recv(fd, l->buf, l->bufsize, 0); while (got < 0 && errno == EINTR);
    if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 1;
    if (got <= 0) { o->kind = FP_LOST; o->err = got < 0 ? errno : 0; return 0; }
    s->d.bytes_in += got;
    int64_t k = 0;
    for (const char *p = l->buf, *end = l->buf + got; (p = memchr(p, '\n', (size_t)(end - p))); p++) k++;
    if (!k) return 1;
    if (k != s->n || s->left < k || (s->tl_on && s->d.pairs + k > s->tl_room)) {
        o->kind = FP_REPLIED;  /* not the simple case: Python books them */
        o->n = k;
        return 0;
    }
    book(l, s, k, measure);
    ssize_t w;
    do w = send(fd, s->req, s->reqlen, MSG_NOSIGNAL); while (w < 0 && errno == EINTR);
    if (w == (ssize_t)s->reqlen) return 1;
    o->kind = FP_SHORT;  /* booked; Python keeps the rest, or ends the connection */
    o->err = w < 0 && errno != EAGAIN && errno != EWOULDBLOCK ? errno : 0;
    o->n = w < 0 ? 0 : w;
    return 0;
}

/* Turns of the loop until one leaves something for Python, or ``until``
 * (the next timer; < 0: none) or ``t_end`` comes, or a signal interrupts.
 * Returns how many leftovers (in fp_out), or -1 with errno; l->now is the
 * clock of the last turn.  At t_end the turn's events are left unread, as
 * Python's loop leaves them: the run is over. */
int fp_turn(loop *l, double until, double warm_end, double t_end) {
    for (;;) {
        int timeout = -1;
        if (l->scripted >= 0) {
            timeout = 0;  /* a scripted clock: what is ready now, nothing waited for */
        } else if (until >= 0) {
            double ms = (until - clock_now(l)) * 1000.0;
            /* rounded up, as epoll.poll() rounds; an hour at most (the caller loops) */
            timeout = ms <= 0 ? 0 : ms >= 3600e3 ? 3600000 : (int)ms + (ms > (int)ms);
        }
        int ready = epoll_wait(l->epfd, l->events, l->max_events, timeout);
        l->now = clock_now(l);
        if (ready < 0) return errno == EINTR ? 0 : -1;
        if (l->now >= t_end) return 0;
        int measure = l->now >= warm_end, left = 0;
        for (int i = 0; i < ready; i++) {
            int fd = l->events[i].data.fd;
            uint32_t ev = l->events[i].events;
            leftover *o = &l->out[left];
            *o = (leftover){fd, ev, FP_EVENT, 0, 0};
            if (ev == EPOLLIN && fd < l->nslots && l->slots[fd].on && readable(l, fd, &l->slots[fd], measure, o))
                continue;
            left++;
        }
        if (left || (until >= 0 && l->now >= until) || l->scripted >= 0) return left;
    }
}

/* The histogram of measured replies: hist.py's counts, and total, sum, max, low, clamped. */
int64_t *fp_counts(loop *l) { return l->counts; }
void fp_totals(loop *l, int64_t *out) {
    out[0] = l->total; out[1] = l->sum; out[2] = l->max; out[3] = l->low; out[4] = l->clamped;
}
double fp_now(loop *l) { return l->now; }
leftover *fp_out(loop *l) { return l->out; }
