/* The swarm's native fast path: closed-loop ping-pong on the line protocol.
 *
 * Why: a CPython loop spends more per reply (about 10 us on a 2-core VM)
 * than the fastest servers the lab measures, so the swarm, not the model,
 * would set the figure.  This library runs the engine's steady state in C,
 * called through ctypes (no Python headers, so any CPython 3 runs it):
 * epoll_wait, read, count the replies, time them, refill, write.  It does
 * nothing the Python fast path (engine.py, book.Ledger.replied) does not do
 * the same way: one clock read per epoll turn, latency from the batch's send
 * to that turn, HdrHistogram buckets (hist.py), the same timeline pairs.
 *
 * A connection is *owned* here between fp_put and fp_take, and only while
 * its ledger is the simple case: one batch of n requests in flight, each
 * reply batch answering all n, each refilled with the same prebuilt bytes.
 * Whatever else happens to it (fewer or more replies than in flight, the end
 * of its budget or of its timeline room, EOF, an error, a short write) stops
 * here and goes back to Python as a *leftover*, with the turn's clock; so
 * does every event of a socket this library does not own (connects, the
 * signal wake-up, EPOLLOUT, other patterns).  Python then takes the
 * connection back (fp_take: what changed, as deltas) and handles it.
 *
 * Leftovers are (fd, word) pairs: word is the epoll event mask for a plain
 * event, or code << 32 | arg for one this library began:
 *   FP_LOST      arg = errno of the read, 0 at EOF
 *   FP_REPLIED   arg = replies read but not booked (k != n, budget, room)
 *   FP_SHORT     arg = bytes the refill's write took (it was booked), or
 *                (1 << 31) | errno when the write failed
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>

#define SUB_BITS 11
#define HALF_BITS (SUB_BITS - 1)
#define FP_LOST 1LL
#define FP_REPLIED 2LL
#define FP_SHORT 3LL

typedef struct {
    int on;
    double t;          /* the batch in flight: sent at t */
    int64_t n;         /* requests in it */
    int64_t left;      /* the send budget */
    char *req;         /* n requests, prebuilt */
    size_t reqlen;
    int tl_on;         /* timeline pairs still wanted (Python reserves room) */
    int64_t tl_room, tl_used;
    double *tl;        /* (send, reply) pairs */
    /* what changed since fp_put: fp_take hands these back */
    int64_t sent, bytes_in, lat_sum, lat_max;
    double first, last; /* -1: none */
} slot;

typedef struct {
    int epfd, max_events;
    struct epoll_event *events;
    char *buf;
    size_t bufsize;
    slot *slots;       /* by fd */
    int nslots;
    int64_t *counts;   /* the histogram of measured replies (hist.py's layout) */
    int64_t size, total, sum, max, low;
    int64_t *out;      /* leftovers of the last turn: (fd, word) */
    double now;
} loop;

/* The struct fp_take fills: Python's ctypes mirror is fastpath.Taken. */
typedef struct {
    double t, first, last;
    int64_t n, left, sent, bytes_in, lat_sum, lat_max, tl_used;
} taken;

static double clock_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);  /* what time.monotonic() reads */
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int bit_length(uint64_t v) { return v ? 64 - __builtin_clzll(v) : 0; }

void *fp_new(int epfd, int max_events, int64_t bufsize, int64_t hist_size) {
    loop *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->epfd = epfd;
    l->max_events = max_events;
    l->bufsize = (size_t)bufsize;
    l->size = hist_size;
    l->low = INT64_MAX;
    l->events = calloc((size_t)max_events, sizeof *l->events);
    l->out = calloc((size_t)max_events * 2, sizeof *l->out);
    l->buf = malloc(l->bufsize);
    l->counts = calloc((size_t)hist_size, sizeof *l->counts);
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
    s->tl = tl_room > 0 ? malloc((size_t)tl_room * 2 * sizeof(double)) : NULL;
    if (!s->req || (tl_room > 0 && !s->tl)) { drop(s); return -1; }
    memcpy(s->req, req, (size_t)reqlen);
    s->reqlen = (size_t)reqlen;
    s->t = t; s->n = n; s->left = left;
    s->tl_on = tl_on; s->tl_room = tl_room;
    s->first = s->last = -1.0;
    s->on = 1;
    return 0;
}

/* Give fd back: its state into *out, its timeline pairs into tl (room for
 * the tl_room pairs fp_put was given).  1 if it was owned, else 0. */
int fp_take(loop *l, int fd, taken *out, double *tl) {
    if (fd < 0 || fd >= l->nslots || !l->slots[fd].on) return 0;
    slot *s = &l->slots[fd];
    *out = (taken){s->t, s->first, s->last, s->n, s->left, s->sent, s->bytes_in, s->lat_sum,
                   s->lat_max, s->tl_used};
    if (s->tl_used) memcpy(tl, s->tl, (size_t)s->tl_used * 2 * sizeof(double));
    drop(s);
    return 1;
}

static void record(loop *l, int64_t us, int64_t k) {
    int shift = bit_length((uint64_t)us) - SUB_BITS;
    int64_t i = shift <= 0 ? us : ((int64_t)shift << HALF_BITS) + (us >> shift);
    if (i < l->size) l->counts[i] += k;
    l->total += k;
    l->sum += us * k;
    if (us > l->max) l->max = us;
    if (us < l->low) l->low = us;
}

/* One owned socket is readable: 0 handled, else a leftover word. */
static int64_t readable(loop *l, int fd, slot *s, int measure) {
    ssize_t got;
    do got = recv(fd, l->buf, l->bufsize, 0); while (got < 0 && errno == EINTR);
    if (got < 0) return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : FP_LOST << 32 | errno;
    if (got == 0) return FP_LOST << 32;
    s->bytes_in += got;
    int64_t k = 0;
    for (const char *p = l->buf, *end = l->buf + got; (p = memchr(p, '\n', (size_t)(end - p))); p++) k++;
    if (!k) return 0;
    if (k != s->n || s->left < k || (s->tl_on && s->tl_used + k > s->tl_room))
        return FP_REPLIED << 32 | k;  /* not the simple case: Python books them */
    double now = l->now;
    int64_t us = (int64_t)((now - s->t) * 1e6);  /* truncated, as Python's int() */
    if (us < 0) us = 0;
    s->lat_sum += us * k;
    if (us > s->lat_max) s->lat_max = us;
    if (measure) record(l, us, k);
    if (s->tl_on) {
        for (int64_t j = 0; j < k; j++, s->tl_used++) {
            s->tl[2 * s->tl_used] = s->t;
            s->tl[2 * s->tl_used + 1] = now;
        }
    }
    if (s->first < 0) s->first = now;
    s->last = now;
    s->t = now;
    s->sent += k;
    s->left -= k;
    ssize_t w;
    do w = send(fd, s->req, s->reqlen, MSG_NOSIGNAL); while (w < 0 && errno == EINTR);
    if (w == (ssize_t)s->reqlen) return 0;
    if (w < 0) return errno == EAGAIN || errno == EWOULDBLOCK ? FP_SHORT << 32 : FP_SHORT << 32 | 1LL << 31 | errno;
    return FP_SHORT << 32 | w;
}

/* Turns of the loop until one leaves something for Python, or ``until``
 * (the next timer; < 0: none) or ``t_end`` comes, or a signal interrupts.
 * Returns the leftovers (in l->out), or -1 with errno; l->now is the clock of
 * the last turn.  At t_end the turn's events are left unread, as Python's
 * loop leaves them: the run is over. */
int fp_turn(loop *l, double until, double warm_end, double t_end) {
    for (;;) {
        int timeout = -1;
        if (until >= 0) {
            double ms = (until - clock_now()) * 1000.0;
            /* rounded up, as epoll.poll() rounds; an hour at most (the caller loops) */
            timeout = ms <= 0 ? 0 : ms >= 3600e3 ? 3600000 : (int)ms + (ms > (int)ms);
        }
        int ready = epoll_wait(l->epfd, l->events, l->max_events, timeout);
        l->now = clock_now();
        if (ready < 0) return errno == EINTR ? 0 : -1;
        if (l->now >= t_end) return 0;
        int measure = l->now >= warm_end, left = 0;
        for (int i = 0; i < ready; i++) {
            int fd = l->events[i].data.fd;
            uint32_t ev = l->events[i].events;
            int64_t word = ev;
            if (ev == EPOLLIN && fd < l->nslots && l->slots[fd].on) {
                word = readable(l, fd, &l->slots[fd], measure);
                if (!word) continue;
            }
            l->out[2 * left] = fd;
            l->out[2 * left + 1] = word;
            left++;
        }
        if (left || (until >= 0 && l->now >= until)) return left;
    }
}

/* The histogram of measured replies: hist.py's counts, total, sum, max, low. */
int64_t *fp_counts(loop *l) { return l->counts; }
void fp_totals(loop *l, int64_t *out) { out[0] = l->total; out[1] = l->sum; out[2] = l->max; out[3] = l->low; }
double fp_now(loop *l) { return l->now; }
int64_t *fp_out(loop *l) { return l->out; }
