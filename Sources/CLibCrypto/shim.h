#ifndef DTS_CLIBCRYPTO_SHIM_H
#define DTS_CLIBCRYPTO_SHIM_H
#include <openssl/sha.h>
#include <openssl/evp.h>
#endif
