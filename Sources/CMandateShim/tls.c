// TLS termination glue: OpenSSL's macros, callbacks and error queue, kept out of Swift.
#include "mandate_shim.h"
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <stdio.h>
#include <string.h>
#include <errno.h>
#include <openssl/pem.h>

static void tls_error(char *out, size_t outlen) {
    unsigned long e = ERR_get_error();
    const char *reason = e ? ERR_reason_error_string(e) : NULL;
    snprintf(out, outlen, "%s", reason ? reason : "unknown OpenSSL error");
    ERR_clear_error();
}

// RFC 7301 §3.2: the client's list must offer http/1.1, or the handshake fails with
// no_application_protocol. The list is walked here rather than by SSL_select_next_proto.
static int alpn_select(SSL *s, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg) {
    (void)s; (void)arg;
    for (unsigned int i = 0; i < inlen;) {
        unsigned int n = in[i];
        if (n == 0 || i + 1 + n > inlen) break;
        if (n == 8 && memcmp(in + i + 1, "http/1.1", 8) == 0) {
            *out = in + i + 1; *outlen = 8;
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + n;
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

// As nginx does: the handshake completes whatever the client certificate, and the HTTP layer
// refuses a request over a certificate that did not verify (a clear 400 instead of an alert).
static int accept_any(int ok, X509_STORE_CTX *x) { (void)ok; (void)x; return 1; }

// Keys load at startup and on SIGHUP with nobody to ask: OpenSSL's default callback would prompt
// on /dev/tty (or read stdin), so an encrypted key is refused instead, and said to be one.
static int no_passphrase(char *buf, int size, int rwflag, void *u) {
    (void)buf; (void)size; (void)rwflag;
    if (u) *(int *)u = 1;
    return 0;
}

mandate_tls_ctx *mandate_tls_ctx_new(const char *cert, const char *key, const char *ca, int verify,
                                     char *err, size_t errlen) {
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) { tls_error(err, errlen); return NULL; }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    // Partial writes from a buffer that may move (a growing Swift array); buffers released while
    // a connection is idle (10,000 idle TLS clients should not hold 34 KB each).
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
    // TLS 1.2: ECDHE with AEAD only (Mozilla "intermediate"); TLS 1.3 suites are all AEAD.
    if (SSL_CTX_set_cipher_list(ctx, "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                     "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                     "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305") != 1) {
        tls_error(err, errlen); SSL_CTX_free(ctx); return NULL;
    }
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
    static const unsigned char sid[] = "mandate";
    SSL_CTX_set_session_id_context(ctx, sid, sizeof sid - 1);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        char why[200]; tls_error(why, sizeof why);
        snprintf(err, errlen, "certificate %s: %s", cert, why); SSL_CTX_free(ctx); return NULL;
    }
    int encrypted = 0;
    SSL_CTX_set_default_passwd_cb_userdata(ctx, &encrypted);
    int loaded = SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM);
    SSL_CTX_set_default_passwd_cb_userdata(ctx, NULL);
    if (loaded != 1) {
        char why[200]; tls_error(why, sizeof why);
        if (encrypted) snprintf(err, errlen, "key %s is encrypted; give it unencrypted (there is no passphrase prompt)", key);
        else snprintf(err, errlen, "key %s: %s", key, why);
        SSL_CTX_free(ctx); return NULL;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ERR_clear_error();
        snprintf(err, errlen, "key %s does not match certificate %s", key, cert); SSL_CTX_free(ctx); return NULL;
    }
    if (ca && verify != MANDATE_VERIFY_OFF) {
        if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
            char why[200]; tls_error(why, sizeof why);
            snprintf(err, errlen, "client_ca %s: %s", ca, why); SSL_CTX_free(ctx); return NULL;
        }
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca);
        if (names) SSL_CTX_set_client_CA_list(ctx, names);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, accept_any);
        SSL_CTX_set_verify_depth(ctx, 4);
    }
    ERR_clear_error();
    return ctx;
}

void mandate_tls_ctx_free(mandate_tls_ctx *ctx) { SSL_CTX_free(ctx); }

mandate_tls *mandate_tls_new(mandate_tls_ctx *ctx, int fd) {
    SSL *t = SSL_new(ctx);
    if (!t) { ERR_clear_error(); return NULL; }
    if (SSL_set_fd(t, fd) != 1) { SSL_free(t); ERR_clear_error(); return NULL; }
    SSL_set_accept_state(t);
    return t;
}

void mandate_tls_free(mandate_tls *t) { SSL_free(t); }

static int outcome(SSL *t, int r) {
    switch (SSL_get_error(t, r)) {
    case SSL_ERROR_WANT_READ: return MANDATE_TLS_WANT_READ;
    case SSL_ERROR_WANT_WRITE: return MANDATE_TLS_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN: return 0;
    default: ERR_clear_error(); return MANDATE_TLS_FAILED;
    }
}

int mandate_tls_handshake(mandate_tls *t) {
    ERR_clear_error();
    int r = SSL_do_handshake(t);
    return r == 1 ? 1 : outcome(t, r);
}

int mandate_tls_read(mandate_tls *t, void *buf, int len) {
    ERR_clear_error();
    int r = SSL_read(t, buf, len);
    return r > 0 ? r : outcome(t, r);
}

int mandate_tls_write(mandate_tls *t, const void *buf, int len) {
    ERR_clear_error();
    int r = SSL_write(t, buf, len);
    return r > 0 ? r : outcome(t, r);
}

void mandate_tls_close_notify(mandate_tls *t) {
    ERR_clear_error();
    if (SSL_is_init_finished(t)) (void)SSL_shutdown(t);
    ERR_clear_error();
}

// SHA-256 of the DER and the public key (see mandate_tls_peer).
static void describe(X509 *c, uint8_t sha256[32], uint8_t key[65], int *key_kind) {
    *key_kind = 0;
    unsigned char *der = NULL;
    int n = i2d_X509(c, &der);
    if (n > 0) { mandate_sha256(der, (size_t)n, sha256); OPENSSL_free(der); }
    EVP_PKEY *pk = X509_get0_pubkey(c);
    if (pk && EVP_PKEY_get_base_id(pk) == EVP_PKEY_ED25519) {
        size_t l = 32;
        if (EVP_PKEY_get_raw_public_key(pk, key, &l) == 1 && l == 32) *key_kind = 1;
    } else if (pk && EVP_PKEY_is_a(pk, "EC")) {
        char group[32] = ""; size_t gl = 0, l = 0;
        uint8_t point[65];
        if (EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &gl) == 1
            && strcmp(group, "prime256v1") == 0
            && EVP_PKEY_get_octet_string_param(pk, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point, sizeof point, &l) == 1) {
            if (l == 65 && point[0] == 4) { memcpy(key, point, 65); *key_kind = 2; }
            else if (l == 33 && mandate_p256_decompress(point, key) == 1) *key_kind = 2;
        }
    }
    ERR_clear_error();
}

int mandate_tls_peer(mandate_tls *t, uint8_t sha256[32], uint8_t key[65], int *key_kind,
                     char *err, size_t errlen) {
    *key_kind = 0;
    X509 *c = SSL_get0_peer_certificate(t);
    if (!c) return 0;
    describe(c, sha256, key, key_kind);
    long v = SSL_get_verify_result(t);
    if (v != X509_V_OK) { snprintf(err, errlen, "%s", X509_verify_cert_error_string(v)); return -1; }
    return 1;
}

int mandate_x509_file(const char *path, uint8_t sha256[32], uint8_t key[65], int *key_kind,
                      char *err, size_t errlen) {
    FILE *f = fopen(path, "r");
    if (!f) { snprintf(err, errlen, "%s", strerror(errno)); return 0; }
    X509 *c = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (!c) { tls_error(err, errlen); return 0; }
    describe(c, sha256, key, key_kind);
    X509_free(c);
    return 1;
}
