// The floor of a keep-alive HTTP/1.1 proxy on this machine: a pure TCP relay in C that parses nothing, with one upstream
// connection per client connection, opened when the client connects. It makes the same 4 TCP segments and the same
// 2 recv + 2 send calls per request as any proxy, and nothing else, so its CPU per request is the kernel's share.
// An experiment, not a product: it leaks what it closes and stalls a thread while a peer's send buffer is full.
//
//   cc -O2 -D_GNU_SOURCE -o relay bench/floor/relay.c -lpthread                          (epoll only)
//   cc -O2 -D_GNU_SOURCE -DWITH_URING -o relay bench/floor/relay.c -luring -lpthread     (apt-get install liburing-dev)
//   VARIANTS="router|X=1;relay|BIN=$PWD/relay UP=19180 MODE=epoll" bench/e2e/ab.sh
//
// Arguments as ab.sh gives them to a router (only --listen PORT is read); env UP = upstream port, MODE = epoll | uring,
// THREADS = loop threads (2). MODE=epoll: one edge-triggered epoll per thread, SO_REUSEPORT listeners, recv/send.
// MODE=uring: one io_uring per thread, multishot accept, recv completions, each send linked to the next recv, one
// io_uring_enter per batch.
#ifdef WITH_URING
#include <liburing.h>
#endif
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <errno.h>
#include <signal.h>

static int listen_port, up_port, nthreads = 2;
struct conn { int fd; struct conn *peer; char buf[8192]; };

static int mk_listener(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, 4);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, 4);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, 4);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(listen_port) };
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (bind(fd, (void *)&a, sizeof a) || listen(fd, 4096)) { perror("bind"); exit(1); }
    return fd;
}
static int mk_upstream(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(up_port) };
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (void *)&a, sizeof a)) { perror("connect"); exit(1); }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, 4);
    int fl = 1; ioctl(fd, FIONBIO, &fl);
    return fd;
}
static void pair(int cfd, struct conn **c, struct conn **u) {
    int one = 1; setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, 4);
    *c = calloc(1, sizeof **c); *u = calloc(1, sizeof **u);
    (*c)->fd = cfd; (*u)->fd = mk_upstream(); (*c)->peer = *u; (*u)->peer = *c;
}

static void *epoll_thread(void *arg) {
    (void)arg;
    int ep = epoll_create1(0), lfd = mk_listener();
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (!c) {
                int cfd;
                while ((cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    struct conn *a, *u; pair(cfd, &a, &u);
                    struct epoll_event e1 = { .events = EPOLLIN | EPOLLET | EPOLLRDHUP, .data.ptr = a };
                    struct epoll_event e2 = { .events = EPOLLIN | EPOLLET | EPOLLRDHUP, .data.ptr = u };
                    epoll_ctl(ep, EPOLL_CTL_ADD, a->fd, &e1); epoll_ctl(ep, EPOLL_CTL_ADD, u->fd, &e2);
                }
                continue;
            }
            for (;;) {
                ssize_t r = recv(c->fd, c->buf, sizeof c->buf, 0);
                if (r > 0) {
                    ssize_t off = 0;
                    while (off < r) { ssize_t s = send(c->peer->fd, c->buf + off, r - off, MSG_DONTWAIT | MSG_NOSIGNAL); if (s <= 0) { if (errno == EAGAIN) { struct pollfd pf = { c->peer->fd, POLLOUT, 0 }; poll(&pf, 1, -1); continue; } break; } off += s; }
                    if (r < (ssize_t)sizeof c->buf) break;
                } else if (r == 0 || errno != EAGAIN) {
                    close(c->fd); close(c->peer->fd); break; // leak: experiment only
                } else break;
            }
        }
    }
    return NULL;
}

#ifdef WITH_URING
enum { OP_ACCEPT = 1, OP_RECV = 2 };
static void post_recv(struct io_uring *r, struct conn *c) {
    struct io_uring_sqe *s = io_uring_get_sqe(r);
    io_uring_prep_recv(s, c->fd, c->buf, sizeof c->buf, 0);
    io_uring_sqe_set_data64(s, (unsigned long)c | OP_RECV);
}
static void *uring_thread(void *arg) {
    (void)arg;
    struct io_uring ring; struct io_uring_params p = { 0 };
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_COOP_TASKRUN;
    if (io_uring_queue_init_params(1024, &ring, &p)) { perror("uring"); exit(1); }
    int lfd = mk_listener();
    struct io_uring_sqe *s = io_uring_get_sqe(&ring);
    io_uring_prep_multishot_accept(s, lfd, NULL, NULL, 0);
    io_uring_sqe_set_data64(s, OP_ACCEPT);
    for (;;) {
        io_uring_submit_and_wait(&ring, 1);
        struct io_uring_cqe *cqe; unsigned head, seen = 0;
        io_uring_for_each_cqe(&ring, head, cqe) {
            seen++;
            unsigned long ud = cqe->user_data;
            if (ud == OP_ACCEPT) {
                if (cqe->res >= 0) { struct conn *a, *u; pair(cqe->res, &a, &u); post_recv(&ring, a); post_recv(&ring, u); }
                if (!(cqe->flags & IORING_CQE_F_MORE)) { fprintf(stderr, "accept ended\n"); exit(1); }
                continue;
            }
            if (ud == 0) continue; // a failed send (successful ones post nothing)
            struct conn *c = (struct conn *)(ud & ~7UL);
            if (cqe->res <= 0) { if (c->fd >= 0) { close(c->fd); shutdown(c->peer->fd, SHUT_RDWR); c->fd = -1; } continue; }
            // send to the peer, then (linked) receive again into the same buffer
            s = io_uring_get_sqe(&ring);
            io_uring_prep_send(s, c->peer->fd, c->buf, cqe->res, MSG_NOSIGNAL | MSG_WAITALL);
            s->flags |= IOSQE_IO_LINK | IOSQE_CQE_SKIP_SUCCESS;
            io_uring_sqe_set_data64(s, 0);
            post_recv(&ring, c);
        }
        io_uring_cq_advance(&ring, seen);
    }
    return NULL;
}
#endif

int main(int argc, char **argv) {
    for (int i = 1; i < argc - 1; i++) if (!strcmp(argv[i], "--listen")) listen_port = atoi(strrchr(argv[i + 1], ':') + 1);
    up_port = atoi(getenv("UP")); const char *m = getenv("MODE"); if (getenv("THREADS")) nthreads = atoi(getenv("THREADS"));
    if (nthreads < 1 || nthreads > 8) nthreads = 2;
    signal(SIGPIPE, SIG_IGN);
    pthread_t t[8];
    for (int i = 0; i < nthreads; i++) {
#ifdef WITH_URING
        if (m && !strcmp(m, "uring")) { pthread_create(&t[i], NULL, uring_thread, NULL); continue; }
#endif
        if (m && strcmp(m, "epoll")) { fprintf(stderr, "MODE=%s is not built in\n", m); return 2; }
        pthread_create(&t[i], NULL, epoll_thread, NULL);
    }
    pthread_join(t[0], NULL);
}
