// COpenSSL: libcrypto's HMAC, constant-time compare and CSPRNG. Data-connection authentication
// uses these rather than a home-grown SHA-256.
#include <openssl/hmac.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
