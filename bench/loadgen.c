/*
 * loadgen: one client code path for `make bench-peers` (scripts/bench-peers.sh).
 *
 * Every request is one acknowledged, replicated enqueue:
 *   meshq  ENQUEUE <payload>\n                  -> "OK <id> <lamport>"
 *   redis  LPUSH q <payload> ; WAIT 1 1000      -> WAIT's integer >= 1
 *   nats   PUB <subject> <inbox>.<seq> <len>    -> a JetStream PubAck on the inbox
 *          ("seq" and no "error" in its JSON)
 * over N connections, each keeping P requests in flight, until M requests
 * were answered or S seconds passed, whichever comes first. Requests still
 * in flight at the deadline are not counted. Latency is per request, from
 * the moment it is written to the socket buffer to its reply (CLOCK_MONOTONIC),
 * in a log-linear histogram (64 sub-buckets per power of two: under 1.6%
 * error; the max is exact).
 *
 * It prints one line of key=value pairs:
 *   system= connections= pipeline= payload_bytes= ok= errors= seconds=
 *   throughput= p50_ms= p90_ms= p99_ms= max_ms=
 * and exits 0 when the run took place (even with errors: they are counted),
 * 1 when it could not (no connection), 2 on bad usage.
 *
 * --nats-request SUBJECT [--data TEXT]: one NATS request-reply (used to
 * create the JetStream stream and read its info); prints the reply's payload
 * and exits 0, or exits 3 when no reply came within --timeout seconds.
 *
 * Plain C, Linux epoll, libc only:  cc -O2 -Wall -Wextra -o loadgen loadgen.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

enum { SYS_MESHQ, SYS_REDIS, SYS_NATS };
static const char *sys_names[] = { "meshq", "redis", "nats" };

/* ---- options ---- */
static int opt_system = -1;
static const char *opt_host = "127.0.0.1";
static int opt_ports[64];
static int opt_nports = 0;
static int opt_conns = 1;
static int opt_pipeline = 1;
static uint64_t opt_messages = 0;      /* 0: unbounded (then --seconds is required) */
static double opt_seconds = 0;         /* 0: unbounded (then --messages is required) */
static int opt_payload = 100;
static double opt_timeout = 30;        /* no reply at all for this long: give up */
static int opt_hello = 1;              /* meshq: HELLO bench 0 first */
static const char *opt_subject = "bench.q";
static const char *opt_redis_key = "q";
static const char *opt_request = NULL; /* --nats-request SUBJECT */
static const char *opt_data = "";
static int opt_max_errors_shown = 5;

/* ---- time ---- */
static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- log-linear histogram of nanoseconds ---- */
#define SUB 64
#define NBUCKETS (SUB * 59)
static uint64_t hist[NBUCKETS];
static uint64_t hist_n, hist_max;

static int bucket_of(uint64_t v) {
    if (v < SUB) return (int)v;
    int e = 63 - __builtin_clzll(v); /* e >= 6 */
    return (e - 5) * SUB + (int)((v >> (e - 6)) & (SUB - 1));
}

static double bucket_mid(int i) {
    if (i < SUB) return i;
    int e = i / SUB + 5, sub = i % SUB;
    double lo = (double)((uint64_t)(SUB + sub) << (e - 6));
    double width = (double)(1ull << (e - 6));
    return lo + width / 2;
}

static void hist_add(uint64_t v) {
    hist[bucket_of(v)]++;
    hist_n++;
    if (v > hist_max) hist_max = v;
}

static double hist_quantile_ms(double q) {
    if (hist_n == 0) return 0;
    uint64_t rank = (uint64_t)(q * (double)hist_n + 0.999999);
    if (rank < 1) rank = 1;
    uint64_t cum = 0;
    for (int i = 0; i < NBUCKETS; i++) {
        cum += hist[i];
        if (cum >= rank) {
            double v = bucket_mid(i);
            if (v > (double)hist_max) v = (double)hist_max;
            return v / 1e6;
        }
    }
    return (double)hist_max / 1e6;
}

/* ---- counters ---- */
static uint64_t n_sent, n_ok, n_err, n_errors_shown;
static uint64_t last_progress;

static void show_error(const char *fmt, ...) {
    if (n_errors_shown >= (uint64_t)opt_max_errors_shown) return;
    n_errors_shown++;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "loadgen: error: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "loadgen: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

/* ---- buffers ---- */
typedef struct {
    char *p;
    size_t len, cap, off; /* off: bytes already consumed/written from the front */
} buf_t;

static void buf_reserve(buf_t *b, size_t more) {
    if (b->off > 0 && b->off == b->len) b->off = b->len = 0;
    if (b->len + more <= b->cap) return;
    if (b->off > 0) { /* compact first */
        memmove(b->p, b->p + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
        if (b->len + more <= b->cap) return;
    }
    size_t ncap = b->cap ? b->cap : 16384;
    while (ncap < b->len + more) ncap *= 2;
    char *np = realloc(b->p, ncap);
    if (!np) die("out of memory");
    b->p = np;
    b->cap = ncap;
}

static void buf_append(buf_t *b, const void *data, size_t n) {
    buf_reserve(b, n);
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void buf_printf(buf_t *b, const char *fmt, ...) {
    va_list ap;
    for (;;) {
        size_t room = b->cap - b->len;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) die("vsnprintf failed");
        if ((size_t)n < room) { b->len += (size_t)n; return; }
        buf_reserve(b, (size_t)n + 1);
    }
}

/* ---- connections ---- */
typedef struct {
    int fd, index, dead;
    buf_t r, w;
    int want_out;          /* EPOLLOUT registered */
    unsigned inflight;
    /* meshq, redis: replies in order, a ring of send times */
    uint64_t *ring;
    unsigned head;
    int redis_phase;       /* 0: next reply is the head's LPUSH, 1: its WAIT */
    int redis_lpush_ok;
    /* nats: replies in any order, slot = seq % pipeline */
    uint64_t *slot_t;
    uint64_t *slot_seq;
    uint32_t *slot_gen;
    unsigned *free_slots;
    unsigned nfree;
    char inbox[48];
} conn_t;

static conn_t *conns;
static int epfd = -1;
static char *payload;
static int stopping;

static int connect_to(int port) {
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    struct addrinfo hints, *res;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(opt_host, portstr, &hints, &res);
    if (rc != 0) die("%s: %s", opt_host, gai_strerror(rc));
    int fd = -1;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) die("cannot connect to %s:%d: %s", opt_host, port, strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval tv = { .tv_sec = (time_t)opt_timeout, .tv_usec = 0 };
    if (tv.tv_sec < 1) tv.tv_sec = 1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    return fd;
}

static void write_all_blocking(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0) {
            if (errno == EINTR) continue;
            die("write: %s", strerror(errno));
        }
        p += k;
        n -= (size_t)k;
    }
}

/* Reads one line (without its \r\n) during setup, blocking; the rest stays in c->r. */
static char *read_line_blocking(conn_t *c) {
    static char line[65536];
    for (;;) {
        char *start = c->r.p ? c->r.p + c->r.off : NULL;
        char *nl = start ? memchr(start, '\n', c->r.len - c->r.off) : NULL;
        if (nl) {
            size_t n = (size_t)(nl - start);
            if (n >= sizeof line) n = sizeof line - 1;
            memcpy(line, start, n);
            line[n] = 0;
            if (n > 0 && line[n - 1] == '\r') line[n - 1] = 0;
            c->r.off += (size_t)(nl - start) + 1;
            return line;
        }
        buf_reserve(&c->r, 4096);
        ssize_t k = read(c->fd, c->r.p + c->r.len, c->r.cap - c->r.len);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) die("connection %d: %s during setup", c->index, k == 0 ? "closed" : strerror(errno));
        c->r.len += (size_t)k;
    }
}

static void random_token(char *out, size_t n) {
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[16];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || read(fd, raw, sizeof raw) != (ssize_t)sizeof raw) {
        uint64_t x = now_ns() ^ ((uint64_t)getpid() << 32);
        for (size_t i = 0; i < sizeof raw; i++) { x = x * 6364136223846793005ull + 1442695040888963407ull; raw[i] = (unsigned char)(x >> 56); }
    }
    if (fd >= 0) close(fd);
    size_t i;
    for (i = 0; i + 1 < n && i < 2 * sizeof raw; i++) out[i] = hex[(raw[i / 2] >> ((i % 2) ? 0 : 4)) & 15];
    out[i] = 0;
}

/* NATS setup: INFO, CONNECT, SUB <inbox>.*, then PING until PONG so the
 * subscription is in place before the first PUB. */
static void nats_setup(conn_t *c) {
    char *line = read_line_blocking(c);
    if (strncmp(line, "INFO ", 5) != 0) die("connection %d: expected INFO, got '%.80s'", c->index, line);
    char tok[33];
    random_token(tok, sizeof tok);
    snprintf(c->inbox, sizeof c->inbox, "_INBOX.%s", tok);
    char msg[256];
    int n = snprintf(msg, sizeof msg,
                     "CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":false,\"name\":\"loadgen\"}\r\n"
                     "SUB %s.* 1\r\nPING\r\n", c->inbox);
    write_all_blocking(c->fd, msg, (size_t)n);
    for (;;) {
        line = read_line_blocking(c);
        if (strcmp(line, "PONG") == 0) break;
        if (strncmp(line, "-ERR", 4) == 0) die("connection %d: %s", c->index, line);
        /* +OK, INFO updates: ignore */
    }
}

static void meshq_setup(conn_t *c) {
    if (!opt_hello) return;
    char msg[64];
    int n = snprintf(msg, sizeof msg, "HELLO bench-%d 0\n", c->index);
    write_all_blocking(c->fd, msg, (size_t)n);
    char *line = read_line_blocking(c);
    if (strncmp(line, "HELLO ", 6) != 0) die("connection %d: HELLO answered '%.120s'", c->index, line);
}

static void set_nonblocking(int fd) {
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static void conn_init(conn_t *c, int index) {
    memset(c, 0, sizeof *c);
    c->index = index;
    c->fd = connect_to(opt_ports[index % opt_nports]);
    unsigned P = (unsigned)opt_pipeline;
    if (opt_system == SYS_NATS) {
        c->slot_t = calloc(P, sizeof *c->slot_t);
        c->slot_seq = calloc(P, sizeof *c->slot_seq);
        c->slot_gen = calloc(P, sizeof *c->slot_gen);
        c->free_slots = calloc(P, sizeof *c->free_slots);
        if (!c->slot_t || !c->slot_seq || !c->slot_gen || !c->free_slots) die("out of memory");
        for (unsigned i = 0; i < P; i++) c->free_slots[i] = P - 1 - i;
        c->nfree = P;
        nats_setup(c);
    } else {
        c->ring = calloc(P, sizeof *c->ring);
        if (!c->ring) die("out of memory");
        if (opt_system == SYS_MESHQ) meshq_setup(c);
    }
}

/* Appends one request to c->w and records its send time. */
static void send_one(conn_t *c, uint64_t t) {
    unsigned P = (unsigned)opt_pipeline;
    switch (opt_system) {
    case SYS_MESHQ:
        buf_append(&c->w, "ENQUEUE ", 8);
        buf_append(&c->w, payload, (size_t)opt_payload);
        buf_append(&c->w, "\n", 1);
        c->ring[(c->head + c->inflight) % P] = t;
        break;
    case SYS_REDIS:
        buf_printf(&c->w, "*3\r\n$5\r\nLPUSH\r\n$%zu\r\n%s\r\n$%d\r\n", strlen(opt_redis_key), opt_redis_key, opt_payload);
        buf_append(&c->w, payload, (size_t)opt_payload);
        static const char wait_cmd[] = "\r\n*3\r\n$4\r\nWAIT\r\n$1\r\n1\r\n$4\r\n1000\r\n";
        buf_append(&c->w, wait_cmd, sizeof wait_cmd - 1);
        c->ring[(c->head + c->inflight) % P] = t;
        break;
    case SYS_NATS: {
        unsigned slot = c->free_slots[--c->nfree];
        uint64_t seq = (uint64_t)c->slot_gen[slot]++ * P + slot;
        c->slot_seq[slot] = seq;
        c->slot_t[slot] = t;
        buf_printf(&c->w, "PUB %s %s.%llu %d\r\n", opt_subject, c->inbox, (unsigned long long)seq, opt_payload);
        buf_append(&c->w, payload, (size_t)opt_payload);
        buf_append(&c->w, "\r\n", 2);
        break;
    }
    }
    c->inflight++;
    n_sent++;
}

static void complete(conn_t *c, uint64_t t_sent, int ok, uint64_t t) {
    (void)c;
    if (ok) {
        n_ok++;
        hist_add(t - t_sent);
    } else {
        n_err++;
    }
    last_progress = t;
}

static void conn_kill(conn_t *c, const char *why) {
    if (c->dead) return;
    show_error("connection %d: %s (%u requests in flight counted as errors)", c->index, why, c->inflight);
    n_err += c->inflight;
    c->inflight = 0;
    c->dead = 1;
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
}

static void flush(conn_t *c) {
    while (!c->dead && c->w.off < c->w.len) {
        ssize_t k = write(c->fd, c->w.p + c->w.off, c->w.len - c->w.off);
        if (k < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            conn_kill(c, strerror(errno));
            return;
        }
        c->w.off += (size_t)k;
    }
    if (c->dead) return;
    int want = c->w.off < c->w.len;
    if (want != c->want_out) {
        struct epoll_event ev = { .events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c };
        epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
        c->want_out = want;
    }
}

static void fill(conn_t *c) {
    if (c->dead || stopping) return;
    uint64_t t = now_ns();
    while (c->inflight < (unsigned)opt_pipeline && (opt_messages == 0 || n_sent < opt_messages)) send_one(c, t);
}

/* ---- reply parsers: return bytes consumed by one reply, 0 if incomplete ---- */

/* meshq: one line per request, in order. */
static size_t parse_meshq(conn_t *c, const char *p, size_t n, uint64_t t) {
    const char *nl = memchr(p, '\n', n);
    if (!nl) return 0;
    size_t len = (size_t)(nl - p);
    if (c->inflight == 0) {
        show_error("connection %d: unexpected line '%.*s'", c->index, (int)(len > 120 ? 120 : len), p);
        return len + 1;
    }
    int ok = len >= 3 && memcmp(p, "OK ", 3) == 0;
    if (!ok) show_error("connection %d: '%.*s'", c->index, (int)(len > 120 ? 120 : len), p);
    uint64_t ts = c->ring[c->head];
    c->head = (c->head + 1) % (unsigned)opt_pipeline;
    c->inflight--;
    complete(c, ts, ok, t);
    return len + 1;
}

/* RESP: parses one value. *type is its first byte, *ival its integer
 * (integers), *text and *tlen the line after the type byte (simple strings,
 * errors). Returns bytes consumed, 0 if incomplete, (size_t)-1 on a protocol
 * error. */
static size_t resp_value(const char *p, size_t n, char *type, long long *ival, const char **text, size_t *tlen) {
    const char *nl = memchr(p, '\n', n);
    if (!nl || nl == p || nl[-1] != '\r') return nl ? (size_t)-1 : 0;
    size_t line = (size_t)(nl - p) + 1; /* through \n */
    *type = p[0];
    *text = p + 1;
    *tlen = line - 3;
    switch (p[0]) {
    case '+': case '-':
        return line;
    case ':':
        *ival = strtoll(p + 1, NULL, 10);
        return line;
    case '$': {
        long long blen = strtoll(p + 1, NULL, 10);
        if (blen < 0) return line; /* null bulk */
        if (n < line + (size_t)blen + 2) return 0;
        *text = p + line;
        *tlen = (size_t)blen;
        return line + (size_t)blen + 2;
    }
    case '*': {
        long long cnt = strtoll(p + 1, NULL, 10);
        size_t used = line;
        for (long long i = 0; i < cnt; i++) {
            char t2; long long iv2; const char *tx2; size_t tl2;
            size_t k = resp_value(p + used, n - used, &t2, &iv2, &tx2, &tl2);
            if (k == 0 || k == (size_t)-1) return k;
            used += k;
        }
        return used;
    }
    default:
        return (size_t)-1;
    }
}

static size_t parse_redis(conn_t *c, const char *p, size_t n, uint64_t t) {
    char type = 0; long long iv = 0; const char *text = NULL; size_t tlen = 0;
    size_t k = resp_value(p, n, &type, &iv, &text, &tlen);
    if (k == 0) return 0;
    if (k == (size_t)-1) { conn_kill(c, "RESP protocol error"); return 0; }
    if (c->inflight == 0) {
        show_error("connection %d: unexpected reply of type '%c'", c->index, type);
        return k;
    }
    if (c->redis_phase == 0) { /* LPUSH */
        c->redis_lpush_ok = type == ':';
        if (!c->redis_lpush_ok)
            show_error("connection %d: LPUSH: '%c%.*s'", c->index, type, (int)(tlen > 120 ? 120 : tlen), text);
        c->redis_phase = 1;
        return k;
    }
    /* WAIT */
    int ok = c->redis_lpush_ok && type == ':' && iv >= 1;
    if (c->redis_lpush_ok && !ok) {
        if (type == ':') show_error("connection %d: WAIT 1 1000 returned %lld replicas", c->index, iv);
        else show_error("connection %d: WAIT: '%c%.*s'", c->index, type, (int)(tlen > 120 ? 120 : tlen), text);
    }
    c->redis_phase = 0;
    uint64_t ts = c->ring[c->head];
    c->head = (c->head + 1) % (unsigned)opt_pipeline;
    c->inflight--;
    complete(c, ts, ok, t);
    return k;
}

static int contains(const char *p, size_t n, const char *needle) {
    return memmem(p, n, needle, strlen(needle)) != NULL;
}

/* NATS: MSG <subject> <sid> [reply-to] <#bytes>\r\n<payload>\r\n, PING, PONG,
 * +OK, -ERR '...', INFO {...}. */
static size_t parse_nats(conn_t *c, const char *p, size_t n, uint64_t t) {
    const char *nl = memchr(p, '\n', n);
    if (!nl) return 0;
    size_t line = (size_t)(nl - p) + 1;
    size_t llen = line - 1;
    if (llen > 0 && p[llen - 1] == '\r') llen--;
    if (llen >= 4 && strncasecmp(p, "MSG ", 4) == 0) {
        char hdr[512];
        if (llen >= sizeof hdr) { conn_kill(c, "MSG line too long"); return 0; }
        memcpy(hdr, p, llen);
        hdr[llen] = 0;
        char *f[6];
        int nf = 0;
        for (char *s = strtok(hdr, " \t"); s && nf < 6; s = strtok(NULL, " \t")) f[nf++] = s;
        if (nf < 4) { conn_kill(c, "bad MSG line"); return 0; }
        size_t plen = (size_t)strtoull(f[nf - 1], NULL, 10);
        if (n < line + plen + 2) return 0;
        const char *body = p + line;
        /* subject = <inbox>.<seq> */
        const char *subj = f[1];
        const char *dot = strrchr(subj, '.');
        uint64_t seq = dot ? strtoull(dot + 1, NULL, 10) : 0;
        unsigned P = (unsigned)opt_pipeline;
        unsigned slot = (unsigned)(seq % P);
        if (!dot || strncmp(subj, c->inbox, (size_t)(dot - subj)) != 0 || c->slot_seq[slot] != seq ||
            c->slot_t[slot] == 0) {
            show_error("connection %d: reply on '%s' matches no request in flight", c->index, subj);
            return line + plen + 2;
        }
        int ok = contains(body, plen, "\"seq\"") && !contains(body, plen, "\"error\"");
        if (!ok) show_error("connection %d: '%.*s'", c->index, (int)(plen > 200 ? 200 : plen), body);
        uint64_t ts = c->slot_t[slot];
        c->slot_t[slot] = 0;
        c->free_slots[c->nfree++] = slot;
        c->inflight--;
        complete(c, ts, ok, t);
        return line + plen + 2;
    }
    if (llen == 4 && strncasecmp(p, "PING", 4) == 0) {
        buf_append(&c->w, "PONG\r\n", 6);
        return line;
    }
    if (llen >= 4 && strncmp(p, "-ERR", 4) == 0) {
        show_error("connection %d: %.*s", c->index, (int)(llen > 200 ? 200 : llen), p);
        return line;
    }
    return line; /* +OK, PONG, INFO */
}

static void on_readable(conn_t *c) {
    for (;;) {
        buf_reserve(&c->r, 65536);
        size_t room = c->r.cap - c->r.len;
        ssize_t k = read(c->fd, c->r.p + c->r.len, room);
        if (k < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            conn_kill(c, strerror(errno));
            return;
        }
        if (k == 0) { conn_kill(c, "closed by the server"); return; }
        c->r.len += (size_t)k;
        if ((size_t)k < room) break;
    }
    uint64_t t = now_ns();
    while (!c->dead && c->r.off < c->r.len) {
        const char *p = c->r.p + c->r.off;
        size_t n = c->r.len - c->r.off;
        size_t used = opt_system == SYS_MESHQ ? parse_meshq(c, p, n, t)
                    : opt_system == SYS_REDIS ? parse_redis(c, p, n, t)
                    : parse_nats(c, p, n, t);
        if (used == 0) break;
        c->r.off += used;
    }
}

/* ---- --nats-request ---- */
static int nats_request(void) {
    conn_t c;
    memset(&c, 0, sizeof c);
    opt_system = SYS_NATS;
    c.fd = connect_to(opt_ports[0]);
    nats_setup(&c);
    char head[512];
    size_t dlen = strlen(opt_data);
    int n = snprintf(head, sizeof head, "PUB %s %s.1 %zu\r\n", opt_request, c.inbox, dlen);
    write_all_blocking(c.fd, head, (size_t)n);
    write_all_blocking(c.fd, opt_data, dlen);
    write_all_blocking(c.fd, "\r\n", 2);
    uint64_t deadline = now_ns() + (uint64_t)(opt_timeout * 1e9);
    for (;;) {
        char *p = c.r.p ? c.r.p + c.r.off : NULL;
        size_t avail = c.r.len - c.r.off;
        const char *nl = p ? memchr(p, '\n', avail) : NULL;
        if (nl) {
            size_t line = (size_t)(nl - p) + 1;
            if (strncmp(p, "MSG ", 4) == 0) {
                const char *sp = nl - 1;
                while (sp > p && sp[-1] != ' ') sp--;
                size_t plen = (size_t)strtoull(sp, NULL, 10);
                if (avail >= line + plen + 2) {
                    fwrite(p + line, 1, plen, stdout);
                    fputc('\n', stdout);
                    return 0;
                }
            } else {
                if (strncmp(p, "PING", 4) == 0) write_all_blocking(c.fd, "PONG\r\n", 6);
                if (strncmp(p, "-ERR", 4) == 0) fprintf(stderr, "loadgen: %.*s\n", (int)line, p);
                c.r.off += line;
                continue;
            }
        }
        uint64_t t = now_ns();
        if (t >= deadline) { fprintf(stderr, "loadgen: no reply to %s\n", opt_request); return 3; }
        uint64_t left_ms = (deadline - t) / 1000000 + 1;
        struct timeval tv = { .tv_sec = (time_t)(left_ms / 1000), .tv_usec = (suseconds_t)(left_ms % 1000) * 1000 };
        setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        buf_reserve(&c.r, 4096);
        ssize_t k = read(c.fd, c.r.p + c.r.len, c.r.cap - c.r.len);
        if (k < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
        if (k <= 0) { fprintf(stderr, "loadgen: connection closed\n"); return 3; }
        c.r.len += (size_t)k;
    }
}

/* ---- main ---- */
static void usage(void) {
    fprintf(stderr,
        "usage: loadgen --system meshq|redis|nats [--host H] --port P[,P...] [--connections N]\n"
        "               [--pipeline P] [--messages M] [--seconds S] [--payload-bytes B]\n"
        "               [--timeout S] [--no-hello] [--subject SUBJ] [--key K] [--show-errors N]\n"
        "       loadgen --nats-request SUBJECT [--data TEXT] [--host H] --port P [--timeout S]\n"
        "Ports: connections are spread round-robin over the list. A run stops after M\n"
        "requests or S seconds, whichever comes first (at least one is needed).\n");
    exit(2);
}

static void parse_ports(const char *s) {
    char *copy = strdup(s);
    for (char *tok = strtok(copy, ","); tok; tok = strtok(NULL, ",")) {
        if (opt_nports == (int)(sizeof opt_ports / sizeof opt_ports[0])) usage();
        int p = atoi(tok);
        if (p <= 0 || p > 65535) usage();
        opt_ports[opt_nports++] = p;
    }
    free(copy);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED() do { if (!v) usage(); i++; } while (0)
        if (!strcmp(a, "--system")) {
            NEED();
            opt_system = !strcmp(v, "meshq") ? SYS_MESHQ : !strcmp(v, "redis") ? SYS_REDIS : !strcmp(v, "nats") ? SYS_NATS : -2;
            if (opt_system < 0) usage();
        } else if (!strcmp(a, "--host")) { NEED(); opt_host = v; }
        else if (!strcmp(a, "--port") || !strcmp(a, "--ports")) { NEED(); parse_ports(v); }
        else if (!strcmp(a, "--connections")) { NEED(); opt_conns = atoi(v); }
        else if (!strcmp(a, "--pipeline")) { NEED(); opt_pipeline = atoi(v); }
        else if (!strcmp(a, "--messages")) { NEED(); opt_messages = strtoull(v, NULL, 10); }
        else if (!strcmp(a, "--seconds")) { NEED(); opt_seconds = atof(v); }
        else if (!strcmp(a, "--payload-bytes")) { NEED(); opt_payload = atoi(v); }
        else if (!strcmp(a, "--timeout")) { NEED(); opt_timeout = atof(v); }
        else if (!strcmp(a, "--no-hello")) opt_hello = 0;
        else if (!strcmp(a, "--subject")) { NEED(); opt_subject = v; }
        else if (!strcmp(a, "--key")) { NEED(); opt_redis_key = v; }
        else if (!strcmp(a, "--show-errors")) { NEED(); opt_max_errors_shown = atoi(v); }
        else if (!strcmp(a, "--nats-request")) { NEED(); opt_request = v; }
        else if (!strcmp(a, "--data")) { NEED(); opt_data = v; }
        else usage();
#undef NEED
    }
    if (opt_nports == 0 || opt_timeout <= 0) usage();
    signal(SIGPIPE, SIG_IGN);
    if (opt_request) return nats_request();
    if (opt_system < 0 || opt_conns < 1 || opt_pipeline < 1 || opt_payload < 1) usage();
    if (opt_messages == 0 && opt_seconds <= 0) usage();

    payload = malloc((size_t)opt_payload + 1);
    if (!payload) die("out of memory");
    for (int i = 0; i < opt_payload; i++) payload[i] = (char)('a' + i % 26);
    payload[opt_payload] = 0;

    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) die("epoll_create1: %s", strerror(errno));
    conns = calloc((size_t)opt_conns, sizeof *conns);
    if (!conns) die("out of memory");
    for (int i = 0; i < opt_conns; i++) {
        conn_t *c = &conns[i];
        conn_init(c, i);
        set_nonblocking(c->fd);
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl: %s", strerror(errno));
    }

    uint64_t t_start = now_ns();
    uint64_t deadline = opt_seconds > 0 ? t_start + (uint64_t)(opt_seconds * 1e9) : 0;
    uint64_t stall_ns = (uint64_t)(opt_timeout * 1e9);
    last_progress = t_start;
    for (int i = 0; i < opt_conns; i++) {
        conn_t *c = &conns[i];
        /* a reply already buffered during setup (none expected) */
        if (c->r.off < c->r.len) on_readable(c);
        fill(c);
        flush(c);
    }

    struct epoll_event evs[256];
    uint64_t t_end = t_start;
    int stalled = 0;
    for (;;) {
        uint64_t t = now_ns();
        if (deadline && t >= deadline) { t_end = t; break; }
        if (opt_messages && n_ok + n_err >= opt_messages) { t_end = last_progress; break; }
        int alive = 0;
        for (int i = 0; i < opt_conns; i++) alive += !conns[i].dead;
        if (!alive) { t_end = t; break; }
        if (t - last_progress >= stall_ns) { t_end = t; stalled = 1; break; }
        uint64_t until = last_progress + stall_ns;
        if (deadline && deadline < until) until = deadline;
        int timeout_ms = (int)((until - t) / 1000000) + 1;
        int n = epoll_wait(epfd, evs, (int)(sizeof evs / sizeof evs[0]), timeout_ms);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait: %s", strerror(errno));
        }
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            if (c->dead) continue;
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable(c);
            if (c->dead) continue;
            if (deadline && now_ns() >= deadline) stopping = 1;
            fill(c);
            flush(c);
        }
    }
    if (stalled)
        show_error("no reply for %.1f s: stopping (%llu requests in flight not counted)", opt_timeout,
                   (unsigned long long)(n_sent - n_ok - n_err));
    double secs = (double)(t_end - t_start) / 1e9;
    if (secs <= 0) secs = 1e-9;
    printf("system=%s connections=%d pipeline=%d payload_bytes=%d ok=%llu errors=%llu seconds=%.3f "
           "throughput=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f\n",
           sys_names[opt_system], opt_conns, opt_pipeline, opt_payload, (unsigned long long)n_ok,
           (unsigned long long)(n_err + (stalled ? n_sent - n_ok - n_err : 0)), secs, (double)n_ok / secs,
           hist_quantile_ms(0.50), hist_quantile_ms(0.90), hist_quantile_ms(0.99), (double)hist_max / 1e6);
    fflush(stdout);
    for (int i = 0; i < opt_conns; i++)
        if (!conns[i].dead) close(conns[i].fd);
    return 0;
}
