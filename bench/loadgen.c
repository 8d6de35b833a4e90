/* loadgen: the wschat benchmark's load generator.
 *
 * Many WebSocket clients in one epoll loop on one thread: non-blocking sockets, hand-written
 * client framing (masked, as RFC 6455 requires of clients) and just enough JSON scanning to find
 * a frame's type and the few fields a scenario measures. A Python generator tops out far below
 * the server it would measure; this one reports its own CPU time (getrusage) so the reader can
 * check it was not the bottleneck, and, given --server-pid, the server's CPU time and memory
 * (from /proc) over the same window.
 *
 * Modes (bench/scenarios.py drives them):
 *   fanout   N clients in one room; S senders keep W messages each in flight (a sender's message
 *            is "in flight" until its own copy of the broadcast comes back); deliveries/s.
 *   latency  N clients in one room; S senders send R messages/s in total, open loop (on a
 *            clock, whatever comes back); latency = receive time - send time carried in the text.
 *   join     N clients connect and choose names at once; time until every name is accepted and
 *            every client has seen a user_join counting all N; bytes received from the server.
 *   idle     N clients connect (accept time), then log in. At each step prints an "event" line
 *            and waits for a line on stdin, so the caller can measure the server's memory.
 *   durable  S clients, each alone in its own room, keep W messages with a client_msg_id in
 *            flight; acknowledged messages/s.
 *
 * Every chat text this program sends starts "<sender>:<number>:<send time ns>:", so receivers
 * can measure latency and check order (numbers from one sender only grow; so must the room's
 * "seq" when the server sends one). After the measured window no new messages are sent and the
 * program waits (bounded) until every message has reached every client, then checks the counts.
 *
 * Output: one JSON object on stdout at the end (plus "event" lines in idle mode). Progress and
 * problems go to stderr. Everything is bounded by --timeout; traffic goes only to --host, which
 * must be a loopback address.
 *
 * Build: cc -O2 -o loadgen loadgen.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
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

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

enum { M_FANOUT, M_LATENCY, M_JOIN, M_IDLE, M_DURABLE, M_TYPING };
enum { S_FREE, S_CONNECTING, S_HANDSHAKE, S_OPEN, S_CLOSED };
#define STDIN_TAG 0xFFFFFFFFu

typedef struct {
    int fd;
    uint8_t state, logged, converged, dirty, want_out;
    int inflight;
    uint32_t sent;     /* messages this client sent */
    int64_t last_seq;  /* last room seq received, for the order check */
    uint32_t last_own; /* number of the last own message received back */
    char *in;          /* an incomplete frame carried over to the next read */
    uint32_t inlen;
    char *out; /* frames waiting to be written */
    uint32_t outlen, outcap;
    uint32_t typing_in_sec, typing_max; /* typing mode: `typing` frames in the current second, the most in one */
    int64_t typing_sec;                 /* the measured second those were counted in */
} Conn;

static struct {
    const char *host;
    int port, n, srcs, mode, senders, window, msg_chars, concurrency, server_pid, login_idle;
    double duration, warmup, rate, timeout, drain;
    const char *prefix;
    /* a second server process of the same chat (several processes on one Redis): --port2, and
       --split alternate (every other client) or senders (the senders on --port, the rest on it) */
    int port2, split_senders;
} opt = {"127.0.0.1", 8765, 100, 1, M_FANOUT, 1, 1, 60, 500, 0, 1, 5, 1, 20, 60, 10, "", 0, 0};

static Conn *conns;
static int epfd;
static int *dirty_list, n_dirty;
static char *rb;
static size_t rbcap = 1 << 20;
static uint32_t rng = 2463534242u;

/* counters */
static int opened, n_pending, n_open, n_logged, n_converged, n_dropped;
static long connect_errors, handshake_errors, name_errors, error_frames, close_frames, order_errors;
static long long deliveries, acks, bytes_in, bytes_out, sent_total, pings, other_frames, typing_frames;
static int sending; /* senders send (or replace) messages only while set */
static uint64_t t_start, t_first_open, t_open_all, t_logged_all, t_converged, measure_from;
static uint32_t *lat;
static size_t nlat, latcap;
static uint64_t send0; /* latency mode: time of the first paced send */
static long long paced;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double secs(uint64_t a, uint64_t b) { return b > a ? (double)(b - a) / 1e9 : 0.0; }

static double self_cpu(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* CPU seconds (all threads) of a process, from /proc/PID/stat; -1 if unknown. */
static double pid_cpu(int pid) {
    if (!pid) return -1;
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t k = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[k] = 0;
    char *p = strrchr(buf, ')');
    if (!p) return -1;
    unsigned long ut = 0, st = 0;
    /* after ")": state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime(14) stime(15) */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2) return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double server_cpu(void) { return pid_cpu(opt.server_pid); }

/* --watch-pid (repeatable): more processes whose CPU over the measured window is reported
   (the other servers and Redis of a cluster run), in "watched_cpu_s" in the order given */
#define MAX_WATCHED 8
static int watched[MAX_WATCHED], n_watched;
static double watched0[MAX_WATCHED], watched_window[MAX_WATCHED];

/* Resident memory of the server in KiB, from /proc/PID/status; -1 if unknown. */
static long server_rss_kib(void) {
    if (!opt.server_pid) return -1;
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", opt.server_pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) {
            kib = strtol(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kib;
}

static void die(const char *msg) {
    fprintf(stderr, "loadgen: %s\n", msg);
    exit(2);
}

static void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n);
    if (!q && n) die("out of memory");
    return q;
}

/* ------------------------------------------------------------------ output */

static void mark_dirty(int i) {
    if (!conns[i].dirty) {
        conns[i].dirty = 1;
        dirty_list[n_dirty++] = i;
    }
}

static void out_reserve(Conn *c, size_t extra) {
    if (c->outlen + extra > c->outcap) {
        size_t cap = c->outcap ? c->outcap : 256;
        while (cap < c->outlen + extra) cap *= 2;
        c->out = xrealloc(c->out, cap);
        c->outcap = (uint32_t)cap;
    }
}

/* Queue one masked client frame; written at the end of this loop iteration. */
static void ws_queue(int i, int opcode, const char *payload, size_t n) {
    Conn *c = &conns[i];
    out_reserve(c, n + 14);
    unsigned char *h = (unsigned char *)c->out + c->outlen;
    size_t k = 0;
    h[k++] = (unsigned char)(0x80 | opcode);
    if (n < 126) {
        h[k++] = (unsigned char)(0x80 | n);
    } else if (n < 65536) {
        h[k++] = 0x80 | 126;
        h[k++] = (unsigned char)(n >> 8);
        h[k++] = (unsigned char)n;
    } else {
        h[k++] = 0x80 | 127;
        for (int s = 56; s >= 0; s -= 8) h[k++] = (unsigned char)((uint64_t)n >> s);
    }
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    unsigned char key[4] = {(unsigned char)rng, (unsigned char)(rng >> 8), (unsigned char)(rng >> 16),
                            (unsigned char)(rng >> 24)};
    memcpy(h + k, key, 4);
    k += 4;
    for (size_t j = 0; j < n; j++) h[k + j] = (unsigned char)payload[j] ^ key[j & 3];
    c->outlen += (uint32_t)(k + n);
    mark_dirty(i);
}

static void drop(int i, int unexpected) {
    Conn *c = &conns[i];
    if (c->state == S_CLOSED || c->state == S_FREE) return;
    if (c->state == S_CONNECTING || c->state == S_HANDSHAKE) n_pending--;
    if (c->state == S_OPEN) n_open--;
    close(c->fd);
    c->fd = -1;
    c->state = S_CLOSED;
    free(c->in);
    c->in = NULL;
    c->inlen = 0;
    c->outlen = 0;
    if (unexpected) n_dropped++;
}

static void set_events(int i, uint32_t ev) {
    struct epoll_event e = {.events = ev, .data.u32 = (uint32_t)i};
    epoll_ctl(epfd, EPOLL_CTL_MOD, conns[i].fd, &e);
}

static void flush_one(int i) {
    Conn *c = &conns[i];
    c->dirty = 0;
    if (c->state != S_OPEN || !c->outlen) return;
    ssize_t w = send(c->fd, c->out, c->outlen, MSG_NOSIGNAL);
    if (w < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) w = 0;
        else {
            drop(i, 1);
            return;
        }
    }
    bytes_out += w;
    if ((uint32_t)w < c->outlen) {
        memmove(c->out, c->out + w, c->outlen - (size_t)w);
        c->outlen -= (uint32_t)w;
        if (!c->want_out) {
            c->want_out = 1;
            set_events(i, EPOLLIN | EPOLLOUT);
        }
    } else {
        c->outlen = 0;
        if (c->want_out) {
            c->want_out = 0;
            set_events(i, EPOLLIN);
        }
    }
}

static void flush_dirty(void) {
    for (int k = 0; k < n_dirty; k++) flush_one(dirty_list[k]);
    n_dirty = 0;
}

/* ------------------------------------------------------------------ what clients send */

static void send_login(int i) {
    char buf[160];
    int k;
    if (opt.mode == M_DURABLE)
        k = snprintf(buf, sizeof buf, "{\"type\":\"set_username\",\"username\":\"%su%d\",\"rooms\":[\"%sd%d\"]}",
                     opt.prefix, i, opt.prefix, i);
    else
        k = snprintf(buf, sizeof buf, "{\"type\":\"set_username\",\"username\":\"%su%d\"}", opt.prefix, i);
    ws_queue(i, 1, buf, (size_t)k);
}

/* typing mode: "I am typing" in general (renewed every 3 s, as clients are asked to) */
static void send_typing(int i) {
    static const char f[] = "{\"type\":\"typing\",\"room\":\"general\",\"active\":true}";
    ws_queue(i, 1, f, sizeof f - 1);
    sent_total++;
}

/* A `typing` frame received in the measured window: counted per member and per second. */
static void on_typing(int i, uint64_t tnow) {
    Conn *c = &conns[i];
    if (!measure_from || tnow < measure_from) return;
    typing_frames++;
    int64_t sec = (int64_t)((tnow - measure_from) / 1000000000ull);
    if (sec != c->typing_sec) {
        c->typing_sec = sec;
        c->typing_in_sec = 0;
    }
    if (++c->typing_in_sec > c->typing_max) c->typing_max = c->typing_in_sec;
}

static void send_chat(int i) {
    Conn *c = &conns[i];
    char buf[8192];
    uint32_t num = ++c->sent;
    unsigned long long t = (unsigned long long)now_ns();
    int k;
    if (opt.mode == M_DURABLE)
        k = snprintf(buf, sizeof buf,
                     "{\"type\":\"chat\",\"room\":\"%sd%d\",\"client_msg_id\":\"%d-%u\",\"message\":\"", opt.prefix,
                     i, i, num);
    else
        k = snprintf(buf, sizeof buf, "{\"type\":\"chat\",\"message\":\"");
    int text0 = k;
    k += snprintf(buf + k, sizeof buf - (size_t)k, "%d:%u:%llu:", i, num, t);
    while (k - text0 < opt.msg_chars && k < (int)sizeof buf - 4) buf[k++] = 'x';
    buf[k++] = '"';
    buf[k++] = '}';
    ws_queue(i, 1, buf, (size_t)k);
    c->inflight++;
    sent_total++;
}

/* ------------------------------------------------------------------ what clients receive */

/* The value after the key `lit` (which ends with the colon), past any blanks: JSON from
 * Python's json.dumps has a space after the colon unless compact separators were asked for. */
static const char *find(const char *p, size_t n, const char *lit, size_t litn) {
    const char *q = memmem(p, n, lit, litn);
    if (!q) return NULL;
    q += litn;
    while (q < p + n && *q == ' ') q++;
    return q;
}

static long long parse_int(const char *p, const char *end) {
    long long v = 0;
    int neg = 0;
    if (p < end && *p == '-') {
        neg = 1;
        p++;
    }
    while (p < end && *p >= '0' && *p <= '9') v = v * 10 + (*p++ - '0');
    return neg ? -v : v;
}

#define LIT(s) s, sizeof(s) - 1
#define IS(t, tn, s) ((tn) >= sizeof(s) - 1 && !memcmp((t), (s), sizeof(s) - 1))

static void on_chat(int i, const char *p, size_t n, uint64_t tnow) {
    Conn *c = &conns[i];
    const char *end = p + n;
    deliveries++;
    const char *s = find(p, n, LIT("\"seq\":"));
    if (s) {
        long long seq = parse_int(s, end);
        if (seq <= c->last_seq) order_errors++;
        c->last_seq = seq;
    }
    const char *m = find(p, n, LIT("\"message\":"));
    if (!m || *m++ != '"') return;
    long long who = parse_int(m, end);
    const char *q = memchr(m, ':', (size_t)(end - m));
    if (!q) return;
    long long num = parse_int(q + 1, end);
    q = memchr(q + 1, ':', (size_t)(end - q - 1));
    if (!q) return;
    uint64_t t = (uint64_t)parse_int(q + 1, end);
    if (opt.mode == M_LATENCY && t >= measure_from && measure_from && tnow >= t) {
        if (nlat == latcap) {
            latcap = latcap ? latcap * 2 : 1 << 16;
            lat = xrealloc(lat, latcap * sizeof *lat);
        }
        uint64_t us = (tnow - t) / 1000;
        lat[nlat++] = us > 0xFFFFFFFFu ? 0xFFFFFFFFu : (uint32_t)us;
    }
    if (who == i) {
        if ((uint32_t)num <= c->last_own) order_errors++;
        c->last_own = (uint32_t)num;
        c->inflight--;
        if (opt.mode == M_FANOUT && sending) send_chat(i);
    }
}

static void on_text(int i, const char *p, size_t n, uint64_t tnow) {
    Conn *c = &conns[i];
    const char *t = find(p, n < 64 ? n : 64, LIT("\"type\":"));
    if (!t || *t++ != '"') {
        other_frames++;
        return;
    }
    size_t tn = (size_t)(p + n - t);
    if (IS(t, tn, "chat\"")) {
        on_chat(i, p, n, tnow);
    } else if (IS(t, tn, "ack\"")) {
        acks++;
        c->inflight--;
        if (opt.mode == M_DURABLE && sending) send_chat(i);
    } else if (IS(t, tn, "user_join\"")) {
        const char *u = find(p, n, LIT("\"online_users\":"));
        if (u && !c->converged && parse_int(u, p + n) >= opt.n) {
            c->converged = 1;
            if (++n_converged == opt.n) t_converged = tnow;
        }
    } else if (IS(t, tn, "typing\"")) {
        on_typing(i, tnow);
    } else if (IS(t, tn, "username_accepted\"")) {
        if (!c->logged) {
            c->logged = 1;
            if (++n_logged == opt.n) t_logged_all = tnow;
        }
    } else if (IS(t, tn, "username_error\"")) {
        if (name_errors++ < 5) fprintf(stderr, "loadgen: client %d: %.*s\n", i, (int)(n < 300 ? n : 300), p);
    } else if (IS(t, tn, "error\"")) {
        if (error_frames++ < 5) fprintf(stderr, "loadgen: client %d: %.*s\n", i, (int)(n < 300 ? n : 300), p);
    } else {
        other_frames++;
    }
}

static void on_open(int i) {
    if (opt.mode != M_IDLE) send_login(i); /* idle clients log in after the first pause */
}

/* Parse complete frames in rb[0..len); returns how many bytes were consumed. */
static size_t parse_frames(int i, size_t len, uint64_t tnow) {
    size_t pos = 0;
    const unsigned char *b = (const unsigned char *)rb;
    while (conns[i].state == S_OPEN && len - pos >= 2) {
        int opcode = b[pos] & 0x0F;
        uint64_t plen = b[pos + 1] & 0x7F;
        size_t hdr = 2;
        if (plen == 126) {
            if (len - pos < 4) break;
            plen = ((uint64_t)b[pos + 2] << 8) | b[pos + 3];
            hdr = 4;
        } else if (plen == 127) {
            if (len - pos < 10) break;
            plen = 0;
            for (int k = 0; k < 8; k++) plen = (plen << 8) | b[pos + 2 + k];
            hdr = 10;
        }
        if (b[pos + 1] & 0x80) hdr += 4; /* servers do not mask; tolerate it anyway */
        if (len - pos < hdr + plen) break;
        const char *payload = rb + pos + hdr;
        if (opcode == 1) {
            on_text(i, payload, (size_t)plen, tnow);
        } else if (opcode == 9) {
            pings++;
            ws_queue(i, 0xA, payload, (size_t)plen);
        } else if (opcode == 8) {
            close_frames++;
            drop(i, 1);
            return len;
        } else {
            other_frames++;
        }
        pos += hdr + plen;
    }
    return pos;
}

static void on_readable(int i) {
    Conn *c = &conns[i];
    size_t have = c->inlen;
    if (rbcap < have + 65536) {
        while (rbcap < have + 65536) rbcap *= 2;
        rb = xrealloc(rb, rbcap);
    }
    if (have) memcpy(rb, c->in, have);
    ssize_t r = read(c->fd, rb + have, rbcap - have);
    if (r <= 0) {
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
        if (c->state == S_HANDSHAKE) handshake_errors++;
        drop(i, 1);
        return;
    }
    bytes_in += r;
    uint64_t tnow = now_ns();
    size_t len = have + (size_t)r, pos = 0;
    if (c->state == S_HANDSHAKE) {
        char *e = memmem(rb, len, "\r\n\r\n", 4);
        if (!e) {
            if (len > 16384) {
                handshake_errors++;
                drop(i, 1);
                return;
            }
            c->in = xrealloc(c->in, len);
            memcpy(c->in, rb, len);
            c->inlen = (uint32_t)len;
            return;
        }
        if (len < 12 || memcmp(rb, "HTTP/1.1 101", 12)) {
            if (handshake_errors++ < 5) fprintf(stderr, "loadgen: handshake refused: %.*s\n", 40, rb);
            drop(i, 1);
            return;
        }
        pos = (size_t)(e + 4 - rb);
        c->state = S_OPEN;
        n_pending--;
        if (!t_first_open) t_first_open = tnow;
        if (++n_open == opt.n) t_open_all = tnow;
        on_open(i);
    }
    if (pos < len) {
        /* parse in place from rb + pos: shift so parse_frames sees frames from 0 */
        if (pos) memmove(rb, rb + pos, len - pos);
        len -= pos;
        size_t used = parse_frames(i, len, tnow);
        if (c->state != S_OPEN) return;
        if (used < len) {
            c->in = xrealloc(c->in, len - used);
            memcpy(c->in, rb + used, len - used);
            c->inlen = (uint32_t)(len - used);
            return;
        }
    }
    free(c->in);
    c->in = NULL;
    c->inlen = 0;
}

/* ------------------------------------------------------------------ connecting */

static char handshake_req[512];
static int handshake_len;
static struct sockaddr_in dst, dst2;

/* where client i connects: --port, or --port2 for its share of the clients */
static const struct sockaddr_in *target(int i) {
    if (!opt.port2) return &dst;
    int second = opt.split_senders ? i >= opt.senders : i % 2 == 1;
    return second ? &dst2 : &dst;
}

static void open_more(void) {
    while (opened < opt.n && n_pending < opt.concurrency) {
        int i = opened++;
        Conn *c = &conns[i];
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            if (connect_errors++ < 5) perror("loadgen: socket");
            c->state = S_CLOSED;
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (opt.srcs > 1) {
            setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
            struct sockaddr_in src = {.sin_family = AF_INET, .sin_port = 0};
            src.sin_addr.s_addr = htonl(0x7F000001u + (uint32_t)(i % opt.srcs));
            if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0) {
                if (connect_errors++ < 5) perror("loadgen: bind");
                close(fd);
                c->state = S_CLOSED;
                continue;
            }
        }
        if (connect(fd, (const struct sockaddr *)target(i), sizeof dst) < 0 && errno != EINPROGRESS) {
            if (connect_errors++ < 5) perror("loadgen: connect");
            close(fd);
            c->state = S_CLOSED;
            continue;
        }
        c->fd = fd;
        c->state = S_CONNECTING;
        c->last_seq = -1;
        n_pending++;
        struct epoll_event e = {.events = EPOLLOUT, .data.u32 = (uint32_t)i};
        epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &e);
    }
}

static void on_connected(int i) {
    Conn *c = &conns[i];
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
        if (connect_errors++ < 5) fprintf(stderr, "loadgen: connect: %s\n", strerror(err));
        drop(i, 0);
        return;
    }
    ssize_t w = send(c->fd, handshake_req, (size_t)handshake_len, MSG_NOSIGNAL);
    if (w != handshake_len) {
        handshake_errors++;
        drop(i, 1);
        return;
    }
    bytes_out += w;
    c->state = S_HANDSHAKE;
    set_events(i, EPOLLIN);
}

/* ------------------------------------------------------------------ the loop */

static int stdin_line; /* a line (or EOF) arrived on stdin */

static void pump(int timeout_ms) {
    static struct epoll_event ev[4096];
    open_more();
    int k = epoll_wait(epfd, ev, 4096, timeout_ms);
    for (int j = 0; j < k; j++) {
        uint32_t i = ev[j].data.u32;
        if (i == STDIN_TAG) {
            char tmp[256];
            if (read(0, tmp, sizeof tmp) <= 0 || memchr(tmp, '\n', sizeof tmp)) stdin_line = 1;
            continue;
        }
        Conn *c = &conns[i];
        if (c->state == S_CONNECTING) {
            on_connected((int)i);
            continue;
        }
        if (c->state != S_OPEN && c->state != S_HANDSHAKE) continue;
        if (ev[j].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable((int)i);
        if (c->state == S_OPEN && (ev[j].events & EPOLLOUT)) flush_one((int)i);
    }
    flush_dirty();
}

static int timed_out(void) { return secs(t_start, now_ns()) > opt.timeout; }

/* Run the loop until cond() holds or the overall timeout passes; returns cond(). */
static int run_until(int (*cond)(void), int timeout_ms) {
    while (!cond()) {
        if (timed_out()) return 0;
        pump(timeout_ms);
    }
    return 1;
}

static int all_open(void) { return n_open + n_dropped + connect_errors + handshake_errors >= opt.n && opened == opt.n && n_pending == 0; }
static int all_logged(void) { return n_logged >= opt.n - (n_dropped + connect_errors + handshake_errors); }
static int all_converged(void) { return n_converged >= opt.n - (n_dropped + connect_errors + handshake_errors); }
static int got_stdin(void) { return stdin_line; }

static long long expected_deliveries(void) { return sent_total * (long long)n_open; }
static int drained(void) {
    if (opt.mode == M_DURABLE) return acks + error_frames >= sent_total;
    if (opt.mode == M_TYPING) return 1; /* nothing to wait for: typing lists are not acknowledged */
    return deliveries >= expected_deliveries();
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(double p) {
    if (!nlat) return -1;
    size_t k = (size_t)(p * (double)(nlat - 1) + 0.5);
    return lat[k] / 1000.0;
}

static void usage(void) {
    fprintf(stderr,
            "usage: loadgen --mode fanout|latency|join|idle|durable|typing --port P [--host 127.0.0.1] [--clients N]\n"
            "  [--senders S] [--window W] [--rate R] [--duration s] [--warmup s] [--drain s] [--timeout s]\n"
            "  [--msg-chars C] [--srcs K] [--concurrency C] [--server-pid PID] [--prefix P] [--no-login]\n"
            "  [--port2 P2 [--split alternate|senders]] [--watch-pid PID]...\n");
    exit(2);
}

int main(int argc, char **argv) {
    for (int a = 1; a < argc; a++) {
        const char *k = argv[a];
        const char *v = a + 1 < argc ? argv[a + 1] : NULL;
        if (!strcmp(k, "--no-login")) {
            opt.login_idle = 0;
            continue;
        }
        if (!v) usage();
        a++;
        if (!strcmp(k, "--host")) opt.host = v;
        else if (!strcmp(k, "--port")) opt.port = atoi(v);
        else if (!strcmp(k, "--port2")) opt.port2 = atoi(v);
        else if (!strcmp(k, "--split")) {
            if (!strcmp(v, "alternate")) opt.split_senders = 0;
            else if (!strcmp(v, "senders")) opt.split_senders = 1;
            else usage();
        }
        else if (!strcmp(k, "--clients")) opt.n = atoi(v);
        else if (!strcmp(k, "--srcs")) opt.srcs = atoi(v);
        else if (!strcmp(k, "--senders")) opt.senders = atoi(v);
        else if (!strcmp(k, "--window")) opt.window = atoi(v);
        else if (!strcmp(k, "--msg-chars")) opt.msg_chars = atoi(v);
        else if (!strcmp(k, "--concurrency")) opt.concurrency = atoi(v);
        else if (!strcmp(k, "--server-pid")) opt.server_pid = atoi(v);
        else if (!strcmp(k, "--watch-pid")) {
            if (n_watched == MAX_WATCHED) usage();
            watched[n_watched++] = atoi(v);
        }
        else if (!strcmp(k, "--duration")) opt.duration = atof(v);
        else if (!strcmp(k, "--warmup")) opt.warmup = atof(v);
        else if (!strcmp(k, "--rate")) opt.rate = atof(v);
        else if (!strcmp(k, "--timeout")) opt.timeout = atof(v);
        else if (!strcmp(k, "--drain")) opt.drain = atof(v);
        else if (!strcmp(k, "--prefix")) opt.prefix = v;
        else if (!strcmp(k, "--mode")) {
            if (!strcmp(v, "fanout")) opt.mode = M_FANOUT;
            else if (!strcmp(v, "latency")) opt.mode = M_LATENCY;
            else if (!strcmp(v, "join")) opt.mode = M_JOIN;
            else if (!strcmp(v, "idle")) opt.mode = M_IDLE;
            else if (!strcmp(v, "durable")) opt.mode = M_DURABLE;
            else if (!strcmp(v, "typing")) opt.mode = M_TYPING;
            else usage();
        } else usage();
    }
    if (opt.n < 1 || opt.senders < 1 || opt.senders > opt.n || opt.window < 1 || opt.srcs < 1 || opt.srcs > 250 ||
        opt.msg_chars < 30 || opt.msg_chars > 4000 || opt.concurrency < 1)
        usage();
    if (inet_pton(AF_INET, opt.host, &dst.sin_addr) != 1) die("--host must be an IPv4 address");
    if ((ntohl(dst.sin_addr.s_addr) >> 24) != 127) die("--host must be a loopback address (127.0.0.0/8)");
    dst.sin_family = AF_INET;
    dst.sin_port = htons((uint16_t)opt.port);
    dst2 = dst;
    dst2.sin_port = htons((uint16_t)opt.port2);
    signal(SIGPIPE, SIG_IGN);

    handshake_len = snprintf(handshake_req, sizeof handshake_req,
                             "GET / HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                             opt.host, opt.port);
    conns = calloc((size_t)opt.n, sizeof *conns);
    dirty_list = calloc((size_t)opt.n, sizeof *dirty_list);
    rb = malloc(rbcap);
    if (!conns || !dirty_list || !rb) die("out of memory");
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (opt.mode == M_IDLE) {
        struct epoll_event e = {.events = EPOLLIN, .data.u32 = STDIN_TAG};
        epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &e);
    }

    t_start = now_ns();
    double cpu0 = self_cpu(), scpu0 = server_cpu();
    int ok = run_until(all_open, 10);
    if (!t_open_all) t_open_all = now_ns();
    if (opt.mode == M_IDLE) {
        printf("{\"event\":\"open\",\"open\":%d,\"accept_s\":%.3f,\"server_rss_kib\":%ld}\n", n_open,
               secs(t_start, t_open_all), server_rss_kib());
        fflush(stdout);
        run_until(got_stdin, 100);
        stdin_line = 0;
        if (opt.login_idle)
            for (int i = 0; i < opt.n; i++)
                if (conns[i].state == S_OPEN) send_login(i);
        flush_dirty();
    }
    if (opt.mode != M_IDLE || opt.login_idle) ok = run_until(all_logged, 10) && ok;
    if (!t_logged_all) t_logged_all = now_ns();
    if (opt.mode == M_JOIN) {
        ok = run_until(all_converged, 10) && ok;
        if (!t_converged) t_converged = now_ns();
    }
    if (opt.mode == M_IDLE) {
        printf("{\"event\":\"logged\",\"logged\":%d,\"login_s\":%.3f,\"server_rss_kib\":%ld}\n", n_logged,
               secs(t_open_all, t_logged_all), server_rss_kib());
        fflush(stdout);
        run_until(got_stdin, 100);
    }
    double cpu_setup = self_cpu() - cpu0, scpu_setup = server_cpu();
    scpu_setup = (scpu0 >= 0 && scpu_setup >= 0) ? scpu_setup - scpu0 : -1;
    uint64_t t_setup = now_ns();

    /* measured phase */
    double m_cpu = 0, m_scpu = -1, m_wall = 0;
    long long m_deliv = 0, m_acks = 0, m_sent = 0;
    int drained_ok = 1;
    if (opt.mode == M_FANOUT || opt.mode == M_LATENCY || opt.mode == M_DURABLE || opt.mode == M_TYPING) {
        sending = 1;
        uint64_t t0 = now_ns();
        if (opt.mode != M_LATENCY) {
            for (int s = 0; s < opt.senders; s++)
                if (conns[s].state == S_OPEN)
                    for (int w = 0; w < opt.window; w++) send_chat(s);
            flush_dirty();
        }
        send0 = t0;
        int rr = 0;
        uint64_t warm_end = t0 + (uint64_t)(opt.warmup * 1e9);
        uint64_t end = warm_end + (uint64_t)(opt.duration * 1e9);
        double c0 = 0, sc0 = 0;
        long long d0 = 0, a0 = 0, s0 = 0;
        uint64_t tm0 = 0, next_typing = t0;
        for (;;) {
            uint64_t t = now_ns();
            if (!tm0 && t >= warm_end) {
                tm0 = t;
                measure_from = t;
                c0 = self_cpu();
                sc0 = server_cpu();
                for (int k = 0; k < n_watched; k++) watched0[k] = pid_cpu(watched[k]);
                d0 = deliveries;
                a0 = acks;
                s0 = sent_total;
            }
            if (t >= end || timed_out()) break;
            if (opt.mode == M_TYPING && t >= next_typing) { /* everyone types at once, again every 3 s */
                for (int k = 0; k < opt.n; k++)
                    if (conns[k].state == S_OPEN) send_typing(k);
                flush_dirty();
                next_typing += 3000000000ull;
            }
            if (opt.mode == M_LATENCY) {
                long long due = (long long)((double)(t - send0) * opt.rate / 1e9) + 1;
                while (paced < due) {
                    if (conns[rr].state == S_OPEN) send_chat(rr);
                    paced++;
                    rr = (rr + 1) % opt.senders;
                }
                flush_dirty();
            }
            pump(opt.mode == M_LATENCY ? 1 : 5);
        }
        uint64_t tm1 = now_ns();
        m_wall = tm0 ? secs(tm0, tm1) : 0;
        m_cpu = self_cpu() - c0;
        double sc1 = server_cpu();
        m_scpu = (sc0 >= 0 && sc1 >= 0) ? sc1 - sc0 : -1;
        for (int k = 0; k < n_watched; k++) {
            double w1 = pid_cpu(watched[k]);
            watched_window[k] = (watched0[k] >= 0 && w1 >= 0) ? w1 - watched0[k] : -1;
        }
        m_deliv = deliveries - d0;
        m_acks = acks - a0;
        m_sent = sent_total - s0;
        sending = 0;
        uint64_t dl = now_ns() + (uint64_t)(opt.drain * 1e9);
        while (opt.mode != M_TYPING && !drained() && now_ns() < dl && !timed_out()) pump(5);
        drained_ok = drained();
    }
    uint64_t t_end = now_ns();
    double cpu_total = self_cpu() - cpu0;

    printf("{\"mode\":\"%s\",\"clients\":%d,\"ok\":%s,\"open\":%d,\"logged\":%d,\"dropped\":%d,",
           (const char *[]){"fanout", "latency", "join", "idle", "durable", "typing"}[opt.mode], opt.n,
           ok && drained_ok && !n_dropped && !order_errors ? "true" : "false", n_open, n_logged, n_dropped);
    printf("\"connect_errors\":%ld,\"handshake_errors\":%ld,\"name_errors\":%ld,\"error_frames\":%ld,"
           "\"close_frames\":%ld,\"order_errors\":%ld,\"pings\":%lld,",
           connect_errors, handshake_errors, name_errors, error_frames, close_frames, order_errors, pings);
    printf("\"accept_s\":%.4f,\"login_s\":%.4f,\"converged_s\":%.4f,\"setup_s\":%.4f,\"total_s\":%.4f,",
           secs(t_start, t_open_all), secs(t_start, t_logged_all), opt.mode == M_JOIN ? secs(t_start, t_converged) : 0,
           secs(t_start, t_setup), secs(t_start, t_end));
    printf("\"bytes_in\":%lld,\"bytes_out\":%lld,\"sent\":%lld,\"deliveries\":%lld,\"expected_deliveries\":%lld,"
           "\"acks\":%lld,\"drained\":%s,",
           bytes_in, bytes_out, sent_total, deliveries,
           opt.mode == M_DURABLE ? sent_total : (opt.mode == M_FANOUT || opt.mode == M_LATENCY ? expected_deliveries() : 0),
           acks, drained_ok ? "true" : "false");
    printf("\"window_s\":%.4f,\"window_sent\":%lld,\"window_deliveries\":%lld,\"window_acks\":%lld,"
           "\"gen_cpu_s\":%.4f,\"server_cpu_s\":%.4f,\"gen_cpu_setup_s\":%.4f,\"server_cpu_setup_s\":%.4f,"
           "\"gen_cpu_total_s\":%.4f,",
           m_wall, m_sent, m_deliv, m_acks, m_cpu, m_scpu, cpu_setup, scpu_setup, cpu_total);
    uint32_t tmax = 0;
    for (int k = 0; k < opt.n; k++)
        if (conns[k].typing_max > tmax) tmax = conns[k].typing_max;
    printf("\"typing_frames\":%lld,\"typing_max_per_member_s\":%u,", typing_frames, tmax);
    printf("\"watched_cpu_s\":[");
    for (int k = 0; k < n_watched; k++) printf("%s%.4f", k ? "," : "", watched_window[k]);
    printf("],\"latency_samples\":%zu", nlat);
    if (nlat) {
        qsort(lat, nlat, sizeof *lat, cmp_u32);
        double sum = 0;
        for (size_t k = 0; k < nlat; k++) sum += lat[k];
        printf(",\"lat_ms\":{\"mean\":%.3f,\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f}",
               sum / (double)nlat / 1000.0, pct(0.5), pct(0.9), pct(0.99), pct(0.999), lat[nlat - 1] / 1000.0);
    }
    printf(",\"server_rss_kib\":%ld}\n", server_rss_kib());
    fflush(stdout);
    for (int i = 0; i < opt.n; i++)
        if (conns[i].state == S_OPEN || conns[i].state == S_HANDSHAKE || conns[i].state == S_CONNECTING) close(conns[i].fd);
    return ok && drained_ok ? 0 : 3;
}
