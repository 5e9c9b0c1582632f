// What Swift cannot import directly: variadic C functions, function-like macros, packed structs.
#ifndef MANDATE_SHIM_H
#define MANDATE_SHIM_H
#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <curl/curl.h>

// MARK: libcurl (curl_easy_setopt / curl_multi_setopt / curl_easy_getinfo are variadic)
CURLcode mandate_curl_easy_setopt_long(CURL *h, CURLoption o, long v);
CURLcode mandate_curl_easy_setopt_off(CURL *h, CURLoption o, curl_off_t v);
CURLcode mandate_curl_easy_setopt_ptr(CURL *h, CURLoption o, const void *v);
CURLcode mandate_curl_easy_setopt_write(CURL *h, CURLoption o,
    size_t (*cb)(char *, size_t, size_t, void *));
CURLcode mandate_curl_easy_setopt_xferinfo(CURL *h,
    int (*cb)(void *, curl_off_t, curl_off_t, curl_off_t, curl_off_t));
CURLcode mandate_curl_easy_getinfo_long(CURL *h, CURLINFO i, long *out);
CURLcode mandate_curl_easy_getinfo_ptr(CURL *h, CURLINFO i, void **out);
CURLMcode mandate_curl_multi_setopt_long(CURLM *m, CURLMoption o, long v);
CURLMcode mandate_curl_multi_setopt_ptr(CURLM *m, CURLMoption o, void *v);
CURLMcode mandate_curl_multi_setopt_socketfn(CURLM *m,
    int (*cb)(CURL *, curl_socket_t, int, void *, void *));
CURLMcode mandate_curl_multi_setopt_timerfn(CURLM *m, int (*cb)(CURLM *, long, void *));
// Outbound fetches: connect only to public addresses unless *guard is 1 (checked per address);
// *guard becomes -1 when a destination was refused. It must outlive the transfer.
CURLcode mandate_curl_guard_destinations(CURL *h, int *guard);
int mandate_is_private_address(const struct sockaddr *sa);
// CURLMsg holds a union; return its fields.
int mandate_curl_multi_info_read(CURLM *m, CURL **easy, CURLcode *result);

// MARK: epoll, eventfd, accept4 (struct epoll_event is packed on x86_64)
typedef struct { uint32_t events; uint64_t data; } mandate_event;
enum {
    MANDATE_EPOLLIN = 0x001, MANDATE_EPOLLOUT = 0x004, MANDATE_EPOLLERR = 0x008,
    MANDATE_EPOLLHUP = 0x010, MANDATE_EPOLLRDHUP = 0x2000, MANDATE_EPOLLET = (int)(1u << 31)
};
// Which clang module owns <sys/socket.h> varies between builds; this one is always ours.
enum { MANDATE_MSG_NOSIGNAL = MSG_NOSIGNAL, MANDATE_MSG_PEEK = MSG_PEEK, MANDATE_SHUT_WR = SHUT_WR, MANDATE_SHUT_RDWR = SHUT_RDWR };
int mandate_epoll_create(void);
int mandate_epoll_add(int ep, int fd, uint32_t events, uint64_t data);
int mandate_epoll_mod(int ep, int fd, uint32_t events, uint64_t data);
int mandate_epoll_del(int ep, int fd);
int mandate_epoll_wait(int ep, mandate_event *out, int max, int timeout_ms);
// The same with a nanosecond timeout (the load generator's open-loop schedule).
int mandate_epoll_wait_ns(int ep, mandate_event *out, int max, long long timeout_ns);
int mandate_eventfd(void);
int mandate_accept4(int fd, struct sockaddr *addr, socklen_t *len);
int mandate_listen_socket(const char *host, int port, int reuseport, int backlog);
int mandate_set_nodelay(int fd);
// 1 when something already listens on host:port. SO_REUSEPORT would let a second process join
// the same port silently and take a share of the traffic; a bind without it finds the first.
int mandate_port_in_use(const char *host, int port);
int mandate_peer_name(int fd, char *out, size_t outlen);
// Port a socket is bound to (for port 0 listeners); -1 on error.
int mandate_local_port(int fd);
int mandate_set_blocking(int fd);

// MARK: TLS termination (tls.c): OpenSSL's macros and callbacks kept out of Swift
typedef struct ssl_ctx_st mandate_tls_ctx;
typedef struct ssl_st mandate_tls;
enum { MANDATE_VERIFY_OFF = 0, MANDATE_VERIFY_OPTIONAL = 1, MANDATE_VERIFY_REQUIRED = 2 };
// A server context: TLS 1.2 and 1.3, forward-secret AEAD suites, ALPN http/1.1, no renegotiation,
// no compression. ca may be NULL (no client certificates). NULL on failure, with err filled.
mandate_tls_ctx *mandate_tls_ctx_new(const char *cert, const char *key, const char *ca, int verify,
                                     char *err, size_t errlen);
void mandate_tls_ctx_free(mandate_tls_ctx *ctx);
mandate_tls *mandate_tls_new(mandate_tls_ctx *ctx, int fd);
void mandate_tls_free(mandate_tls *t);
// Results: > 0 bytes (or 1: handshake done); 0 the peer closed; these below:
enum { MANDATE_TLS_WANT_READ = -1, MANDATE_TLS_WANT_WRITE = -2, MANDATE_TLS_FAILED = -3 };
int mandate_tls_handshake(mandate_tls *t);
int mandate_tls_read(mandate_tls *t, void *buf, int len);
int mandate_tls_write(mandate_tls *t, const void *buf, int len);
// Sends close_notify once; does not wait for the peer's.
void mandate_tls_close_notify(mandate_tls *t);
// The client certificate: 0 none presented; 1 presented and verified against the CA bundle;
// -1 presented and not verified (reason in err). sha256 = SHA-256 of its DER (RFC 8705 §3.1).
// key_kind 1: Ed25519 (32 bytes in key), 2: P-256 (65-byte uncompressed point), 0: other.
int mandate_tls_peer(mandate_tls *t, uint8_t sha256[32], uint8_t key[65], int *key_kind,
                     char *err, size_t errlen);
// The first certificate of a PEM file, described as above; 0 with err on failure.
int mandate_x509_file(const char *path, uint8_t sha256[32], uint8_t key[65], int *key_kind,
                      char *err, size_t errlen);

// MARK: SHA-256 without OpenSSL 3's per-call algorithm fetch (SHA extensions where present)
void mandate_sha256(const uint8_t *data, size_t len, uint8_t out[32]);

// MARK: OpenSSL P-256 (macros and EVP plumbing kept out of Swift)
typedef struct evp_pkey_st mandate_p256_key;
// 65-byte uncompressed SEC1 point; NULL when the point is not on the curve.
mandate_p256_key *mandate_p256_key_new(const uint8_t pub[65]);
void mandate_p256_key_free(mandate_p256_key *k);
// 33-byte compressed point to 65-byte uncompressed; 1 on success.
int mandate_p256_decompress(const uint8_t in[33], uint8_t out[65]);
// Raw r||s; scalars outside [1, n-1] are refused. 1 when valid.
int mandate_p256_verify(mandate_p256_key *k, const uint8_t *msg, size_t len, const uint8_t sig[64]);
int mandate_p256_generate(uint8_t priv[32], uint8_t pub[65]);
int mandate_p256_public_from_private(const uint8_t priv[32], uint8_t pub[65]);
int mandate_p256_sign(const uint8_t priv[32], const uint8_t *msg, size_t len, uint8_t sig[64]);
// MARK: OpenSSL RSA (RS256 for OAuth issuers' keys): n and e big-endian; NULL outside 2048-8192 bits.
typedef struct evp_pkey_st mandate_rsa_key;
mandate_rsa_key *mandate_rsa_key_new(const uint8_t *n, size_t nlen, const uint8_t *e, size_t elen);
void mandate_rsa_key_free(mandate_rsa_key *k);
int mandate_rsa_verify_sha256(mandate_rsa_key *k, const uint8_t *msg, size_t len, const uint8_t *sig, size_t siglen);
#endif
