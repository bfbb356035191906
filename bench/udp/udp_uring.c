/*
 * An io_uring UDP echo server for bench/udp.sh (issue 15: would a UDP path
 * in evnet's io_uring proactor cost less CPU per datagram than its
 * epoll + recvmmsg/sendmmsg + GRO/GSO path?). Single-threaded:
 *
 *   - a provided buffer ring (IORING_REGISTER_PBUF_RING) of NBUF buffers;
 *   - one multishot recvmsg (IOSQE_BUFFER_SELECT) on the socket: each
 *     datagram completes as a CQE naming the buffer the kernel picked, with
 *     the sender's address in front of the payload (io_uring_recvmsg_out);
 *   - the reply is a sendmsg SQE straight from that buffer; with "gso",
 *     consecutive datagrams (in one CQE batch) from the same peer with the
 *     same size go out as one sendmsg with a UDP_SEGMENT cmsg, their
 *     buffers as the iovec list;
 *   - a buffer goes back to the ring when its send completes.
 *   - a multishot recv that ends (no IORING_CQE_F_MORE, e.g. -ENOBUFS when
 *     every buffer waits on a send) is armed again once buffers are back.
 *
 * The loop is io_uring_submit_and_wait(1) and a batch of CQEs
 * (io_uring_for_each_cqe / io_uring_cq_advance).
 *
 *   udp_uring PORT [gso] [coop] [single] [defer] [regfd]
 *     coop    IORING_SETUP_COOP_TASKRUN
 *     single  IORING_SETUP_SINGLE_ISSUER
 *     defer   IORING_SETUP_DEFER_TASKRUN (implies single)
 *     regfd   io_uring_register_ring_fd (no fdget per io_uring_enter)
 * On SIGTERM/SIGINT prints its counters to stderr and exits.
 * Needs liburing (2.3 is enough: the buffer ring is mapped by hand).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

#ifndef NBUF
#define NBUF 1024         /* buffers in the ring (a power of two; -DNBUF=8 exercises ENOBUFS) */
#endif
#ifndef BUFSZ
#define BUFSZ 2048        /* header + name + payload; larger datagrams are cut (MSG_TRUNC) */
#endif
#define BGID 7
#define MAXSEG 64         /* most segments in one UDP_SEGMENT send */
#define MAXGSO 65000      /* most bytes in one UDP_SEGMENT send */
#define NSLOT NBUF        /* a send holds at least one buffer */
#define RECV_UD (~0ULL)

struct slot {
    struct msghdr mh;
    struct sockaddr_in peer;
    union {
        char buf[CMSG_SPACE(sizeof(uint16_t))];
        struct cmsghdr align;
    } ctl;
    int n;
    int next_free;
    uint16_t bid[MAXSEG];
    struct iovec iov[MAXSEG];
};

static struct io_uring ring;
static struct io_uring_buf_ring *br;
static char *bufs;
static struct slot slots[NSLOT];
static int free_slot = -1;
static struct msghdr recv_mh; /* the shape of every received buffer */
static int fd, gso, armed, avail, returned;
static volatile sig_atomic_t stop;
static unsigned long long n_dgrams, n_sends, n_enter, n_cqes, n_rearm, n_nobufs, n_senderr, n_trunc;

static void on_signal(int sig) {
    (void)sig;
    stop = 1;
}

static struct io_uring_sqe *sqe_get(void) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    if (!sqe) { /* the SQ is full: hand it to the kernel and go on */
        io_uring_submit(&ring);
        sqe = io_uring_get_sqe(&ring);
    }
    if (!sqe) {
        fprintf(stderr, "no SQE\n");
        exit(1);
    }
    return sqe;
}

static void arm_recv(void) {
    struct io_uring_sqe *sqe = sqe_get();
    io_uring_prep_recvmsg_multishot(sqe, fd, &recv_mh, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BGID;
    io_uring_sqe_set_data64(sqe, RECV_UD);
    armed = 1;
    n_rearm++;
}

static void give_back(int bid) {
    io_uring_buf_ring_add(br, bufs + (size_t)bid * BUFSZ, BUFSZ, bid, io_uring_buf_ring_mask(NBUF), returned);
    returned++;
}

/* The send being gathered (gso): its slot, or -1. */
static int cur = -1;
static size_t cur_len;

static void flush(void) {
    if (cur < 0) return;
    struct slot *s = &slots[cur];
    memset(&s->mh, 0, sizeof s->mh);
    s->mh.msg_name = &s->peer;
    s->mh.msg_namelen = sizeof s->peer;
    s->mh.msg_iov = s->iov;
    s->mh.msg_iovlen = s->n;
    if (s->n > 1) {
        s->mh.msg_control = s->ctl.buf;
        s->mh.msg_controllen = sizeof s->ctl.buf;
        struct cmsghdr *c = CMSG_FIRSTHDR(&s->mh);
        c->cmsg_level = SOL_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        uint16_t seg = (uint16_t)cur_len;
        memcpy(CMSG_DATA(c), &seg, sizeof seg);
    }
    struct io_uring_sqe *sqe = sqe_get();
    io_uring_prep_sendmsg(sqe, fd, &s->mh, 0);
    io_uring_sqe_set_data64(sqe, (uint64_t)cur);
    n_sends++;
    cur = -1;
}

static void on_datagram(int bid, int res) {
    char *buf = bufs + (size_t)bid * BUFSZ;
    struct io_uring_recvmsg_out *o = io_uring_recvmsg_validate(buf, res, &recv_mh);
    if (!o || o->namelen < sizeof(struct sockaddr_in) || (o->flags & MSG_TRUNC)) {
        if (o && (o->flags & MSG_TRUNC)) n_trunc++;
        give_back(bid);
        return;
    }
    n_dgrams++;
    struct sockaddr_in *from = io_uring_recvmsg_name(o);
    void *payload = io_uring_recvmsg_payload(o, &recv_mh);
    size_t len = io_uring_recvmsg_payload_length(o, res, &recv_mh);
    if (cur >= 0) {
        struct slot *s = &slots[cur];
        if (len == cur_len && s->n < MAXSEG && (s->n + 1) * len <= MAXGSO &&
            s->peer.sin_port == from->sin_port && s->peer.sin_addr.s_addr == from->sin_addr.s_addr) {
            s->iov[s->n].iov_base = payload;
            s->iov[s->n].iov_len = len;
            s->bid[s->n++] = (uint16_t)bid;
            return;
        }
        flush();
    }
    if (free_slot < 0) { /* cannot happen: a slot per buffer */
        give_back(bid);
        return;
    }
    cur = free_slot;
    free_slot = slots[cur].next_free;
    struct slot *s = &slots[cur];
    s->peer = *from;
    s->n = 1;
    s->iov[0].iov_base = payload;
    s->iov[0].iov_len = len;
    s->bid[0] = (uint16_t)bid;
    cur_len = len;
    if (!gso || len == 0) flush();
}

static void on_sent(int idx, int res) {
    struct slot *s = &slots[idx];
    if (res < 0) n_senderr++;
    for (int i = 0; i < s->n; i++) give_back(s->bid[i]);
    s->next_free = free_slot;
    free_slot = idx;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: udp_uring PORT [gso] [coop] [single] [defer] [regfd]\n");
        return 64;
    }
    unsigned flags = 0;
    int regfd = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "gso")) gso = 1;
        else if (!strcmp(argv[i], "coop")) flags |= IORING_SETUP_COOP_TASKRUN;
        else if (!strcmp(argv[i], "single")) flags |= IORING_SETUP_SINGLE_ISSUER;
        else if (!strcmp(argv[i], "defer")) flags |= IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
        else if (!strcmp(argv[i], "regfd")) regfd = 1;
        else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 64;
        }
    }
    fd = socket(AF_INET, SOCK_DGRAM, 0);
    int big = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(atoi(argv[1]));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        perror("bind");
        return 1;
    }

    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    p.flags = flags | IORING_SETUP_CQSIZE;
    p.cq_entries = 4 * NBUF;
    int r = io_uring_queue_init_params(2 * NBUF, &ring, &p);
    if (r < 0) {
        fprintf(stderr, "io_uring_queue_init: %s\n", strerror(-r));
        return 1;
    }
    if (regfd && io_uring_register_ring_fd(&ring) != 1) {
        fprintf(stderr, "io_uring_register_ring_fd failed\n");
        return 1;
    }

    /* The provided buffer ring: NBUF io_uring_buf entries, page aligned. */
    size_t ring_sz = NBUF * sizeof(struct io_uring_buf);
    br = mmap(NULL, ring_sz, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    bufs = mmap(NULL, (size_t)NBUF * BUFSZ, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (br == MAP_FAILED || bufs == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof reg);
    reg.ring_addr = (unsigned long)br;
    reg.ring_entries = NBUF;
    reg.bgid = BGID;
    r = io_uring_register_buf_ring(&ring, &reg, 0);
    if (r < 0) {
        fprintf(stderr, "io_uring_register_buf_ring: %s\n", strerror(-r));
        return 1;
    }
    io_uring_buf_ring_init(br);
    for (int i = 0; i < NBUF; i++) give_back(i);
    io_uring_buf_ring_advance(br, returned);
    returned = 0;
    avail = NBUF;
    for (int i = NSLOT - 1; i >= 0; i--) {
        slots[i].next_free = free_slot;
        free_slot = i;
    }
    memset(&recv_mh, 0, sizeof recv_mh);
    recv_mh.msg_namelen = sizeof(struct sockaddr_in);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    while (!stop) {
        if (!armed && avail > 0) arm_recv();
        n_enter++;
        r = io_uring_submit_and_wait(&ring, 1);
        if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY && r != -ETIME) {
            fprintf(stderr, "io_uring_submit_and_wait: %s\n", strerror(-r));
            return 1;
        }
        unsigned head, seen = 0;
        struct io_uring_cqe *cqe;
        io_uring_for_each_cqe(&ring, head, cqe) {
            seen++;
            if (cqe->user_data == RECV_UD) {
                if (!(cqe->flags & IORING_CQE_F_MORE)) armed = 0;
                if (cqe->res == -ENOBUFS) n_nobufs++;
                if (!(cqe->flags & IORING_CQE_F_BUFFER)) continue;
                avail--;
                on_datagram(cqe->flags >> IORING_CQE_BUFFER_SHIFT, cqe->res);
            } else {
                on_sent((int)cqe->user_data, cqe->res);
            }
        }
        io_uring_cq_advance(&ring, seen);
        n_cqes += seen;
        flush();
        if (returned) {
            io_uring_buf_ring_advance(br, returned);
            avail += returned;
            returned = 0;
        }
    }
    fprintf(stderr,
            "udp_uring: %llu datagrams, %llu sends (%.2f dgrams/send), %llu io_uring_enter "
            "(%.2f dgrams/enter), %llu CQEs, %llu recv arms, %llu ENOBUFS, %llu send errors, %llu truncated\n",
            n_dgrams, n_sends, n_sends ? (double)n_dgrams / n_sends : 0, n_enter,
            n_enter ? (double)n_dgrams / n_enter : 0, n_cqes, n_rearm, n_nobufs, n_senderr, n_trunc);
    return 0;
}
