/*
 * A peer built on the reference KCP (ikcp.c, compiled beside this file by
 * tests/kcp_wire.rs) for the wire-compatibility tests and the loopback
 * benchmark.
 *
 *   kcp_ref client PORT CONV MODE BYTES   send BYTES of a fixed pattern to
 *                                          127.0.0.1:PORT, expect them echoed,
 *                                          exit 0 if every byte came back in
 *                                          order (1 on mismatch, 2 on timeout)
 *   kcp_ref server CONV MODE              echo server on 127.0.0.1, port 0;
 *                                          prints "port N", serves one peer
 *                                          until stdin closes
 *
 * MODE is "normal" or "fast" (the same settings as evnet's KcpMode).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "ikcp.h"

static int sock_fd;
static struct sockaddr_in peer;
static int have_peer;

static IUINT32 now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (IUINT32)(ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

static int out(const char *buf, int len, ikcpcb *kcp, void *user) {
    (void)kcp;
    (void)user;
    if (have_peer)
        sendto(sock_fd, buf, len, 0, (struct sockaddr *)&peer, sizeof peer);
    return 0;
}

static unsigned char pattern(long i) { return (unsigned char)((i * 131 + (i >> 8)) & 0xff); }

static ikcpcb *make(IUINT32 conv, const char *mode) {
    ikcpcb *k = ikcp_create(conv, NULL);
    ikcp_setoutput(k, out);
    if (strcmp(mode, "fast") == 0)
        ikcp_nodelay(k, 1, 10, 2, 1);
    else
        ikcp_nodelay(k, 0, 40, 0, 0);
    ikcp_wndsize(k, 128, 256);
    return k;
}

/* Wait for a datagram or the engine's next timer; feed what came. */
static void pump(ikcpcb *k, int max_wait_ms) {
    static char buf[65536];
    IUINT32 now = now_ms();
    IUINT32 next = ikcp_check(k, now);
    int wait = (int)(next - now);
    if (wait > max_wait_ms) wait = max_wait_ms;
    if (wait < 0) wait = 0;
    struct pollfd p = {sock_fd, POLLIN, 0};
    poll(&p, 1, wait);
    for (;;) {
        struct sockaddr_in from;
        socklen_t fl = sizeof from;
        ssize_t n = recvfrom(sock_fd, buf, sizeof buf, MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
        if (n < 0) break;
        if (!have_peer) {
            peer = from;
            have_peer = 1;
        }
        ikcp_input(k, buf, n);
    }
    ikcp_update(k, now_ms());
}

static int client(int port, IUINT32 conv, const char *mode, long total) {
    memset(&peer, 0, sizeof peer);
    peer.sin_family = AF_INET;
    peer.sin_port = htons(port);
    peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    have_peer = 1;
    ikcpcb *k = make(conv, mode);
    static char chunk[8192], got[65536];
    long sent = 0, recvd = 0;
    IUINT32 deadline = now_ms() + 60000;
    while (recvd < total) {
        /* Keep a bounded amount queued: the window is the limit. */
        while (sent < total && ikcp_waitsnd(k) < 256) {
            long n = 1 + (sent * 7919) % sizeof chunk;
            if (n > total - sent) n = total - sent;
            for (long i = 0; i < n; i++) chunk[i] = (char)pattern(sent + i);
            if (ikcp_send(k, chunk, (int)n) < 0) return 3;
            sent += n;
        }
        ikcp_flush(k);
        pump(k, 5);
        int n;
        while ((n = ikcp_recv(k, got, sizeof got)) > 0) {
            for (int i = 0; i < n; i++) {
                if ((unsigned char)got[i] != pattern(recvd + i)) {
                    fprintf(stderr, "byte %ld differs\n", recvd + i);
                    return 1;
                }
            }
            recvd += n;
        }
        if ((IINT32)(now_ms() - deadline) > 0) {
            fprintf(stderr, "timeout: %ld of %ld bytes back\n", recvd, total);
            return 2;
        }
    }
    printf("ok %ld\n", recvd);
    return 0;
}

static int server(IUINT32 conv, const char *mode) {
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(sock_fd, (struct sockaddr *)&a, sizeof a) < 0) return 4;
    socklen_t al = sizeof a;
    getsockname(sock_fd, (struct sockaddr *)&a, &al);
    printf("port %d\n", ntohs(a.sin_port));
    fflush(stdout);
    ikcpcb *k = make(conv, mode);
    static char buf[65536];
    for (;;) {
        struct pollfd in = {0, POLLIN, 0};
        if (poll(&in, 1, 0) > 0 && (in.revents & (POLLIN | POLLHUP))) {
            char c;
            if (read(0, &c, 1) <= 0) break;
        }
        pump(k, 5);
        int n;
        while ((n = ikcp_recv(k, buf, sizeof buf)) > 0) ikcp_send(k, buf, n);
        ikcp_flush(k);
    }
    return 0;
}

int main(int argc, char **argv) {
    sock_fd = socket(AF_INET, SOCK_DGRAM, 0);
    int big = 4 << 20;
    setsockopt(sock_fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    setsockopt(sock_fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    if (argc == 6 && strcmp(argv[1], "client") == 0)
        return client(atoi(argv[2]), (IUINT32)strtoul(argv[3], NULL, 10), argv[4], atol(argv[5]));
    if (argc == 4 && strcmp(argv[1], "server") == 0)
        return server((IUINT32)strtoul(argv[2], NULL, 10), argv[3]);
    fprintf(stderr, "usage: kcp_ref client PORT CONV MODE BYTES | server CONV MODE\n");
    return 64;
}
