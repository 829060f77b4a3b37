// COpenSSL: libcrypto's HMAC, constant-time compare and CSPRNG (data-connection authentication
// uses these rather than a home-grown SHA-256), and libssl plus X.509 for the control channel's
// TLS and the operator's PKI. The inline functions below exist only because the OpenSSL calls
// they wrap are C macros or variadic functions, which Swift cannot call.
#include <string.h>
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

/// Copies the `index`th DNS name of a certificate's subjectAltName into `buf` (NUL-terminated)
/// and returns 1, or returns 0 past the last one or when a name does not fit (the GENERAL_NAME
/// stack is a set of macros over a union).
static inline int braid_x509_dns_alt_name(X509 *cert, int index, char *buf, size_t size) {
    GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    if (!names) return 0;
    int found = 0, seen = 0;
    for (int i = 0; i < sk_GENERAL_NAME_num(names) && !found; i++) {
        const GENERAL_NAME *n = sk_GENERAL_NAME_value(names, i);
        if (n->type != GEN_DNS) continue;
        if (seen++ != index) continue;
        int length = ASN1_STRING_length(n->d.dNSName);
        if (length >= 0 && (size_t)length < size) {
            memcpy(buf, ASN1_STRING_get0_data(n->d.dNSName), (size_t)length);
            buf[length] = 0;
            found = 1;
        }
    }
    GENERAL_NAMES_free(names);
    return found;
}
