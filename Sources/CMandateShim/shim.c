#define _GNU_SOURCE
#define OPENSSL_SUPPRESS_DEPRECATED  // SHA256_Init & co.: no EVP fetch per call
#include "mandate_shim.h"
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <string.h>
#include <unistd.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <openssl/evp.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/bn.h>
#include <openssl/obj_mac.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>
#include <openssl/sha.h>

CURLcode mandate_curl_easy_setopt_long(CURL *h, CURLoption o, long v) { return curl_easy_setopt(h, o, v); }
CURLcode mandate_curl_easy_setopt_off(CURL *h, CURLoption o, curl_off_t v) { return curl_easy_setopt(h, o, v); }
CURLcode mandate_curl_easy_setopt_ptr(CURL *h, CURLoption o, const void *v) { return curl_easy_setopt(h, o, v); }
CURLcode mandate_curl_easy_setopt_write(CURL *h, CURLoption o, size_t (*cb)(char *, size_t, size_t, void *)) {
    return curl_easy_setopt(h, o, cb);
}
CURLcode mandate_curl_easy_setopt_xferinfo(CURL *h, int (*cb)(void *, curl_off_t, curl_off_t, curl_off_t, curl_off_t)) {
    return curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, cb);
}
CURLcode mandate_curl_easy_getinfo_long(CURL *h, CURLINFO i, long *out) { return curl_easy_getinfo(h, i, out); }
CURLcode mandate_curl_easy_getinfo_ptr(CURL *h, CURLINFO i, void **out) { return curl_easy_getinfo(h, i, out); }
CURLMcode mandate_curl_multi_setopt_long(CURLM *m, CURLMoption o, long v) { return curl_multi_setopt(m, o, v); }
CURLMcode mandate_curl_multi_setopt_ptr(CURLM *m, CURLMoption o, void *v) { return curl_multi_setopt(m, o, v); }
CURLMcode mandate_curl_multi_setopt_socketfn(CURLM *m, int (*cb)(CURL *, curl_socket_t, int, void *, void *)) {
    return curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, cb);
}
CURLMcode mandate_curl_multi_setopt_timerfn(CURLM *m, int (*cb)(CURLM *, long, void *)) {
    return curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, cb);
}
int mandate_curl_multi_info_read(CURLM *m, CURL **easy, CURLcode *result) {
    int left = 0;
    CURLMsg *msg;
    while ((msg = curl_multi_info_read(m, &left)) != NULL) {
        if (msg->msg == CURLMSG_DONE) { *easy = msg->easy_handle; *result = msg->data.result; return 1; }
    }
    return 0;
}

int mandate_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }
static int ctl(int ep, int op, int fd, uint32_t events, uint64_t data) {
    struct epoll_event ev; ev.events = events; ev.data.u64 = data;
    return epoll_ctl(ep, op, fd, &ev);
}
int mandate_epoll_add(int ep, int fd, uint32_t events, uint64_t data) { return ctl(ep, EPOLL_CTL_ADD, fd, events, data); }
int mandate_epoll_mod(int ep, int fd, uint32_t events, uint64_t data) { return ctl(ep, EPOLL_CTL_MOD, fd, events, data); }
int mandate_epoll_del(int ep, int fd) { return epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL); }
int mandate_epoll_wait(int ep, mandate_event *out, int max, int timeout_ms) {
    struct epoll_event evs[256];
    if (max > 256) max = 256;
    int n = epoll_wait(ep, evs, max, timeout_ms);
    for (int i = 0; i < n; i++) { out[i].events = evs[i].events; out[i].data = evs[i].data.u64; }
    return n;
}

// Nanosecond timeout (epoll_pwait2, Linux 5.11); millisecond rounding up where it is missing.
int mandate_epoll_wait_ns(int ep, mandate_event *out, int max, long long timeout_ns) {
    struct epoll_event evs[256];
    if (max > 256) max = 256;
    if (timeout_ns < 0) timeout_ns = 0;
    struct timespec ts = { (time_t)(timeout_ns / 1000000000LL), (long)(timeout_ns % 1000000000LL) };
    int n = epoll_pwait2(ep, evs, max, &ts, NULL);
    if (n < 0 && errno == ENOSYS) n = epoll_wait(ep, evs, max, (int)((timeout_ns + 999999) / 1000000));
    for (int i = 0; i < n; i++) { out[i].events = evs[i].events; out[i].data = evs[i].data.u64; }
    return n;
}
int mandate_eventfd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }
int mandate_accept4(int fd, struct sockaddr *addr, socklen_t *len) {
    return accept4(fd, addr, len, SOCK_NONBLOCK | SOCK_CLOEXEC);
}
int mandate_listen_socket(const char *host, int port, int reuseport, int backlog) {
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC; hints.ai_socktype = SOCK_STREAM; hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST;
    char portstr[16]; snprintf(portstr, sizeof portstr, "%d", port);
    if (getaddrinfo(host, portstr, &hints, &res) != 0 || res == NULL) return -1;
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) { freeaddrinfo(res); return -1; }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuseport) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, backlog) != 0) {
        close(fd); freeaddrinfo(res); return -1;
    }
    freeaddrinfo(res);
    return fd;
}
int mandate_port_in_use(const char *host, int port) {
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC; hints.ai_socktype = SOCK_STREAM; hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST;
    char portstr[16]; snprintf(portstr, sizeof portstr, "%d", port);
    if (getaddrinfo(host, portstr, &hints, &res) != 0 || res == NULL) return 0;
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int inUse = 0;
    if (fd >= 0) {
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);  // TIME_WAIT is not "in use"
        inUse = bind(fd, res->ai_addr, res->ai_addrlen) != 0 && errno == EADDRINUSE;
        close(fd);
    }
    freeaddrinfo(res);
    return inUse;
}
int mandate_set_nodelay(int fd) { int one = 1; return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); }
int mandate_peer_name(int fd, char *out, size_t outlen) {
    struct sockaddr_storage ss; socklen_t len = sizeof ss;
    if (getpeername(fd, (struct sockaddr *)&ss, &len) != 0) return -1;
    const void *a = ss.ss_family == AF_INET6 ? (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr
                                             : (const void *)&((struct sockaddr_in *)&ss)->sin_addr;
    return inet_ntop(ss.ss_family, a, out, (socklen_t)outlen) ? 0 : -1;
}

int mandate_local_port(int fd) {
    struct sockaddr_storage ss; socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) return -1;
    if (ss.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}
int mandate_set_blocking(int fd) {
    int flags = fcntl(fd, F_GETFL, 0);
    return flags < 0 ? -1 : fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
}

void mandate_sha256(const uint8_t *data, size_t len, uint8_t out[32]) {
    SHA256_CTX c;
    SHA256_Init(&c);
    SHA256_Update(&c, data, len);
    SHA256_Final(out, &c);
}

// MARK: P-256
static const uint8_t P256_ORDER[32] = {
    0xff,0xff,0xff,0xff,0x00,0x00,0x00,0x00,0xff,0xff,0xff,0xff,0xff,0xff,0xff,0xff,
    0xbc,0xe6,0xfa,0xad,0xa7,0x17,0x9e,0x84,0xf3,0xb9,0xca,0xc2,0xfc,0x63,0x25,0x51 };

static int scalar_in_range(const uint8_t s[32]) {
    int zero = 1;
    for (int i = 0; i < 32; i++) if (s[i]) { zero = 0; break; }
    if (zero) return 0;
    return memcmp(s, P256_ORDER, 32) < 0;
}

mandate_p256_key *mandate_p256_key_new(const uint8_t pub[65]) {
    if (pub[0] != 0x04) return NULL;
    OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
    if (!b) return NULL;
    OSSL_PARAM_BLD_push_utf8_string(b, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0);
    OSSL_PARAM_BLD_push_octet_string(b, OSSL_PKEY_PARAM_PUB_KEY, pub, 65);
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(b);
    OSSL_PARAM_BLD_free(b);
    if (!params) return NULL;
    EVP_PKEY *key = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (ctx && EVP_PKEY_fromdata_init(ctx) == 1) EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    if (!key) return NULL;
    // fromdata does not always check the point; do it explicitly.
    EVP_PKEY_CTX *chk = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
    int ok = chk && EVP_PKEY_public_check(chk) == 1;
    EVP_PKEY_CTX_free(chk);
    if (!ok) { EVP_PKEY_free(key); return NULL; }
    return key;
}
void mandate_p256_key_free(mandate_p256_key *k) { EVP_PKEY_free(k); }

int mandate_p256_decompress(const uint8_t in[33], uint8_t out[65]) {
    if (in[0] != 0x02 && in[0] != 0x03) return 0;
    EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
    EC_POINT *p = g ? EC_POINT_new(g) : NULL;
    int ok = p && EC_POINT_oct2point(g, p, in, 33, NULL) == 1
        && EC_POINT_point2oct(g, p, POINT_CONVERSION_UNCOMPRESSED, out, 65, NULL) == 65;
    EC_POINT_free(p); EC_GROUP_free(g);
    return ok;
}

int mandate_p256_verify(mandate_p256_key *k, const uint8_t *msg, size_t len, const uint8_t sig[64]) {
    if (!scalar_in_range(sig) || !scalar_in_range(sig + 32)) return 0;
    uint8_t digest[32];
    mandate_sha256(msg, len, digest);
    ECDSA_SIG *s = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, 32, NULL), *ss = BN_bin2bn(sig + 32, 32, NULL);
    if (!s || !r || !ss || ECDSA_SIG_set0(s, r, ss) != 1) { ECDSA_SIG_free(s); BN_free(r); BN_free(ss); return 0; }
    uint8_t der[80]; uint8_t *pp = der;
    int derlen = i2d_ECDSA_SIG(s, &pp);
    ECDSA_SIG_free(s);
    if (derlen <= 0) return 0;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(k, NULL);
    int ok = ctx && EVP_PKEY_verify_init(ctx) == 1 && EVP_PKEY_verify(ctx, der, (size_t)derlen, digest, 32) == 1;
    EVP_PKEY_CTX_free(ctx);
    return ok;
}

static EVP_PKEY *private_key(const uint8_t priv[32]) {
    BIGNUM *d = BN_bin2bn(priv, 32, NULL);
    EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
    EC_POINT *pub = g ? EC_POINT_new(g) : NULL;
    uint8_t pubbuf[65];
    EVP_PKEY *key = NULL;
    if (d && pub && EC_POINT_mul(g, pub, d, NULL, NULL, NULL) == 1
        && EC_POINT_point2oct(g, pub, POINT_CONVERSION_UNCOMPRESSED, pubbuf, 65, NULL) == 65) {
        OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
        OSSL_PARAM_BLD_push_utf8_string(b, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0);
        OSSL_PARAM_BLD_push_octet_string(b, OSSL_PKEY_PARAM_PUB_KEY, pubbuf, 65);
        OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_PRIV_KEY, d);
        OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(b);
        OSSL_PARAM_BLD_free(b);
        EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
        if (ctx && params && EVP_PKEY_fromdata_init(ctx) == 1) EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_KEYPAIR, params);
        EVP_PKEY_CTX_free(ctx);
        OSSL_PARAM_free(params);
    }
    BN_clear_free(d); EC_POINT_free(pub); EC_GROUP_free(g);
    return key;
}

int mandate_p256_public_from_private(const uint8_t priv[32], uint8_t pub[65]) {
    EVP_PKEY *k = private_key(priv);
    if (!k) return 0;
    size_t len = 0;
    int ok = EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, pub, 65, &len) == 1 && len == 65;
    EVP_PKEY_free(k);
    return ok;
}

int mandate_p256_generate(uint8_t priv[32], uint8_t pub[65]) {
    EVP_PKEY *k = EVP_EC_gen("P-256");
    if (!k) return 0;
    BIGNUM *d = NULL; size_t len = 0;
    int ok = EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_PRIV_KEY, &d) == 1 && BN_bn2binpad(d, priv, 32) == 32
        && EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, pub, 65, &len) == 1 && len == 65;
    BN_clear_free(d); EVP_PKEY_free(k);
    return ok;
}

int mandate_p256_sign(const uint8_t priv[32], const uint8_t *msg, size_t len, uint8_t sig[64]) {
    EVP_PKEY *k = private_key(priv);
    if (!k) return 0;
    uint8_t digest[32]; SHA256(msg, len, digest);
    uint8_t der[80]; size_t derlen = sizeof der;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(k, NULL);
    int ok = ctx && EVP_PKEY_sign_init(ctx) == 1 && EVP_PKEY_sign(ctx, der, &derlen, digest, 32) == 1;
    EVP_PKEY_CTX_free(ctx); EVP_PKEY_free(k);
    if (!ok) return 0;
    const uint8_t *p = der;
    ECDSA_SIG *s = d2i_ECDSA_SIG(NULL, &p, (long)derlen);
    if (!s) return 0;
    ok = BN_bn2binpad(ECDSA_SIG_get0_r(s), sig, 32) == 32 && BN_bn2binpad(ECDSA_SIG_get0_s(s), sig + 32, 32) == 32;
    ECDSA_SIG_free(s);
    return ok;
}

// MARK: outbound fetches (did:web): refuse private destinations at connect time
#include <netinet/in.h>
#include <arpa/inet.h>

// Loopback, private, link-local, CGNAT, multicast, reserved and unspecified: not the public
// Internet. Checked on the address curl is about to connect to, so DNS cannot smuggle one in.
static int private_v4(uint32_t a) {
    return (a >> 24) == 0 || (a >> 24) == 10 || (a >> 24) == 127 || (a >> 22) == (100u << 2 | 1)
        || (a >> 16) == (169u << 8 | 254) || (a >> 20) == (172u << 4 | 1) || (a >> 8) == (192u << 16 | 0 << 8 | 0)
        || (a >> 16) == (192u << 8 | 168) || (a >> 17) == (198u << 7 | 9) || (a >> 28) >= 14;
}

int mandate_is_private_address(const struct sockaddr *sa) {
    if (sa->sa_family == AF_INET) {
        return private_v4(ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr));
    }
    if (sa->sa_family == AF_INET6) {
        const uint8_t *b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        static const uint8_t mapped[12] = {0,0,0,0,0,0,0,0,0,0,0xff,0xff};
        static const uint8_t compat[12] = {0,0,0,0,0,0,0,0,0,0,0,0};     // ::/96, with :: and ::1
        static const uint8_t nat64[12] = {0,0x64,0xff,0x9b,0,0,0,0,0,0,0,0};
        static const uint8_t nat64_local[6] = {0,0x64,0xff,0x9b,0,1};    // 64:ff9b:1::/48 (RFC 8215)
        if (memcmp(b, mapped, 12) == 0 || memcmp(b, compat, 12) == 0 || memcmp(b, nat64, 12) == 0
            || memcmp(b, nat64_local, 6) == 0) {
            return private_v4((uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 | (uint32_t)b[14] << 8 | b[15]);
        }
        if (b[0] == 0x20 && b[1] == 0x02) {                          // 2002::/16 6to4: the IPv4 it wraps
            return private_v4((uint32_t)b[2] << 24 | (uint32_t)b[3] << 16 | (uint32_t)b[4] << 8 | b[5]);
        }
        if ((b[0] & 0xfe) == 0xfc) return 1;                       // fc00::/7 unique local
        if (b[0] == 0xfe && (b[1] & 0x80) == 0x80) return 1;       // fe80::/10 link-local, fec0::/10 site-local
        if (b[0] == 0xff) return 1;                                // multicast
        if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8) return 1;  // 2001:db8::/32
        return 0;
    }
    return 1;
}

// clientp: an int, 1 when private destinations are allowed; set to -1 when one was refused.
static curl_socket_t guarded_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *a) {
    (void)purpose;
    int *guard = clientp;
    if (*guard != 1 && mandate_is_private_address(&a->addr)) { *guard = -1; return CURL_SOCKET_BAD; }
    return socket(a->family, a->socktype, a->protocol);
}

CURLcode mandate_curl_guard_destinations(CURL *h, int *guard) {
    CURLcode rc = curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, guarded_socket);
    if (rc != CURLE_OK) return rc;
    return curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, guard);
}

// MARK: RSA (RS256, RFC 7518 §3.3): OAuth authorization servers' keys only
#include <openssl/rsa.h>
#include <openssl/err.h>
mandate_rsa_key *mandate_rsa_key_new(const uint8_t *n, size_t nlen, const uint8_t *e, size_t elen) {
    // 2048 to 8192 bits: smaller is breakable, larger is a denial of service per verify.
    while (nlen > 0 && n[0] == 0) { n++; nlen--; }
    if (nlen < 256 || nlen > 1024 || elen == 0 || elen > 8) return NULL;
    BIGNUM *bn = BN_bin2bn(n, (int)nlen, NULL), *be = BN_bin2bn(e, (int)elen, NULL);
    OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
    EVP_PKEY *key = NULL;
    if (bn && be && b && BN_is_odd(be) && BN_get_word(be) >= 3
        && OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_N, bn) && OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_E, be)) {
        OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(b);
        EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
        if (params && ctx && EVP_PKEY_fromdata_init(ctx) == 1) (void)EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params);
        EVP_PKEY_CTX_free(ctx);
        OSSL_PARAM_free(params);
    }
    OSSL_PARAM_BLD_free(b);
    BN_free(bn); BN_free(be);
    ERR_clear_error();
    return key;
}

void mandate_rsa_key_free(mandate_rsa_key *k) { EVP_PKEY_free(k); }

int mandate_rsa_verify_sha256(mandate_rsa_key *k, const uint8_t *msg, size_t len, const uint8_t *sig, size_t siglen) {
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    int ok = ctx && EVP_DigestVerifyInit(ctx, &pctx, EVP_sha256(), NULL, k) == 1
        && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1
        && EVP_DigestVerify(ctx, sig, siglen, msg, len) == 1;
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    return ok;
}
