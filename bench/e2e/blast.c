/*
 * blast: a cheap syslog load generator and discard sink for bench/e2e/run.sh.
 * Compiled at run time (gcc -O2 -pthread); no dependencies beyond libc.
 *
 *   blast gen  HOST PORT COUNT CONNS [SIZE] [APP]
 *       Pre-renders COUNT distinct RFC 5424 messages with RFC 6587 octet-counting
 *       framing ("LEN <PRI>1 TIMESTAMP HOST APP PROCID MSGID - MSG"), SIZE bytes each
 *       after the length prefix (default 200), split evenly over CONNS connections,
 *       then sends each connection's buffer with large write()s, one thread per
 *       connection, all starting together. Message i carries "seq=i" (zero-padded),
 *       so every message is distinct. Prints one line of key=value results:
 *       sent= bytes= conns= render_s= send_s= rate= cpu_s= cpu_us_per_msg=
 *       (send_s/rate/cpu cover connect+send+close, not rendering).
 *
 *   blast sink PORT CONNS
 *       Listens on 127.0.0.1:PORT, accepts CONNS connections, reads and discards
 *       until each closes. Prints: bytes= seconds= (first accept to last EOF) cpu_s=.
 *       Prints "listening" on stdout once bound.
 */
#define _GNU_SOURCE
#include "../lib/tcpsend.h"
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ gen */

static size_t render(char *out, uint64_t seq, int conn, int size, const char *app, time_t base) {
    /* Timestamp advances 1 µs per message from base: distinct and monotonic. */
    time_t sec = base + (time_t)(seq / 1000000);
    unsigned usec = (unsigned)(seq % 1000000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    char body[4096];
    int n = snprintf(body, sizeof body,
                     "<134>1 %04d-%02d-%02dT%02d:%02d:%02d.%06uZ bench-host %s %d ID47 - "
                     "seq=%010llu conn=%02d GET /api/v1/items/%llu status=200 user=u%03llu msg=",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     usec, app, 1000 + conn, (unsigned long long)seq, conn,
                     (unsigned long long)(seq * 7919 % 1000003), (unsigned long long)(seq % 997));
    static const char filler[] = "the quick brown fox jumps over the lazy dog ";
    while (n < size) {
        body[n] = filler[n % (sizeof filler - 1)];
        n++;
    }
    body[n] = 0;
    int p = sprintf(out, "%d ", n);
    memcpy(out + p, body, n);
    return (size_t)(p + n);
}

static int gen(int argc, char **argv) {
    if (argc < 6) return 2;
    const char *host = argv[2];
    int port = atoi(argv[3]);
    uint64_t count = strtoull(argv[4], 0, 10);
    int conns = atoi(argv[5]);
    int size = argc > 6 ? atoi(argv[6]) : 200;
    const char *app = argc > 7 ? argv[7] : "bench";
    if (conns < 1 || size < 160 || size > 4000) {
        fprintf(stderr, "conns >= 1, 160 <= size <= 4000\n");
        return 2;
    }
    time_t base = time(NULL);
    double t0 = now();
    struct conn *cs = calloc(conns, sizeof *cs);
    uint64_t per = count / conns, extra = count % conns, seq = 0;
    size_t total = 0;
    for (int c = 0; c < conns; c++) {
        uint64_t mine = per + ((uint64_t)c < extra);
        size_t cap = mine * (size_t)(size + 8) + 1;
        cs[c].buf = malloc(cap);
        if (!cs[c].buf) die("malloc");
        size_t off = 0;
        for (uint64_t i = 0; i < mine; i++) off += render(cs[c].buf + off, seq++, c, size, app, base);
        cs[c].len = off;
        total += off;
    }
    double render_s = now() - t0;
    /* Tell a driver the clock may start now (rendering is not part of the run). */
    printf("rendered render_s=%.3f\n", render_s);
    fflush(stdout);
    struct sent sent = send_buffers(cs, conns, host, port);
    double send_s = sent.seconds, cpu = sent.cpu;
    printf("sent=%llu bytes=%zu conns=%d render_s=%.3f send_s=%.3f rate=%.0f cpu_s=%.3f cpu_us_per_msg=%.3f\n",
           (unsigned long long)count, total, conns, render_s, send_s, count / send_s, cpu,
           cpu * 1e6 / (double)count);
    return 0;
}

/* ----------------------------------------------------------------- sink */

static uint64_t sink_bytes;
static pthread_mutex_t sink_mu = PTHREAD_MUTEX_INITIALIZER;

static void *drain(void *arg) {
    int fd = (int)(intptr_t)arg;
    int rcvbuf = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    char *buf = malloc(1 << 20);
    uint64_t got = 0;
    ssize_t n;
    while ((n = read(fd, buf, 1 << 20)) != 0) {
        if (n < 0) {
            if (errno == EINTR) continue;
            break;
        }
        got += (uint64_t)n;
    }
    close(fd);
    free(buf);
    pthread_mutex_lock(&sink_mu);
    sink_bytes += got;
    pthread_mutex_unlock(&sink_mu);
    return NULL;
}

static int sink(int argc, char **argv) {
    if (argc < 4) return 2;
    int port = atoi(argv[2]), conns = atoi(argv[3]);
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0) die("bind");
    if (listen(lfd, 128) < 0) die("listen");
    printf("listening\n");
    fflush(stdout);
    pthread_t *th = calloc(conns, sizeof *th);
    double t0 = 0;
    for (int c = 0; c < conns; c++) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0) die("accept");
        if (c == 0) t0 = now();
        pthread_create(&th[c], NULL, drain, (void *)(intptr_t)fd);
    }
    for (int c = 0; c < conns; c++) pthread_join(th[c], NULL);
    printf("bytes=%llu seconds=%.3f cpu_s=%.3f\n", (unsigned long long)sink_bytes, now() - t0, cpu_self());
    return 0;
}

int main(int argc, char **argv) {
    int rc = 2;
    if (argc > 1 && !strcmp(argv[1], "gen")) rc = gen(argc, argv);
    else if (argc > 1 && !strcmp(argv[1], "sink")) rc = sink(argc, argv);
    if (rc == 2)
        fprintf(stderr, "usage: blast gen HOST PORT COUNT CONNS [SIZE] [APP]\n"
                        "       blast sink PORT CONNS\n");
    return rc;
}
