// COpenSSL: libcrypto's HMAC, constant-time compare and CSPRNG (data-connection authentication
// uses these rather than a home-grown SHA-256), and libssl plus X.509 for the control channel's
// TLS and the operator's PKI. The inline functions below exist only because the OpenSSL calls
// they wrap are C macros or variadic functions, which Swift cannot call.
#include <openssl/hmac.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/x509_vfy.h>

/// TLS 1.3 and nothing else (SSL_CTX_set_min/max_proto_version are macros).
static inline int braid_ssl_ctx_set_tls13_only(SSL_CTX *ctx) {
    return SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) == 1
        && SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) == 1;
}

/// Server Name Indication for a client connection (a macro over SSL_ctrl).
static inline int braid_ssl_set_server_name(SSL *ssl, const char *name) {
    return (int)SSL_set_tlsext_host_name(ssl, name);
}

/// A new EC key on P-256 (EVP_EC_gen is a macro over a variadic function).
static inline EVP_PKEY *braid_generate_p256_key(void) {
    return EVP_EC_gen("P-256");
}

/// The bytes held by a memory BIO (BIO_get_mem_data is a macro).
static inline long braid_bio_mem_data(BIO *bio, char **data) {
    return BIO_get_mem_data(bio, data);
}

/// OPENSSL_free is a macro that passes the caller's file and line.
static inline void braid_openssl_free(void *p) {
    OPENSSL_free(p);
}

static inline int braid_err_lib(unsigned long e) { return ERR_GET_LIB(e); }
static inline int braid_err_reason(unsigned long e) { return ERR_GET_REASON(e); }
