/*
 * qgen: realistic RFC 5424 lines for bench/query/run.sh, and a fast octet-counted TCP sender.
 * Compiled at run time (gcc -O2 -pthread); libc only.
 *
 *   qgen render FILE COUNT BASE_EPOCH SPAN_SECONDS TOKEN RARE [SEED]
 *       Writes COUNT LF-terminated RFC 5424 lines to FILE ("<PRI>1 TS HOST APP PID MSGID - MSG"),
 *       ~200 bytes each on average (120..320), timestamps ascending and spread evenly over
 *       [BASE_EPOCH, BASE_EPOCH + SPAN_SECONDS) with µs precision, 50 hosts, 20 app names,
 *       a skewed spread of the 8 severities (info most, emerg rarest), a facility per app,
 *       message templates per app with varying IPs, users, paths, ids and durations.
 *       TOKEN (which no template can produce) is appended to exactly RARE lines, evenly spread.
 *       Prints: lines= bytes= (bytes of the lines without their LF) rare=
 *
 *   qgen send FILE HOST PORT CONNS
 *       Reads FILE, renders every line as an octet-counted frame ("LEN LINE") in memory, splits
 *       the frames into CONNS contiguous parts, prints "rendered frames=N" and sends each part
 *       over its own connection, all starting together. Prints one key=value line:
 *       sent= bytes= conns= send_s= rate= cpu_s=
 */
#define _GNU_SOURCE
#include "../lib/tcpsend.h"
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- render */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) { /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}
static unsigned rn(unsigned n) { return (unsigned)((rnd() >> 11) % n); }

static const char *HOSTS[50];
static char host_names[50][48];

struct app {
    const char *name;
    int facility;
    int weight;
};
/* 20 app names; facility codes: kern 0, mail 2, daemon 3, auth 4, cron 9, authpriv 10, local0 16, local3 19 */
static const struct app APPS[20] = {
    {"nginx", 16, 22},    {"sshd", 10, 6},       {"postgres", 16, 8},  {"kernel", 0, 5},
    {"CRON", 9, 4},       {"sudo", 10, 2},       {"systemd", 3, 6},    {"dockerd", 3, 4},
    {"kubelet", 3, 8},    {"haproxy", 16, 7},    {"redis", 16, 3},     {"named", 3, 3},
    {"postfix", 2, 3},    {"dhclient", 3, 1},    {"chronyd", 3, 1},    {"auditd", 4, 2},
    {"java-orders", 19, 6}, {"billing", 19, 3},  {"api-gw", 16, 5},    {"containerd", 3, 2},
};
static int app_cum[20], app_total;

/* severity 0..7, per mille: emerg 1, alert 4, crit 15, err 60, warning 100, notice 120, info 600, debug 100 */
static const int SEV_PM[8] = {1, 4, 15, 60, 100, 120, 600, 100};

static const char *USERS[] = {"root", "admin", "deploy", "alice", "bob", "carol", "dave", "eve",
                              "mallory", "postgres", "www-data", "jenkins", "backup", "oscar"};
static const char *PATHS[] = {"/api/v1/items", "/api/v1/orders", "/api/v2/users", "/login", "/static/app.js",
                              "/static/style.css", "/health", "/api/v1/cart", "/search", "/api/v1/payments",
                              "/images/logo.png", "/api/v2/inventory", "/metrics", "/favicon.ico"};
static const char *METHODS[] = {"GET", "GET", "GET", "GET", "POST", "POST", "PUT", "DELETE", "HEAD"};
static const int STATUS[] = {200, 200, 200, 200, 200, 200, 201, 204, 301, 304, 400, 401, 403, 404, 404, 500, 502, 503};
static const char *UA[] = {"Mozilla/5.0 (X11; Linux x86_64) Firefox/131.0", "curl/8.5.0",
                           "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/130.0", "Go-http-client/1.1",
                           "python-requests/2.32.3", "kube-probe/1.31", "Prometheus/2.54.1"};
static const char *WORDS[] = {"connection", "timeout", "upstream", "request", "session", "cache", "worker",
                              "queue", "retry", "backend", "socket", "handshake", "checkpoint", "lock",
                              "transaction", "replica", "container", "volume", "network", "certificate",
                              "pool", "shard", "index", "snapshot", "lease", "heartbeat", "quota"};
#define NW (sizeof WORDS / sizeof *WORDS)
#define N_(a) (sizeof a / sizeof *a)

/* Skewed pick in [0, n): small indices are much more frequent, as real clients and peers are. */
static unsigned skew(unsigned n) { return (unsigned)((uint64_t)rn(n) * rn(n) / n); }
/* Internal addresses: 4,096 of them, skewed; public ones: 65,536, skewed. */
static int ip(char *o) { unsigned k = skew(4096) * 2654435761u; return sprintf(o, "10.%u.%u.%u", k >> 29, (k >> 8) & 255, 1 + (k & 255) % 254); }
static int pubip(char *o) { unsigned k = skew(65536) * 2654435761u; return sprintf(o, "%u.%u.%u.%u", 11 + (k >> 24) % 200, (k >> 16) & 255, (k >> 8) & 255, 1 + (k & 255) % 254); }

static int words(char *o, int n) {
    int p = 0;
    for (int i = 0; i < n; i++) p += sprintf(o + p, "%s%s", i ? " " : "", WORDS[rn(NW)]);
    return p;
}

/* The message text for app a at severity sev; returns its length. */
static int message(char *o, int a, int sev) {
    char x[64], y[64];
    int p = 0;
    switch (a) {
    case 0: /* nginx access */
    case 18: /* api-gw */
        ip(x);
        p = sprintf(o, "%s - - \"%s %s/%u HTTP/1.1\" %d %u \"-\" \"%s\" rt=%u.%03u uct=0.%03u req=%016llx", x,
                    METHODS[rn(N_(METHODS))], PATHS[rn(N_(PATHS))], rn(100000),
                    sev <= 3 ? 500 + (int)rn(4) : STATUS[rn(N_(STATUS))], rn(90000), UA[rn(N_(UA))], rn(3), rn(1000),
                    rn(100), (unsigned long long)rnd());
        break;
    case 1: /* sshd */
        pubip(x);
        if (sev <= 4)
            p = sprintf(o, "Failed password for %s%s from %s port %u ssh2", rn(3) ? "" : "invalid user ",
                        USERS[rn(N_(USERS))], x, 1024 + rn(64000));
        else
            p = sprintf(o, "Accepted publickey for %s from %s port %u ssh2: ED25519 SHA256:%016llx%08x",
                        USERS[rn(N_(USERS))], x, 1024 + rn(64000), (unsigned long long)rnd(), (unsigned)rnd());
        break;
    case 2: /* postgres */
        p = sprintf(o, "[%u] %s@orders LOG:  duration: %u.%03u ms  statement: SELECT * FROM orders WHERE customer_id = %u AND status = '%s' LIMIT %u",
                    10000 + rn(50000), USERS[rn(N_(USERS))], rn(2000), rn(1000), rn(1000000),
                    rn(2) ? "open" : "shipped", 10 + rn(90));
        break;
    case 3: /* kernel */
        ip(x);
        ip(y);
        p = sprintf(o, "[%u.%06u] IN=eth0 OUT= MAC=52:54:00:%02x:%02x:%02x SRC=%s DST=%s LEN=%u TOS=0x00 TTL=%u ID=%u PROTO=TCP SPT=%u DPT=%u SYN",
                    rn(900000), rn(1000000), rn(256), rn(256), rn(256), x, y, 40 + rn(1400), 32 + rn(32),
                    rn(65536), 1024 + rn(64000), (unsigned[]){22, 80, 443, 3306, 5432, 6379}[rn(6)]);
        break;
    case 4: /* CRON */
        p = sprintf(o, "(%s) CMD (/usr/local/bin/%s --job %u --shard %u >/dev/null 2>&1)", USERS[rn(N_(USERS))],
                    WORDS[rn(NW)], rn(500), rn(64));
        break;
    case 5: /* sudo */
        p = sprintf(o, "%s : TTY=pts/%u ; PWD=/home/%s ; USER=root ; COMMAND=/usr/bin/systemctl restart %s",
                    USERS[rn(N_(USERS))], rn(8), USERS[rn(N_(USERS))], APPS[rn(20)].name);
        break;
    case 6: /* systemd */
        p = sprintf(o, "%s.service: %s, consumed %u.%03us CPU time, %uM memory peak", APPS[rn(20)].name,
                    sev <= 3 ? "Main process exited, code=exited, status=1/FAILURE" : "Deactivated successfully",
                    rn(300), rn(1000), rn(4096));
        break;
    case 7: /* dockerd */
    case 19: /* containerd */
        p = sprintf(o, "time=\"%u\" level=%s msg=\"", rn(1000000000), sev <= 3 ? "error" : sev <= 5 ? "warning" : "info");
        p += words(o + p, 3 + rn(4));
        p += sprintf(o + p, "\" container=%016llx%016llx namespace=moby", (unsigned long long)rnd(),
                     (unsigned long long)rnd());
        break;
    case 8: /* kubelet */
        p = sprintf(o, "I%04u %02u:%02u:%02u.%06u %u kubelet.go:%u] \"", 1000 + rn(200), rn(24), rn(60), rn(60),
                    rn(1000000), 1000 + rn(9000), 100 + rn(3000));
        p += words(o + p, 2 + rn(5));
        p += sprintf(o + p, "\" pod=\"prod/%s-%05x-%05x\" podUID=\"%08x-%04x-%04x\"", WORDS[rn(NW)], rn(1 << 20),
                     rn(1 << 20), (unsigned)rnd(), rn(65536), rn(65536));
        break;
    case 9: /* haproxy */
        pubip(x);
        p = sprintf(o, "%s:%u [%02u/Nov/2026:%02u:%02u:%02u.%03u] fe_https~ be_app/web%02u %u/%u/%u/%u/%u %d %u - - ---- %u/%u/%u/%u/0 0/0 \"%s %s HTTP/1.1\"",
                    x, 1024 + rn(64000), 1 + rn(28), rn(24), rn(60), rn(60), rn(1000), 1 + rn(12), rn(50), rn(5),
                    rn(20), rn(900), rn(1000), STATUS[rn(N_(STATUS))], rn(100000), rn(900), rn(900), rn(100),
                    rn(100), METHODS[rn(N_(METHODS))], PATHS[rn(N_(PATHS))]);
        break;
    case 10: /* redis */
        p = sprintf(o, "%u:M %02u Nov 2026 %02u:%02u:%02u.%03u * %u changes in %u seconds. Saving... Background saving started by pid %u",
                    1 + rn(30000), 1 + rn(28), rn(24), rn(60), rn(60), rn(1000), rn(10000), 60 + rn(300), rn(100000));
        break;
    case 11: /* named */
        ip(x);
        p = sprintf(o, "client @0x%012llx %s#%u (%s%u.example.com): query: %s%u.example.com IN %s +E(0)K (10.0.0.53)",
                    (unsigned long long)(rnd() & 0xffffffffffffull), x, 1024 + rn(64000), WORDS[rn(NW)], rn(1000),
                    WORDS[rn(NW)], rn(1000), (const char *[]){"A", "AAAA", "MX", "TXT", "SRV"}[rn(5)]);
        break;
    case 12: /* postfix */
        pubip(x);
        p = sprintf(o, "%010llX: client=mail%u.example.net[%s], sasl_method=PLAIN, sasl_username=%s@example.com size=%u nrcpt=%u",
                    (unsigned long long)(rnd() & 0xffffffffffull), rn(100), x, USERS[rn(N_(USERS))], rn(200000), 1 + rn(5));
        break;
    case 13: /* dhclient */
        ip(x);
        p = sprintf(o, "DHCPREQUEST for %s on eth%u to 10.0.0.1 port 67 (xid=0x%08x); bound, renewal in %u seconds.", x,
                    rn(2), (unsigned)rnd(), 600 + rn(3000));
        break;
    case 14: /* chronyd */
        pubip(x);
        p = sprintf(o, "Selected source %s (%u.pool.ntp.org), offset %c0.%06u seconds, frequency %u.%03u ppm, skew 0.%03u", x,
                    rn(4), rn(2) ? '+' : '-', rn(1000000), rn(30), rn(1000), rn(1000));
        break;
    case 15: /* auditd */
        p = sprintf(o, "type=SYSCALL msg=audit(%u.%03u:%u): arch=c000003e syscall=%u success=%s exit=%u a0=%x a1=%x ppid=%u pid=%u auid=%u uid=0 comm=\"%s\"",
                    1700000000 + rn(100000000), rn(1000), rn(10000000), rn(330), rn(4) ? "yes" : "no", rn(100),
                    (unsigned)rnd(), (unsigned)rnd(), rn(60000), rn(60000), 1000 + rn(20), WORDS[rn(NW)]);
        break;
    case 16: /* java-orders */
    case 17: /* billing */
        p = sprintf(o, "%s [%s-%u] %s c.e.%s.%sService - ", (const char *[]){"FATAL", "FATAL", "ERROR", "ERROR", "WARN", "INFO", "INFO", "DEBUG"}[sev],
                    rn(2) ? "http-nio-8080-exec" : "kafka-consumer", rn(200), "txn", a == 16 ? "orders" : "billing",
                    (const char *[]){"Order", "Invoice", "Payment", "Customer"}[rn(4)]);
        p += words(o + p, 3 + rn(6));
        p += sprintf(o + p, " orderId=%u customer=%s amount=%u.%02u traceId=%016llx", rn(10000000), USERS[rn(N_(USERS))],
                     rn(5000), rn(100), (unsigned long long)rnd());
        break;
    }
    return p;
}

static int render_line(char *o, uint64_t i, uint64_t count, int64_t base_us, int64_t span_us, const char *token, int rare) {
    int64_t ts = base_us + (int64_t)((double)i * (double)span_us / (double)count);
    time_t sec = (time_t)(ts / 1000000);
    unsigned usec = (unsigned)(ts % 1000000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    unsigned r = rn((unsigned)app_total);
    int a = 0;
    while (app_cum[a] <= (int)r) a++;
    unsigned s = rn(1000), acc = 0;
    int sev = 0;
    for (sev = 0; sev < 7; sev++) {
        acc += SEV_PM[sev];
        if (s < acc) break;
    }
    int h = rn(50);
    /* A daemon keeps its PID on a host; CRON and sudo (a new process each time) do not. */
    unsigned pid = (a == 4 || a == 5) ? 100 + rn(60000) : 100 + (unsigned)((h * 20 + a) * 2654435761u % 60000u);
    int p = sprintf(o, "<%d>1 %04d-%02d-%02dT%02d:%02d:%02d.%06uZ %s %s %u - - ", APPS[a].facility * 8 + sev,
                    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, usec, HOSTS[h],
                    APPS[a].name, pid);
    p += message(o + p, a, sev);
    if (rare) p += sprintf(o + p, " trace=%s", token);
    /* Spread the sizes: most lines get a short free-text tail, so the mean is ~200 bytes. */
    if (p < 150) {
        int want = 150 + (int)rn(110);
        p += sprintf(o + p, " note=");
        while (p < want) p += sprintf(o + p, "%s ", WORDS[rn(NW)]);
        p--; /* drop the last space */
    }
    o[p] = 0;
    return p;
}

static int cmd_render(int argc, char **argv) {
    if (argc < 8) return 2;
    const char *file = argv[2];
    uint64_t count = strtoull(argv[3], 0, 10);
    int64_t base = strtoll(argv[4], 0, 10), span = strtoll(argv[5], 0, 10);
    const char *token = argv[6];
    uint64_t rare = strtoull(argv[7], 0, 10);
    if (argc > 8) rng_state = strtoull(argv[8], 0, 10) * 0x9E3779B97F4A7C15ull + 1;
    static const char *prefix[] = {"web", "api", "db", "cache", "k8s-node", "lb", "mail", "ns"};
    for (int i = 0; i < 50; i++) {
        snprintf(host_names[i], sizeof host_names[i], "%s-%02d.prod.example.com", prefix[i % 8], i);
        HOSTS[i] = host_names[i];
    }
    for (int a = 0; a < 20; a++) app_cum[a] = (app_total += APPS[a].weight);
    FILE *f = fopen(file, "w");
    if (!f) die(file);
    setvbuf(f, NULL, _IOFBF, 8 << 20);
    char line[4096];
    uint64_t bytes = 0, rare_done = 0;
    uint64_t stride = rare ? count / rare : 0;
    for (uint64_t i = 0; i < count; i++) {
        int is_rare = rare && rare_done < rare && i % stride == stride / 2;
        int n = render_line(line, i, count, base * 1000000, span * 1000000, token, is_rare);
        rare_done += is_rare;
        line[n] = '\n';
        if (fwrite(line, 1, n + 1, f) != (size_t)n + 1) die("fwrite");
        bytes += n;
    }
    if (fclose(f)) die("fclose");
    printf("lines=%llu bytes=%llu rare=%llu\n", (unsigned long long)count, (unsigned long long)bytes,
           (unsigned long long)rare_done);
    return 0;
}

/* ------------------------------------------------------------------ send */

static int cmd_send(int argc, char **argv) {
    if (argc < 6) return 2;
    const char *file = argv[2], *host = argv[3];
    int port = atoi(argv[4]), conns = atoi(argv[5]);
    if (conns < 1) return 2;
    FILE *f = fopen(file, "r");
    if (!f) die(file);
    struct stat st;
    if (fstat(fileno(f), &st)) die("stat");
    char *raw = malloc((size_t)st.st_size + 1);
    if (!raw) die("malloc");
    if (fread(raw, 1, (size_t)st.st_size, f) != (size_t)st.st_size) die("fread");
    fclose(f);
    size_t size = (size_t)st.st_size;
    uint64_t lines = 0;
    for (size_t i = 0; i < size; i++) lines += raw[i] == '\n';
    char *frames = malloc(size + lines * 8 + 1);
    if (!frames) die("malloc");
    struct conn *cs = calloc(conns, sizeof *cs);
    uint64_t per = lines / conns, extra = lines % conns, done = 0;
    size_t in = 0, out = 0;
    for (int c = 0; c < conns; c++) {
        uint64_t mine = per + ((uint64_t)c < extra);
        cs[c].buf = frames + out;
        for (uint64_t k = 0; k < mine; k++, done++) {
            char *nl = memchr(raw + in, '\n', size - in);
            size_t n = (size_t)(nl - (raw + in));
            out += sprintf(frames + out, "%zu ", n);
            memcpy(frames + out, raw + in, n);
            out += n;
            in += n + 1;
        }
        cs[c].len = (size_t)(frames + out - cs[c].buf);
    }
    free(raw);
    printf("rendered frames=%llu\n", (unsigned long long)done);
    fflush(stdout);
    struct sent sent = send_buffers(cs, conns, host, port);
    double send_s = sent.seconds, cpu = sent.cpu;
    printf("sent=%llu bytes=%zu conns=%d send_s=%.3f rate=%.0f cpu_s=%.3f\n", (unsigned long long)done, out, conns,
           send_s, done / send_s, cpu);
    return 0;
}

int main(int argc, char **argv) {
    int rc = 2;
    if (argc > 1 && !strcmp(argv[1], "render")) rc = cmd_render(argc, argv);
    else if (argc > 1 && !strcmp(argv[1], "send")) rc = cmd_send(argc, argv);
    if (rc == 2)
        fprintf(stderr, "usage: qgen render FILE COUNT BASE_EPOCH SPAN_SECONDS TOKEN RARE [SEED]\n"
                        "       qgen send FILE HOST PORT CONNS\n");
    return rc;
}
