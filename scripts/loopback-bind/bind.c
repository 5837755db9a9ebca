/*
 * loopback-bind: an LD_PRELOAD shim that keeps a server that has no "listen
 * host" option (DynamoDB Local) off every interface but loopback.
 *
 * It wraps bind(2): a bind to the IPv4 wildcard (0.0.0.0) becomes a bind to
 * 127.0.0.1; a bind to the IPv6 wildcard (::) becomes a bind to
 * ::ffff:127.0.0.1 on a dual-stack socket (so IPv4 clients of 127.0.0.1 still
 * reach it) or to ::1 on an IPV6_V6ONLY socket. Every other bind is passed
 * through unchanged.
 *
 * Build:  gcc -shared -fPIC -O2 -Wall -o libloopbackbind.so bind.c -ldl
 * Use:    LD_PRELOAD=/abs/path/libloopbackbind.so java ...
 * Set LOOPBACK_BIND_DEBUG=1 to log each rewrite to stderr.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>

typedef int (*bind_fn)(int, const struct sockaddr *, socklen_t);

static bind_fn real_bind(void) {
    static bind_fn fn;
    if (!fn) {
        fn = (bind_fn)dlsym(RTLD_NEXT, "bind");
    }
    return fn;
}

static int debug_enabled(void) {
    const char *v = getenv("LOOPBACK_BIND_DEBUG");
    return v && *v && strcmp(v, "0") != 0;
}

int bind(int fd, const struct sockaddr *addr, socklen_t len) {
    bind_fn next = real_bind();
    if (!next) {
        errno = ENOSYS;
        return -1;
    }
    if (addr && addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
        if (in->sin_addr.s_addr == htonl(INADDR_ANY)) {
            struct sockaddr_in lo;
            memcpy(&lo, in, sizeof lo);
            lo.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            if (debug_enabled()) {
                fprintf(stderr, "loopback-bind: fd %d: 0.0.0.0:%u -> 127.0.0.1:%u\n", fd,
                        ntohs(in->sin_port), ntohs(in->sin_port));
            }
            return next(fd, (const struct sockaddr *)&lo, sizeof lo);
        }
    } else if (addr && addr->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)addr;
        if (memcmp(&in6->sin6_addr, &in6addr_any, sizeof in6addr_any) == 0) {
            struct sockaddr_in6 lo;
            int v6only = 0;
            socklen_t optlen = sizeof v6only;
            memcpy(&lo, in6, sizeof lo);
            if (getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &optlen) == 0 && v6only) {
                lo.sin6_addr = in6addr_loopback;
            } else {
                /* ::ffff:127.0.0.1 — IPv4 loopback through a dual-stack socket */
                memset(&lo.sin6_addr, 0, sizeof lo.sin6_addr);
                lo.sin6_addr.s6_addr[10] = 0xff;
                lo.sin6_addr.s6_addr[11] = 0xff;
                lo.sin6_addr.s6_addr[12] = 127;
                lo.sin6_addr.s6_addr[15] = 1;
            }
            if (debug_enabled()) {
                fprintf(stderr, "loopback-bind: fd %d: [::]:%u -> %s:%u\n", fd, ntohs(in6->sin6_port),
                        v6only ? "[::1]" : "[::ffff:127.0.0.1]", ntohs(in6->sin6_port));
            }
            return next(fd, (const struct sockaddr *)&lo, sizeof lo);
        }
    }
    return next(fd, addr, len);
}
