/*
 * What the benchmark load generators (bench/e2e/blast.c, bench/query/qgen.c) share: clocks,
 * and sending pre-rendered buffers over TCP connections that all start at the same moment.
 * Header-only (static functions), so each generator stays one `gcc` call with no build step.
 */
#ifndef MENISCUS_BENCH_TCPSEND_H
#define MENISCUS_BENCH_TCPSEND_H

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* CPU seconds (user + system) this process has used. */
static double cpu_self(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

/* One connection's pre-rendered bytes. */
struct conn {
    char *buf;
    size_t len;
    int fd;
    pthread_t th;
};

static pthread_barrier_t start_barrier;

static void *send_all(void *arg) {
    struct conn *c = arg;
    pthread_barrier_wait(&start_barrier);
    size_t off = 0;
    while (off < c->len) {
        size_t chunk = c->len - off;
        if (chunk > (4u << 20)) chunk = 4u << 20;
        ssize_t n = write(c->fd, c->buf + off, chunk);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("write");
        }
        off += (size_t)n;
    }
    /* Orderly close: the server sees EOF after the last frame. */
    shutdown(c->fd, SHUT_WR);
    /* Wait (bounded) for the server to close its side; syslog servers send nothing. */
    struct timeval tv = {.tv_sec = 5};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char tmp[4096];
    while (read(c->fd, tmp, sizeof tmp) > 0) {
    }
    close(c->fd);
    return NULL;
}

static int connect_to(const char *host, int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        fprintf(stderr, "bad IPv4 address %s\n", host);
        exit(2);
    }
    int sndbuf = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) die("connect");
    return fd;
}

struct sent {
    double seconds; /* from the common start to the last connection closed */
    double cpu;     /* this process's CPU seconds over that time */
};

/* Connects every connection, then sends all buffers at once, one thread each. */
static struct sent send_buffers(struct conn *cs, int conns, const char *host, int port) {
    pthread_barrier_init(&start_barrier, NULL, conns + 1);
    for (int c = 0; c < conns; c++) {
        cs[c].fd = connect_to(host, port);
        pthread_create(&cs[c].th, NULL, send_all, &cs[c]);
    }
    double cpu0 = cpu_self(), t0 = now();
    pthread_barrier_wait(&start_barrier);
    for (int c = 0; c < conns; c++) pthread_join(cs[c].th, NULL);
    struct sent sent = {.seconds = now() - t0, .cpu = cpu_self() - cpu0};
    return sent;
}

#endif
