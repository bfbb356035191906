/*
 * The load for bench/udp.sh: keeps WINDOW datagrams of SIZE bytes in
 * flight to a UDP echo server on 127.0.0.1:PORT (sendmmsg/recvmmsg, so the
 * client is not the bottleneck) for SECS seconds, and prints
 * "DATAGRAMS SECONDS": echoes received and the time measured. A datagram
 * lost is replaced after 200 ms without any echo. With "gro" the client
 * takes its echoes with UDP GRO (a server's GSO burst arrives as one
 * buffer, as it would through a NIC that segments in hardware; on loopback
 * without GRO the kernel cuts the burst up in software on the sender's CPU).
 * With "gso" it also sends with UDP GSO (UDP_SEGMENT: a burst of same-size
 * datagrams as one message, as QUIC stacks send), so a server taking GRO
 * receives the burst in one buffer. "gso" implies "gro".
 *   udp_blast PORT SIZE SECS [WINDOW [gro|gso]]
 */
#define _GNU_SOURCE
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdint.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define BATCH 32
#ifndef UDP_GRO
#define UDP_GRO 104
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: udp_blast PORT SIZE SECS [WINDOW]\n");
        return 64;
    }
    int size = atoi(argv[2]);
    double secs = atof(argv[3]);
    int window = argc > 4 ? atoi(argv[4]) : 64;
    int gso = argc > 5 && strcmp(argv[5], "gso") == 0;
    int gro = gso || (argc > 5 && strcmp(argv[5], "gro") == 0);
    /* Datagrams per GSO message: at most 64 segments and 65,507 bytes. */
    int per_msg = 65507 / size;
    if (per_msg > 64) per_msg = 64;
    if (per_msg < 1) per_msg = 1;
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    int big = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    if (gro) {
        int one = 1;
        if (setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof one) < 0) {
            perror("UDP_GRO");
            return 1;
        }
    }
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(atoi(argv[1]));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        perror("connect");
        return 1;
    }
    static char out[65536], in[BATCH][65536];
    memset(out, 'x', sizeof out);
    struct iovec oi[BATCH], ii[BATCH];
    struct mmsghdr om[BATCH], im[BATCH];
    static char ctl[BATCH][CMSG_SPACE(sizeof(int))];
    memset(om, 0, sizeof om);
    memset(im, 0, sizeof im);
    for (int i = 0; i < BATCH; i++) {
        oi[i].iov_base = out;
        oi[i].iov_len = size;
        om[i].msg_hdr.msg_iov = &oi[i];
        om[i].msg_hdr.msg_iovlen = 1;
        ii[i].iov_base = in[i];
        ii[i].iov_len = sizeof in[i];
        im[i].msg_hdr.msg_iov = &ii[i];
        im[i].msg_hdr.msg_iovlen = 1;
    }
    long inflight = 0, got = 0;
    double start = now(), end = start + secs, last = start;
    while (now() < end) {
        while (inflight < window && gso) {
            /* One message of up to per_msg segments (the last may be short). */
            int n = window - inflight;
            if (n > per_msg) n = per_msg;
            struct iovec v = {out, (size_t)n * size};
            char c[CMSG_SPACE(sizeof(uint16_t))];
            struct msghdr h = {0};
            h.msg_iov = &v;
            h.msg_iovlen = 1;
            if (n > 1) {
                h.msg_control = c;
                h.msg_controllen = sizeof c;
                struct cmsghdr *cm = CMSG_FIRSTHDR(&h);
                cm->cmsg_level = SOL_UDP;
                cm->cmsg_type = UDP_SEGMENT;
                cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
                uint16_t seg = (uint16_t)size;
                memcpy(CMSG_DATA(cm), &seg, sizeof seg);
            }
            if (sendmsg(fd, &h, MSG_DONTWAIT) < 0) break;
            inflight += n;
        }
        while (inflight < window && !gso) {
            int n = window - inflight;
            if (n > BATCH) n = BATCH;
            int s = sendmmsg(fd, om, n, MSG_DONTWAIT);
            if (s <= 0) break;
            inflight += s;
        }
        struct pollfd p = {fd, POLLIN, 0};
        poll(&p, 1, 10);
        for (int i = 0; i < BATCH; i++) {
            im[i].msg_hdr.msg_control = gro ? ctl[i] : NULL;
            im[i].msg_hdr.msg_controllen = gro ? sizeof ctl[i] : 0;
        }
        int r = recvmmsg(fd, im, BATCH, MSG_DONTWAIT, NULL);
        if (r > 0) {
            /* A GRO buffer holds len / segment-size datagrams (the last may be short). */
            long n = 0;
            for (int i = 0; i < r; i++) {
                long len = im[i].msg_len, seg = 0;
                for (struct cmsghdr *c = CMSG_FIRSTHDR(&im[i].msg_hdr); gro && c;
                     c = CMSG_NXTHDR(&im[i].msg_hdr, c))
                    if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO)
                        seg = *(int *)CMSG_DATA(c);
                n += seg > 0 ? (len + seg - 1) / seg : 1;
            }
            r = (int)n;
            got += r;
            inflight -= r;
            if (inflight < 0) inflight = 0;
            last = now();
        } else if (now() - last > 0.2) {
            inflight = 0; /* lost: refill the window */
            last = now();
        }
    }
    printf("%ld %.3f\n", got, now() - start);
    return 0;
}
