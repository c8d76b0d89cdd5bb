#ifndef MESHQ_CLIBEVENT_SHIM_H
#define MESHQ_CLIBEVENT_SHIM_H

// libc headers first: libevent's event-config.h defines _GNU_SOURCE, and
// including it before these breaks Swift's Glibc module (fd_set mismatch).
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <signal.h>
#include <stddef.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <event2/http.h>

// TLS: libevent's OpenSSL bufferevents over the system OpenSSL (libssl-dev).
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <event2/bufferevent_ssl.h>

// Function-like macros are not imported by Swift.
static inline int meshq_ev_read(void) { return EV_READ; }
static inline int meshq_ev_write(void) { return EV_WRITE; }
static inline int meshq_ev_persist(void) { return EV_PERSIST; }
static inline int meshq_ev_signal(void) { return EV_SIGNAL; }
static inline int meshq_ev_timeout(void) { return EV_TIMEOUT; }

// SIG_IGN is a cast macro Swift cannot import.
static inline void meshq_ignore_sigpipe(void) { signal(SIGPIPE, SIG_IGN); }

static inline void meshq_ignore_signal(int sig) { signal(sig, SIG_IGN); }

// A launcher may hand us a blocked signal mask (threads of test runners and
// some supervisors block signals, and the mask survives exec): clear it so
// SIGTERM/SIGINT/SIGHUP reach the loop.
static inline void meshq_unblock_all_signals(void) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

// OpenSSL macros over SSL_CTX_ctrl / SSL_ctrl, which Swift does not import.
static inline int meshq_ssl_ctx_min_tls12(SSL_CTX *ctx) {
    return (int)SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
}
static inline void meshq_ssl_ctx_partial_writes(SSL_CTX *ctx) {
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
}
// OpenSSL 3 reports a TCP close without close_notify as an error; as in
// OpenSSL 1.1 it becomes an end of stream (a client's half-close, `nc -q`).
static inline void meshq_ssl_ctx_ignore_unexpected_eof(SSL_CTX *ctx) {
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
}
static inline int meshq_ssl_set_sni(SSL *ssl, const char *name) {
    return (int)SSL_set_tlsext_host_name(ssl, name);
}

#endif
